"""Properties of the pre-trade layer, for any portfolio, quotes, overrides and signals:

* no order that passes the checks leaves a position, the gross exposure or a sector's
  exposure above its limit at the decision price (unless it only reduces exposure);
* reduce-only orders (and anything in REDUCING) never increase exposure;
* HALTED lets out only operator-confirmed flattening (and stop exits after a
  daily-loss trip), and only when they reduce.

Exposure here is recomputed from scratch, independently of the Portfolio's own
aggregates: per symbol the worst case if every working order on one side fills."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from engine.config import SymbolOverride
from engine.model import RolloutMode, Side, SideRestriction, TradingState
from engine.risk import TripCause
from engine.sizing import OrderPurpose, ProposedOrder, marketable_limit, size_batch
from tests.engine.risk.risk_desk import UNIVERSE, D, Desk, settings_with

SYMBOLS = [a.symbol for a in UNIVERSE]
SECTOR = {a.symbol: a.sector for a in UNIVERSE}

prices = st.one_of(
    st.integers(min_value=100, max_value=100_000).map(lambda c: D(c) / 100),  # $1 - $1,000
    st.integers(min_value=500, max_value=9_999).map(lambda c: D(c) / 10_000),  # sub-dollar
)
overrides = st.builds(
    SymbolOverride,
    mode=st.sampled_from([None, RolloutMode.AUTO, RolloutMode.APPROVE, RolloutMode.OFF]),
    max_position_usd=st.one_of(st.none(), st.integers(100, 50_000).map(D)),
    max_position_pct=st.one_of(st.none(), st.sampled_from([0.01, 0.05, 0.2])),
    size_multiplier=st.one_of(st.none(), st.sampled_from([0.0, 0.5, 2.0, 5.0])),
    side=st.one_of(st.none(), st.sampled_from(list(SideRestriction))),
)


@dataclass
class World:
    desk: Desk
    signals: dict[str, float]
    extras: list[tuple[str, Side, Decimal, bool]] = field(default_factory=list)


@st.composite
def worlds(draw) -> World:
    s = settings_with(
        position_sizing__max_position_size=draw(st.sampled_from([0.05, 0.1, 0.25])),
        position_sizing__max_total_exposure=draw(st.sampled_from([0.3, 0.8, 1.5])),
        position_sizing__fractional=draw(st.booleans()),
        position_sizing__below_threshold=draw(st.sampled_from(["hold", "flatten"])),
        risk_management__max_sector_exposure=draw(st.sampled_from([0.1, 0.3, 0.6])),
        order_management__max_orders_per_bar=100,
    )
    equity = draw(st.integers(min_value=10_000, max_value=1_000_000))
    desk = Desk(s, equity=equity, buying_power=draw(st.sampled_from([equity // 10, 2 * equity, 4 * equity])))
    symbols = draw(st.lists(st.sampled_from(SYMBOLS), min_size=1, max_size=14, unique=True))
    for sym in symbols:
        px = draw(prices)
        desk.quote(sym, px, spread=str(D("0.0002") if px < 1 else D("0.02")))
        share = draw(st.sampled_from([0, 0, 0.02, -0.02, 0.08, -0.08, 0.3]))
        q = int(D(str(share)) * equity / px)
        if q:
            desk.holding(sym, q, px)
        if draw(st.integers(0, 2)) == 0:
            side = draw(st.sampled_from(list(Side)))
            desk.working(sym, side, max(1, int(D(str(draw(st.sampled_from([0.01, 0.05])))) * equity / px)))
        if draw(st.integers(0, 3)) == 0:
            desk.override(sym, **draw(overrides).model_dump())
    signals = draw(st.dictionaries(st.sampled_from(symbols), st.floats(-1, 1), max_size=len(symbols)))
    extras = draw(
        st.lists(
            st.tuples(
                st.sampled_from(symbols),
                st.sampled_from(list(Side)),
                st.integers(1, 2_000).map(D),
                st.booleans(),
            ),
            max_size=8,
        )
    )
    return World(desk, signals, extras)


def _extra(desk: Desk, sym: str, side: Side, qty: Decimal, reduce_only: bool, **kw) -> ProposedOrder:
    b = desk.pf.book(sym)
    limit = marketable_limit(side, b.bid, b.ask, desk.pf.limits.limit_price_offset)
    return ProposedOrder(sym, side, qty, limit, b.mark, reduce_only=reduce_only, **kw)


def _worst(b, buys: Decimal, sells: Decimal) -> Decimal:
    return max(abs(b.position.qty + buys), abs(b.position.qty - sells))


NO_QTY = Decimal(0)


def _committed(
    desk: Desk, sym: str, price: Decimal | None = None, side: Side | None = None, qty: Decimal = NO_QTY
) -> Decimal:
    """|worst position| x price of one symbol, recomputed from the working-order list."""
    b = desk.pf.book(sym)
    buys = sum((w.remaining for w in desk.pf.working.values() if w.symbol == sym and w.side is Side.BUY), D(0))
    sells = sum((w.remaining for w in desk.pf.working.values() if w.symbol == sym and w.side is Side.SELL), D(0))
    if side is Side.BUY:
        buys += qty
    elif side is Side.SELL:
        sells += qty
    return _worst(b, buys, sells) * (price if price is not None else b.mark)


def _position_limit(desk: Desk, sym: str, equity: Decimal) -> Decimal:
    lim = equity * D(str(desk.settings.position_sizing.max_position_size))
    ov = desk.ctx.overrides.get(sym)
    if ov is not None and ov.max_position_usd is not None:
        lim = min(lim, ov.max_position_usd)
    if ov is not None and ov.max_position_pct is not None:
        lim = min(lim, D(str(ov.max_position_pct)) * equity)
    return lim


def _assert_within_limits(desk: Desk, o: ProposedOrder) -> None:
    """After a passing order: within every limit at the decision price, or no increase."""
    equity = desk.pf.equity
    sym = o.symbol
    before = _committed(desk, sym, o.decision_price)
    after = _committed(desk, sym, o.decision_price, o.side, o.qty)
    if after <= before:
        return  # it does not add exposure anywhere
    b = desk.pf.book(sym)
    worst_side_qty = (
        b.position.qty + desk.pf.open_qty(sym, Side.BUY) + o.qty
        if o.side is Side.BUY
        else b.position.qty - desk.pf.open_qty(sym, Side.SELL) - o.qty
    )
    cap = _position_limit(desk, sym, equity)
    assert abs(worst_side_qty) * o.decision_price <= cap, f"{sym} position above {cap}"
    others = [s for s in desk.pf.books if s != sym]
    gross = after + sum((_committed(desk, s) for s in others), D(0))
    gross_cap = D(str(desk.settings.position_sizing.max_total_exposure)) * equity
    assert gross <= gross_cap, f"gross {gross} above {gross_cap}"
    sector = after + sum((_committed(desk, s) for s in others if SECTOR[s] == SECTOR[sym]), D(0))
    sector_cap = D(str(desk.settings.risk_management.max_sector_exposure)) * equity
    assert sector <= sector_cap, f"{SECTOR[sym]} {sector} above {sector_cap}"


def _submit(desk: Desk, o: ProposedOrder, n: int) -> None:
    desk.pf.order_opened(f"p{n}", o.symbol, o.side, o.qty, o.limit_price, o.reduce_only)
    if o.purpose is OrderPurpose.SIGNAL:
        desk.ctx.orders_this_bar += 1


PROPS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPS
@given(world=worlds())
def test_no_passing_order_leaves_a_position_gross_or_sector_above_its_limit(world):
    desk = world.desk
    sized = size_batch(world.signals, desk.pf, overrides=desk.ctx.overrides, assets=UNIVERSE)
    extras = [_extra(desk, *e) for e in world.extras]
    passed = 0
    for n, o in enumerate(sized + extras):
        if desk.check(o) is None:
            _assert_within_limits(desk, o)
            _submit(desk, o, n)
            passed += 1
    note(f"{passed} of {len(sized) + len(extras)} passed")


@PROPS
@given(world=worlds(), state=st.sampled_from([TradingState.ACTIVE, TradingState.REDUCING]))
def test_reduce_only_orders_never_increase_exposure(world, state):
    desk = world.desk
    desk.ctx.trading_state = state
    orders = [_extra(desk, sym, side, qty, True) for sym, side, qty, _ in world.extras]
    if state is TradingState.REDUCING:  # in REDUCING every order is held to reduce-only
        orders += size_batch(world.signals, desk.pf, overrides=desk.ctx.overrides, assets=UNIVERSE)
        orders += [_extra(desk, *e) for e in world.extras]
    for n, o in enumerate(orders):
        if desk.check(o) is None:
            sym = o.symbol
            assert _committed(desk, sym, o.decision_price, o.side, o.qty) <= _committed(desk, sym, o.decision_price)
            b = desk.pf.book(sym)
            pre = b.worst_qty(o.side)
            post = pre + o.side.sign * o.qty
            assert abs(post) <= abs(pre) and (post == 0 or (post > 0) == (pre > 0)), (pre, post)
            _submit(desk, o, n)


@PROPS
@given(
    world=worlds(),
    cause=st.sampled_from(list(TripCause)),
    purposes=st.lists(st.tuples(st.sampled_from(list(OrderPurpose)), st.booleans()), min_size=8, max_size=8),
)
def test_halted_lets_out_only_confirmed_flattening_and_daily_loss_stops(world, cause, purposes):
    desk = world.desk
    desk.ctx.trading_state = TradingState.HALTED
    desk.ctx.state_cause = cause
    orders = size_batch(world.signals, desk.pf, overrides=desk.ctx.overrides, assets=UNIVERSE)
    for (sym, side, qty, reduce_only), (purpose, confirmed) in zip(world.extras, purposes, strict=False):
        orders.append(_extra(desk, sym, side, qty, reduce_only, purpose=purpose, operator_confirmed=confirmed))
    for n, o in enumerate(orders):
        if desk.check(o) is None:
            flatten = o.purpose is OrderPurpose.FLATTEN and o.operator_confirmed
            stop = o.purpose is OrderPurpose.STOP_LOSS and cause is TripCause.DAILY_LOSS
            assert flatten or stop, f"{o.purpose.value} passed while HALTED ({cause.value})"
            pre = desk.pf.book(o.symbol).worst_qty(o.side)
            post = pre + o.side.sign * o.qty
            assert abs(post) <= abs(pre) and (post == 0 or (post > 0) == (pre > 0))
            _submit(desk, o, n)
