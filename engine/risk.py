"""Pre-trade risk: every check that can deny an order before it leaves (each with its
DenialReason), the order-rate window, the trading-state trips (daily loss, venue
outage, error rate) and stop-loss exits. The rules are in docs/risk.md."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Any

from engine.model import DenialReason, RolloutMode, Side, SideRestriction, TradingState
from engine.portfolio import ONE, ZERO, Portfolio, RiskLimits, position_limit_usd
from engine.sizing import (
    ExitPlan,
    OrderPurpose,
    ProposedOrder,
    asset_table,
    can_fraction,
    can_short,
    opening_qty,
    plan_exit,
    valuation_price,
)

if TYPE_CHECKING:  # pragma: no cover
    from engine.config import Settings, SymbolOverride

R = DenialReason
_BUY = Side.BUY
_HALTED = TradingState.HALTED
_ACTIVE = TradingState.ACTIVE
_SIGNAL = OrderPurpose.SIGNAL
_STOP = OrderPurpose.STOP_LOSS
_FLATTEN = OrderPurpose.FLATTEN
_OFF = RolloutMode.OFF
_LONG_ONLY = SideRestriction.LONG_ONLY
_SHORT_ONLY = SideRestriction.SHORT_ONLY
_NO_OVERRIDES: Mapping[str, Any] = {}


class TripCause(str, Enum):
    """Why the engine left ACTIVE."""

    DAILY_LOSS = "daily_loss"
    VENUE_OUTAGE = "venue_outage"
    ERROR_RATE = "error_rate"
    OPERATOR = "operator"


@dataclass(frozen=True, slots=True)
class Denial:
    """A pre-trade check said no: nothing is sent. detail names the numbers."""

    reason: DenialReason
    detail: str

    def __str__(self) -> str:
        return f"{self.reason.value}: {self.detail}"


@dataclass(slots=True)
class CheckContext:
    """What the checks need besides the portfolio and the order. `now` is venue time
    (timezone-aware, like quote timestamps)."""

    now: datetime
    market_open: bool = True
    trading_state: TradingState = TradingState.ACTIVE
    state_cause: TripCause | None = None  # why the state is not ACTIVE
    overrides: Mapping[str, SymbolOverride] = field(default_factory=dict)
    orders_this_bar: int = 0  # signal orders that passed the checks this bar
    # The order-rate throttle counts real seconds (the venue's limits are per real
    # minute, whatever its clock does); None: use `now`.
    wall_now: datetime | None = None
    at_approval: bool = False  # the re-check at approval: the order was counted in its bar already


class OrderRateWindow:
    """Sliding one-second and one-minute windows of submitted orders. The engine calls
    record() when it submits; check() denies when either window is full."""

    __slots__ = ("_min", "_sec", "per_minute", "per_second")

    def __init__(self, per_second: int, per_minute: int):
        self.per_second = per_second
        self.per_minute = per_minute
        self._sec: deque[float] = deque()
        self._min: deque[float] = deque()

    def record(self, now: datetime) -> None:
        """An order was submitted at `now`. A clock that steps back counts as the
        latest time seen (the windows stay ordered; never under-counted)."""
        t = now.timestamp()
        if self._min and t < self._min[-1]:
            t = self._min[-1]
        self._sec.append(t)
        self._min.append(t)

    def _prune(self, t: float) -> None:
        sec, mins = self._sec, self._min
        while sec and sec[0] <= t - 1.0:
            sec.popleft()
        while mins and mins[0] <= t - 60.0:
            mins.popleft()

    def counts(self, now: datetime) -> tuple[int, int]:
        """(orders in the last second, orders in the last minute)."""
        self._prune(now.timestamp())
        return len(self._sec), len(self._min)

    def check(self, now: datetime) -> Denial | None:
        self._prune(now.timestamp())
        if len(self._sec) >= self.per_second:
            return Denial(
                R.RATE_LIMIT_EXCEEDED,
                f"{len(self._sec)} orders in the last second, limit {self.per_second}/s",
            )
        if len(self._min) >= self.per_minute:
            return Denial(
                R.RATE_LIMIT_EXCEEDED,
                f"{len(self._min)} orders in the last minute, limit {self.per_minute}/min",
            )
        return None


class PreTradeRisk:
    """The pre-trade checks. One call to check() runs them cheapest first and returns
    the first Denial, or None when the order may go. Run it when the intent is
    created and again at approval (the same order, against current prices).

    The engine must, after a passing check of an order it is about to submit, call
    portfolio.order_opened(...) before checking the next one, and rate.record(now)
    (or record_submit) when it submits."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        assets: Mapping[str, Any] | Any | None = None,
        limits: RiskLimits | None = None,
    ):
        if limits is None:
            limits = RiskLimits.from_settings(settings) if settings is not None else RiskLimits()
        self.limits = limits
        self.assets = asset_table(assets)
        rollout = settings.rollout if settings is not None else None
        self.allowlist = frozenset(s.upper() for s in rollout.allowlist) if rollout else frozenset()
        self.default_mode = rollout.default_mode if rollout else RolloutMode.APPROVE
        self.execution_enabled = settings.execution.enabled if settings is not None else True
        self.rate = OrderRateWindow(limits.max_orders_per_second, limits.max_orders_per_minute)
        self._max_age = timedelta(seconds=limits.max_quote_age)

    def record_submit(self, now: datetime) -> None:
        """An order was sent to the venue at `now` (feeds the rate throttle)."""
        self.rate.record(now)

    def check(self, pf: Portfolio, o: ProposedOrder, ctx: CheckContext) -> Denial | None:
        lim = self.limits
        sym = o.symbol
        side = o.side
        purpose = o.purpose
        flatten_ok = purpose is _FLATTEN and o.operator_confirmed
        # a stop-loss exit or a flatten: reduce-only by construction, so never stranded
        # by what exists to stop new exposure (per-order caps, stale quotes; docs/risk.md)
        exit_ = purpose is not _SIGNAL and o.reduce_only

        # 1. trading state
        must_reduce = o.reduce_only
        state = ctx.trading_state
        if state is not _ACTIVE:
            if state is _HALTED and not (flatten_ok or (purpose is _STOP and ctx.state_cause is TripCause.DAILY_LOSS)):
                cause = ctx.state_cause.value if ctx.state_cause else "unknown cause"
                return Denial(
                    R.TRADING_HALTED,
                    f"trading is HALTED ({cause}): only cancels and operator-confirmed "
                    f"flattening go out; {purpose.value} {side.value} {o.qty} {sym} denied",
                )
            must_reduce = True

        # 2. symbol (an exit -- stop or confirmed flatten -- may close a position in a
        # symbol outside the allowlist or the universe; everything else may not)
        assets = self.assets
        if not (flatten_ok or purpose is _STOP):
            if self.allowlist and sym not in self.allowlist:
                return Denial(R.SYMBOL_NOT_ALLOWED, f"{sym} is not in rollout.allowlist")
            if assets and sym not in assets:
                return Denial(R.SYMBOL_NOT_ALLOWED, f"{sym} is not in the universe")
        if sym in lim.restricted_symbols:
            return Denial(R.SYMBOL_RESTRICTED, f"{sym} is in risk_management.restricted_symbols")
        overrides = ctx.overrides
        ov = overrides.get(sym) if overrides else None
        mode = ov.mode if ov is not None and ov.mode is not None else self.default_mode
        if mode is _OFF and purpose is _SIGNAL:  # exits still close what is held
            src = "its override" if ov is not None and ov.mode is not None else "rollout.default_mode"
            return Denial(R.SYMBOL_MODE_OFF, f"{sym} rollout mode is off ({src})")

        # 3. session and throughput
        if not ctx.market_open and not flatten_ok:
            return Denial(R.MARKET_CLOSED, f"market is closed at {ctx.now.isoformat()}")
        if purpose is _SIGNAL and not ctx.at_approval and ctx.orders_this_bar >= lim.max_orders_per_bar:
            return Denial(
                R.MAX_ORDERS_PER_BAR_EXCEEDED,
                f"{ctx.orders_this_bar} orders already this bar, "
                f"order_management.max_orders_per_bar = {lim.max_orders_per_bar}",
            )
        if not flatten_ok:  # a confirmed flatten is one order per position: the broker paces it
            denial = self.rate.check(ctx.wall_now or ctx.now)
            if denial is not None:
                return denial

        # 4. working orders in the symbol
        b = pf.books.get(sym)
        if b is not None:
            if b.buy_count if side is _BUY else b.sell_count:
                return Denial(
                    R.DUPLICATE_ORDER,
                    f"a {side.value} order for {sym} is already working "
                    f"({b.buy_open if side is _BUY else b.sell_open} remaining)",
                )
            if b.sell_count if side is _BUY else b.buy_count:
                other = "sell" if side is _BUY else "buy"
                return Denial(
                    R.OPPOSITE_SIDE_ORDER_OPEN,
                    f"a {other} order for {sym} is working: a {side.value} would be a "
                    f"potential wash trade at the venue",
                )

        # 5. the asset and the order itself
        asset = assets.get(sym) if assets else None
        if asset is not None and not getattr(asset, "tradable", True):
            return Denial(R.ASSET_NOT_TRADABLE, f"{sym} is not tradable")
        qty = o.qty
        if qty != qty.to_integral_value() and not can_fraction(asset, lim):
            why = "fractional trading is off" if not lim.fractional else f"{sym} is not fractionable"
            return Denial(R.ASSET_NOT_TRADABLE, f"{sym} qty {qty} is fractional and {why}")
        if qty > lim.max_order_qty and not exit_:
            return Denial(
                R.QUANTITY_EXCEEDS_MAX_PER_ORDER,
                f"qty {qty} > risk_management.max_order_qty {lim.max_order_qty}",
            )

        # 6. the quote
        if exit_:
            return self._check_exit_price(pf, o, ctx, b)
        if b is None or b.quote_ts is None:
            return Denial(R.QUOTE_MISSING, f"no quote for {sym}")
        if not b.quote_ok:
            return Denial(R.QUOTE_MISSING, f"no usable quote for {sym}: {b.quote_issue}")
        age = ctx.now - b.quote_ts
        if age > self._max_age:
            return Denial(
                R.QUOTE_STALE,
                f"{sym} quote is {age.total_seconds():.1f}s old, "
                f"risk_management.max_quote_age = {lim.max_quote_age:g}s",
            )
        bid = b.bid
        ask = b.ask
        assert bid is not None and ask is not None  # quote_ok
        ref = ask if side is _BUY else bid
        limit = o.limit_price
        notional = qty * (limit if limit is not None else ref)
        if notional > lim.max_order_notional:
            return Denial(
                R.NOTIONAL_EXCEEDS_MAX_PER_ORDER,
                f"notional {notional:.2f} > risk_management.max_order_notional {lim.max_order_notional}",
            )
        if limit is not None and abs(limit - ref) > ref * lim.price_collar_pct:
            return Denial(
                R.PRICE_OUTSIDE_COLLAR,
                f"limit {limit} is {abs(limit / ref - ONE):.2%} from the "
                f"{'ask' if side is _BUY else 'bid'} {ref}, collar {lim.price_collar_pct:%}",
            )

        # 7. exposure: only orders that open exposure are measured against the limits
        q = b.qty
        if side is _BUY:
            pre = q + b.buy_open
            post = pre + qty
            other_worst = q - b.sell_open
        else:
            pre = q - b.sell_open
            post = pre - qty
            other_worst = q + b.buy_open
        if pre == ZERO or post == ZERO or (pre > ZERO) == (post > ZERO):
            opening = abs(post) - abs(pre)
        else:
            opening = abs(post)
        if opening > ZERO:
            denial = self._check_exposure(
                pf, o, ctx, b, ov, asset, must_reduce, pre, post, other_worst, opening, bid, ask
            )
            if denial is not None:
                return denial

        # 8. dry run: everything above still runs so the journal shows what would happen
        if not self.execution_enabled:
            return Denial(R.EXECUTION_DISABLED, "execution.enabled = false: nothing is sent")
        return None

    def _check_exit_price(self, pf: Portfolio, o: ProposedOrder, ctx: CheckContext, b: Any) -> Denial | None:
        """The price of an exit: no quote age or per-order notional applies (it only
        reduces). Its limit, if any, must be inside the collar: price_collar_pct of a
        usable fresh quote, or exit_price_collar_pct of the last trusted price (last
        trade, bar close) when there is no such quote. It can only be denied for
        opening exposure (step 7), so that is checked here too."""
        lim = self.limits
        limit = o.limit_price
        if limit is not None and b is not None:
            if b.fresh_quote(ctx.now, self._max_age):
                ref = b.ask if o.side is _BUY else b.bid
                collar, what = lim.price_collar_pct, "ask" if o.side is _BUY else "bid"
            else:
                choice = b.price()
                ref = choice.price if choice is not None else None
                collar, what = lim.exit_price_collar_pct, choice.source if choice is not None else ""
            if ref is not None and abs(limit - ref) > ref * collar:
                return Denial(
                    R.PRICE_OUTSIDE_COLLAR,
                    f"limit {limit} is {abs(limit / ref - ONE):.2%} from the {what} {ref}, collar {collar:%}",
                )
        q = b.qty if b is not None else ZERO
        if o.side is _BUY:
            pre = q + (b.buy_open if b is not None else ZERO)
            post = pre + o.qty
        else:
            pre = q - (b.sell_open if b is not None else ZERO)
            post = pre - o.qty
        if opening_qty(pre, post) > ZERO:
            return Denial(
                R.REDUCE_ONLY_WOULD_INCREASE_EXPOSURE,
                f"the order is reduce-only; {o.side.value} {o.qty} {o.symbol} takes the position from {pre} to {post}",
            )
        if not self.execution_enabled:
            return Denial(R.EXECUTION_DISABLED, "execution.enabled = false: nothing is sent")
        return None

    def _check_exposure(
        self,
        pf: Portfolio,
        o: ProposedOrder,
        ctx: CheckContext,
        b: Any,
        ov: Any,
        asset: Any,
        must_reduce: bool,
        pre: Decimal,
        post: Decimal,
        other_worst: Decimal,
        opening: Decimal,
        bid: Decimal,
        ask: Decimal,
    ) -> Denial | None:
        lim = self.limits
        sym = o.symbol
        if must_reduce:
            if ctx.trading_state is not _ACTIVE:
                why = f"trading is {ctx.trading_state.value}: only exposure-reducing orders"
            else:
                why = "the order is reduce-only"
            return Denial(
                R.REDUCE_ONLY_WOULD_INCREASE_EXPOSURE,
                f"{why}; {o.side.value} {o.qty} {sym} takes the position from {pre} to {post}",
            )
        if ov is not None and ov.side is not None:
            if ov.side is _LONG_ONLY and post < ZERO:
                return Denial(R.SIDE_RESTRICTED, f"{sym} is long_only; position would be {post}")
            if ov.side is _SHORT_ONLY and post > ZERO:
                return Denial(R.SIDE_RESTRICTED, f"{sym} is short_only; position would be {post}")
        if post < ZERO and not can_short(asset):
            return Denial(
                R.ASSET_NOT_SHORTABLE,
                f"{sym} is not shortable and easy to borrow "
                f"(shortable={asset.shortable}, easy_to_borrow={asset.easy_to_borrow}); "
                f"position would be {post}",
            )
        equity = pf.equity
        last = pf.last_equity
        if last > ZERO:
            loss_limit = lim.max_daily_loss * last
            pnl = equity - last
            if -pnl > loss_limit:
                return Denial(
                    R.DAILY_LOSS_EXCEEDED,
                    f"daily P&L {pnl:.2f} is beyond -{loss_limit:.2f} "
                    f"({lim.max_daily_loss:%} of {last:.2f}): only exposure-reducing orders",
                )
        px = valuation_price(o.side, o.decision_price, o.limit_price, bid, ask)
        value = abs(post) * px
        cap = position_limit_usd(equity, lim, ov)
        if value > cap:
            return Denial(
                R.POSITION_EXCEEDS_MAX,
                f"{sym} position would be {post} x {px} = {value:.2f} > limit {cap:.2f}",
            )
        worst = abs(post)
        if abs(other_worst) > worst:
            worst = abs(other_worst)
        new_c = worst * px
        gross = pf.committed_gross - b.committed + new_c
        gross_cap = lim.max_total_exposure * equity
        if gross > gross_cap:
            return Denial(
                R.GROSS_EXPOSURE_EXCEEDS_MAX,
                f"gross exposure would be {gross:.2f} > {gross_cap:.2f} "
                f"({lim.max_total_exposure:%} of equity {equity:.2f})",
            )
        sector = pf.sector_committed.get(b.sector, ZERO) - b.committed + new_c
        sector_cap = lim.max_sector_exposure * equity
        if sector > sector_cap:
            return Denial(
                R.SECTOR_EXPOSURE_EXCEEDS_MAX,
                f"{b.sector} exposure would be {sector:.2f} > {sector_cap:.2f} "
                f"({lim.max_sector_exposure:%} of equity {equity:.2f})",
            )
        # loss to stop of the position after the trade, entry blended at px
        q = b.qty
        apost = abs(post)
        if q != ZERO and (q > ZERO) == (post > ZERO) and apost >= abs(q):
            entry = (b.avg_entry * abs(q) + px * (apost - abs(q))) / apost
        else:
            entry = px
        pct = lim.stop_loss_pct
        if post > ZERO:
            distance = px - entry * (ONE - pct)
        else:
            distance = entry * (ONE + pct) - px
        loss = apost * distance if distance > ZERO else ZERO
        risk_cap = lim.max_position_risk * equity
        if loss > risk_cap:
            return Denial(
                R.POSITION_RISK_EXCEEDS_MAX,
                f"{sym} loss to stop would be {loss:.2f} > {risk_cap:.2f} ({lim.max_position_risk:%} of equity)",
            )
        need = opening * px
        available = pf.buying_power - pf.reserved_buying_power
        if need > available:
            return Denial(
                R.INSUFFICIENT_BUYING_POWER,
                f"needs {need:.2f} of buying power, {available:.2f} available",
            )
        return None


# -- trading states ---------------------------------------------------------------

_SEVERITY = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}


@dataclass(frozen=True, slots=True)
class Trip:
    """An automatic move to a more restrictive trading state. The engine journals it."""

    state: TradingState
    cause: TripCause
    detail: str


class TradingStateRules:
    """The automatic trips. Each method is fed by the engine and returns a Trip when
    the engine must move to trip_state (only ever to a more restrictive state than
    `current`), else None. Resuming is the operator's: call reset() then."""

    def __init__(self, settings: Settings | None = None):
        from engine.config import RiskManagementSection

        rm = settings.risk_management if settings is not None else RiskManagementSection()
        self.trip_state = TradingState(rm.trip_state)
        self.max_daily_loss = Decimal(str(rm.max_daily_loss))
        self.confirmations = rm.daily_loss_confirmations
        self.venue_outage_trip = float(rm.venue_outage_trip)
        self.max_error_rate = float(rm.max_error_rate)
        self.error_window = rm.error_window
        self.breaches = 0  # consecutive daily-loss breaches seen
        self.down_since: float | None = None
        self.requests: deque[bool] = deque(maxlen=self.error_window)

    def reset(self) -> None:
        """Forget what was seen (after the operator resumes)."""
        self.breaches = 0
        self.down_since = None
        self.requests.clear()

    def _trip(self, current: TradingState, cause: TripCause, detail: str) -> Trip | None:
        if _SEVERITY[self.trip_state] <= _SEVERITY[current]:
            return None
        return Trip(self.trip_state, cause, detail)

    def evaluate_daily_loss(self, equity: Decimal, last_equity: Decimal, current: TradingState) -> Trip | None:
        """Call on every risk evaluation (risk_check_interval, account refresh). A
        breach must be seen on daily_loss_confirmations consecutive calls."""
        if last_equity <= ZERO:
            self.breaches = 0
            return None
        pnl = equity - last_equity
        limit = self.max_daily_loss * last_equity
        if -pnl <= limit:
            self.breaches = 0
            return None
        self.breaches += 1
        if self.breaches < self.confirmations:
            return None
        return self._trip(
            current,
            TripCause.DAILY_LOSS,
            f"daily P&L {pnl:.2f} beyond -{limit:.2f} ({self.max_daily_loss:%} of "
            f"{last_equity:.2f}) on {self.breaches} consecutive evaluations",
        )

    def venue_status(self, up: bool, now: float, current: TradingState) -> Trip | None:
        """Call on every connectivity change and on a timer; `now` is the engine's
        monotonic clock in seconds (venue time is not available during an outage)."""
        if up:
            self.down_since = None
            return None
        if self.down_since is None:
            self.down_since = now
            return None
        down_for = now - self.down_since
        if down_for <= self.venue_outage_trip:
            return None
        return self._trip(
            current,
            TripCause.VENUE_OUTAGE,
            f"venue unreachable for {down_for:.0f}s > venue_outage_trip {self.venue_outage_trip:g}s",
        )

    def record_request(self, ok: bool, current: TradingState, count: int = 1) -> Trip | None:
        """Call after every venue request with whether it succeeded (`count` requests
        in a row with that outcome: as if called `count` times, the first trip is
        returned). Trips once the last error_window requests are known and more than
        max_error_rate failed."""
        requests, window = self.requests, self.error_window
        trip = None
        for _ in range(count):
            full = len(requests) == window
            requests.append(ok)
            if ok and full:
                continue  # a success in a full window never raises the failure rate
            if trip is None:
                trip = self._error_rate(current)
        return trip

    def _error_rate(self, current: TradingState) -> Trip | None:
        n = len(self.requests)
        if n < self.error_window:
            return None
        failed = n - sum(self.requests)
        if failed / n <= self.max_error_rate:
            return None
        return self._trip(
            current,
            TripCause.ERROR_RATE,
            f"{failed} of the last {n} venue requests failed "
            f"({failed / n:.0%} > max_error_rate {self.max_error_rate:.0%})",
        )


# -- stops ------------------------------------------------------------------------


def stop_triggered(pf: Portfolio, symbol: str, now: datetime | None = None, max_age: float | None = None) -> bool:
    """Long: bid at or below entry x (1 - stop_loss_pct); short: ask at or above
    entry x (1 + stop_loss_pct) -- on a usable quote no older than max_age (seconds,
    venue time `now`; default max_quote_age). Without one, on the last trusted price
    (a trade, a bar close, the last usable quote's mid) if it is that fresh. A poor
    quote (one-sided, zero, crossed, wide) is never used: it neither fires a stop
    nor keeps one from firing."""
    b = pf.books.get(symbol)
    if b is None or b.stop_price is None or b.qty == ZERO:
        return False
    age = timedelta(seconds=pf.limits.max_quote_age if max_age is None else max_age)
    if b.fresh_quote(now, age):
        assert b.bid is not None and b.ask is not None
        return b.bid <= b.stop_price if b.qty > ZERO else b.ask >= b.stop_price
    choice = b.fresh_price(now, age)
    if choice is None:
        return False
    return choice.price <= b.stop_price if b.qty > ZERO else choice.price >= b.stop_price


def stop_loss_plan(
    pf: Portfolio,
    symbol: str,
    *,
    assets: Mapping[str, Any] | Any | None = None,
    limits: RiskLimits | None = None,
    now: datetime | None = None,
    market_open: bool = True,
    held_outside: Mapping[str, tuple[Decimal, Decimal]] | None = None,
) -> ExitPlan | None:
    """None while the stop of `symbol` is not crossed; else the exit plan: a
    reduce-only order for the whole position not covered by working exit-side orders
    and not held by external open orders on the exit side (held_outside; the venue
    refuses an order for those shares, and the engine leaves external orders alone:
    the plan's `held` says how much they hold)."""
    if not stop_triggered(pf, symbol, now):
        return None
    return plan_exit(
        pf,
        symbol,
        OrderPurpose.STOP_LOSS,
        assets=assets,
        limits=limits,
        now=now,
        market_open=market_open,
        held_outside=held_outside,
    )


def stop_loss_exit(
    pf: Portfolio,
    symbol: str,
    *,
    assets: Mapping[str, Any] | Any | None = None,
    limits: RiskLimits | None = None,
    now: datetime | None = None,
    market_open: bool = True,
    held_outside: Mapping[str, tuple[Decimal, Decimal]] | None = None,
) -> ProposedOrder | None:
    """Evaluate the stop of `symbol` (on every quote and on the stop timer): a
    reduce-only exit for the whole position when the stop is crossed, else None. None
    too when working orders on the exit side already cover the position (or external
    ones hold the rest, stop_loss_plan). Before sending it the engine cancels any other
    working order of its own in the symbol (the duplicate and wash-trade checks deny
    the exit until those cancels are confirmed)."""
    plan = stop_loss_plan(
        pf, symbol, assets=assets, limits=limits, now=now, market_open=market_open, held_outside=held_outside
    )
    return plan.order if plan is not None else None


@dataclass(frozen=True, slots=True)
class FlattenPlan:
    """The closing orders of a flatten, and every position they leave open with why."""

    orders: list[ProposedOrder]
    left_open: dict[str, str]  # symbol -> why no (full) closing order could be made
    #: symbol -> the quantity external open orders on the exit side hold at the venue
    #: (no order for it now; the flatten's cancel-all took them: the next round sends it)
    held: dict[str, Decimal] = field(default_factory=dict)


def flatten_plan(
    pf: Portfolio,
    *,
    symbols: list[str] | None = None,
    assets: Mapping[str, Any] | Any | None = None,
    limits: RiskLimits | None = None,
    now: datetime | None = None,
    market_open: bool = True,
    held_outside: Mapping[str, tuple[Decimal, Decimal]] | None = None,
) -> FlattenPlan:
    """Operator-confirmed flatten: one reduce-only exit per open position (or per
    symbol given), each for the whole position not already covered by working exit
    orders, marked operator_confirmed so HALTED lets it through. Shares that external
    open orders on the exit side hold (held_outside) get no order now: the venue would
    refuse it; `held` names them, for a later round once those orders are gone."""
    table = asset_table(assets)
    names = sorted(pf.positions) if symbols is None else symbols
    orders: list[ProposedOrder] = []
    left: dict[str, str] = {}
    held: dict[str, Decimal] = {}
    for sym in names:
        plan: ExitPlan = plan_exit(
            pf,
            sym,
            OrderPurpose.FLATTEN,
            assets=table,
            limits=limits,
            operator_confirmed=True,
            now=now,
            market_open=market_open,
            held_outside=held_outside,
        )
        if plan.order is not None:
            orders.append(plan.order)
        if plan.why_open:
            left[sym] = plan.why_open
        if plan.held > ZERO:
            held[sym] = plan.held
    return FlattenPlan(orders, left, held)


def flatten_orders(
    pf: Portfolio,
    *,
    symbols: list[str] | None = None,
    assets: Mapping[str, Any] | Any | None = None,
    limits: RiskLimits | None = None,
    now: datetime | None = None,
    market_open: bool = True,
) -> list[ProposedOrder]:
    """flatten_plan's orders."""
    return flatten_plan(pf, symbols=symbols, assets=assets, limits=limits, now=now, market_open=market_open).orders
