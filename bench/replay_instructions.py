"""Instructions per replayed tick, counted by valgrind: a figure the machine's load cannot move.

Wall-clock ticks/s on a shared 2-core VM wanders by ±20 % from run to run; an instruction count
does not. This runs the replay scenarios of ``bench/replay.py`` under ``valgrind --tool=cachegrind``
twice (one replay, then two) and prints the difference per tick, so start-up and data generation
cancel out. numpy's thread pools are held to one thread and the hash seed is fixed: without that the
same code counts several hundred instructions per tick apart.

    .venv/bin/python bench/replay_instructions.py [--scenario a|b] [--ticks 100000]

Needs valgrind on the PATH; takes about a minute per scenario.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _replay(scenario: str, ticks: int, reps: int) -> None:
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(HERE.parent))
    from omnid.sim.book import TradeBook
    from omnid.sim.replay import replay_ticks
    from omnid.sim.synthetic import generate_ticks

    from replay import _core_a, _core_b

    if scenario == "a":
        data, build = generate_ticks(ticks, instruments=10, seed=1), _core_a
    else:
        data, build = generate_ticks(ticks, seed=3), _core_b
    ids = [f"{s}.SIM" for s in data.symbols]
    for _ in range(reps):
        book = TradeBook(1_000_000.0)
        core = build(data, ids, book)
        core.start()
        replay_ticks(data, ids, core.clock, core.on_trade, book)


def _count(scenario: str, ticks: int, reps: int) -> int:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", PYTHONHASHSEED="0")
    cmd = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
           sys.executable, __file__, "--child", "--scenario", scenario, "--ticks", str(ticks),
           "--reps", str(reps)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stderr
    m = re.search(r"I\s+refs:\s+([\d,]+)", out)
    if m is None:
        raise SystemExit(f"no instruction count in valgrind's output:\n{out[-2000:]}")
    return int(m.group(1).replace(",", ""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", choices=["a", "b"], default=None, help="default: both")
    ap.add_argument("--ticks", type=int, default=100_000)
    ap.add_argument("--reps", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _replay(args.scenario or "a", args.ticks, args.reps)
        return
    for sc in [args.scenario] if args.scenario else ["a", "b"]:
        one = _count(sc, args.ticks, 1)
        two = _count(sc, args.ticks, 2)
        print(f"scenario {sc}: {(two - one) // args.ticks:,} instructions per tick ({args.ticks:,} ticks)")


if __name__ == "__main__":
    main()
