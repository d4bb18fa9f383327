"""What counts as a placeholder secret: values that look like secrets but are not; prod refuses
them (:class:`paybot.settings.Settings`)."""

from __future__ import annotations

PLACEHOLDERS = frozenset(
    {"", "changeme", "change-me", "secret", "dev", "dev-secret", "test", "xxx"}
)
