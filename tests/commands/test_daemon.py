"""`omnid start`'s start.log: rotated by [logging] max_bytes / backup_count before each start.

The daemon really starts (and fails: its HTTP port is taken), so the lines that explain the failure
are the ones the daemon itself wrote into the fresh start.log.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_daemon import _env, cli

pytestmark = pytest.mark.integration

LIMIT = 2048


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        yield busy.getsockname()[1]


def _failed_start(data_dir: Path, port: int) -> subprocess.CompletedProcess[str]:
    config = data_dir.parent / "omnid.toml"  # the least config that starts: HTTP on the taken port
    config.write_text("[http]\nenabled = true\n")
    env = _env(
        data_dir,
        OMNID__HTTP__PORT=str(port),
        OMNID__LOGGING__MAX_BYTES=str(LIMIT),
        OMNID__LOGGING__BACKUP_COUNT="2",
    )
    r = cli(env, "start", config=config)
    assert r.returncode == 1, r.stderr
    assert "exited with code 1 during start-up" in r.stderr
    assert "start-up failed" in r.stderr and str(port) in r.stderr
    return r


def test_a_full_start_log_is_rotated_and_the_failure_read_from_the_fresh_one(
    tmp_path: Path, busy_port: int
) -> None:
    logs = tmp_path / "var" / "logs"
    logs.mkdir(parents=True)
    start_log = logs / "start.log"
    start_log.write_text("--- earlier start\nEARLIER-REASON\n" + "x" * LIMIT + "\n")
    (logs / "start.log.1").write_text("OLDER\n")
    (logs / "start.log.2").write_text("OLDEST\n")

    r = _failed_start(tmp_path / "var", busy_port)

    assert "could not rotate" not in r.stderr and "EARLIER-REASON" not in r.stderr
    assert start_log.read_text().startswith("--- omnid start ")
    assert "start-up failed" in start_log.read_text()
    assert (logs / "start.log.1").read_text().startswith("--- earlier start\nEARLIER-REASON\n")
    assert (logs / "start.log.2").read_text() == "OLDER\n"  # OLDEST went past backup_count=2
    assert sorted(p.name for p in logs.glob("start.log*")) == ["start.log", "start.log.1", "start.log.2"]


def test_a_start_log_under_the_limit_is_appended_to(tmp_path: Path, busy_port: int) -> None:
    logs = tmp_path / "var" / "logs"
    logs.mkdir(parents=True)
    start_log = logs / "start.log"
    start_log.write_text("--- earlier start\nEARLIER-REASON\n")

    r = _failed_start(tmp_path / "var", busy_port)

    assert "EARLIER-REASON" not in r.stderr  # the tail is this start's, not the previous one's
    text = start_log.read_text()
    assert text.startswith("--- earlier start\nEARLIER-REASON\n--- omnid start ")
    assert not (logs / "start.log.1").exists()


def test_a_failed_rotation_warns_and_the_daemon_appends_to_the_old_file(
    tmp_path: Path, busy_port: int
) -> None:
    logs = tmp_path / "var" / "logs"
    logs.mkdir(parents=True)
    start_log = logs / "start.log"
    start_log.write_text("EARLIER-REASON\n" + "x" * LIMIT + "\n")
    (logs / "start.log.1").write_text("OLDER\n")
    blocker = logs / "start.log.2"  # a non-empty directory: start.log.1 cannot be moved onto it
    blocker.mkdir()
    (blocker / "keep").write_text("")

    r = _failed_start(tmp_path / "var", busy_port)

    assert f"omnid: warning: could not rotate {start_log}" in r.stderr
    assert "appending to it" in r.stderr
    text = start_log.read_text()
    assert text.startswith("EARLIER-REASON\n") and "\n--- omnid start " in text
    assert "start-up failed" in text.split("--- omnid start ", 1)[1]
    assert (logs / "start.log.1").read_text() == "OLDER\n"
    assert (blocker / "keep").exists()
