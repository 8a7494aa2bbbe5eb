-- 0004: the batch ledger is pruned. The PostgreSQL sink deletes the flusher's unit ids (run-id
-- and spool: ids) older than [storage.postgres] ledger_keep_hours, oldest first, a chunk per
-- statement. This partial index on written_at lets every chunk find them without scanning the
-- ledger; its predicate is the sink's PRUNABLE text, so the planner can use it. It costs one small
-- btree insert per ledger row, that is per 1000 tick rows stored. File imports' ids are not in it:
-- they are never pruned (they keep re-imports idempotent).

CREATE INDEX IF NOT EXISTS "written_batches_prune" ON {md}."written_batches" (written_at)
    WHERE batch_id ~ '^([0-9a-f]{16}|spool):';
