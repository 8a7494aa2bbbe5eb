"""Where a daemon's files are, from its config: kept light so CLI clients import little."""

from __future__ import annotations

from pathlib import Path

import msgspec

from omnid.config import OmnidConfig
from omnid.errors import ConfigError

#: Where a config is looked for when none is given.
DEFAULT_CONFIG_PATHS = (
    Path("omnid.toml"),
    Path("~/.config/omnid/omnid.toml"),
    Path("/etc/omnid/omnid.toml"),
)


class DaemonPaths(msgspec.Struct, frozen=True):
    data_dir: str
    socket: str
    pid_file: str
    log_file: str
    start_log: str


def daemon_paths(cfg: OmnidConfig) -> DaemonPaths:
    """Where this config's daemon keeps its socket, pid file and logs (all under data_dir)."""
    data = cfg.data_dir

    def under(p: str) -> str:
        q = Path(p).expanduser()
        return str(q if q.is_absolute() else data / q)

    return DaemonPaths(
        data_dir=str(data),
        socket=under(cfg.admin.socket),
        pid_file=under(cfg.admin.pid_file),
        log_file=under(cfg.logging.file) if cfg.logging.file else "",
        start_log=str(data / "logs" / "start.log"),
    )


def find_config(explicit: Path | None) -> Path:
    """The config file: ``explicit`` if given, else the first of :data:`DEFAULT_CONFIG_PATHS`."""
    if explicit is not None:
        return explicit
    for p in DEFAULT_CONFIG_PATHS:
        q = p.expanduser()
        if q.is_file():
            return q
    tried = ", ".join(str(p) for p in DEFAULT_CONFIG_PATHS)
    raise ConfigError("config", [("", f"no config file given and none found (tried {tried})")])


def read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
