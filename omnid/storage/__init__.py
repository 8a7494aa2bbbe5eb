"""omnid.storage: recording everything, the write-ahead order journal, and historical data.

- :mod:`.catalog`: struct type → table (groups md / derived / strategy / exec), natural keys;
  :func:`~.catalog.register_table` for new types; anything else lands as JSON in strategy.records.
- :mod:`.recorder`: :class:`~.recorder.BatchRecorder`, the hot path's ``record(item)`` (O(1)).
- :mod:`.flusher`: background tasks writing batches every N rows / T ms per sink, spooling to
  :mod:`.spool` while a sink is down and replaying in order when it returns.
- :mod:`.sinks`: SQLite (writer process, WAL), PostgreSQL (asyncpg COPY, day partitions,
  migrations in ``migrations/postgres``), QuestDB (official client, ILP over HTTP).
- :mod:`.journal`: the framed, fsynced write-ahead order journal and :func:`~.journal.replay`.
- :mod:`.history`: ``omnid data`` import/export, the candles query, bars built from trades.
- :mod:`.service`: :class:`~.service.Storage`, everything above wired from ``[storage]``.
"""
