"""The base of every config section (kept apart from omnid.config so parts can import it freely)."""

from __future__ import annotations

import msgspec


class Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A config section: unknown keys rejected, keyword-only. Treat as read-only: reload builds new ones."""
