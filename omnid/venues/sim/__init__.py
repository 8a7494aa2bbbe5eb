"""The simulated live market: the embedded default feed that needs no network."""
