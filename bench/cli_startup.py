"""How long the ``omnid`` command line takes to start and answer, each run in a fresh process.

Prints the median wall time of N runs of ``omnid --help``, ``omnid --version``, ``omnid status``
with the config found in the working directory and with ``--config FILE`` (no daemon running:
exit 3; the same path as ``stop``, ``positions`` ... up to the socket) and ``omnid backtest --help``.
``--against DIR`` runs another checkout's CLI too (e.g. a ``git worktree`` of an older commit),
alternating the two run by run, so that both see the same machine load.

Bytecode: by default the children write and read ``.pyc`` files under a temporary
``PYTHONPYCACHEPREFIX`` (warmed by one untimed run), as an installed omnid does. ``--no-pyc``
keeps this environment's setting instead: with ``PYTHONDONTWRITEBYTECODE=1`` every omnid module is
compiled from source on every run, which costs more than the imports themselves.

    .venv/bin/python bench/cli_startup.py [--runs 21] [--against /tmp/cli_old] [--no-pyc]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Runs ``omnid.cli.main`` from a given source tree, as the ``omnid`` console script does.
LAUNCHER = ("import sys; sys.argv[0] = 'omnid'; sys.path.insert(0, sys.argv.pop(1)); "
            "from omnid.cli import main; main()")


def cases(config: Path) -> list[tuple[str, list[str], int]]:
    """(label, arguments, expected exit code) for each command timed; they run in config's directory."""
    return [
        ("omnid --help", ["--help"], 0),
        ("omnid --version", ["--version"], 0),
        ("omnid status", ["status"], 3),
        ("omnid status --config FILE", ["status", "--config", str(config)], 3),
        ("omnid backtest --help", ["backtest", "--help"], 0),
    ]


def run_once(tree: Path, args: list[str], expected: int, env: dict[str, str], cwd: Path) -> float:
    """Wall seconds of one fresh process; exits with a message if the command did not answer as expected."""
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", LAUNCHER, str(tree), *args], env=env, cwd=cwd,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
    elapsed = time.perf_counter() - t0
    if r.returncode != expected:
        sys.exit(f"{tree}: omnid {' '.join(args)} exited {r.returncode}, expected {expected}:\n{r.stderr}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=21, help="timed runs per command and tree")
    ap.add_argument("--against", type=Path,
                    help="another source tree to time alternately (an old commit's worktree)")
    ap.add_argument("--no-pyc", action="store_true", help="keep this environment's bytecode setting")
    opts = ap.parse_args()
    if opts.runs < 1:
        ap.error("--runs must be at least 1")
    trees = {"this": ROOT}
    if opts.against is not None:
        if not (opts.against / "omnid" / "cli.py").is_file():
            ap.error(f"--against {opts.against}: no omnid/cli.py there")
        trees["against"] = opts.against.resolve()

    with tempfile.TemporaryDirectory(prefix="omnid-cli-bench-") as tmp:
        work = Path(tmp)
        config = work / "omnid.toml"  # its data_dir has no socket: status meets no daemon
        config.write_text(f"[omnid]\ndata_dir = '{work / 'var'}'\n")
        env = {**os.environ, "HOME": str(work)}
        if not opts.no_pyc:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(work / "pyc")
        todo = cases(config)
        for tree in trees.values():  # warm the bytecode cache and the page cache; not timed
            for _, args, expected in todo:
                run_once(tree, args, expected, env, work)
        times: dict[tuple[str, str], list[float]] = {}
        for _ in range(opts.runs):
            for label, args, expected in todo:
                for name, tree in trees.items():
                    times.setdefault((label, name), []).append(run_once(tree, args, expected, env, work))

    print(f"omnid CLI start-up: median wall time of {opts.runs} fresh processes "
          f"({'no bytecode cache' if opts.no_pyc else 'bytecode cached'}; python {sys.version.split()[0]})")
    header = f"  {'command':<30}{'this tree':>12}"
    if "against" in trees:
        header += f"{'against':>12}{'ratio':>8}"
    print(header)
    for label, _, _ in todo:
        mine = statistics.median(times[(label, "this")])
        line = f"  {label:<30}{mine * 1e3:>10.0f}ms"
        if "against" in trees:
            other = statistics.median(times[(label, "against")])
            line += f"{other * 1e3:>10.0f}ms{other / mine:>7.1f}x"
        print(line)
    if "against" in trees:
        print(f"  against = {trees['against']}")


if __name__ == "__main__":
    main()
