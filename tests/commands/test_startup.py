"""The CLI starts light: ``--help``, ``--version`` and the daemon client commands import no heavy module.

Each probe runs the real entry point (``omnid.cli.main``) in a fresh interpreter and reports the
exit codes and ``sys.modules``; what a command needs is imported in its body, so a module-level
``import numpy`` (or the config, the daemon, storage ...) in ``omnid/cli.py`` or
``omnid/commands/*.py`` fails here. Timings are in bench/cli_startup.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from omnid.cli import app
from typer.testing import CliRunner

#: Runs main() once per argv list (the help of every command when given "ALL_HELP"), then writes
#: the exit codes and the imported modules to the file named by argv[2].
PROBE = r"""
import json, sys
import typer
from omnid.cli import app, main

def paths(cmd, prefix=()):
    out = [list(prefix)]
    for name, sub in (getattr(cmd, "commands", None) or {}).items():
        out.extend(paths(sub, (*prefix, name)))
    return out

todo = json.loads(sys.argv[1])
if todo == "ALL_HELP":
    todo = [["--version"]] + [[*p, "--help"] for p in paths(typer.main.get_command(app))]
report = sys.argv[2]
codes = []
for argv in todo:
    sys.argv = ["omnid", *argv]
    try:
        main()
        codes.append(0)
    except SystemExit as exc:
        codes.append(exc.code if isinstance(exc.code, int) else 1)
with open(report, "w") as f:
    json.dump({"argv": todo, "codes": codes, "modules": sorted(sys.modules)}, f)
"""

#: Never needed to show help or the version: numeric and file libraries, the config (it imports
#: every part's section), the daemon and its parts, the logging stack. (pydantic is not here: typer
#: builds a pydantic coercion for each option it processes.)
HELP_HEAVY = (
    "numpy", "pyarrow", "pandas", "msgspec", "asyncio", "rich", "structlog", "tqdm",
    "omnid.config", "omnid.daemon", "omnid.engine", "omnid.datafiles", "omnid.sim", "omnid.storage",
    "omnid.venues", "omnid.features", "omnid.strategies", "omnid.risk", "omnid.ops.admin",
)
#: Never needed to ask the daemon something (status, stop ...): the config and the admin client
#: are, the rest is not.
CLIENT_HEAVY = (
    "numpy", "pyarrow", "pandas", "tqdm", "aiohttp", "asyncpg", "uvloop", "websockets",
    "asyncio", "structlog", "rich", "omnid.ops.admin", "omnid.risk.gate", "omnid.risk.exits",
    "omnid.venues.paper.broker",
    "omnid.daemon", "omnid.engine", "omnid.datafiles", "omnid.sim", "omnid.storage.recorder",
    "omnid.storage.service", "omnid.storage.sinks", "omnid.venues.binance.feed", "omnid.ops.engine_core",
)


def _probe(tmp_path: Path, argvs: Any) -> dict[str, Any]:
    report = tmp_path / "report.json"
    env = {**os.environ, "HOME": str(tmp_path / "home")}
    env.pop("OMNID__OMNID__DATA_DIR", None)
    r = subprocess.run([sys.executable, "-c", PROBE, json.dumps(argvs), str(report)], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(report.read_text())  # type: ignore[no-any-return]


def _loaded(modules: list[str], heavy: tuple[str, ...]) -> list[str]:
    return [m for m in modules if any(m == h or m.startswith(h + ".") for h in heavy)]


def test_help_of_every_command_and_version_import_no_heavy_module(tmp_path: Path) -> None:
    rep = _probe(tmp_path, "ALL_HELP")
    assert len(rep["argv"]) > 20 and ["backtest", "--help"] in rep["argv"]  # the whole tree was asked
    assert set(rep["codes"]) == {0}, list(zip(rep["argv"], rep["codes"], strict=True))
    assert _loaded(rep["modules"], HELP_HEAVY) == []


def test_daemon_client_commands_without_a_daemon_import_no_heavy_module(tmp_path: Path) -> None:
    (tmp_path / "omnid.toml").write_text(f"[omnid]\ndata_dir = '{tmp_path / 'var'}'\n")
    rep = _probe(tmp_path, [["status"], ["stop"], ["positions", "--json"], ["pause"]])
    assert rep["codes"] == [3, 3, 3, 3]  # no daemon running
    assert "omnid.config" in rep["modules"]  # the probe sees what command bodies import
    assert _loaded(rep["modules"], CLIENT_HEAVY) == []


def test_a_bad_config_still_exits_2_naming_the_key(tmp_path: Path) -> None:
    (tmp_path / "omnid.toml").write_text("[omnid]\ndata_dri = 'var'\n")
    r = subprocess.run([sys.executable, "-m", "omnid.cli", "status"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=60, env={**os.environ, "HOME": str(tmp_path / "home")})
    assert r.returncode == 2
    assert "omnid.data_dri: unknown key" in r.stderr


def test_a_bad_option_value_is_typers_usage_error() -> None:
    r = CliRunner().invoke(app, ["data", "synth", "out.csv", "--rows", "many"])
    assert r.exit_code == 2
    assert "Invalid value for '--rows'" in r.output
