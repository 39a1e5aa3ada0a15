"""Fault injection and the per-key rate limit."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass
class Faults:
    """What the venue does wrong on purpose. Rates are probabilities in [0, 1]."""

    http_500: float = 0.0  # share of REST requests answered 500 (before any effect)
    http_503: float = 0.0  # ... 503
    http_504: float = 0.0  # ... 504 (alpaca-py retries these, POST included)
    latency_ms: float = 0.0  # added to every REST request
    latency_jitter_ms: float = 0.0  # plus uniform [0, jitter]
    lose_response: float = 0.0  # share of order submissions/replaces/cancels processed, then answered with nothing
    lose_response_mode: str = "drop"  # "drop": close the connection; "504": answer 504 after the effect
    scope: str = "all"  # which REST requests the above apply to: all | trading | data
    stream_duplicate: float = 0.0  # share of trade_updates sent twice
    stream_reorder: float = 0.0  # share of trade_updates swapped with the next one
    # each trade update leaves this long after the venue made it (in order): a stream
    # that lags the REST answers, so a read can see a fill before its update arrives
    trade_stream_delay_ms: float = 0.0
    trade_stream_down: bool = False  # refuse trade stream connections (HTTP 503 at upgrade)
    data_stream_muted: bool = False  # data stream connections stay open and send no market data
    trade_stream_muted: bool = False  # trade stream connections stay open and send no trade updates (lost)
    muted_answer_pings: bool = True  # a muted stream answers websocket pings (False: a half-dead socket)
    pending_ms: float = 0.0  # time orders sit in pending_cancel / pending_replace
    rate_limit_per_minute: int | None = 200  # per key; None = off
    # the length of the fixed window that limit counts in: Alpaca's is one minute; a drill
    # may shorten it so that waiting out a 429 storm takes seconds, not up to a minute
    rate_limit_window_seconds: int = 60

    _RATES = ("http_500", "http_503", "http_504", "lose_response", "stream_duplicate", "stream_reorder")

    def update(self, values: dict[str, Any]) -> None:
        """Validate everything first, then apply: a bad value changes nothing."""
        known = {f.name: f for f in fields(self)}
        staged: dict[str, Any] = {}
        for key, value in values.items():
            if key not in known:
                raise ValueError(f"unknown fault {key!r}")
            if key in self._RATES:
                v = _number(value, key)
                if not 0.0 <= v <= 1.0:
                    raise ValueError(f"{key} must be between 0 and 1")
                staged[key] = v
            elif key in ("latency_ms", "latency_jitter_ms", "pending_ms", "trade_stream_delay_ms"):
                v = _number(value, key)
                if not 0.0 <= v <= 600_000:
                    raise ValueError(f"{key} must be between 0 and 600000")
                staged[key] = v
            elif key == "lose_response_mode":
                if value not in ("drop", "504"):
                    raise ValueError("lose_response_mode must be 'drop' or '504'")
                staged[key] = value
            elif key == "scope":
                if value not in ("all", "trading", "data"):
                    raise ValueError("scope must be 'all', 'trading' or 'data'")
                staged[key] = value
            elif key in ("trade_stream_down", "data_stream_muted", "trade_stream_muted", "muted_answer_pings"):
                if not isinstance(value, bool):
                    raise ValueError(f"{key} must be a boolean")
                staged[key] = value
            elif key == "rate_limit_window_seconds":
                v = _number(value, key)
                if v != int(v) or not 1 <= v <= 3600:
                    raise ValueError("rate_limit_window_seconds must be a whole number of seconds from 1 to 3600")
                staged[key] = int(v)
            elif key == "rate_limit_per_minute":
                if value is not None:
                    v = _number(value, key)
                    if v != int(v) or v < 1:
                        raise ValueError("rate_limit_per_minute must be a positive integer or null")
                    value = int(v)
                staged[key] = value
        for key, value in staged.items():
            setattr(self, key, value)

    def reset(self, rate_limit_per_minute: int | None) -> None:
        for f in fields(self):
            setattr(self, f.name, f.default)
        self.rate_limit_per_minute = rate_limit_per_minute

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(value)  # Decimal from the JSON parser, or a numeric string
        except (TypeError, ValueError):
            raise ValueError(f"{key} must be a number") from None
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{key} must be finite")
    return v


class RequestBuckets:
    """Alpaca's limit: N requests per minute per key, fixed one-minute windows (a drill
    may shorten the window: Faults.rate_limit_window_seconds)."""

    def __init__(self) -> None:
        self._window: dict[str, int] = {}
        self._count: dict[str, int] = {}

    def hit(self, bucket: str, limit: int, seconds: int = 60) -> tuple[bool, int, int]:
        """Count one request in fixed windows of `seconds`. Returns (allowed, remaining,
        reset epoch seconds)."""
        now = time.time()
        window = int(now // seconds)
        if self._window.get(bucket) != window:
            self._window[bucket] = window
            self._count[bucket] = 0
        reset = (window + 1) * seconds
        count = self._count[bucket]
        if count >= limit:
            return False, 0, reset
        self._count[bucket] = count + 1
        return True, limit - count - 1, reset
