"""The venue clock as the Engine sees it: anchored on the venue's /v2/clock answer
and advanced at the venue's speed in between (1.0 for Alpaca; the built-in venue
may run faster, or be frozen for deterministic tests)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta


class VenueTime:
    def __init__(self, speed: float = 1.0, monotonic=time.monotonic):
        self.speed = speed
        self._monotonic = monotonic
        self._anchor_venue: datetime | None = None
        self._anchor_mono = 0.0
        self.is_open = False
        self.next_open: datetime | None = None
        self.next_close: datetime | None = None

    def anchor(
        self, venue_now: datetime, is_open: bool, next_open: datetime | None, next_close: datetime | None
    ) -> None:
        if venue_now.tzinfo is None:
            venue_now = venue_now.replace(tzinfo=UTC)
        self._anchor_venue = venue_now.astimezone(UTC)
        self._anchor_mono = self._monotonic()
        self.is_open = is_open
        self.next_open = next_open
        self.next_close = next_close

    def at_least(self, venue_now: datetime) -> None:
        """The venue's time is known to be at least `venue_now` (a bar that closed then
        has arrived): move the clock up to it, never back. A frozen or fast venue clock
        is then not seen behind its own bars until the next /v2/clock answer."""
        if self._anchor_venue is None:
            return
        if venue_now.tzinfo is None:
            venue_now = venue_now.replace(tzinfo=UTC)
        if venue_now > self.now():
            self._anchor_venue = venue_now.astimezone(UTC)
            self._anchor_mono = self._monotonic()

    @property
    def anchored(self) -> bool:
        return self._anchor_venue is not None

    def now(self) -> datetime:
        if self._anchor_venue is None:
            return datetime.now(UTC)
        elapsed = (self._monotonic() - self._anchor_mono) * self.speed
        return self._anchor_venue + timedelta(seconds=elapsed)

    def market_open(self) -> bool:
        """Open now, by the last clock answer extrapolated to the present."""
        now = self.now()
        if self.is_open:
            return self.next_close is None or now < self.next_close
        return (
            self.next_open is not None and now >= self.next_open and (self.next_close is None or now < self.next_close)
        )

    def wall_seconds(self, venue_seconds: float) -> float:
        """How long venue_seconds take in wall time (at least a little: a frozen clock
        still lets timers tick)."""
        if self.speed <= 0:
            return max(venue_seconds, 0.05)
        return max(venue_seconds / self.speed, 0.01)
