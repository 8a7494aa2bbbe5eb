"""CLI commands, one module per part; each exposes ``register(app)``."""
