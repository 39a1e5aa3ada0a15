"""engine/sim/fmt.py: the remembered texts and the fast uuid4 are what the plain forms give."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

from engine.sim import fmt


def test_uuid4_str_is_a_random_rfc4122_version_4_uuid():
    seen = set()
    for _ in range(2000):
        text = fmt.uuid4_str()
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", text), text
        u = uuid.UUID(text)
        assert u.version == 4 and u.variant == uuid.RFC_4122 and str(u) == text
        seen.add(text)
    assert len(seen) == 2000


def test_dec_str_gives_one_text_per_value_whatever_came_first():
    assert fmt.dec_str(Decimal("10.50")) == "10.5"
    assert fmt.dec_str(Decimal("10.5000")) == "10.5"  # equal value: the remembered text is right
    assert fmt.dec_str(Decimal("1E+2")) == "100"
    assert fmt.dec_str(Decimal("100")) == "100"
    assert fmt.dec_str(Decimal("-0.00")) == "0"
    assert fmt.dec_str(Decimal("0.000000001")) == "0.000000001"
    assert fmt.dec_str(None) is None


def test_ts_gives_the_utc_text_of_the_instant_whatever_its_zone():
    t = datetime(2026, 3, 2, 15, 0, 0, 123456, tzinfo=UTC)
    assert fmt.ts(t) == "2026-03-02T15:00:00.123456Z"
    ny = t.astimezone(timezone(timedelta(hours=-5)))
    assert fmt.ts(ny) == "2026-03-02T15:00:00.123456Z"
    assert fmt.ts(t + timedelta(microseconds=1)) == "2026-03-02T15:00:00.123457Z"
    assert fmt.ts(None) is None


def test_the_caches_stay_bounded():
    for i in range(fmt._CACHE_MAX + 10):  # noqa: SLF001
        fmt.dec_str(Decimal(i) / 100)
        fmt.ts(datetime(2026, 1, 1, tzinfo=UTC) + timedelta(microseconds=i))
    assert len(fmt._dec_cache) <= fmt._CACHE_MAX  # noqa: SLF001
    assert len(fmt._ts_cache) <= fmt._CACHE_MAX  # noqa: SLF001
    assert fmt.dec_str(Decimal("12.34")) == "12.34"
