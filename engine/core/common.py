"""Constants and small text helpers shared by the Engine's parts."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from engine.backoff import Backoff
from engine.config import Settings
from engine.risk import TripCause
from engine.timezones import NEW_YORK as NY  # noqa: F401 (the parts import it from here)

FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
EXTERNAL = "\0external"  # marks a change among external orders (snapshot rows)
# seq numbers of client order ids for orders outside the signal flow
SEQ_STOP = 5000
SEQ_FLATTEN = 7000

# The Engine's retry policies (engine/backoff.py): one place for every constant.
THROTTLE_RETRY = Backoff(initial=0.5, factor=2.0, cap=10.0)  # a submit refused with 429
LOOKUP_RETRY = Backoff(initial=0.1, factor=2.0, cap=2.0)  # an unknown submit, looked up
CANCEL_RETRY = Backoff(initial=0.5, factor=2.0, cap=5.0)  # a cancel whose outcome is unknown
CANCEL_ALL_RETRY = Backoff(initial=0.25, factor=2.0, cap=2.0)  # the kill switch's cancel-all failed
KILL_POLL = Backoff(initial=0.25, factor=1.5, cap=2.0)  # confirming the kill switch's cancels


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
