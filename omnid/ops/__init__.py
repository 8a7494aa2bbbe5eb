"""omnid as a service: everything around the trading core that a person running it relies on.

- :mod:`omnid.ops.config`: the ``[logging]``, ``[admin]``, ``[http]`` and ``[alerts]`` sections.
- :mod:`omnid.ops.paths`: where a config's daemon keeps its socket, pid file and logs.
- :mod:`omnid.ops.protocol` / :mod:`omnid.ops.admin`: the admin socket (newline-delimited JSON,
  versioned replies) and its synchronous client, used by the CLI.
- :mod:`omnid.ops.engine_core`: the Engine with storage, the journal and venue clients behind the
  daemon's :class:`~omnid.daemon.TradingCore` surface (restore → reconcile → warm up → trade).
- :mod:`omnid.ops.alerts`: alert rules, the bounded queue and the Telegram/webhook sender.
- :mod:`omnid.ops.notify`: sd_notify (READY, STATUS, WATCHDOG, STOPPING) without libsystemd.
- :mod:`omnid.ops.health`: ``/healthz`` and ``/readyz`` on loopback.
- :mod:`omnid.ops.logging`: structlog to a rotating JSON-lines file, secrets redacted.

The daemon itself (one loop, signals, start-up and stop order) is :mod:`omnid.daemon`; its
commands are :mod:`omnid.commands.daemon`.
"""
