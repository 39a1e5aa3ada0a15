"""The venue's time zone, defined once for engine/ and console/: US equities trade on
New York time. engine/sim, a separate system, keeps its own."""

from __future__ import annotations

from datetime import UTC, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["NEW_YORK"]

try:
    NEW_YORK: tzinfo = ZoneInfo("America/New_York")
except ZoneInfoNotFoundError:  # pragma: no cover - a machine without a tz database
    NEW_YORK = UTC
