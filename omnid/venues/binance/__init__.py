"""Binance spot: market data, local order book, signed REST execution and the user data stream.

- ``config``: the ``[binance]`` section and guarded credentials.
- ``wire``: the documented JSON formats decoded with msgspec straight into omnid's model.
- ``book``: the local order book's sync rules (buffer, snapshot, stale, gap), no I/O.
- ``feed``: the combined-stream WebSocket task (reconnects, silence, serverShutdown, recovery).
- ``rest``: signing, server time, request weight and error mapping.
- ``orders``: omnid orders → rounded, checked Binance parameters.
- ``broker``: the :class:`~omnid.ports.ExecutionClient` (REST orders, executionReport fills).
- ``backfill``: klines into the store.  ``service``: builders the daemon calls.
"""
