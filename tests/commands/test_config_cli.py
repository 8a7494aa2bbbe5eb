"""`omnid config check`: exit 0 on the example, exit 2 naming the key on a broken file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OMNID = str(Path(sys.executable).parent / "omnid")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([OMNID, *args], capture_output=True, text=True, cwd=ROOT, timeout=60)


def test_help_lists_commands() -> None:
    r = run("--help")
    assert r.returncode == 0
    assert "config" in r.stdout


def test_check_example_exits_0() -> None:
    r = run("config", "check", "omnid.toml.example")
    assert r.returncode == 0, r.stderr
    assert "ok" in r.stdout


def test_check_broken_file_exits_2_naming_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[omnid]\ndata_dri = 'var'\n[[instruments]]\nsymbol = 'X'\nvenue = 'SIM'\nlot_size = 'one'\n")
    r = run("config", "check", str(bad))
    assert r.returncode == 2
    assert "omnid.data_dri: unknown key" in r.stderr
    assert "instruments[0].lot_size" in r.stderr
    assert str(bad) in r.stderr


def test_check_missing_file_exits_2(tmp_path: Path) -> None:
    r = run("config", "check", str(tmp_path / "absent.toml"))
    assert r.returncode == 2
    assert "file not found" in r.stderr
