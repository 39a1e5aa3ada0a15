"""Signals -> target positions -> proposed orders (pure functions over a Portfolio).

The formula, the scaling rules and the rounding of limit prices are documented in
docs/risk.md; the pre-trade checks in engine/risk.py use the same prices
(valuation_price) so that a sized order passes them when nothing has moved.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Decimal
from enum import Enum
from typing import TYPE_CHECKING, Any

from engine.model import Order, OrderType, Side, SideRestriction
from engine.portfolio import ONE, ZERO, Portfolio, RiskLimits, SymbolBook, dec, position_limit_usd

if TYPE_CHECKING:  # pragma: no cover
    from engine.config import SymbolOverride

CENT = Decimal("0.01")
SUB_DOLLAR_TICK = Decimal("0.0001")
WHOLE = Decimal(1)
FRACTION_STEP = Decimal("0.000000001")  # Alpaca accepts up to 9 decimals of a share


class OrderPurpose(str, Enum):
    """Why an order exists (Order.reason)."""

    SIGNAL = "signal"
    STOP_LOSS = "stop_loss"
    FLATTEN = "flatten"


@dataclass(frozen=True, slots=True)
class AssetFlags:
    """What sizing and risk need of an asset (engine.universe.Asset fits too;
    `tradable` defaults to True when an asset object has no such attribute)."""

    shortable: bool = True
    easy_to_borrow: bool = True
    fractionable: bool = True
    tradable: bool = True


@dataclass(slots=True)
class ProposedOrder:
    """An order sizing (or a stop, or a flatten) wants: the input of the pre-trade checks."""

    symbol: str
    side: Side
    qty: Decimal
    limit_price: Decimal | None  # None: a market order
    decision_price: Decimal  # the mid when it was decided
    signal: float | None = None
    reduce_only: bool = False
    purpose: OrderPurpose = OrderPurpose.SIGNAL
    operator_confirmed: bool = False  # flatten confirmed by the operator
    target_qty: Decimal | None = None  # the position sizing aims at
    change_value: Decimal = ZERO  # |qty| x valuation price: the priority key

    def __post_init__(self) -> None:
        if not self.qty > ZERO:
            raise ValueError(f"{self.symbol}: order quantity must be > 0 (got {self.qty})")

    @property
    def order_type(self) -> OrderType:
        return OrderType.MARKET if self.limit_price is None else OrderType.LIMIT

    def as_order(self, client_order_id: str, **fields: Any) -> Order:
        """The engine.model.Order for this proposal (extra fields: bar_ts, created_at...)."""
        return Order(
            client_order_id=client_order_id,
            symbol=self.symbol,
            side=self.side,
            qty=self.qty,
            order_type=self.order_type,
            limit_price=self.limit_price,
            signal=self.signal,
            decision_price=self.decision_price,
            reduce_only=self.reduce_only,
            reason=self.purpose.value,
            **fields,
        )


# -- prices -------------------------------------------------------------------------


def tick_for(price: Decimal) -> Decimal:
    """Alpaca's tick: $0.01 at or above $1, $0.0001 below."""
    return CENT if price >= ONE else SUB_DOLLAR_TICK


def marketable_limit(side: Side, bid: Decimal, ask: Decimal, offset: Decimal) -> Decimal:
    """A marketable limit at `offset` from the quote on the side taken, rounded to the
    tick TOWARD the quote: buy = floor(ask x (1 + offset)), sell = ceil(bid x (1 - offset)).
    Rounding toward the quote never puts the price further than the offset (so it
    stays inside the collar), and since quotes are on ticks it never rounds past the
    quote (so it stays marketable). A quote off the tick grid is first rounded away
    from the market (buy: ceil(ask), sell: floor(bid)) to stay marketable."""
    if side is Side.BUY:
        raw = ask * (ONE + offset)
        px = raw.quantize(tick_for(raw), ROUND_FLOOR)
        if px < ask:
            px = ask.quantize(tick_for(ask), ROUND_CEILING)
        return px.quantize(tick_for(px), ROUND_FLOOR)
    raw = bid * (ONE - offset)
    px = raw.quantize(tick_for(raw), ROUND_CEILING)
    if px > bid:
        px = bid.quantize(tick_for(bid), ROUND_FLOOR)
    if px <= ZERO:
        px = SUB_DOLLAR_TICK
    return px.quantize(tick_for(px), ROUND_CEILING)


def valuation_price(side: Side, decision: Decimal, limit: Decimal | None, bid: Decimal, ask: Decimal) -> Decimal:
    """The price an order's exposure is valued at by sizing and by the checks: the
    higher of the decision price and the worst price it may fill at (its limit; the
    ask for a market buy, the bid for a market sell)."""
    worst = limit if limit is not None else (ask if side is Side.BUY else bid)
    return worst if worst > decision else decision


def quantize_qty(qty: Decimal, fractional: bool) -> Decimal:
    """Toward zero, to whole shares or to 1e-9 of a share."""
    return qty.quantize(FRACTION_STEP if fractional else WHOLE, ROUND_DOWN)


def opening_qty(pre: Decimal, post: Decimal) -> Decimal:
    """How much of a move from position `pre` to `post` opens exposure: the growth of
    |position| on the same side, or all of `post` when it crosses zero."""
    if pre == ZERO or (pre > ZERO) == (post > ZERO) or post == ZERO:
        grow = abs(post) - abs(pre)
        return grow if grow > ZERO else ZERO
    return abs(post)


def asset_table(source: Mapping[str, Any] | Any | None) -> dict[str, Any]:
    """symbol -> asset flags, from a Mapping, an engine.universe.Universe (iterable of
    assets with .symbol) or None (no flags known: everything allowed)."""
    if source is None:
        return {}
    if isinstance(source, Mapping):
        return dict(source)
    return {a.symbol: a for a in source}


def can_short(asset: Any) -> bool:
    """Short only if the asset is shortable AND easy to borrow (unknown asset: yes)."""
    return asset is None or (asset.shortable and asset.easy_to_borrow)


def can_fraction(asset: Any, limits: RiskLimits) -> bool:
    return limits.fractional and (asset is None or asset.fractionable)


# -- sizing -------------------------------------------------------------------------


@dataclass(slots=True)
class _Plan:
    symbol: str
    book: SymbolBook
    signal: float
    target_value: Decimal
    asset: Any


def target_value(
    signal: Decimal,
    equity: Decimal,
    limits: RiskLimits,
    override: SymbolOverride | None,
    asset: Any = None,
) -> Decimal:
    """signal x max_position_size x equity x size_multiplier, capped at the position
    limit (config or override), clamped by the side restriction and shortability."""
    mult = ONE
    if override is not None and override.size_multiplier is not None:
        mult = dec(override.size_multiplier)
    tv = signal * limits.max_position_size * equity * mult
    cap = position_limit_usd(equity, limits, override)
    if tv > cap:
        tv = cap
    elif tv < -cap:
        tv = -cap
    side = override.side if override is not None else None
    if tv < ZERO and (side is SideRestriction.LONG_ONLY or not can_short(asset)):
        tv = ZERO
    if tv > ZERO and side is SideRestriction.SHORT_ONLY:
        tv = ZERO
    return tv


def weight_target_value(
    weight: Decimal,
    equity: Decimal,
    limits: RiskLimits,
    override: SymbolOverride | None,
    asset: Any = None,
) -> Decimal:
    """A target weight (signed fraction of equity) as a target value: the score path
    with the weight in place of signal x max_position_size, so that a weight w sizes
    exactly as a score of w / max_position_size would (size_multiplier, the position
    limit, the side restriction and shortability all apply the same way)."""
    if limits.max_position_size <= ZERO:
        return ZERO
    return target_value(weight / limits.max_position_size, equity, limits, override, asset)


def size_batch(
    signals: Mapping[str, float],
    portfolio: Portfolio,
    *,
    overrides: Mapping[str, SymbolOverride] | None = None,
    assets: Mapping[str, Any] | Any | None = None,
    limits: RiskLimits | None = None,
    weights: bool = False,
    held_outside: Mapping[str, tuple[Decimal, Decimal]] | None = None,
) -> list[ProposedOrder]:
    """Turn one batch of signals into proposed orders, in priority order (largest
    |change in value| first, ties by symbol). Every order is returned: the engine
    checks them in this order and max_orders_per_bar denies those past the limit.

    With weights=True the values are target weights (signed fractions of equity,
    weight_target_value) rather than scores: signal_threshold does not apply (a
    weight of 0 is a target of flat); everything after the target is the same.

    held_outside: by symbol, the (buy, sell) quantity still open in orders at the
    venue that the engine did not create (external orders, left alone): a position
    the venue holds for them is not available to close either.

    Symbols without a usable quote, not tradable, or whose change is below
    min_trade_size produce no order. See docs/risk.md for each step."""
    lim = limits or portfolio.limits
    overrides = overrides or {}
    table = assets if isinstance(assets, dict) else asset_table(assets)
    equity = portfolio.equity
    if equity <= ZERO:
        return []
    books = portfolio.books
    threshold = lim.signal_threshold
    flatten_below = lim.below_threshold == "flatten"

    plans: list[_Plan] = []
    for sym, raw in signals.items():
        b = books.get(sym)
        if b is None or not b.quote_ok:
            continue
        asset = table.get(sym)
        if asset is not None and not getattr(asset, "tradable", True):
            continue
        try:
            fsig = float(raw)
        except (TypeError, ValueError):
            continue
        if not math.isfinite(fsig):
            continue
        fsig = max(-1.0, min(1.0, fsig))
        s = Decimal(repr(fsig))
        if weights:
            tv = weight_target_value(s, equity, lim, overrides.get(sym), asset)
        elif abs(s) < threshold:
            if not flatten_below:
                continue  # hold: the position (and its exposure) stays as it is
            tv = ZERO
        else:
            tv = target_value(s, equity, lim, overrides.get(sym), asset)
        plans.append(_Plan(sym, b, fsig, tv, asset))
    if not plans:
        return []

    # Scale within each sector over max_sector_exposure, then the whole book over
    # max_total_exposure. Exposure not being re-targeted (other symbols, held
    # positions, working orders) is counted at its committed (worst-case) value.
    by_sector: dict[str, list[_Plan]] = {}
    for p in plans:
        by_sector.setdefault(p.book.sector, []).append(p)
    sector_cap = lim.max_sector_exposure * equity
    for sector, group in by_sector.items():
        held = portfolio.sector_committed.get(sector, ZERO) - sum((p.book.committed for p in group), ZERO)
        _scale(group, sector_cap - held)
    held = portfolio.committed_gross - sum((p.book.committed for p in plans), ZERO)
    _scale(plans, lim.max_total_exposure * equity - held)

    offset = lim.limit_price_offset
    market = lim.order_type == "market"
    max_qty = lim.max_order_qty
    max_notional = lim.max_order_notional
    min_trade = lim.min_trade_size
    outside = held_outside or {}
    orders: list[ProposedOrder] = []
    for p in plans:
        b = p.book
        bid, ask = b.bid, b.ask
        if bid is None or ask is None:  # plans hold only symbols with a usable quote
            continue
        mid = b.mark
        tv = p.target_value
        fractional_ok = tv >= ZERO and can_fraction(p.asset, lim)
        buy_limit = None if market else marketable_limit(Side.BUY, bid, ask, offset)
        sell_limit = None if market else marketable_limit(Side.SELL, bid, ask, offset)
        # A long target is reached by buying, a short one by selling: value each at
        # the price the checks will value the opening order at.
        if tv > ZERO:
            px_target = valuation_price(Side.BUY, mid, buy_limit, bid, ask)
        else:
            px_target = valuation_price(Side.SELL, mid, sell_limit, bid, ask)
        target_qty = quantize_qty(tv / px_target, fractional_ok)
        expected = b.qty + b.buy_open - b.sell_open
        delta = target_qty - expected
        if delta == ZERO:
            continue
        side = Side.BUY if delta > ZERO else Side.SELL
        limit = buy_limit if side is Side.BUY else sell_limit
        px = valuation_price(side, mid, limit, bid, ask)
        notional_px = limit if limit is not None else (ask if side is Side.BUY else bid)
        qty = abs(delta)
        # Alpaca refuses one order that takes a long position short (or a short one
        # long), or closes shares its open orders hold: "insufficient qty available".
        # A reversal closes what is held and not promised to open orders on that side
        # (ours, and the external ones) on this bar; the next bar opens the other side.
        out_buy, out_sell = outside.get(p.symbol, _NONE_HELD)
        if side is Side.SELL and b.qty > ZERO and qty > b.qty - b.sell_open - out_sell:
            qty = b.qty - b.sell_open - out_sell
        elif side is Side.BUY and b.qty < ZERO and qty > -b.qty - b.buy_open - out_buy:
            qty = -b.qty - b.buy_open - out_buy
        if qty <= ZERO:
            continue
        if qty > max_qty:
            qty = max_qty
        if qty * notional_px > max_notional:
            qty = max_notional / notional_px
        qty = quantize_qty(qty, fractional_ok)
        change = qty * px
        if qty <= ZERO or change < min_trade:
            continue
        pre = b.worst_qty(side)
        post = pre + side.sign * qty
        orders.append(
            ProposedOrder(
                symbol=p.symbol,
                side=side,
                qty=qty,
                limit_price=limit,
                decision_price=mid,
                signal=p.signal,
                reduce_only=opening_qty(pre, post) == ZERO,
                purpose=OrderPurpose.SIGNAL,
                target_qty=target_qty,
                change_value=change,
            )
        )
    orders.sort(key=_priority)
    return orders


_NONE_HELD = (ZERO, ZERO)


def _priority(o: ProposedOrder) -> tuple[Decimal, str]:
    return (-o.change_value, o.symbol)


def _scale(group: list[_Plan], cap: Decimal) -> None:
    """Scale the group's targets proportionally so that sum |target| <= cap."""
    total = sum((abs(p.target_value) for p in group), ZERO)
    if total <= ZERO or total <= cap:
        return
    factor = cap / total if cap > ZERO else ZERO
    for p in group:
        p.target_value *= factor


# -- exits --------------------------------------------------------------------------


def exit_limit_from_price(side: Side, price: Decimal, collar: Decimal) -> Decimal:
    """The limit of an exit priced without a usable quote: `collar` through the
    reference price (a sell below it, a buy above it), rounded to the tick toward the
    price, so it stays inside the exit collar."""
    if side is Side.BUY:
        raw = price * (ONE + collar)
        return raw.quantize(tick_for(raw), ROUND_FLOOR)
    raw = price * (ONE - collar)
    px = raw.quantize(tick_for(raw), ROUND_CEILING) if raw > ZERO else SUB_DOLLAR_TICK
    return px if px > ZERO else SUB_DOLLAR_TICK


@dataclass(frozen=True, slots=True)
class ExitPlan:
    """What closing one position takes: the order (None when none is needed or none
    can be made) and, when part of the position stays open after it, why."""

    order: ProposedOrder | None
    why_open: str = ""
    #: the part of the position that open orders at the venue the engine did not
    #: create hold on the exit side (held_outside): the venue refuses to close it
    #: while they are open, so no order is made for it
    held: Decimal = ZERO


def plan_exit(
    portfolio: Portfolio,
    symbol: str,
    purpose: OrderPurpose,
    *,
    assets: Mapping[str, Any] | Any | None = None,
    limits: RiskLimits | None = None,
    operator_confirmed: bool = False,
    now: datetime | None = None,
    market_open: bool = True,
    held_outside: Mapping[str, tuple[Decimal, Decimal]] | None = None,
) -> ExitPlan:
    """A reduce-only order for the whole position in `symbol` not already covered by
    working exit-side orders (a stop-loss exit or a flatten). Exits are not capped by
    the per-order limits meant for new exposure (max_order_qty, max_order_notional):
    a reduce-only order can never be larger than the position it closes.

    held_outside (as for size_batch: by symbol, the (buy, sell) quantity open in
    orders at the venue the engine did not create): the venue holds the position's
    shares for those on the exit side too and refuses an order for them
    ("insufficient qty available"), so the order is for the rest; the plan's `held`
    says how much they hold (closable once they are gone).

    Its price (docs/risk.md, "Exits"): with a usable quote no older than max_quote_age,
    a marketable limit from it (or a market order when default_order_type = "market"
    in regular hours); without one, in regular hours a market order; outside them a
    limit exit_price_collar_pct through the last trusted price (last trade, bar close)."""
    lim = limits or portfolio.limits
    b = portfolio.books.get(symbol)
    if b is None or b.qty == ZERO:
        return ExitPlan(None)
    side = Side.SELL if b.qty > ZERO else Side.BUY
    covered = b.sell_open if side is Side.SELL else b.buy_open
    out_buy, out_sell = (held_outside or {}).get(symbol, _NONE_HELD)
    held = min(out_sell if side is Side.SELL else out_buy, max(abs(b.qty) - covered, ZERO))
    qty = abs(b.qty) - covered - held
    if qty <= ZERO:
        return ExitPlan(None, held=held)
    table = assets if isinstance(assets, dict) else asset_table(assets)
    asset = table.get(symbol)
    if qty != qty.to_integral_value() and not can_fraction(asset, lim):
        qty = quantize_qty(qty, False)  # Alpaca takes no fraction here: whole shares
    if qty <= ZERO:
        return ExitPlan(
            None, f"{abs(b.qty)} {symbol} is a fraction of a share, and fractional orders are off", held=held
        )
    max_age = timedelta(seconds=lim.max_quote_age)
    choice = b.price()
    limit: Decimal | None
    if b.fresh_quote(now, max_age):
        assert b.bid is not None and b.ask is not None
        if market_open and lim.order_type == "market":
            limit = None
        else:
            limit = marketable_limit(side, b.bid, b.ask, lim.limit_price_offset)
    elif market_open:
        limit = None  # no usable fresh quote: a market order closes it at the market
    elif choice is not None:
        limit = exit_limit_from_price(side, choice.price, lim.exit_price_collar_pct)
    else:
        return ExitPlan(
            None,
            f"no price for {symbol} (no usable quote, trade or bar close) to set a limit outside regular hours",
            held=held,
        )
    decision = choice.price if choice is not None else b.avg_entry
    bid = b.bid if b.quote_ok and b.bid is not None else decision
    ask = b.ask if b.quote_ok and b.ask is not None else decision
    order = ProposedOrder(
        symbol=symbol,
        side=side,
        qty=qty,
        limit_price=limit,
        decision_price=decision,
        signal=None,
        reduce_only=True,
        purpose=purpose,
        operator_confirmed=operator_confirmed,
        target_qty=ZERO,
        change_value=qty * valuation_price(side, decision, limit, bid, ask),
    )
    rest = abs(b.qty) - covered - held - qty
    why = f"{rest} {symbol} is a fraction of a share, and fractional orders are off" if rest > ZERO else ""
    return ExitPlan(order, why, held)


def exit_order(
    portfolio: Portfolio,
    symbol: str,
    purpose: OrderPurpose,
    *,
    assets: Mapping[str, Any] | Any | None = None,
    limits: RiskLimits | None = None,
    operator_confirmed: bool = False,
    now: datetime | None = None,
    market_open: bool = True,
    held_outside: Mapping[str, tuple[Decimal, Decimal]] | None = None,
) -> ProposedOrder | None:
    """plan_exit's order: None when flat, when working orders on the exit side already
    cover the position (or external ones hold the rest), or when no order can be
    priced (plan_exit says why)."""
    return plan_exit(
        portfolio,
        symbol,
        purpose,
        assets=assets,
        limits=limits,
        operator_confirmed=operator_confirmed,
        now=now,
        market_open=market_open,
        held_outside=held_outside,
    ).order
