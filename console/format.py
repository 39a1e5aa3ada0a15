"""How money, quantities, times and states read on the operator's screen.
Presentation only: every value shown comes from an engine snapshot."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from decimal import Decimal

from rich.text import Text

from engine.timezones import NEW_YORK as VENUE_TZ

DASH = "–"

# The clock rule: every time the console shows is the venue's clock (the engine's
# VenueTime), written in one zone, chosen by `[console] timezone` and labelled.
_zone: tuple[tzinfo | None, str] = (VENUE_TZ, "ET")


def set_display_zone(choice: str) -> None:
    """'venue' (New York, 'ET'), 'utc' ('UTC') or 'local' (this machine's zone, by its name)."""
    global _zone
    if choice == "utc":
        _zone = (UTC, "UTC")
    elif choice == "local":
        _zone = (None, datetime.now().astimezone().tzname() or "local")
    else:
        _zone = (VENUE_TZ, "ET")


def zone_label() -> str:
    """The label of the zone times are shown in: 'ET', 'UTC', 'CET', ..."""
    return _zone[1]


def _in_zone(ts: datetime) -> datetime:
    return ts.astimezone(_zone[0]) if ts.tzinfo is not None else ts


def money(value: Decimal | float | None, *, decimals: int = 2) -> str:
    """12345.6 -> '12,345.60'."""
    if value is None:
        return DASH
    return f"{Decimal(value):,.{decimals}f}"


def signed_money(value: Decimal | float | None, *, decimals: int = 2) -> str:
    """Always with a sign: '+1,234.50', '-12.00'."""
    if value is None:
        return DASH
    d = round(Decimal(value), decimals)
    return f"{d.copy_abs() if d == 0 else d:+,.{decimals}f}"


def pnl_text(value: Decimal | float | None, *, decimals: int = 2) -> Text:
    """A P&L figure, green when positive, red when negative."""
    if value is None:
        return Text(DASH)
    shown = signed_money(value, decimals=decimals)
    style = "" if shown.lstrip("+-").strip("0.,") == "" else "green" if value > 0 else "red"
    return Text(shown, style=style)


def price(value: Decimal | float | None) -> str:
    """One rule for every price on screen: 2 decimals from $1 up, 4 below (sub-dollar
    ticks are $0.0001)."""
    if value is None:
        return DASH
    d = Decimal(value)
    return f"{d:,.2f}" if abs(d) >= 1 else f"{d:,.4f}"


def qty(value: Decimal | float | None) -> str:
    """Whole shares without decimals; fractional shares up to 4 places."""
    if value is None:
        return DASH
    d = Decimal(value)
    if d == d.to_integral_value():
        return f"{d:,.0f}"
    return f"{d:,.4f}".rstrip("0")


def pct(fraction: float | None, *, decimals: int = 1) -> str:
    """0.123 -> '12.3%'."""
    if fraction is None:
        return DASH
    return f"{fraction * 100:.{decimals}f}%"


def signal(value: float | None) -> str:
    if value is None:
        return DASH
    return f"{value:+.2f}"


def duration(seconds: float | None) -> str:
    """A coarse age or countdown: '45s', '3m05s', '2h10m'. Negative means past: 'expired'."""
    if seconds is None:
        return DASH
    if seconds < 0:
        return "expired"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return (end - start).total_seconds()


def venue_clock(ts: datetime | None, *, with_seconds: bool = True) -> str:
    """A venue-clock time in the display zone, labelled: '10:31:05 ET'."""
    if ts is None:
        return DASH
    return _in_zone(ts).strftime("%H:%M:%S" if with_seconds else "%H:%M") + f" {zone_label()}"


def venue_date(ts: datetime) -> str:
    """The day of a venue time in the display zone: 'Mon 02 Mar'."""
    return _in_zone(ts).strftime("%a %d %b")


def short_time(ts: datetime | None) -> str:
    """Time of day for the event log, in the display zone (its title names the
    zone): '10:31:05'."""
    if ts is None:
        return "--:--:--"
    return _in_zone(ts).strftime("%H:%M:%S")


def side_text(side: str) -> Text:
    return Text(side.upper(), style="bold green" if side == "buy" else "bold red")
