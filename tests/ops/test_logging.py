"""Logging: JSON lines in a rotating file, secrets masked by key name and by registered value."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from omnid.ops.config import LoggingConfig
from omnid.ops.logging import MASK, configure_logging, redact, register_secret, rotate_by_size


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    yield
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
        h.close()
    structlog.reset_defaults()


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_json_lines_with_context_and_redaction(tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "omnid.log"
    configure_logging(LoggingConfig(console="off"), log_file)
    register_secret("s3cr3t-token-value")
    log = structlog.get_logger("omnid.test")
    log.info("order", client_order_id="o1", api_key="AKIA123", nested={"password": "hunter2", "qty": 1})
    log.warning("reconnect", url="https://api.example/botS3cr3t/x s3cr3t-token-value", attempt=2)
    logging.getLogger("aiohttp.client").warning("library line with s3cr3t-token-value")
    rows = _lines(log_file)
    assert rows[0]["event"] == "order" and rows[0]["client_order_id"] == "o1"
    assert rows[0]["api_key"] == MASK and rows[0]["nested"] == {"password": MASK, "qty": 1}
    assert rows[0]["level"] == "info" and "timestamp" in rows[0]
    assert "s3cr3t-token-value" not in log_file.read_text()
    assert rows[1]["attempt"] == 2 and rows[2]["logger"] == "aiohttp.client"


def test_level_filters(tmp_path: Path) -> None:
    log_file = tmp_path / "o.log"
    configure_logging(LoggingConfig(level="warning", console="off"), log_file)
    structlog.get_logger("x").info("quiet")
    structlog.get_logger("x").error("loud")
    assert [r["event"] for r in _lines(log_file)] == ["loud"]


def test_rotation_by_size(tmp_path: Path) -> None:
    log_file = tmp_path / "r.log"
    configure_logging(LoggingConfig(console="off", max_bytes=2048, backup_count=2), log_file)
    log = structlog.get_logger("x")
    for i in range(200):
        log.info("line", i=i, pad="x" * 50)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["r.log", "r.log.1", "r.log.2"]
    assert all(p.stat().st_size <= 2048 + 200 for p in tmp_path.iterdir())


def test_pretty_console(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(LoggingConfig(console="pretty", file=""), None)
    structlog.get_logger("x").info("hello", token="abcdef123")
    err = capsys.readouterr().err
    assert "hello" in err and "abcdef123" not in err and not err.lstrip().startswith("{")


def test_redact_names() -> None:
    out = redact({"secret_key": "x", "Authorization_TOKEN": "y", "keys": ["a"], "name": "n", "empty_key": ""})
    assert out == {"secret_key": MASK, "Authorization_TOKEN": MASK, "keys": MASK, "name": "n", "empty_key": ""}


def _fill(path: Path, text: str, size: int) -> None:
    path.write_text(text + "x" * (size - len(text)))


def test_rotate_by_size_shifts_and_keeps_backup_count(tmp_path: Path) -> None:
    log = tmp_path / "start.log"
    assert rotate_by_size(log, 1024, 2) is False  # no file yet: nothing to do
    _fill(log, "small\n", 100)
    assert rotate_by_size(log, 1024, 2) is False and log.read_text().startswith("small")
    for gen in ("first", "second", "third"):
        _fill(log, gen + "\n", 1024)
        assert rotate_by_size(log, 1024, 2) is True
        assert not log.exists()
    # Newest in .1; the first generation was dropped past backup_count=2.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["start.log.1", "start.log.2"]
    assert (tmp_path / "start.log.1").read_text().startswith("third")
    assert (tmp_path / "start.log.2").read_text().startswith("second")


def test_rotate_by_size_without_backups_removes_the_file(tmp_path: Path) -> None:
    log = tmp_path / "start.log"
    _fill(log, "old\n", 2000)
    assert rotate_by_size(log, 1024, 0) is True
    assert list(tmp_path.iterdir()) == []


def test_rotate_by_size_failure_leaves_the_file_in_place(tmp_path: Path) -> None:
    log = tmp_path / "start.log"
    _fill(log, "current\n", 2000)
    (tmp_path / "start.log.1").write_text("previous\n")
    blocker = tmp_path / "start.log.2"  # a non-empty directory cannot be replaced by a file
    blocker.mkdir()
    (blocker / "keep").write_text("")
    with pytest.raises(OSError):
        rotate_by_size(log, 1024, 2)
    assert log.read_text().startswith("current")
    assert (tmp_path / "start.log.1").read_text() == "previous\n"
