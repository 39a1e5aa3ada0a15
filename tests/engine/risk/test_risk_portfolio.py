"""The Portfolio: fills, marks, account snapshots, working orders, metrics, and the
incremental aggregates always equal to a from-scratch recomputation."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.model import Position, Side
from engine.portfolio import Portfolio
from engine.risk import OrderRateWindow
from tests.engine.risk.risk_desk import NOW, UNIVERSE, D, Desk


def test_fill_moves_cash_by_the_notional_and_equity_by_the_mark():
    desk = Desk().quote("AAPL", "100")
    desk.pf.apply_fill("AAPL", Side.BUY, D(10), D("100.01"))
    assert desk.pf.cash == D("98999.90")
    assert desk.pf.equity == D("99999.90")  # bought 10 at 100.01, marked at 100.00
    desk.quote("AAPL", "110")
    assert desk.pf.equity == D("100099.90")
    assert desk.pf.daily_pnl == D("99.90")
    realized = desk.pf.apply_fill("AAPL", Side.SELL, D(4), D("110"))
    assert realized == D("39.96")
    assert desk.pf.position("AAPL").qty == 6


def test_exposures_gross_net_and_sector():
    desk = Desk().holding("AAPL", 10, "100").holding("MSFT", -5, "200").holding("JPM", 20, "50")
    pf = desk.pf
    assert pf.gross == D(1000 + 1000 + 1000)
    assert pf.net == D(1000 - 1000 + 1000)
    assert pf.sector_gross["Information Technology"] == D(2000)
    assert pf.sector_gross["Financials"] == D(1000)


def test_working_orders_count_in_committed_exposure_on_their_worst_side():
    desk = Desk().holding("AAPL", 10, "100")
    cid = desk.working("AAPL", Side.BUY, 5)
    b = desk.pf.book("AAPL")
    assert (b.buy_open, b.buy_count) == (D(5), 1)
    assert desk.pf.committed_gross == D(1500) and desk.pf.gross == D(1000)
    assert desk.pf.expected_qty("AAPL") == 15
    desk.pf.apply_fill("AAPL", Side.BUY, D(2), D("100"), cid)
    assert desk.pf.open_qty("AAPL", Side.BUY) == 3
    desk.pf.order_changed(cid, D(1))
    assert desk.pf.open_qty("AAPL", Side.BUY) == 1
    desk.pf.order_closed(cid)
    assert desk.pf.open_count("AAPL", Side.BUY) == 0
    assert desk.pf.committed_gross == desk.pf.gross == D(1200)


def test_buying_power_reserve_is_released_for_the_unfilled_part_only():
    desk = Desk(buying_power=10_000).quote("AAPL", "100")
    pf = desk.pf
    pf.order_opened("c1", "AAPL", Side.BUY, D(10), D("100"))
    assert pf.buying_power_available == D(9000)
    pf.apply_fill("AAPL", Side.BUY, D(4), D("100"), "c1")
    pf.order_closed("c1")
    assert pf.buying_power_available == D(9600)  # 400 filled stays used until the snapshot
    pf.order_opened("c2", "AAPL", Side.SELL, D(4), D("100"), reduce_only=True)
    assert pf.buying_power_available == D(9600)  # reduce-only reserves nothing


def test_account_snapshot_anchors_equity_and_broker_positions_replace_ours():
    desk = Desk().holding("AAPL", 10, "100").holding("MSFT", 5, "200")
    pf = desk.pf
    pf.set_account(D(50_000), D(100_500), D(100_000), D(150_000))
    assert pf.equity == D(100_500)
    pf.replace_positions_from_broker([Position(symbol="AAPL", qty=D(12), avg_entry_price=D("99"))])
    assert pf.position("MSFT") is None  # not in the broker's list: flat
    assert pf.position("AAPL").qty == 12
    assert pf.equity == D(100_500)  # the account snapshot still says what equity is
    assert pf.gross == D(1200)
    assert pf.book("AAPL").stop_price == D("99") * D("0.95")


def test_venue_positions_from_the_broker_are_accepted_and_marked_at_their_price():
    from engine.broker.base import VenuePosition

    desk = Desk()
    desk.pf.replace_positions_from_broker(
        [VenuePosition(symbol="XOM", qty=D(-10), avg_entry_price=D(120), current_price=D(118), market_value=None)]
    )
    assert desk.pf.position("XOM").qty == -10
    assert desk.pf.gross == D(1180) and desk.pf.net == D(-1180)
    assert desk.pf.equity == D(100_000)


def test_metrics_report_every_limit_with_headroom():
    desk = Desk().holding("AAPL", 40, "100").holding("JPM", -20, "50")
    desk.quote("AAPL", "98")
    rate = OrderRateWindow(20, 180)
    for ago in (20, 10, 0):
        rate.record(NOW - timedelta(seconds=ago))
    m = desk.pf.metrics(rate=rate, now=NOW, orders_this_bar=2)
    assert m.gross_exposure == D(40 * 98 + 20 * 50)
    assert m.net_exposure == D(40 * 98 - 20 * 50)
    aapl = {p.symbol: p for p in m.positions}["AAPL"]
    assert aapl.share_of_equity == D(3920) / m.equity
    assert aapl.stop_price == D(95) and aapl.loss_to_stop == D(40 * 3)
    assert aapl.limit_usd == D("0.1") * m.equity
    assert {s.sector for s in m.sectors} == {"Information Technology", "Financials"}
    assert m.daily_pnl == D(-80) and m.daily_loss_limit == D(2000)
    assert (m.orders_last_second, m.orders_last_minute, m.orders_this_bar) == (1, 3, 2)
    names = {h.name for h in m.limits}
    assert {
        "gross exposure",
        "daily loss",
        "largest position",
        "largest loss to stop",
        "buying power",
        "orders per second",
        "orders per minute",
        "orders this bar",
        "sector: Information Technology",
        "sector: Financials",
    } <= names
    assert m.limit("daily loss").headroom == D(1920)
    usages = m.as_limit_usages()
    assert usages[0].name == "gross exposure" and 0 < usages[0].fraction < 1


# -- incremental == from scratch ------------------------------------------------------------

SYMS = ["AAPL", "MSFT", "JPM", "XOM", "T"]
qty = st.integers(min_value=1, max_value=500).map(D)
price = st.integers(min_value=50, max_value=50_000).map(lambda c: D(c) / 100)
ops = st.lists(
    st.one_of(
        st.tuples(st.just("quote"), st.sampled_from(SYMS), price),
        st.tuples(st.just("fill"), st.sampled_from(SYMS), st.sampled_from(list(Side)), qty, price),
        st.tuples(st.just("open"), st.sampled_from(SYMS), st.sampled_from(list(Side)), qty),
        st.tuples(st.just("change"), st.integers(0, 20), st.integers(0, 500).map(D)),
        st.tuples(st.just("close"), st.integers(0, 20)),
        st.tuples(st.just("broker"), st.lists(st.tuples(st.sampled_from(SYMS), st.integers(-300, 300)), max_size=3)),
    ),
    max_size=40,
)


def _naive(pf: Portfolio) -> tuple[Decimal, Decimal, Decimal, dict, dict]:
    gross = net = committed = D(0)
    sg: dict[str, Decimal] = {}
    sc: dict[str, Decimal] = {}
    for b in pf.books.values():
        buys = sum((w.remaining for w in pf.working.values() if w.symbol == b.symbol and w.side is Side.BUY), D(0))
        sells = sum((w.remaining for w in pf.working.values() if w.symbol == b.symbol and w.side is Side.SELL), D(0))
        assert (buys, sells) == (b.buy_open, b.sell_open)
        v = b.position.qty * b.mark
        c = max(abs(b.position.qty + buys), abs(b.position.qty - sells)) * b.mark
        gross += abs(v)
        net += v
        committed += c
        sg[b.sector] = sg.get(b.sector, D(0)) + abs(v)
        sc[b.sector] = sc.get(b.sector, D(0)) + c
    return gross, net, committed, sg, sc


def _nonzero(d: dict) -> dict:
    return {k: v for k, v in d.items() if v}


@settings(max_examples=150, deadline=None)
@given(ops=ops)
def test_incremental_aggregates_equal_a_recomputation(ops):
    pf = Portfolio(None, {a.symbol: a.sector for a in UNIVERSE})
    pf.set_account(D(100_000), D(100_000), D(100_000), D(200_000))
    opened: list[str] = []
    for op in ops:
        kind = op[0]
        if kind == "quote":
            pf.on_quote(op[1], op[2], op[2] + D("0.02"), NOW)
        elif kind == "fill":
            pf.apply_fill(op[1], op[2], op[3], op[4])
        elif kind == "open":
            cid = f"c{len(opened)}"
            opened.append(cid)
            pf.order_opened(cid, op[1], op[2], op[3])
        elif kind == "change" and opened:
            pf.order_changed(opened[op[1] % len(opened)], op[2])
        elif kind == "close" and opened:
            pf.order_closed(opened[op[1] % len(opened)])
        elif kind == "broker":
            positions = dict(op[1])
            pf.replace_positions_from_broker(
                [Position(symbol=s, qty=D(q), avg_entry_price=D(100)) for s, q in positions.items() if q]
            )
        gross, net, committed, sg, sc = _naive(pf)
        assert (pf.gross, pf.net, pf.committed_gross) == (gross, net, committed), op
        assert _nonzero(pf.sector_gross) == _nonzero(sg)
        assert _nonzero(pf.sector_committed) == _nonzero(sc)
        assert pf.equity == pf.cash + net + pf._equity_offset
