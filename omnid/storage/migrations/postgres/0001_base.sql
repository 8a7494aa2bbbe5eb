-- 0001: the four schemas and the built-in catalogue's tables.
-- {md}, {derived}, {strategy}, {exec} are replaced by the (prefixed) schema names.
-- Timestamps are bigint nanoseconds since the epoch, UTC. Tick tables are partitioned by
-- day on ts_event; the sink creates each day's partition before writing into it.
-- Text key columns use COLLATE "C" (bytewise) so unique-index upkeep is cheap.

CREATE SCHEMA IF NOT EXISTS {md};
CREATE SCHEMA IF NOT EXISTS {derived};
CREATE SCHEMA IF NOT EXISTS {strategy};
CREATE SCHEMA IF NOT EXISTS {exec};

CREATE TABLE IF NOT EXISTS {md}."instruments" ("instrument_id" text COLLATE "C" NOT NULL, "symbol" text, "venue" text, "asset_class" text, "quote_currency" text, "base_currency" text, "tick_size" double precision, "lot_size" double precision, "min_qty" double precision, "min_notional" double precision, "multiplier" double precision, "calendar" jsonb, PRIMARY KEY ("instrument_id"));
CREATE TABLE IF NOT EXISTS {md}."trades" ("instrument_id" text COLLATE "C" NOT NULL, "price" double precision, "size" double precision, "side" text, "ts_event" bigint NOT NULL, "ts_init" bigint, "trade_id" text COLLATE "C" NOT NULL, PRIMARY KEY ("instrument_id", "ts_event", "trade_id")) PARTITION BY RANGE ("ts_event");
CREATE TABLE IF NOT EXISTS {md}."quotes" ("instrument_id" text COLLATE "C" NOT NULL, "bid" double precision, "ask" double precision, "bid_size" double precision, "ask_size" double precision, "ts_event" bigint NOT NULL, "ts_init" bigint NOT NULL, PRIMARY KEY ("instrument_id", "ts_event", "ts_init")) PARTITION BY RANGE ("ts_event");
CREATE TABLE IF NOT EXISTS {md}."bars" ("instrument_id" text COLLATE "C" NOT NULL, "interval_ns" bigint NOT NULL, "ts_open" bigint NOT NULL, "open" double precision, "high" double precision, "low" double precision, "close" double precision, "volume" double precision, "ts_event" bigint, "ts_init" bigint, PRIMARY KEY ("instrument_id", "interval_ns", "ts_open"));
CREATE INDEX IF NOT EXISTS "bars_ts" ON {md}."bars" ("ts_open");
CREATE TABLE IF NOT EXISTS {strategy}."intents" ("strategy_id" text COLLATE "C" NOT NULL, "ts_event" bigint NOT NULL, "instrument_id" text COLLATE "C" NOT NULL, "side" text COLLATE "C" NOT NULL, "action" text COLLATE "C" NOT NULL, "qty" double precision, "order_type" text, "limit_price" double precision, "stop_price" double precision, "tif" text, "stop_loss" double precision, "take_profit" double precision, "reason" text, "numbers" jsonb, PRIMARY KEY ("strategy_id", "ts_event", "instrument_id", "side", "action"));
CREATE INDEX IF NOT EXISTS "intents_ts" ON {strategy}."intents" ("ts_event");
CREATE TABLE IF NOT EXISTS {exec}."orders" ("client_order_id" text COLLATE "C" NOT NULL, "ts_last" bigint NOT NULL, "status" text COLLATE "C" NOT NULL, "instrument_id" text, "strategy_id" text, "side" text, "qty" double precision, "order_type" text, "limit_price" double precision, "stop_price" double precision, "tif" text, "action" text, "filled_qty" double precision, "avg_fill_price" double precision, "venue_order_id" text, "reason" text, "reject_reason" text, "ts_created" bigint, PRIMARY KEY ("client_order_id", "ts_last", "status"));
CREATE INDEX IF NOT EXISTS "orders_ts" ON {exec}."orders" ("ts_last");
CREATE TABLE IF NOT EXISTS {exec}."order_updates" ("client_order_id" text COLLATE "C" NOT NULL, "ts_event" bigint NOT NULL, "status" text COLLATE "C" NOT NULL, "venue_order_id" text, "reason" text, PRIMARY KEY ("client_order_id", "ts_event", "status"));
CREATE INDEX IF NOT EXISTS "order_updates_ts" ON {exec}."order_updates" ("ts_event");
CREATE TABLE IF NOT EXISTS {exec}."fills" ("client_order_id" text COLLATE "C" NOT NULL, "fill_id" text COLLATE "C" NOT NULL, "ts_event" bigint, "instrument_id" text, "strategy_id" text, "side" text, "qty" double precision, "price" double precision, "commission" double precision, "commission_currency" text, "liquidity" text, "venue_order_id" text, PRIMARY KEY ("client_order_id", "fill_id"));
CREATE INDEX IF NOT EXISTS "fills_ts" ON {exec}."fills" ("ts_event");
CREATE TABLE IF NOT EXISTS {exec}."positions" ("instrument_id" text COLLATE "C" NOT NULL, "ts_last" bigint NOT NULL, "qty" double precision, "avg_price" double precision, "realised_pnl" double precision, "commissions" double precision, "last_price" double precision, "ts_opened" bigint, PRIMARY KEY ("instrument_id", "ts_last"));
CREATE INDEX IF NOT EXISTS "positions_ts" ON {exec}."positions" ("ts_last");
CREATE TABLE IF NOT EXISTS {exec}."accounts" ("account_id" text COLLATE "C" NOT NULL, "ts_event" bigint NOT NULL, "currency" text, "cash" double precision, "equity" double precision, "realised_pnl" double precision, "unrealised_pnl" double precision, "commissions" double precision, "balances" jsonb, PRIMARY KEY ("account_id", "ts_event"));
CREATE INDEX IF NOT EXISTS "accounts_ts" ON {exec}."accounts" ("ts_event");
CREATE TABLE IF NOT EXISTS {strategy}."records" ("type" text COLLATE "C" NOT NULL, "ts" bigint NOT NULL, "digest" text COLLATE "C" NOT NULL, "payload" jsonb, PRIMARY KEY ("type", "ts", "digest"));
CREATE INDEX IF NOT EXISTS "records_ts" ON {strategy}."records" ("ts");
CREATE TABLE IF NOT EXISTS {derived}."bars" ("instrument_id" text COLLATE "C" NOT NULL, "interval_ns" bigint NOT NULL, "ts_open" bigint NOT NULL, "open" double precision, "high" double precision, "low" double precision, "close" double precision, "volume" double precision, "ts_event" bigint, "ts_init" bigint, PRIMARY KEY ("instrument_id", "interval_ns", "ts_open"));
CREATE INDEX IF NOT EXISTS "bars_ts" ON {derived}."bars" ("ts_open");
