"""Wire formatting: Decimals as plain strings, timestamps as RFC 3339."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

NY = ZoneInfo("America/New_York")
UTC = UTC

ZERO = Decimal(0)
ONE = Decimal(1)
CENT = Decimal("0.01")
SUBCENT = Decimal("0.0001")
QTY_QUANT = Decimal("0.000000001")  # Alpaca accepts up to 9 decimals


# Every order JSON formats the same few prices, quantities and instants again and
# again (an order's own fields, in its response and in each of its trade updates), so
# both formatters remember what they made: the text depends on the value only (equal
# Decimals normalize alike, equal instants are one UTC time). The caches are cleared
# whole when they grow past _CACHE_MAX; each get and set is atomic under the GIL, so
# venues on several threads may share them.
_CACHE_MAX = 8192
_dec_cache: dict[Decimal, str] = {}
_ts_cache: dict[datetime, str] = {}


def dec_str(value: Decimal | None) -> str | None:
    """``Decimal("10.50")`` -> ``"10.5"``; never scientific notation."""
    if value is None:
        return None
    text = _dec_cache.get(value)
    if text is not None:
        return text
    if value == 0:
        return "0"
    text = format(value.normalize(), "f")
    if len(_dec_cache) >= _CACHE_MAX:
        _dec_cache.clear()
    _dec_cache[value] = text
    return text


def ts(value: datetime | None) -> str | None:
    """UTC timestamp like Alpaca's order timestamps: ``2024-01-02T14:30:00.123456Z``."""
    if value is None:
        return None
    text = _ts_cache.get(value)
    if text is not None:
        return text
    text = value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if len(_ts_cache) >= _CACHE_MAX:
        _ts_cache.clear()
    _ts_cache[value] = text
    return text


def uuid4_str() -> str:
    """``str(uuid.uuid4())`` in half the time (no UUID object): 16 random bytes with the
    version (4) and variant (RFC 4122) bits set, as lowercase hex in 8-4-4-4-12 groups.
    Three per submitted order (its id, two trade updates' execution_id)."""
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    x = b.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


def ts_ny(value: datetime) -> str:
    """Timestamp in New York time with offset, as /v2/clock reports it."""
    return value.astimezone(NY).isoformat(timespec="microseconds")


def parse_time(text: str) -> datetime:
    """Parse an RFC 3339 timestamp or a date (``YYYY-MM-DD`` = midnight UTC).

    Raises ValueError on anything else.
    """
    text = text.strip()
    if not text:
        raise ValueError("empty timestamp")
    if len(text) == 10:
        d = datetime.strptime(text, "%Y-%m-%d")
        return d.replace(tzinfo=UTC)
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # a '+' in a query string may arrive decoded as a space
    if "T" in text and " " in text:
        text = text.replace(" ", "+")
    # Python < 3.11 cannot take nanoseconds; trim fractional part to 6 digits
    if "." in text[19:]:
        base, _, rest = text.partition(".")
        digits = ""
        i = 0
        while i < len(rest) and rest[i].isdigit():
            digits += rest[i]
            i += 1
        text = base + "." + (digits[:6] or "0") + rest[i:]
    d = datetime.fromisoformat(text)
    if d.tzinfo is None:
        d = d.replace(tzinfo=UTC)
    return d
