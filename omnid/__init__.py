"""omnid: a personal quant trading daemon."""

__version__ = "0.1.0"
