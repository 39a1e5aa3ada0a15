"""What the account's market-data plan and Alpaca's connection rules allow: the plans
("free" = IEX, "unlimited" = SIP), the free plan's stream symbol limit and SIP
embargo, and one connection per stream with the hold after an unclean drop."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

FREE = "free"
UNLIMITED = "unlimited"
PLANS = (FREE, UNLIMITED)
# The venue's built-in plan (the [sim] plan setting overrides it): the free plan a new
# Alpaca user has, so that everything runs against the limits users meet.
DEFAULT_PLAN = FREE

# Free (Basic, IEX) plan: at most 30 symbols across the trades and quotes channels of the
# market data stream; bars (and the other bar/status channels) do not count.
FREE_STREAM_SYMBOL_LIMIT = 30
COUNTED_CHANNELS = ("trades", "quotes")
# Free plan: SIP data younger than this is refused over REST.
SIP_EMBARGO = timedelta(minutes=15)
# Alpaca keeps a connection that died without a close for about 90 s.
DEFAULT_CONNECTION_HOLD_SECONDS = 90.0

FEEDS = {"/v2/iex": "iex", "/v2/sip": "sip", "/v2/test": "test"}


def check_plan(plan: str) -> str:
    if plan not in PLANS:
        raise ValueError(f"plan must be one of {', '.join(PLANS)} (got {plan!r})")
    return plan


def feed_allowed(plan: str, feed: str) -> bool:
    """The stream feeds the plan is entitled to (the test stream is open to everyone)."""
    return plan == UNLIMITED or feed != "sip"


def counted_symbols(subs: dict[str, set[str]]) -> set[str]:
    """The symbols that count against the free plan's stream limit."""
    out: set[str] = set()
    for ch in COUNTED_CHANNELS:
        out |= subs.get(ch, set())
    return out


def within_symbol_limit(plan: str, subs: dict[str, set[str]]) -> bool:
    if plan == UNLIMITED:
        return True
    syms = counted_symbols(subs)
    return "*" not in syms and len(syms) <= FREE_STREAM_SYMBOL_LIMIT


class ConnectionSlots:
    """One connection per stream and key (the venue has one key). A connection the venue
    closed, or that the client closed (close frame or TCP close), frees its slot at once;
    one cut without either side seeing a close (the drill's unclean drop) holds its slot
    for ``hold_seconds`` of real time, and connecting in that window is refused (406)."""

    def __init__(self, hold_seconds: float = DEFAULT_CONNECTION_HOLD_SECONDS) -> None:
        if hold_seconds < 0:
            raise ValueError("connection_hold_seconds must be >= 0")
        self.hold_seconds = float(hold_seconds)
        self._holders: dict[str, Any] = {}
        self._held_until: dict[str, float] = {}

    def acquire(self, stream: str, client: Any) -> bool:
        if self._holders.get(stream) is client:
            return True
        if stream in self._holders:
            return False
        until = self._held_until.get(stream)
        if until is not None:
            if time.monotonic() < until:
                return False
            del self._held_until[stream]
        self._holders[stream] = client
        return True

    def release(self, stream: str, client: Any, *, hold: bool = False) -> None:
        if self._holders.get(stream) is not client:
            return
        del self._holders[stream]
        if hold and self.hold_seconds > 0:
            self._held_until[stream] = time.monotonic() + self.hold_seconds

    def to_json(self) -> dict[str, Any]:
        now = time.monotonic()
        return {
            "hold_seconds": self.hold_seconds,
            "connected": sorted(self._holders),
            "held": {s: round(u - now, 1) for s, u in sorted(self._held_until.items()) if u > now},
        }
