"""The venue clock: venue time runs at ``speed`` x real time from a chosen start,
or stands still (``frozen``) and moves only when told to."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta


class SimClock:
    def __init__(self, start: datetime, speed: float = 1.0, frozen: bool = False) -> None:
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self._lock = threading.Lock()
        self._base_venue = start
        self._base_real = time.monotonic()
        self._speed = float(speed)
        self._frozen = bool(frozen)

    def now(self) -> datetime:
        with self._lock:
            if self._frozen:
                return self._base_venue
            return self._base_venue + timedelta(seconds=(time.monotonic() - self._base_real) * self._speed)

    def _rebase(self) -> None:
        if not self._frozen:
            real = time.monotonic()
            self._base_venue += timedelta(seconds=(real - self._base_real) * self._speed)
            self._base_real = real

    @property
    def speed(self) -> float:
        return self._speed

    @property
    def frozen(self) -> bool:
        return self._frozen

    def set_speed(self, speed: float) -> None:
        if not speed > 0:
            raise ValueError("speed must be > 0")
        with self._lock:
            self._rebase()
            self._speed = float(speed)

    def freeze(self, frozen: bool) -> None:
        with self._lock:
            self._rebase()
            self._frozen = bool(frozen)
            self._base_real = time.monotonic()

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the venue clock does not go backwards")
        with self._lock:
            self._rebase()
            self._base_venue += timedelta(seconds=seconds)

    def set(self, when: datetime) -> None:
        with self._lock:
            self._rebase()
            if when < self._base_venue:
                raise ValueError("the venue clock does not go backwards")
            self._base_venue = when
            self._base_real = time.monotonic()
