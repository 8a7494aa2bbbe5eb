-- 0003: typed tables for the records that used to land as JSON in {strategy}.records.
-- Risk denials and halts, scanner rankings, strategy errors and state changes ({strategy}),
-- execution issues, reconcile adjustments and alert outcomes ({exec}), market events the engine
-- refused ({md}); see omnid/storage/tables.py for what each holds and why its key is what it is.
-- The sinks create a missing table from the catalogue at start-up anyway; this migration keeps
-- `omnid db migrate` (run outside the daemon) giving the whole schema, and the schema versioned.
-- Rows already in {strategy}.records stay there: nothing is moved.

CREATE TABLE IF NOT EXISTS {strategy}."denials" ("strategy_id" text COLLATE "C" NOT NULL, "ts_event" bigint NOT NULL, "instrument_id" text COLLATE "C" NOT NULL, "rule" text COLLATE "C" NOT NULL, "side" text, "action" text, "message" text, "numbers" jsonb, "digest" text COLLATE "C" NOT NULL, PRIMARY KEY ("strategy_id", "ts_event", "instrument_id", "rule", "digest"));
CREATE INDEX IF NOT EXISTS "denials_ts" ON {strategy}."denials" ("ts_event");
CREATE TABLE IF NOT EXISTS {strategy}."halts" ("ts_event" bigint NOT NULL, "source" text COLLATE "C" NOT NULL, "halted" bigint, "reason" text, "numbers" jsonb, "digest" text COLLATE "C" NOT NULL, PRIMARY KEY ("ts_event", "source", "digest"));
CREATE TABLE IF NOT EXISTS {strategy}."scans" ("scanner" text COLLATE "C" NOT NULL, "ts_event" bigint NOT NULL, "target" text, "score_name" text, "selected" jsonb, "ranked" bigint, "top_instrument_id" text, "top_score" double precision, "ranking" jsonb, "unscored" jsonb, PRIMARY KEY ("scanner", "ts_event"));
CREATE INDEX IF NOT EXISTS "scans_ts" ON {strategy}."scans" ("ts_event");
CREATE TABLE IF NOT EXISTS {strategy}."errors" ("strategy_id" text COLLATE "C" NOT NULL, "ts_event" bigint NOT NULL, "hook" text COLLATE "C" NOT NULL, "kind" text, "error_type" text, "message" text, "traceback" jsonb, PRIMARY KEY ("strategy_id", "ts_event", "hook"));
CREATE INDEX IF NOT EXISTS "errors_ts" ON {strategy}."errors" ("ts_event");
CREATE TABLE IF NOT EXISTS {strategy}."states" ("strategy_id" text COLLATE "C" NOT NULL, "ts_event" bigint NOT NULL, "state" text COLLATE "C" NOT NULL, "reason" text, "digest" text COLLATE "C" NOT NULL, PRIMARY KEY ("strategy_id", "ts_event", "state", "digest"));
CREATE INDEX IF NOT EXISTS "states_ts" ON {strategy}."states" ("ts_event");
CREATE TABLE IF NOT EXISTS {exec}."issues" ("client_order_id" text COLLATE "C" NOT NULL, "ts_event" bigint NOT NULL, "kind" text COLLATE "C" NOT NULL, "instrument_id" text, "message" text, "detail" jsonb, "digest" text COLLATE "C" NOT NULL, PRIMARY KEY ("client_order_id", "ts_event", "kind", "digest"));
CREATE INDEX IF NOT EXISTS "issues_ts" ON {exec}."issues" ("ts_event");
CREATE TABLE IF NOT EXISTS {md}."rejected_events" ("instrument_id" text COLLATE "C" NOT NULL, "ts_event" bigint NOT NULL, "kind" text COLLATE "C" NOT NULL, "reason" text, "digest" text COLLATE "C" NOT NULL, PRIMARY KEY ("instrument_id", "ts_event", "kind", "digest"));
CREATE INDEX IF NOT EXISTS "rejected_events_ts" ON {md}."rejected_events" ("ts_event");
CREATE TABLE IF NOT EXISTS {exec}."cash_adjustments" ("currency" text COLLATE "C" NOT NULL, "ts_event" bigint NOT NULL, "cash_before" text, "cash_after" text COLLATE "C" NOT NULL, "reason" text, PRIMARY KEY ("currency", "ts_event", "cash_after"));
CREATE INDEX IF NOT EXISTS "cash_adjustments_ts" ON {exec}."cash_adjustments" ("ts_event");
CREATE TABLE IF NOT EXISTS {exec}."position_adjustments" ("instrument_id" text COLLATE "C" NOT NULL, "ts_event" bigint NOT NULL, "qty_before" text, "qty_after" text COLLATE "C" NOT NULL, "price" text, "cost_change" text, "reason" text, PRIMARY KEY ("instrument_id", "ts_event", "qty_after"));
CREATE INDEX IF NOT EXISTS "position_adjustments_ts" ON {exec}."position_adjustments" ("ts_event");
CREATE TABLE IF NOT EXISTS {exec}."alerts" ("ts_event" bigint NOT NULL, "kind" text COLLATE "C" NOT NULL, "channel" text COLLATE "C" NOT NULL, "outcome" text, "attempts" bigint, "error" text, "text" text, "context" jsonb, "ts_done" bigint, "digest" text COLLATE "C" NOT NULL, PRIMARY KEY ("ts_event", "kind", "channel", "digest"));
