"""Where batches go: SQLite (embedded default), PostgreSQL (asyncpg) and QuestDB (line protocol)."""
