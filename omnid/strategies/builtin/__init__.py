"""The built-in strategies; importing this package registers their kinds."""

from omnid.strategies.builtin.momentum import Momentum, MomentumParams
from omnid.strategies.builtin.pairs import Pairs, PairsParams
from omnid.strategies.builtin.scanner import Scanner, ScannerParams, ScanRanking
from omnid.strategies.builtin.sma_cross import SmaCross, SmaCrossParams

__all__ = [
    "Momentum",
    "MomentumParams",
    "Pairs",
    "PairsParams",
    "ScanRanking",
    "Scanner",
    "ScannerParams",
    "SmaCross",
    "SmaCrossParams",
]
