"""NYSE regular-session calendar: weekends, exchange holidays, 13:00 early closes.

Rules (good for 2000-2099): New Year's Day (Saturday: not observed), Martin Luther
King Jr. Day, Washington's Birthday, Good Friday, Memorial Day, Juneteenth (from
2022), Independence Day, Labor Day, Thanksgiving, Christmas; Saturday holidays
are observed on Friday and Sunday holidays on Monday. Early closes at 13:00 on
July 3, the day after Thanksgiving and December 24 when they are trading days.
One-off closures (national days of mourning) are not modelled.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import lru_cache

from .fmt import NY, UTC

OPEN_TIME = time(9, 30)
CLOSE_TIME = time(16, 0)
EARLY_CLOSE_TIME = time(13, 0)


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    d = date(year, month, 1)
    d += timedelta(days=(weekday - d.weekday()) % 7)
    return d + timedelta(weeks=n - 1)


def _last_weekday(year: int, month: int, weekday: int) -> date:
    d = date(year + (month == 12), month % 12 + 1, 1) - timedelta(days=1)
    return d - timedelta(days=(d.weekday() - weekday) % 7)


def _easter(year: int) -> date:
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    wd = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * wd) // 451
    month, day = divmod(h + wd - 7 * m + 114, 31)
    return date(year, month, day + 1)


def _observed(d: date) -> date:
    if d.weekday() == 5:
        return d - timedelta(days=1)
    if d.weekday() == 6:
        return d + timedelta(days=1)
    return d


@lru_cache(maxsize=256)
def holidays(year: int) -> frozenset[date]:
    out = set()
    ny = date(year, 1, 1)
    if ny.weekday() != 5:  # a Saturday New Year's Day is not observed
        out.add(_observed(ny))
    # a Saturday Jan 1 of next year would be observed on Dec 31: NYSE does not
    out.add(_nth_weekday(year, 1, 0, 3))  # MLK
    out.add(_nth_weekday(year, 2, 0, 3))  # Washington's Birthday
    out.add(_easter(year) - timedelta(days=2))  # Good Friday
    out.add(_last_weekday(year, 5, 0))  # Memorial Day
    if year >= 2022:
        out.add(_observed(date(year, 6, 19)))
    out.add(_observed(date(year, 7, 4)))
    out.add(_nth_weekday(year, 9, 0, 1))  # Labor Day
    out.add(_nth_weekday(year, 11, 3, 4))  # Thanksgiving
    out.add(_observed(date(year, 12, 25)))
    return frozenset(d for d in out if d.year == year)


@lru_cache(maxsize=8192)
def is_trading_day(d: date) -> bool:
    return d.weekday() < 5 and d not in holidays(d.year)


def close_time(d: date) -> time:
    if (d.month == 7 and d.day == 3) or (d.month == 12 and d.day == 24):
        return EARLY_CLOSE_TIME
    if d == _nth_weekday(d.year, 11, 3, 4) + timedelta(days=1):
        return EARLY_CLOSE_TIME
    return CLOSE_TIME


@lru_cache(maxsize=4096)
def session(d: date) -> tuple[datetime, datetime]:
    """(open, close) of trading day ``d`` as aware UTC datetimes."""
    o = datetime.combine(d, OPEN_TIME, NY).astimezone(UTC)
    c = datetime.combine(d, close_time(d), NY).astimezone(UTC)
    return o, c


def next_trading_day(d: date) -> date:
    d += timedelta(days=1)
    while not is_trading_day(d):
        d += timedelta(days=1)
    return d


def prev_trading_day(d: date) -> date:
    d -= timedelta(days=1)
    while not is_trading_day(d):
        d -= timedelta(days=1)
    return d


def ny_date(t: datetime) -> date:
    return t.astimezone(NY).date()


def is_open(t: datetime) -> bool:
    d = ny_date(t)
    if not is_trading_day(d):
        return False
    o, c = session(d)
    return o <= t < c


def next_open(t: datetime) -> datetime:
    """The first session open strictly after ``t`` (Alpaca's clock.next_open)."""
    d = ny_date(t)
    if is_trading_day(d):
        o, _ = session(d)
        if t < o:
            return o
    return session(next_trading_day(d))[0]


def next_close(t: datetime) -> datetime:
    """The close of the current session, or of the next one when closed."""
    d = ny_date(t)
    if is_trading_day(d):
        _, c = session(d)
        if t < c:
            return c
    return session(next_trading_day(d))[1]


def last_open(t: datetime) -> datetime:
    """The most recent session open at or before ``t``."""
    d = ny_date(t)
    if is_trading_day(d):
        o, _ = session(d)
        if o <= t:
            return o
    return session(prev_trading_day(d))[0]


def session_date_for(t: datetime) -> date:
    """The trading day a day order placed at ``t`` belongs to."""
    d = ny_date(t)
    if is_trading_day(d) and t < session(d)[1]:
        return d
    return next_trading_day(d)


def trading_days(start: date, end: date) -> list[date]:
    out = []
    d = start
    while d <= end:
        if is_trading_day(d):
            out.append(d)
        d += timedelta(days=1)
    return out
