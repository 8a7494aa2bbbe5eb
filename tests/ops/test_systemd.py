"""The unit file: Type=notify with watchdog and sandboxing, and `systemd-analyze verify` passes."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "omnid.service"


def _unit() -> configparser.RawConfigParser:
    cp = configparser.RawConfigParser(strict=False)
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read_string(UNIT.read_text())
    return cp


def test_unit_has_the_required_directives() -> None:
    svc = _unit()["Service"]
    assert svc["Type"] == "notify"
    assert int(svc["WatchdogSec"]) > 0
    assert svc["Restart"] == "on-failure"
    assert svc["User"] == "omnid"
    assert svc["EnvironmentFile"].lstrip("-") == "/etc/omnid/omnid.env"
    for key in ("NoNewPrivileges", "PrivateTmp"):
        assert svc[key] == "yes"
    assert svc["ProtectSystem"] == "strict"
    assert svc["ReadWritePaths"] == "/var/lib/omnid"
    assert "omnid run --config" in svc["ExecStart"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    # Point ExecStart at this checkout's omnid so verify can check the binary exists.
    omnid = Path(sys.executable).parent / "omnid"
    text = UNIT.read_text().replace("/opt/omnid/.venv/bin/omnid", str(omnid))
    unit = tmp_path / "omnid.service"
    unit.write_text(text)
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_install_script_is_valid_bash() -> None:
    r = subprocess.run(["bash", "-n", str(ROOT / "scripts" / "install-service.sh")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
