"""The position chart's scaling and drawing (console/widgets/price_chart.py): flat
prices, a single close, a stop outside the prices, no bars; markers land at their
fill's price and time; the stop is drawn as a line on its own row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from console.widgets.price_chart import level, position_of_slot, price_range, render_chart, slot_of
from engine.commands import PriceChart

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
D = Decimal


def _series(*closes: str) -> tuple[tuple[datetime, Decimal], ...]:
    return tuple((T0 + timedelta(minutes=i), D(c)) for i, c in enumerate(closes))


def test_range_spans_the_prices_and_a_stop_near_them() -> None:
    assert price_range([D("101"), D("99.5"), D("100")]) == (D("99.5"), D("101"))
    # a stop outside the prices but within one span of them widens the axis to it
    assert price_range([D("101"), D("99.5")], stop=D("98.5")) == (D("98.5"), D("101"))
    assert price_range([D("101"), D("99.5")], stop=D("102.5")) == (D("99.5"), D("102.5"))


def test_a_stop_far_outside_the_prices_keeps_them_their_room_and_gets_its_own_line() -> None:
    assert price_range([D("101"), D("99.5")], stop=D("95")) == (D("99.5"), D("101"))
    assert price_range([D("101"), D("99.5")], stop=D("106")) == (D("99.5"), D("101"))
    chart = PriceChart(symbol="AAPL", prices=_series("100", "101", "99.5", "100.5"), stop=D("95"))
    lines = render_chart(chart, 60, 10).plain.split("\n")
    assert len(lines) == 10 and all(len(line) <= 60 for line in lines)
    plot, beyond = lines[1:-2], lines[-2]
    assert plot[0].lstrip().startswith("101.00") and plot[-1].lstrip().startswith("99.50"), "prices fill the plot"
    assert beyond.startswith("↓") and "95.00" in beyond and "stop, 4.5% below the chart" in beyond
    short = PriceChart(symbol="AAPL", prices=_series("100", "101"), stop=D("110"))
    above = render_chart(short, 60, 10).plain.split("\n")[1]
    assert above.startswith("↑") and "110.00" in above and "above the chart" in above


def test_flat_prices_and_a_single_close_get_a_band_not_a_zero_range() -> None:
    lo, hi = price_range([D("200"), D("200"), D("200")])  # type: ignore[misc]
    assert lo < D("200") < hi and hi - D("200") == D("200") - lo == D("0.2")
    lo, hi = price_range([D("3")])  # type: ignore[misc]
    assert (lo, hi) == (D("2.99"), D("3.01")), "at least a cent either side"
    # in the band's middle: the flat line is drawn half way up, not at the floor
    assert level(D("200"), D("199.8"), D("200.2"), 9) == 4


def test_no_bars_no_range_and_the_chart_says_so() -> None:
    assert price_range([]) is None
    text = render_chart(PriceChart(symbol="AAPL", stop=D("180")), 60, 10).plain
    assert "no minute bars held for this symbol yet" in text and "stop 180.00" in text


def test_levels_and_times_are_clamped_to_their_axes() -> None:
    assert level(D("50"), D("100"), D("110"), 8) == 0
    assert level(D("500"), D("100"), D("110"), 8) == 7
    assert level(D("110"), D("100"), D("110"), 8) == 7
    assert position_of_slot(0, 1, 10) == 5, "one bar: the middle"
    assert position_of_slot(9, 10, 10) == 9 and position_of_slot(0, 10, 10) == 0
    bars = [T0, T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)]
    assert slot_of(T0 - timedelta(minutes=5), bars) == 0, "before every bar: the first"
    assert slot_of(T0 + timedelta(minutes=1, seconds=30), bars) == 1, "inside a bar: that bar"
    assert slot_of(T0 + timedelta(hours=1), bars) == 2, "after every bar: the last"


def test_the_night_between_two_sessions_takes_no_room() -> None:
    """Bars of yesterday afternoon and of this morning: slots, not hours, so the
    line spans the plot and this morning's fill sits at its right end."""
    yesterday = [(T0 + timedelta(minutes=i), D("100") + i) for i in range(30)]
    morning = T0 + timedelta(hours=18)
    today = [(morning + timedelta(minutes=i), D("130") + i) for i in range(10)]
    chart = PriceChart(
        symbol="AMD", prices=(*yesterday, *today), marks=((morning + timedelta(minutes=9), "entry", D("139")),)
    )
    lines = render_chart(chart, 60, 12).plain.splitlines()
    plot = lines[1:-1]
    drawn = {c for line in plot for c, ch in enumerate(line) if "\u2800" < ch <= "\u28ff"}
    axis_w = min(drawn)
    # the line covers (nearly) the whole plot width: the night is not 18 h of blank
    assert max(drawn) - axis_w > 45, (min(drawn), max(drawn))
    assert any("▲" in line for line in plot)
    assert "Mon 02 Mar" in lines[-1] and "Tue 03 Mar" in lines[-1], "two days: both ends say their date"


def test_markers_sit_at_their_fills_and_the_stop_on_its_row() -> None:
    closes = _series("100", "101", "102", "103", "104", "105")
    chart = PriceChart(
        symbol="MSFT",
        prices=closes,
        marks=((T0, "entry", D("100")), (T0 + timedelta(minutes=5), "exit", D("105"))),
        stop=D("95"),
    )
    lines = render_chart(chart, 40, 12).plain.split("\n")
    assert len(lines) == 12, "exactly the height it was given"
    assert all(len(line) <= 40 for line in lines), "never wider than the room"
    plot = lines[1:-1]
    # the axis: high at the top, the stop (the low) at the bottom, on the stop's row
    assert plot[0].lstrip().startswith("105.00") and plot[-1].lstrip().startswith("95.00")
    assert "─" in plot[-1], "the stop level is a line"
    entry_row = next(i for i, line in enumerate(plot) if "▲" in line)
    exit_row = next(i for i, line in enumerate(plot) if "▼" in line)
    assert exit_row == 0 and entry_row > exit_row, "the exit at 105 is above the entry at 100"
    assert plot[exit_row].index("▼") > plot[entry_row].index("▲"), "the exit came later"
    assert any(0x2800 < ord(ch) <= 0x28FF for line in plot for ch in line), "the closes are drawn"
    assert "10:00 ET" in lines[-1] and "10:05 ET" in lines[-1], "the time axis, labelled with its zone"


def test_one_close_draws_one_point_in_the_middle() -> None:
    lines = render_chart(PriceChart(symbol="X", prices=_series("50")), 30, 6).plain.split("\n")
    drawn = [(r, c) for r, line in enumerate(lines[1:-1]) for c, ch in enumerate(line) if 0x2800 < ord(ch) <= 0x28FF]
    assert len(drawn) == 1, drawn
    row, _col = drawn[0]
    assert 0 < row < 3, "a single close is in the band's middle, not on an edge"


def test_the_chart_crosses_the_session_socket_unchanged() -> None:
    """An attached console gets the same chart as one in process (Decimals exact)."""
    import json

    from engine.commands import CommandResult
    from engine.session_protocol import encode_chart, result_of

    chart = PriceChart(
        symbol="BAC",
        prices=_series("46.48", "46.695"),
        marks=((T0 + timedelta(minutes=1), "entry", D("46.7")),),
        stop=D("44.36"),
    )
    answer = json.loads(json.dumps({"ok": True, "message": "m", "rows": [], "chart": encode_chart(chart)}))
    assert result_of(answer) == CommandResult(True, "m", chart=chart)
    assert result_of({"ok": True, "message": "m"}).chart is None
