"""Constants and small text helpers shared by the Engine's parts."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from engine.config import Settings
from engine.model import FINAL_STATUSES
from engine.risk import TripCause

try:
    from zoneinfo import ZoneInfo

    NY = ZoneInfo("America/New_York")
except Exception:  # pragma: no cover
    NY = timezone.utc

FAR_FUTURE = datetime(9999, 1, 1, tzinfo=timezone.utc)
MINUTE = timedelta(minutes=1)
EXTERNAL = "\0external"  # marks a change among external orders (snapshot rows)
# seq numbers of client order ids for orders outside the signal flow
SEQ_STOP = 5000
SEQ_FLATTEN = 7000


def config_hash(settings: Settings) -> str:
    raw = settings.model_dump_json(exclude={"source_path"}).encode()
    return hashlib.sha256(raw).hexdigest()[:16]


def replace(obj, **changes):
    return dataclasses.replace(obj, **changes)


def q(value: Decimal | None) -> str:
    """A quantity or price as the event log shows it."""
    if value is None:
        return "-"
    return format(value.normalize(), "f")


def first_error(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            e = errors()[0]
            return f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']} (got {e.get('input')!r})"
        except Exception:  # pragma: no cover
            pass
    return str(exc)


def trip_cause_of(cause: str) -> TripCause:
    for c in TripCause:
        if c.value in cause:
            return c
    return TripCause.OPERATOR


_FINAL_VALUES = frozenset(s.value for s in FINAL_STATUSES)


def venue_final(status: str) -> bool:
    """A venue order's status (as the venue spells it) is final."""
    return status in _FINAL_VALUES
