"""scripts/install-service.sh run for real into a staging root (--root), with this checkout's venv.

A `systemctl` placed first on PATH records its arguments, so the test sees what the script asks of
systemd without touching the machine's; one test lets the real `systemctl --root` enable the unit.
"""

from __future__ import annotations

import configparser
import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "install-service.sh"
VENV = Path(sys.executable).parent.parent  # this checkout's venv, omnid installed in it
UNIT = Path("etc/systemd/system/omnid.service")


@pytest.fixture
def fake_bin(tmp_path: Path) -> Path:
    """A directory with a `systemctl` that appends its arguments, one call a line, to ./calls."""
    d = tmp_path / "bin"
    d.mkdir()
    tool = d / "systemctl"
    tool.write_text(f'#!/bin/sh\necho "$*" >> {d / "calls"}\n')
    tool.chmod(0o755)
    return d


def _calls(fake_bin: Path) -> list[str]:
    f = fake_bin / "calls"
    return f.read_text().splitlines() if f.exists() else []


def install(
    *args: str | Path, path_first: Path | None = None, destdir: Path | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMNID__", "DESTDIR"))}
    if path_first is not None:
        env["PATH"] = f"{path_first}{os.pathsep}{env['PATH']}"
    if destdir is not None:
        env["DESTDIR"] = str(destdir)
    return subprocess.run(
        ["bash", str(SCRIPT), *map(str, args)], env=env, capture_output=True, text=True, timeout=120, cwd=cwd
    )


def _unit(path: Path) -> configparser.SectionProxy:
    cp = configparser.RawConfigParser(strict=False)
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read_string(path.read_text())
    return cp["Service"]


def _tree(root: Path) -> dict[str, tuple[int, str]]:
    """Every path under ``root`` with its mode and, for files, a content hash."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        digest = hashlib.sha256(p.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else ""
        out[str(p.relative_to(root))] = (st.st_mode, digest)
    return out


def _verify(unit: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        return  # nothing to check it with on this machine
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_custom_paths_land_in_the_root_and_a_rerun_changes_nothing(tmp_path: Path, fake_bin: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    args = (
        "--root",
        root,
        "--venv",
        VENV,
        "--prefix",
        "/srv/omnid/code",
        "--etc",
        "/srv/omnid/etc",
        "--data",
        "/srv/omnid/data",
        "--user",
        "trader",
    )
    r = install(*args, path_first=fake_bin)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "not creating user trader" in r.stdout

    unit = root / UNIT
    svc = _unit(unit)
    assert svc["ExecStart"] == f"{VENV}/bin/omnid run --config /srv/omnid/etc/omnid.toml"
    assert (svc["User"], svc["Group"]) == ("trader", "trader")
    assert svc["WorkingDirectory"] == svc["ReadWritePaths"] == "/srv/omnid/data"
    assert svc["EnvironmentFile"] == "-/srv/omnid/etc/omnid.env"
    assert "StateDirectory" not in svc  # only meaningful under /var/lib
    # No default path is left anywhere, comments included ("/srv/omnid/etc" is no "/etc/omnid").
    assert re.findall(r"(?<![\w.-])(?:/opt/omnid|/etc/omnid|/var/lib/omnid)\b", unit.read_text()) == []
    assert stat.S_IMODE(unit.stat().st_mode) == 0o644

    config = root / "srv/omnid/etc/omnid.toml"
    assert 'data_dir = "/srv/omnid/data"' in config.read_text().splitlines()
    assert stat.S_IMODE(config.stat().st_mode) == 0o640
    assert stat.S_IMODE((root / "srv/omnid/etc/omnid.env").stat().st_mode) == 0o640
    assert stat.S_IMODE((root / "srv/omnid/etc").stat().st_mode) == 0o750
    assert stat.S_IMODE((root / "srv/omnid/data").stat().st_mode) == 0o750
    code = root / "srv/omnid/code"
    assert (code / "omnid" / "__init__.py").is_file() and (code / "README.md").is_file()
    assert not (code / ".git").exists() and not (code / ".venv").exists()
    assert _calls(fake_bin) == [f"--root={root} enable omnid.service"]  # no reload, no start
    _verify(unit)

    # The owner's edits survive a re-run; everything else is rewritten to the same bytes.
    with config.open("a") as f:
        f.write("# edited by the owner\n")
    (root / "srv/omnid/etc/omnid.env").write_text("OMNID__ALERTS__TELEGRAM__BOT_TOKEN=123456:abc\n")
    before = _tree(root)
    r = install(*args, path_first=fake_bin)
    assert r.returncode == 0, r.stdout + r.stderr
    assert _tree(root) == before
    assert _calls(fake_bin) == [f"--root={root} enable omnid.service"] * 2


def test_default_paths_into_destdir_without_systemctl(tmp_path: Path, fake_bin: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    # DESTDIR stands for --root; a relative --venv is taken from the working directory.
    r = install("--venv", VENV.name, "--no-systemctl", path_first=fake_bin, destdir=root, cwd=VENV.parent)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "--no-systemctl: the unit is not enabled" in r.stdout
    assert _calls(fake_bin) == []
    svc = _unit(root / UNIT)
    assert svc["ExecStart"] == f"{VENV}/bin/omnid run --config /etc/omnid/omnid.toml"
    assert (svc["User"], svc["Group"], svc["WorkingDirectory"]) == ("omnid", "omnid", "/var/lib/omnid")
    assert svc["StateDirectory"] == "omnid" and svc["ReadWritePaths"] == "/var/lib/omnid"
    assert svc["EnvironmentFile"] == "-/etc/omnid/omnid.env"
    assert 'data_dir = "/var/lib/omnid"' in (root / "etc/omnid/omnid.toml").read_text().splitlines()
    assert (root / "opt/omnid/omnid/__init__.py").is_file() and (root / "var/lib/omnid").is_dir()
    _verify(root / UNIT)


@pytest.mark.skipif(shutil.which("systemctl") is None, reason="systemctl not installed")
def test_real_systemctl_enables_the_unit_inside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    r = install("--root", root, "--venv", VENV)
    assert r.returncode == 0, r.stdout + r.stderr
    link = root / "etc/systemd/system/multi-user.target.wants/omnid.service"
    assert link.is_symlink() and os.readlink(link) == "/etc/systemd/system/omnid.service"


def test_a_config_that_fails_its_check_stops_before_the_unit(tmp_path: Path, fake_bin: Path) -> None:
    root = tmp_path / "root"
    (root / "etc/omnid").mkdir(parents=True)
    (root / "etc/omnid/omnid.toml").write_text("no_such_key = 1\n")  # kept: an existing config
    r = install("--root", root, "--venv", VENV, path_first=fake_bin)
    assert r.returncode == 1
    assert "no_such_key: unknown key" in r.stdout + r.stderr
    assert "does not pass 'omnid config check'" in r.stderr
    assert (root / "etc/omnid/omnid.toml").read_text() == "no_such_key = 1\n"
    assert not (root / UNIT).exists() and _calls(fake_bin) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bogus"], "unknown option '--bogus'"),
        (["--prefix"], "--prefix needs a value"),
        (["--root", "{root}", "--venv", "{root}/no-venv"], "--venv '{root}/no-venv': no executable"),
        (["--root", "{root}"], "--root needs --venv"),
        (["--root", "{root}/missing", "--venv", "{venv}"], "--root '{root}/missing': no such directory"),
        (
            ["--root", "{root}", "--venv", "{venv}", "--data", "var/lib/x"],
            "--data 'var/lib/x': give an absolute",
        ),
        (["--root", "{root}", "--venv", "{venv}", "--etc", "/etc/my omnid"], "--etc '/etc/my omnid': give"),
        (["--root", "{root}", "--venv", "{venv}", "--prefix", "/"], "cannot be /"),
        (["--root", "{root}", "--venv", "{venv}", "--user", "Bad User"], "--user 'Bad User': not a valid"),
        (["--root", "{root}", "--venv", "{venv}", "--prefix", "/srv"], "refusing to replace its contents"),
    ],
)
def test_bad_input_exits_2_before_changing_anything(
    tmp_path: Path, fake_bin: Path, args: list[str], message: str
) -> None:
    root = tmp_path / "root"
    (root / "srv" / "other").mkdir(parents=True)  # something that is not an omnid install
    before = _tree(root)
    fill = {"root": str(root), "venv": str(VENV)}
    r = install(*(a.format(**fill) for a in args), path_first=fake_bin)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.startswith("install-service.sh: ") and message.format(**fill) in r.stderr
    assert r.stdout == "" and _tree(root) == before and _calls(fake_bin) == []


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv")
def test_a_real_install_needs_root() -> None:
    # The unprivileged user must be able to read the script: a checkout (or pytest's tmp_path)
    # under a 0700 directory is not, so it runs from a world-readable copy.
    where = Path(tempfile.mkdtemp(prefix="omnid-install-"))
    try:
        where.chmod(0o755)
        script = where / "install-service.sh"
        shutil.copyfile(SCRIPT, script)
        script.chmod(0o755)
        r = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "bash", str(script), "--no-start"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=where,
        )
    finally:
        shutil.rmtree(where, ignore_errors=True)
    assert r.returncode == 2, r.stderr
    assert "install-service.sh: run as root (sudo), or stage into a directory with --root" in r.stderr


def test_help_names_every_option() -> None:
    r = install("--help")
    assert r.returncode == 0
    for opt in ("--prefix", "--etc", "--data", "--user", "--venv", "--root", "--no-start", "--no-systemctl"):
        assert opt in r.stdout
