"""Property tests of matching: fills never exceed the order quantity, never cross the
limit price, and cash plus position value is conserved across every fill at the
fill price. Checked on the venue core directly (thousands of fills, exact Decimals)
and through HTTP with alpaca-py."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import LimitOrderRequest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.sim import SimVenue
from engine.sim.assets import load_universe
from engine.sim.errors import VenueError
from engine.sim.exchange import Exchange
from engine.sim.prices import PriceModel
from tests.engine.sim.simkit import START, prepare

SYMBOLS = ["AAPL", "KO", "TSLA"]
_UNIVERSE = load_universe()


@dataclass
class Ledger:
    """Follows the venue's fills from its event feed and checks every one."""

    venue: Exchange
    cash: Decimal
    pos: dict[str, Decimal] = field(default_factory=dict)
    filled: dict[str, Decimal] = field(default_factory=dict)
    fills: int = 0
    failures: list[str] = field(default_factory=list)

    def __call__(self, ev: dict) -> None:
        if ev["event"] not in ("fill", "partial_fill"):
            return
        self.fills += 1
        o = ev["order"]
        sym, oid = o["symbol"], o["id"]
        px, qty = Decimal(ev["price"]), Decimal(ev["qty"])
        if qty <= 0:
            self.failures.append(f"non-positive fill qty {qty}")
        self.filled[oid] = self.filled.get(oid, Decimal(0)) + qty
        if o["qty"] is not None and self.filled[oid] > Decimal(o["qty"]):
            self.failures.append(f"order {oid} filled {self.filled[oid]} > qty {o['qty']}")
        if Decimal(o["filled_qty"]) != self.filled[oid]:
            self.failures.append(f"order {oid} filled_qty {o['filled_qty']} != sum of fills {self.filled[oid]}")
        if o["limit_price"] is not None and o["type"] in ("limit", "stop_limit"):
            lp = Decimal(o["limit_price"])
            if (o["side"] == "buy" and px > lp) or (o["side"] == "sell" and px < lp):
                self.failures.append(f"{o['side']} fill at {px} crosses limit {lp}")
        # conservation at the fill price: cash + position value, before == after
        v = self.venue
        before = self.cash + self.pos.get(sym, Decimal(0)) * px
        new_pos = v.positions[sym].qty if sym in v.positions else Decimal(0)
        after = v.cash + new_pos * px
        if before != after:
            self.failures.append(f"cash+position value {before} -> {after} across a fill at {px}")
        signed = qty if o["side"] == "buy" else -qty
        if self.pos.get(sym, Decimal(0)) + signed != new_pos:
            self.failures.append(f"position {sym} did not move by the fill")
        self.cash = v.cash
        self.pos[sym] = new_pos


submit = st.fixed_dictionaries(
    {
        "kind": st.just("submit"),
        "symbol": st.sampled_from(SYMBOLS),
        "side": st.sampled_from(["buy", "sell"]),
        "type": st.sampled_from(["market", "limit", "limit", "stop", "stop_limit", "trailing_stop"]),
        "tif": st.sampled_from(["day", "gtc", "ioc", "fok"]),
        "qty": st.one_of(st.integers(1, 300), st.decimals("0.001", "20", places=3)),
        "offset_bp": st.integers(-300, 300),  # limit/stop distance from the mid in basis points
    }
)
move = st.fixed_dictionaries(
    {
        "kind": st.just("move"),
        "symbol": st.sampled_from(SYMBOLS),
        "pct": st.floats(-4, 4),
        "spread_ticks": st.integers(0, 5),
    }
)
wait = st.fixed_dictionaries({"kind": st.just("advance"), "seconds": st.integers(1, 900)})
cancel = st.fixed_dictionaries({"kind": st.just("cancel"), "index": st.integers(0, 50)})
actions = st.lists(st.one_of(submit, submit, submit, move, move, wait, cancel), min_size=8, max_size=40)


def _round_price(p: Decimal) -> Decimal:
    return p.quantize(Decimal("0.01")) if p >= 1 else p.quantize(Decimal("0.0001"))


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 10_000), partial=st.sampled_from([0.0, 0.1, 0.5, 1.0]), steps=actions)
def test_fill_invariants_on_the_core(seed: int, partial: float, steps: list[dict]):
    assets = {s: _UNIVERSE[s] for s in SYMBOLS}
    model = PriceModel(dict(assets), seed=seed, start=START)
    v = Exchange(assets=assets, model=model, start=START, seed=seed, key_id="k", partial_fill_prob=partial)
    ledger = Ledger(venue=v, cash=v.cash)
    v.listeners.append(ledger)
    submitted: list[str] = []
    for a in steps:
        if a["kind"] == "submit":
            q = model.markets[a["symbol"]].quote
            mid = (q.bp + q.ap) / 2
            px = _round_price(mid * (1 + Decimal(a["offset_bp"]) / 10000))
            fractional = a["qty"] != int(a["qty"])
            tif = "day" if fractional or (a["type"] == "trailing_stop" and a["tif"] in ("ioc", "fok")) else a["tif"]
            body = {
                "symbol": a["symbol"],
                "side": a["side"],
                "type": a["type"],
                "time_in_force": tif,
                "qty": str(a["qty"]),
            }
            if a["type"] in ("limit", "stop_limit"):
                body["limit_price"] = str(px)
            if a["type"] in ("stop", "stop_limit"):
                body["stop_price"] = str(px)
            if a["type"] == "trailing_stop":
                body["trail_percent"] = "1"
            before = (v.cash, len(v.orders), {s: p.qty for s, p in v.positions.items()})
            try:
                submitted.append(v.submit(body)["id"])
            except VenueError:
                assert before == (v.cash, len(v.orders), {s: p.qty for s, p in v.positions.items()})
        elif a["kind"] == "move":
            m = model.markets[a["symbol"]]
            mid = Decimal(str(m.mid)) * Decimal(str(1 + a["pct"] / 100))
            bid = _round_price(mid)
            ask = bid + Decimal("0.01") * a["spread_ticks"]
            model.set_quote(a["symbol"], bid, ask, v.t)
            v.after_price_change()
        elif a["kind"] == "advance":
            v.advance_to(v.t + timedelta(seconds=a["seconds"]))
        elif submitted:
            try:
                v.cancel(submitted[a["index"] % len(submitted)])
            except VenueError:
                pass
        assert not ledger.failures, ledger.failures
    # reservations never drift: with nothing open, nothing is held
    for o in list(v.open_orders()):
        v.cancel(o.id)
    assert v.reserved == 0
    assert all(h == 0 for h in v.held.values())
    assert all(n == 0 for n in v.side_count.values())
    for o in v.orders.values():
        if o.qty is not None:
            assert o.filled_qty <= o.qty


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    qty=st.integers(1, 200),
    side=st.sampled_from([OrderSide.BUY, OrderSide.SELL]),
    offset_bp=st.integers(-30, 30),
    moves=st.lists(st.floats(-1.0, 1.0), min_size=1, max_size=4),
    partial=st.sampled_from([0.0, 0.5, 1.0]),
)
def test_fill_invariants_through_http(
    venue: SimVenue, qty: int, side: OrderSide, offset_bp: int, moves: list[float], partial: float
):
    prepare(venue)
    venue.set_partial_fill_prob(partial)
    c = TradingClient("PKSIMTEST0001", "sim-secret-0123456789", url_override=venue.trading_url)
    bid, ask = venue.quote("WMT")
    mid = (bid + ask) / 2
    lp = (mid * (1 + Decimal(offset_bp) / 10000)).quantize(Decimal("0.01"))
    cash0 = Decimal(c.get_account().cash)
    o = c.submit_order(
        LimitOrderRequest(symbol="WMT", qty=qty, side=side, limit_price=float(lp), time_in_force=TimeInForce.GTC)
    )
    for pct in moves:
        venue.shock(["WMT"], pct)
        venue.advance(1)
    got = c.get_order_by_id(o.id)
    filled = Decimal(got.filled_qty)
    assert 0 <= filled <= qty
    cash1 = Decimal(c.get_account().cash)
    if filled:
        avg = Decimal(got.filled_avg_price)
        assert avg <= lp if side == OrderSide.BUY else avg >= lp
        spent = (cash0 - cash1) if side == OrderSide.BUY else (cash1 - cash0)
        assert abs(spent - filled * avg) < Decimal("0.000001")
        pos = c.get_open_position("WMT")
        assert Decimal(pos.qty) == (filled if side == OrderSide.BUY else -filled)
    else:
        assert cash1 == cash0
