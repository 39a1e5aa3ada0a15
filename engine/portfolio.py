"""The Portfolio the Engine owns: positions, cash, equity, buying power, latest quotes
and working orders, with exposures (gross, net, per sector, per symbol) kept
incrementally so a pre-trade check costs the same at 10 positions as at 10,000 orders.

Exposure comes in two flavours:

* actual: |qty x mark| summed (what the account holds now);
* committed: the worst case if every working order on one side fills, per symbol
  max(|qty + working buys|, |qty - working sells|) x mark. Pre-trade checks use it,
  so orders already working can never add up past a limit.

The mark of a symbol is its newest trusted price: the mid of a usable quote (two
sides, not crossed, not wider than max_quote_spread_bps), else the newer of the last
usable quote's mid and the last trade or bar close, else the venue's position price,
else the average entry. A poor quote is stored (the checks and the console see it)
but never used as a price. Money and quantities are Decimal throughout.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from engine.model import Position, Side

if TYPE_CHECKING:  # pragma: no cover
    from engine.config import Settings, SymbolOverride

ZERO = Decimal(0)
ONE = Decimal(1)
TWO = Decimal(2)
UNKNOWN_SECTOR = "Unknown"


def dec(value: Any) -> Decimal:
    """A config float (0.1) as the Decimal a person meant (Decimal('0.1'))."""
    if isinstance(value, Decimal):
        return value
    return Decimal(str(value))


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """The limits of [position_sizing], [risk_management] and [order_management] as
    Decimals, converted once from Settings."""

    max_position_size: Decimal = Decimal("0.1")
    max_total_exposure: Decimal = Decimal("0.8")
    min_trade_size: Decimal = Decimal("100")
    signal_threshold: Decimal = Decimal("0.1")
    below_threshold: str = "hold"
    fractional: bool = False
    max_daily_loss: Decimal = Decimal("0.02")
    max_position_risk: Decimal = Decimal("0.05")
    max_sector_exposure: Decimal = Decimal("0.3")
    stop_loss_pct: Decimal = Decimal("0.05")
    max_order_notional: Decimal = Decimal("50000")
    max_order_qty: Decimal = Decimal("10000")
    price_collar_pct: Decimal = Decimal("0.05")
    max_quote_age: float = 30.0
    max_orders_per_second: int = 20
    max_orders_per_minute: int = 180
    restricted_symbols: frozenset[str] = frozenset()
    limit_price_offset: Decimal = Decimal("0.001")
    order_type: str = "limit"
    max_orders_per_bar: int = 10
    max_quote_spread_bps: Decimal = Decimal("300")
    exit_price_collar_pct: Decimal = Decimal("0.03")

    @classmethod
    def from_settings(cls, settings: Settings) -> RiskLimits:
        ps, rm, om = settings.position_sizing, settings.risk_management, settings.order_management
        return cls(
            max_position_size=dec(ps.max_position_size),
            max_total_exposure=dec(ps.max_total_exposure),
            min_trade_size=dec(ps.min_trade_size),
            signal_threshold=dec(ps.signal_threshold),
            below_threshold=ps.below_threshold,
            fractional=ps.fractional,
            max_daily_loss=dec(rm.max_daily_loss),
            max_position_risk=dec(rm.max_position_risk),
            max_sector_exposure=dec(rm.max_sector_exposure),
            stop_loss_pct=dec(rm.stop_loss_pct),
            max_order_notional=dec(rm.max_order_notional),
            max_order_qty=dec(rm.max_order_qty),
            price_collar_pct=dec(rm.price_collar_pct),
            max_quote_age=float(rm.max_quote_age),
            max_orders_per_second=rm.max_orders_per_second,
            max_orders_per_minute=rm.max_orders_per_minute,
            restricted_symbols=frozenset(s.upper() for s in rm.restricted_symbols),
            limit_price_offset=dec(om.limit_price_offset),
            order_type=om.default_order_type,
            max_orders_per_bar=om.max_orders_per_bar,
            max_quote_spread_bps=dec(rm.max_quote_spread_bps),
            exit_price_collar_pct=dec(rm.exit_price_collar_pct),
        )


def position_limit_usd(equity: Decimal, limits: RiskLimits, override: SymbolOverride | None) -> Decimal:
    """Largest |position value| allowed in one symbol: max_position_size x equity,
    lowered (never raised) by the symbol's max_position_usd / max_position_pct."""
    cap = limits.max_position_size * equity
    if override is not None:
        if override.max_position_usd is not None and override.max_position_usd < cap:
            cap = override.max_position_usd
        if override.max_position_pct is not None:
            pct_cap = dec(override.max_position_pct) * equity
            if pct_cap < cap:
                cap = pct_cap
    return cap if cap > ZERO else ZERO


def stop_price_of(qty: Decimal, avg_entry: Decimal, stop_loss_pct: Decimal) -> Decimal | None:
    """Long: entry x (1 - pct); short: entry x (1 + pct); flat: None."""
    if qty > ZERO:
        return avg_entry * (ONE - stop_loss_pct)
    if qty < ZERO:
        return avg_entry * (ONE + stop_loss_pct)
    return None


BPS = Decimal(10000)


def quote_issue(bid: Decimal, ask: Decimal, max_spread_bps: Decimal) -> str:
    """Why a quote may not be used as a price ("" when it may): a side at 0
    (one-sided), both at 0, crossed (bid above ask), or a spread wider than
    max_spread_bps of the mid (implausibly wide)."""
    if bid <= ZERO and ask <= ZERO:
        return "zero quote (no bid, no ask)"
    if bid <= ZERO:
        return f"one-sided quote (no bid, ask {ask})"
    if ask <= ZERO:
        return f"one-sided quote (bid {bid}, no ask)"
    if bid > ask:
        return f"crossed quote (bid {bid} > ask {ask})"
    spread = (ask - bid) * BPS * TWO / (ask + bid)
    if spread > max_spread_bps:
        return (
            f"wide quote (bid {bid}, ask {ask}: spread {spread:.0f} bps > "
            f"risk_management.max_quote_spread_bps {max_spread_bps:g})"
        )
    return ""


@dataclass(frozen=True, slots=True)
class PriceChoice:
    """The price the engine trusts for a symbol and where it came from: "quote" (the
    mid of the current, usable quote), "last usable quote", "trade", "bar close" or
    "venue position" (the venue's current_price). ts is None when unknown."""

    price: Decimal
    ts: datetime | None
    source: str


@dataclass(frozen=True, slots=True)
class Quote:
    bid: Decimal
    ask: Decimal
    ts: datetime

    @property
    def usable(self) -> bool:
        return ZERO < self.bid <= self.ask

    @property
    def mid(self) -> Decimal:
        return (self.bid + self.ask) / TWO


class SymbolBook:
    """Everything the portfolio knows about one symbol, with its cached contribution
    to the portfolio's aggregates."""

    __slots__ = (
        "ask",
        "avg_entry",
        "bid",
        "buy_count",
        "buy_open",
        "committed",
        "fill_mark",
        "good_mid",
        "good_ts",
        "mark",
        "position",
        "qty",
        "quote_issue",
        "quote_ok",
        "quote_ts",
        "ref_price",
        "ref_source",
        "ref_ts",
        "sector",
        "sell_count",
        "sell_open",
        "stop_price",
        "symbol",
        "value",
    )

    def __init__(self, symbol: str, sector: str):
        self.symbol = symbol
        self.sector = sector
        self.position = Position(symbol=symbol)
        self.qty = ZERO
        self.avg_entry = ZERO
        self.stop_price: Decimal | None = None
        self.bid: Decimal | None = None
        self.ask: Decimal | None = None
        self.quote_ts: datetime | None = None
        self.quote_ok = False
        self.quote_issue = ""  # why the latest quote is not used as a price ("" when it is, or none yet)
        self.good_mid: Decimal | None = None  # the mid of the last usable quote
        self.good_ts: datetime | None = None
        self.ref_price: Decimal | None = None  # the last trusted price that is not a quote
        self.ref_ts: datetime | None = None
        self.ref_source = ""
        self.mark = ZERO
        self.buy_open = ZERO  # remaining qty of working buy orders
        self.sell_open = ZERO  # remaining qty of working sell orders (positive)
        self.buy_count = 0
        self.sell_count = 0
        self.value = ZERO  # qty x mark (signed)
        self.committed = ZERO  # worst-case |qty after working orders of one side| x mark
        self.fill_mark = 0  # the portfolio's fills_applied at this symbol's latest fill

    def price(self) -> PriceChoice | None:
        """The trusted price: the current usable quote's mid; else the newer of the
        last usable quote's mid and the last trade / bar close (a price of unknown
        time, the venue's position price, only when there is nothing else)."""
        if self.quote_ok and self.good_mid is not None:
            quote = PriceChoice(self.good_mid, self.good_ts, "quote")
            if (
                self.ref_price is None
                or self.ref_ts is None
                or (self.good_ts is not None and self.good_ts >= self.ref_ts)
            ):
                return quote
            return PriceChoice(self.ref_price, self.ref_ts, self.ref_source)
        last = PriceChoice(self.good_mid, self.good_ts, "last usable quote") if self.good_mid is not None else None
        ref = PriceChoice(self.ref_price, self.ref_ts, self.ref_source) if self.ref_price is not None else None
        if last is None:
            return ref
        if ref is None or ref.ts is None:
            return last
        return ref if last.ts is None or ref.ts > last.ts else last

    def fresh_quote(self, now: datetime | None, max_age: timedelta) -> bool:
        """A usable quote no older than max_age at venue time `now` (None: any age)."""
        if not self.quote_ok or self.quote_ts is None:
            return False
        return now is None or now - self.quote_ts <= max_age

    def fresh_price(self, now: datetime | None, max_age: timedelta) -> PriceChoice | None:
        """The trusted price when it is no older than max_age (of known time), else None."""
        choice = self.price()
        if choice is None:
            return None
        if now is None:
            return choice
        if choice.ts is None or now - choice.ts > max_age:
            return None
        return choice

    def worst_qty(self, side: Side) -> Decimal:
        """The position if every working order on `side` fills."""
        return self.qty + self.buy_open if side is Side.BUY else self.qty - self.sell_open


@dataclass(slots=True)
class WorkingOrder:
    client_order_id: str
    symbol: str
    side: Side
    qty: Decimal
    remaining: Decimal
    price: Decimal  # the price buying power is reserved at (limit, else mark)
    reserved: bool  # counted in the buying-power reserve of the current account epoch
    epoch: int


@dataclass(frozen=True, slots=True)
class Headroom:
    """One limit and how much of it is used. headroom = limit - used (negative = over)."""

    name: str
    used: Decimal
    limit: Decimal
    unit: str = "USD"

    @property
    def headroom(self) -> Decimal:
        return self.limit - self.used

    @property
    def fraction(self) -> float:
        return float(self.used / self.limit) if self.limit else 0.0


@dataclass(frozen=True, slots=True)
class PositionRisk:
    symbol: str
    sector: str
    qty: Decimal
    avg_entry_price: Decimal
    mark: Decimal
    market_value: Decimal
    unrealized_pl: Decimal
    share_of_equity: Decimal  # |value| / equity
    limit_usd: Decimal  # max position value (config or override)
    stop_price: Decimal | None
    loss_to_stop: Decimal  # qty x distance from mark to stop, >= 0
    loss_to_stop_share: Decimal  # loss_to_stop / equity


@dataclass(frozen=True, slots=True)
class SectorExposure:
    sector: str
    gross: Decimal
    committed: Decimal
    share_of_equity: Decimal
    limit_usd: Decimal


@dataclass(frozen=True, slots=True)
class RiskMetrics:
    """Portfolio risk for the console and the report (O(positions) to build)."""

    equity: Decimal
    last_equity: Decimal
    cash: Decimal
    buying_power: Decimal
    buying_power_available: Decimal
    gross_exposure: Decimal
    net_exposure: Decimal
    committed_gross_exposure: Decimal
    daily_pnl: Decimal
    daily_loss_limit: Decimal  # USD, positive
    positions: tuple[PositionRisk, ...]
    sectors: tuple[SectorExposure, ...]
    orders_last_second: int
    orders_last_minute: int
    orders_this_bar: int
    open_orders: int
    limits: tuple[Headroom, ...] = field(default=())

    def limit(self, name: str) -> Headroom:
        for h in self.limits:
            if h.name == name:
                return h
        raise KeyError(name)

    def as_limit_usages(self) -> tuple[Any, ...]:
        """The limits as engine.snapshot.LimitUsage rows (floats, for display)."""
        from engine.snapshot import LimitUsage

        return tuple(
            LimitUsage(name=h.name, used=float(h.used), limit=float(h.limit), unit=h.unit) for h in self.limits
        )


class Portfolio:
    """Positions, cash, account figures, quotes and working orders of one account.

    Every mutation updates the aggregates by difference (O(1)); only
    replace_positions_from_broker and metrics walk the books.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        sector_of: Mapping[str, str] | Any | None = None,
        *,
        limits: RiskLimits | None = None,
    ):
        if limits is None:
            limits = RiskLimits.from_settings(settings) if settings is not None else RiskLimits()
        self.limits = limits
        self._sector_of = _sector_lookup(sector_of)
        self.books: dict[str, SymbolBook] = {}
        self.working: dict[str, WorkingOrder] = {}
        self.cash = ZERO
        self.last_equity = ZERO
        self.buying_power = ZERO
        self._equity_offset = ZERO  # broker equity - (cash + net value) at the last snapshot
        self._epoch = 0
        self.fills_applied = 0  # fills applied so far (a mark for position reads: moved_since)
        self.reserved_buying_power = ZERO  # notional of orders opened since the last account snapshot
        # aggregates (kept incrementally)
        self.gross = ZERO
        self.net = ZERO
        self.committed_gross = ZERO
        self.sector_gross: dict[str, Decimal] = {}
        self.sector_committed: dict[str, Decimal] = {}

    # -- reading -----------------------------------------------------------------

    @property
    def equity(self) -> Decimal:
        """Broker equity at the last snapshot, marked to market since (fills and quotes)."""
        return self.cash + self.net + self._equity_offset

    @property
    def daily_pnl(self) -> Decimal:
        return self.equity - self.last_equity

    @property
    def buying_power_available(self) -> Decimal:
        return self.buying_power - self.reserved_buying_power

    def book(self, symbol: str) -> SymbolBook | None:
        return self.books.get(symbol)

    def sector_of(self, symbol: str) -> str:
        return self._sector_of(symbol)

    def position(self, symbol: str) -> Position | None:
        b = self.books.get(symbol)
        return b.position if b is not None and b.qty != ZERO else None

    @property
    def positions(self) -> dict[str, Position]:
        return {s: b.position for s, b in self.books.items() if b.qty != ZERO}

    def quote(self, symbol: str) -> Quote | None:
        b = self.books.get(symbol)
        if b is None or b.bid is None or b.ask is None or b.quote_ts is None:
            return None
        return Quote(b.bid, b.ask, b.quote_ts)

    def open_qty(self, symbol: str, side: Side) -> Decimal:
        """Remaining quantity of working orders in symbol on side (positive)."""
        b = self.books.get(symbol)
        if b is None:
            return ZERO
        return b.buy_open if side is Side.BUY else b.sell_open

    def open_count(self, symbol: str, side: Side) -> int:
        b = self.books.get(symbol)
        if b is None:
            return 0
        return b.buy_count if side is Side.BUY else b.sell_count

    def expected_qty(self, symbol: str) -> Decimal:
        """The position once every working order has filled: qty + buys - sells."""
        b = self.books.get(symbol)
        return ZERO if b is None else b.qty + b.buy_open - b.sell_open

    # -- account -----------------------------------------------------------------

    def set_account(
        self, cash: Decimal, equity: Decimal, last_equity: Decimal, buying_power: Decimal, keep_cash: bool = False
    ) -> None:
        """A broker account snapshot. It is authoritative: equity is re-anchored to it
        and the local buying-power reserve starts again from zero (the broker's buying
        power already reflects the orders open at that moment). keep_cash: the venue's
        cash may count a fill the engine has not applied yet (or not count one it has):
        the engine's own cash stays (equity is re-anchored the same either way)."""
        if not keep_cash:
            self.cash = dec(cash)
        self.last_equity = dec(last_equity)
        self.buying_power = dec(buying_power)
        self._equity_offset = dec(equity) - (self.cash + self.net)
        self._epoch += 1
        self.reserved_buying_power = ZERO
        for wo in self.working.values():
            wo.reserved = False

    def moved_since(self, mark: int) -> set[str]:
        """The symbols with a fill applied after fills_applied was `mark`."""
        return {s for s, b in self.books.items() if b.fill_mark > mark}

    def replace_positions_from_broker(self, positions: Iterable[Any], keep: Collection[str] = ()) -> None:
        """The broker's full position list is authoritative: a symbol it does not list
        is flat. Equity is kept (the account snapshot says what it is). Items are
        engine.model.Position or engine.broker VenuePosition (anything with symbol,
        qty, avg_entry_price and last_price or current_price). The symbols in `keep`
        stay as they are (the list may be older or newer than their fills)."""
        equity = self.equity
        incoming = {p.symbol: p for p in positions if p.symbol not in keep}
        for sym, b in self.books.items():
            if sym not in incoming and b.qty != ZERO and sym not in keep:
                b.position = Position(symbol=sym, realized_pl=b.position.realized_pl)
                b.qty = ZERO
                b.avg_entry = ZERO
                b.stop_price = None
        for sym, p in incoming.items():
            b = self._book(sym)
            last = getattr(p, "last_price", None)
            if last is None:
                last = getattr(p, "current_price", None)
            if last is not None and dec(last) > ZERO and (b.ref_price is None or b.ref_ts is None):
                # the venue's price of the position (its last trade), of unknown time
                b.ref_price, b.ref_ts, b.ref_source = dec(last), None, "venue position"
            choice = b.price()
            b.mark = choice.price if choice is not None else dec(p.avg_entry_price)
            b.position = Position(
                symbol=sym,
                qty=dec(p.qty),
                avg_entry_price=dec(p.avg_entry_price),
                last_price=b.mark,
                realized_pl=b.position.realized_pl,
            )
            b.qty = b.position.qty
            b.avg_entry = b.position.avg_entry_price
            b.stop_price = stop_price_of(b.qty, b.avg_entry, self.limits.stop_loss_pct)
        self._rebuild()
        self._equity_offset = equity - (self.cash + self.net)

    # -- market data -------------------------------------------------------------

    def on_quote(self, symbol: str, bid: Decimal, ask: Decimal, ts: datetime) -> SymbolBook:
        """Store the latest quote; a usable one re-marks the symbol at its mid (O(1)).
        A poor one (quote_issue says why) is kept but not used as a price: the mark
        stays on the last trusted price."""
        b = self.books.get(symbol) or self._book(symbol)
        b.bid = bid
        b.ask = ask
        b.quote_ts = ts
        b.quote_issue = quote_issue(bid, ask, self.limits.max_quote_spread_bps)
        b.quote_ok = not b.quote_issue
        if b.quote_ok:
            b.good_mid = (bid + ask) / TWO
            b.good_ts = ts
            self._remark(b)
        return b

    def on_price(self, symbol: str, price: Decimal, ts: datetime | None, source: str = "trade") -> SymbolBook:
        """A trusted price that is not a quote: a last trade ("trade"), a minute bar's
        close ("bar close", ts = the bar's end), the venue's position price. It is the
        fallback when the quote is poor or older; one older than the one held is ignored."""
        b = self.books.get(symbol) or self._book(symbol)
        price = dec(price)
        if not price > ZERO:
            return b
        if b.ref_ts is not None and (ts is None or ts < b.ref_ts):
            return b
        b.ref_price, b.ref_ts, b.ref_source = price, ts, source
        self._remark(b)
        return b

    def _remark(self, b: SymbolBook) -> None:
        choice = b.price()
        if choice is None or choice.price == b.mark:
            return
        b.mark = choice.price
        if b.qty != ZERO:
            b.position.last_price = b.mark
        if b.qty != ZERO or b.buy_open or b.sell_open:
            self._refresh(b)

    # -- fills -------------------------------------------------------------------

    def apply_fill(
        self,
        symbol: str,
        side: Side,
        qty: Decimal,
        price: Decimal,
        client_order_id: str | None = None,
    ) -> Decimal:
        """Apply one fill; return the realized P&L. Cash moves by the notional; equity
        by qty x (mark - price). When client_order_id names a working order, its
        remaining quantity goes down by qty (order_changed may also set it)."""
        b = self.books.get(symbol) or self._book(symbol)
        realized = b.position.apply_fill(side, qty, price)
        self.fills_applied += 1
        b.fill_mark = self.fills_applied
        b.qty = b.position.qty
        b.avg_entry = b.position.avg_entry_price
        b.stop_price = stop_price_of(b.qty, b.avg_entry, self.limits.stop_loss_pct)
        if not b.quote_ok and b.mark == ZERO:
            b.mark = price
        if b.qty != ZERO:
            b.position.last_price = b.mark
        self.cash -= side.sign * qty * price
        if client_order_id is not None:
            wo = self.working.get(client_order_id)
            if wo is not None:
                self._set_remaining(b, wo, max(ZERO, wo.remaining - qty))
        self._refresh(b)
        return realized

    # -- working orders ------------------------------------------------------------

    def order_opened(
        self,
        client_order_id: str,
        symbol: str,
        side: Side,
        qty: Decimal,
        limit_price: Decimal | None = None,
        reduce_only: bool = False,
    ) -> None:
        """An order became working (call it right after its final check passed, before
        checking the next order). Its notional is reserved against buying power until
        the next account snapshot, unless it is reduce-only."""
        if client_order_id in self.working:
            self.order_changed(client_order_id, qty)
            return
        b = self.books.get(symbol) or self._book(symbol)
        price = limit_price if limit_price is not None else b.mark
        wo = WorkingOrder(client_order_id, symbol, side, qty, ZERO, price, not reduce_only, self._epoch)
        self.working[client_order_id] = wo
        if side is Side.BUY:
            b.buy_count += 1
        else:
            b.sell_count += 1
        if wo.reserved:
            self.reserved_buying_power += qty * price
        self._set_remaining(b, wo, qty)
        self._refresh(b)

    def order_changed(self, client_order_id: str, remaining_qty: Decimal) -> None:
        """The order's remaining (unfilled) quantity is now remaining_qty."""
        wo = self.working.get(client_order_id)
        if wo is None:
            return
        b = self.books[wo.symbol]
        self._set_remaining(b, wo, max(ZERO, remaining_qty))
        self._refresh(b)

    def order_closed(self, client_order_id: str) -> None:
        """The order reached a final status: it no longer counts. The unfilled part of
        its buying-power reserve is released (the filled part stays reserved until the
        next account snapshot says what buying power is)."""
        wo = self.working.pop(client_order_id, None)
        if wo is None:
            return
        b = self.books[wo.symbol]
        if wo.reserved and wo.epoch == self._epoch:
            self.reserved_buying_power -= wo.remaining * wo.price
        self._set_remaining(b, wo, ZERO)
        if wo.side is Side.BUY:
            b.buy_count -= 1
        else:
            b.sell_count -= 1
        self._refresh(b)

    # -- metrics -----------------------------------------------------------------

    def metrics(
        self,
        *,
        overrides: Mapping[str, SymbolOverride] | None = None,
        rate: Any | None = None,
        now: datetime | None = None,
        orders_this_bar: int = 0,
    ) -> RiskMetrics:
        """Risk metrics with headroom on every limit. `rate` is the OrderRateWindow of
        engine.risk (optional), `now` the venue time it is read at."""
        lim = self.limits
        overrides = overrides or {}
        equity = self.equity
        positions = []
        largest_share = ZERO
        largest_risk = ZERO
        for sym in sorted(self.books):
            b = self.books[sym]
            if b.qty == ZERO:
                continue
            share = abs(b.value) / equity if equity > ZERO else ZERO
            loss = loss_to_stop(b.qty, b.mark, b.stop_price)
            loss_share = loss / equity if equity > ZERO else ZERO
            largest_share = max(largest_share, share)
            largest_risk = max(largest_risk, loss_share)
            positions.append(
                PositionRisk(
                    symbol=sym,
                    sector=b.sector,
                    qty=b.qty,
                    avg_entry_price=b.avg_entry,
                    mark=b.mark,
                    market_value=b.value,
                    unrealized_pl=(b.mark - b.avg_entry) * b.qty,
                    share_of_equity=share,
                    limit_usd=position_limit_usd(equity, lim, overrides.get(sym)),
                    stop_price=b.stop_price,
                    loss_to_stop=loss,
                    loss_to_stop_share=loss_share,
                )
            )
        sector_limit = lim.max_sector_exposure * equity
        sectors = tuple(
            SectorExposure(
                sector=s,
                gross=self.sector_gross.get(s, ZERO),
                committed=self.sector_committed.get(s, ZERO),
                share_of_equity=self.sector_gross.get(s, ZERO) / equity if equity > ZERO else ZERO,
                limit_usd=sector_limit,
            )
            for s in sorted(set(self.sector_gross) | set(self.sector_committed))
            if self.sector_gross.get(s, ZERO) or self.sector_committed.get(s, ZERO)
        )
        daily_loss_limit = lim.max_daily_loss * self.last_equity
        per_sec = per_min = 0
        if rate is not None and now is not None:
            per_sec, per_min = rate.counts(now)
        pct = "% of equity"
        hundred = Decimal(100)
        limits = [
            Headroom("gross exposure", self.committed_gross, lim.max_total_exposure * equity),
            Headroom("daily loss", max(ZERO, -self.daily_pnl), daily_loss_limit),
            Headroom("largest position", largest_share * hundred, lim.max_position_size * hundred, pct),
            Headroom("largest loss to stop", largest_risk * hundred, lim.max_position_risk * hundred, pct),
            Headroom("buying power", self.reserved_buying_power, self.buying_power),
            Headroom("orders per second", Decimal(per_sec), Decimal(lim.max_orders_per_second), "orders/s"),
            Headroom("orders per minute", Decimal(per_min), Decimal(lim.max_orders_per_minute), "orders/min"),
            Headroom("orders this bar", Decimal(orders_this_bar), Decimal(lim.max_orders_per_bar), "orders"),
        ]
        limits.extend(Headroom(f"sector: {s.sector}", s.committed, sector_limit) for s in sectors)
        return RiskMetrics(
            equity=equity,
            last_equity=self.last_equity,
            cash=self.cash,
            buying_power=self.buying_power,
            buying_power_available=self.buying_power_available,
            gross_exposure=self.gross,
            net_exposure=self.net,
            committed_gross_exposure=self.committed_gross,
            daily_pnl=self.daily_pnl,
            daily_loss_limit=daily_loss_limit,
            positions=tuple(positions),
            sectors=sectors,
            orders_last_second=per_sec,
            orders_last_minute=per_min,
            orders_this_bar=orders_this_bar,
            open_orders=len(self.working),
            limits=tuple(limits),
        )

    # -- internals ---------------------------------------------------------------

    def _book(self, symbol: str) -> SymbolBook:
        b = self.books.get(symbol)
        if b is None:
            b = SymbolBook(symbol, self._sector_of(symbol))
            self.books[symbol] = b
        return b

    def _set_remaining(self, b: SymbolBook, wo: WorkingOrder, remaining: Decimal) -> None:
        delta = remaining - wo.remaining
        if wo.side is Side.BUY:
            b.buy_open += delta
        else:
            b.sell_open += delta
        wo.remaining = remaining

    def _refresh(self, b: SymbolBook) -> None:
        """Recompute one symbol's contribution and apply the difference to the totals."""
        m = b.mark
        q = b.qty
        v = q * m
        hi = q + b.buy_open
        lo = q - b.sell_open
        c = max(abs(hi), abs(lo)) * m
        old_v = b.value
        old_c = b.committed
        if v != old_v:
            d_abs = abs(v) - abs(old_v)
            self.gross += d_abs
            self.net += v - old_v
            sg = self.sector_gross
            sg[b.sector] = sg.get(b.sector, ZERO) + d_abs
            b.value = v
        if c != old_c:
            d_c = c - old_c
            self.committed_gross += d_c
            sc = self.sector_committed
            sc[b.sector] = sc.get(b.sector, ZERO) + d_c
            b.committed = c

    def _rebuild(self) -> None:
        """Recompute every aggregate from the books (after a broker snapshot)."""
        self.gross = self.net = self.committed_gross = ZERO
        self.sector_gross = {}
        self.sector_committed = {}
        for b in self.books.values():
            b.value = ZERO
            b.committed = ZERO
            self._refresh(b)


def loss_to_stop(qty: Decimal, mark: Decimal, stop: Decimal | None) -> Decimal:
    """What the position loses if the price goes from mark to its stop (>= 0)."""
    if stop is None or qty == ZERO:
        return ZERO
    distance = (mark - stop) if qty > ZERO else (stop - mark)
    return abs(qty) * distance if distance > ZERO else ZERO


def _sector_lookup(source: Mapping[str, str] | Any | None):
    """A function symbol -> sector from a Mapping, an engine.universe.Universe (or
    anything iterable of assets with .symbol/.sector), or None."""
    if source is None:
        return lambda symbol: UNKNOWN_SECTOR
    if isinstance(source, Mapping):
        table = dict(source)
    else:
        table = {a.symbol: a.sector for a in source}
    return lambda symbol: table.get(symbol, UNKNOWN_SECTOR)
