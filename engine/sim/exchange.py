"""The venue's state and matching: one account, its orders, positions and cash.

Everything here runs on the server's event loop thread; nothing in this module
does I/O. Times are venue times (``self.t``), advanced by ``advance_to``.

Matching follows Alpaca paper: fills against the current quote (a buy at the ask,
a sell at the bid; a buy limit fills once ask <= limit, a sell limit once
bid >= limit), no quote size check, a seeded share of eligible fills is partial,
orders fill only while the regular session is open.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any

from . import calendar as cal
from .assets import Asset
from .errors import VenueError, forbidden, not_found, unprocessable
from .fmt import QTY_QUANT, ZERO, dec_str, ts, uuid4_str
from .prices import PriceModel

QUANTUM = timedelta(milliseconds=250)  # prices move on this grid of venue time
MAX_STEP = timedelta(seconds=15)

FINAL = frozenset({"filled", "canceled", "expired", "replaced", "rejected", "done_for_day"})
FILLABLE = frozenset({"new", "partially_filled", "pending_cancel", "pending_replace"})
ORDER_TYPES = ("market", "limit", "stop", "stop_limit", "trailing_stop")
TIFS = ("day", "gtc", "opg", "cls", "ioc", "fok")
SESSION_TIFS = frozenset({"day", "ioc", "fok", "opg", "cls"})
MAX_CLIENT_ORDER_ID = 128
DEFAULT_MARGIN_MULTIPLIER = Decimal(4)  # a new Alpaca paper account: multiplier 4, buying power 4x equity
MAX_QTY = Decimal(10) ** 9  # sanity bounds: nothing real comes near them
MAX_NOTIONAL = Decimal(10) ** 10
MAX_PRICE = Decimal(10) ** 7
_HUNDRED = Decimal(100)


def _to_decimal(value: Any, field: str) -> Decimal:
    """A JSON number or numeric string -> Decimal; anything else is a 422."""
    if isinstance(value, bool) or value is None:
        raise unprocessable(f"invalid {field}")
    if isinstance(value, (int, Decimal)):
        d = Decimal(value)
    elif isinstance(value, float):
        d = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            d = Decimal(value.strip())
        except InvalidOperation:
            raise unprocessable(f"invalid {field}") from None
    else:
        raise unprocessable(f"invalid {field}")
    if not d.is_finite():
        raise unprocessable(f"invalid {field}")
    return d


def _decimals(d: Decimal) -> int:
    exp = d.normalize().as_tuple().exponent
    return -exp if isinstance(exp, int) and exp < 0 else 0


def check_price(d: Decimal, field: str) -> Decimal:
    if d <= 0:
        raise unprocessable(f"{field} must be > 0")
    if d > MAX_PRICE:
        raise unprocessable(f"{field} is too large")
    limit = 2 if d >= 1 else 4
    if _decimals(d) > limit:
        raise unprocessable(
            f"invalid {field} {dec_str(d)}. sub-penny increment does not fulfill minimum pricing criteria"
        )
    return d


def _opt_bool(value: Any, field: str) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise unprocessable(f"invalid {field}")


class Order:
    __slots__ = (
        "asset",
        "canceled_at",
        "client_order_id",
        "counted",
        "created_at",
        "expired_at",
        "expires_at",
        "extended_hours",
        "failed_at",
        "filled_at",
        "filled_cost",
        "filled_notional",
        "filled_qty",
        "held",
        "hwm",
        "id",
        "limit_price",
        "notional",
        "pending_new",
        "position_intent",
        "qty",
        "replaced_at",
        "replaced_by",
        "replacement",
        "replaces",
        "reserve",
        "reserve_px",
        "seq",
        "session_date",
        "side",
        "status",
        "stop_price",
        "submitted_at",
        "symbol",
        "tif",
        "trail_percent",
        "trail_price",
        "triggered",
        "type",
        "updated_at",
    )
    # set by Exchange._new_order before an order is seen anywhere
    seq: int
    id: str
    client_order_id: str
    asset: Asset
    symbol: str
    side: str
    type: str
    tif: str
    extended_hours: bool
    position_intent: str
    status: str
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime
    session_date: date | None
    expires_at: datetime
    # set in __init__
    qty: Decimal | None
    notional: Decimal | None
    limit_price: Decimal | None
    stop_price: Decimal | None
    trail_price: Decimal | None
    trail_percent: Decimal | None
    hwm: Decimal | None
    filled_qty: Decimal
    filled_cost: Decimal
    filled_notional: Decimal
    filled_at: datetime | None
    expired_at: datetime | None
    canceled_at: datetime | None
    failed_at: datetime | None
    replaced_at: datetime | None
    replaced_by: str | None
    replaces: str | None
    triggered: bool
    reserve_px: Decimal
    reserve: Decimal
    held: Decimal
    pending_new: bool
    replacement: Order | None
    counted: bool

    def __init__(self) -> None:
        self.qty = None
        self.notional = None
        self.limit_price = None
        self.stop_price = None
        self.trail_price = None
        self.trail_percent = None
        self.hwm = None
        self.filled_qty = ZERO
        self.filled_cost = ZERO
        self.filled_notional = ZERO
        self.filled_at = self.expired_at = self.canceled_at = None
        self.failed_at = self.replaced_at = None
        self.replaced_by = self.replaces = None
        self.triggered = False
        self.reserve_px = ZERO
        self.reserve = ZERO
        self.held = ZERO
        self.pending_new = False
        self.replacement = None
        self.counted = False  # counted in Venue.side_count (booked and not a pending replacement)

    @property
    def is_open(self) -> bool:
        return self.status not in FINAL

    def remaining(self) -> Decimal:
        if self.qty is not None:
            return self.qty - self.filled_qty
        return ZERO

    def to_json(self) -> dict:
        avg = None
        if self.filled_qty:
            avg = dec_str((self.filled_cost / self.filled_qty).quantize(Decimal("0.0000000001")))
        return {
            "id": self.id,
            "client_order_id": self.client_order_id,
            "created_at": ts(self.created_at),
            "updated_at": ts(self.updated_at),
            "submitted_at": ts(self.submitted_at),
            "filled_at": ts(self.filled_at),
            "expired_at": ts(self.expired_at),
            "canceled_at": ts(self.canceled_at),
            "failed_at": ts(self.failed_at),
            "replaced_at": ts(self.replaced_at),
            "replaced_by": self.replaced_by,
            "replaces": self.replaces,
            "asset_id": self.asset.id,
            "symbol": self.symbol,
            "asset_class": "us_equity",
            "notional": dec_str(self.notional),
            "qty": dec_str(self.qty),
            "filled_qty": dec_str(self.filled_qty),
            "filled_avg_price": avg,
            "order_class": "simple",
            "order_type": self.type,
            "type": self.type,
            "side": self.side,
            "position_intent": self.position_intent,
            "time_in_force": self.tif,
            "limit_price": dec_str(self.limit_price),
            "stop_price": dec_str(self.stop_price),
            "status": self.status,
            "extended_hours": self.extended_hours,
            "legs": None,
            "trail_percent": dec_str(self.trail_percent),
            "trail_price": dec_str(self.trail_price),
            "hwm": dec_str(self.hwm),
            "expires_at": ts(self.expires_at),
        }


@dataclass
class Position:
    asset: Asset
    qty: Decimal = ZERO  # signed: negative when short
    cost: Decimal = ZERO  # signed cost basis
    day_base: Decimal = ZERO  # value at the last close + today's signed fills


class Exchange:
    """The venue's one paper account: its orders, positions, cash and matching."""

    def __init__(
        self,
        *,
        assets: dict[str, Asset],
        model: PriceModel,
        start: datetime,
        seed: int,
        key_id: str,
        partial_fill_prob: float = 0.10,
        margin_multiplier: Decimal = DEFAULT_MARGIN_MULTIPLIER,
        starting_cash: Decimal = Decimal(100000),
    ) -> None:
        self.assets = assets
        self.assets_by_id = {a.id: a for a in assets.values()}
        self.model = model
        self.seed = seed
        self.rng = random.Random(seed ^ 0xF111)
        self.partial_fill_prob = float(partial_fill_prob)
        self.starting_cash = Decimal(starting_cash)
        self.account_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"execdesk-sim:{key_id}"))
        self.account_number = "PA" + str(uuid.UUID(self.account_id).int % 10**10).zfill(10)
        self.created_at = start - timedelta(days=30)
        self.config = {
            "dtbp_check": "entry",
            "fractional_trading": True,
            "max_margin_multiplier": dec_str(Decimal(margin_multiplier)),
            "no_shorting": False,
            "pdt_check": "entry",
            "suspend_trade": False,
            "trade_confirm_email": "all",
            "ptp_no_exception_entry": False,
            "max_options_trading_level": 0,
            "disable_overnight_trading": False,
        }
        # what Alpaca can set on an account (the drill API's POST /sim/v1/account)
        self.flags: dict[str, Any] = {"status": "ACTIVE", "account_blocked": False, "trading_blocked": False}
        self.listeners: list[Callable[[dict], None]] = []
        self.market_listeners: list[Callable[[], None]] = []
        self.call_later: Callable[[float, Callable[[], None]], Any] | None = None
        self.pending_delay = 0.0  # seconds orders sit in pending_cancel / pending_replace
        self.events_emitted = 0
        self.t = start
        self.mt = start  # market time: prices have been stepped up to here
        self._open = False
        self._session_close: datetime | None = None
        self._reset_account()
        if cal.is_open(start):
            self._begin_session(start, initial=True)

    # ------------------------------------------------------------------ state
    def _reset_account(self) -> None:
        self.cash = self.starting_cash
        self.last_equity = self.starting_cash
        self.positions: dict[str, Position] = {}
        self.orders: dict[str, Order] = {}
        self.by_client_id: dict[str, Order] = {}
        self.order_list: list[Order] = []
        self.open_by_symbol: dict[str, dict[str, Order]] = {}
        self.reserved = ZERO
        self.held: dict[tuple[str, str], Decimal] = {}
        self.side_count: dict[tuple[str, str], int] = {}  # open orders per (symbol, side)
        self._seq = 0

    def reset(self) -> None:
        """Forget orders, positions and cash (a drill/test facility; Alpaca has no such thing)."""
        self._reset_account()

    @property
    def margin_multiplier(self) -> Decimal:
        return Decimal(str(self.config["max_margin_multiplier"]))

    def open_orders(self):
        for book in self.open_by_symbol.values():
            yield from book.values()

    def open_count(self) -> int:
        return sum(len(b) for b in self.open_by_symbol.values())

    # ------------------------------------------------------------------ time
    def advance_to(self, target: datetime) -> None:
        if target <= self.t:
            return
        # prices move on a fixed grid of venue time so that frequent requests do
        # not each re-draw the market
        grid = self.mt + ((target - self.mt) // QUANTUM) * QUANTUM
        mt = self.mt
        while mt < grid:
            if self._open:
                close = self._session_close
                assert close is not None  # an open session has a close
                nxt_min = mt.replace(second=0, microsecond=0) + timedelta(minutes=1)
                b = min(grid, close, nxt_min, mt + MAX_STEP)
                self.model.step((b - mt).total_seconds(), b)
                self.mt = mt = b
                if b > self.t:
                    self.t = b
                self._match_all()
                if b == close:
                    self._end_session(b)
                elif b == nxt_min:
                    self.model.roll_minute(b)
            else:
                nxt = cal.next_open(mt)
                if nxt <= grid:
                    self.mt = mt = nxt
                    if nxt > self.t:
                        self.t = nxt
                    self._begin_session(nxt)
                else:
                    self.mt = mt = grid
        self.t = target
        for cb in self.market_listeners:
            cb()

    def _begin_session(self, t: datetime, initial: bool = False) -> None:
        d = cal.ny_date(t)
        self._open = True
        self._session_close = cal.session(d)[1]
        self.model.session_open(t.replace(second=0, microsecond=0) if initial else t)
        for o in sorted(self.open_orders(), key=lambda o: o.seq):
            if o.status == "accepted" and (o.session_date is None or o.session_date <= d):
                o.status = "new"
                o.updated_at = t
                self._emit("new", o)
        self._match_all(at_open=True)

    def _end_session(self, t: datetime) -> None:
        d = cal.ny_date(t)
        # market-on-close orders fill at the closing quote
        for o in sorted(self.open_orders(), key=lambda o: o.seq):
            if o.tif == "cls" and o.status in FILLABLE:
                self._try_fill(o, force=True)
        self.model.session_close(t)
        for o in sorted(self.open_orders(), key=lambda o: o.seq):
            if o.tif in SESSION_TIFS and o.session_date is not None and o.session_date <= d:
                self._finish(o, "expired", t)
        self._open = False
        self.last_equity = self.equity()
        for p in self.positions.values():
            p.day_base = p.qty * self.model.markets[p.asset.symbol].last_price

    @property
    def market_open(self) -> bool:
        return self._open

    # ------------------------------------------------------------------ money
    def _mark(self, symbol: str) -> Decimal:
        return self.model.markets[symbol].last_price

    def market_values(self) -> tuple[Decimal, Decimal]:
        long_mv = short_mv = ZERO
        for sym, p in self.positions.items():
            mv = p.qty * self._mark(sym)
            if mv >= 0:
                long_mv += mv
            else:
                short_mv += mv
        return long_mv, short_mv

    def equity(self) -> Decimal:
        long_mv, short_mv = self.market_values()
        return self.cash + long_mv + short_mv

    def _base_buying_power(self) -> Decimal:
        long_mv, short_mv = self.market_values()
        equity = self.cash + long_mv + short_mv
        m = self.margin_multiplier
        gross = long_mv - short_mv
        return max(ZERO, equity * m - gross)

    def buying_power(self) -> Decimal:
        return max(ZERO, self._base_buying_power() - self.reserved)

    def account_json(self) -> dict:
        long_mv, short_mv = self.market_values()
        equity = self.cash + long_mv + short_mv
        m = self.margin_multiplier
        gross = long_mv - short_mv
        bp = max(ZERO, max(ZERO, equity * m - gross) - self.reserved)
        q = Decimal("0.01")
        return {
            "id": self.account_id,
            "account_number": self.account_number,
            "status": self.flags["status"],
            "crypto_status": "INACTIVE",
            "currency": "USD",
            "buying_power": dec_str(bp.quantize(q)),
            "regt_buying_power": dec_str(bp.quantize(q)),
            "non_marginable_buying_power": dec_str(max(ZERO, self.cash - self.reserved).quantize(q)),
            "options_buying_power": "0",
            "cash": dec_str(self.cash.quantize(q)),
            "accrued_fees": "0",
            "pending_transfer_in": "0",
            "pending_transfer_out": "0",
            "portfolio_value": dec_str(equity.quantize(q)),
            "equity": dec_str(equity.quantize(q)),
            "last_equity": dec_str(self.last_equity.quantize(q)),
            "long_market_value": dec_str(long_mv.quantize(q)),
            "short_market_value": dec_str(short_mv.quantize(q)),
            "initial_margin": dec_str((gross / m).quantize(q)),
            "maintenance_margin": dec_str((gross * Decimal("0.3")).quantize(q)),
            "last_maintenance_margin": "0",
            "sma": dec_str(equity.quantize(q)),
            "multiplier": dec_str(m),
            "trading_blocked": bool(self.config["suspend_trade"] or self.flags["trading_blocked"]),
            "transfers_blocked": False,
            "account_blocked": self.flags["account_blocked"],
            "trade_suspended_by_user": bool(self.config["suspend_trade"]),
            "shorting_enabled": not self.config["no_shorting"] and m > 1,
            "created_at": ts(self.created_at),
            "options_approved_level": 0,
            "options_trading_level": 0,
            "balance_asof": cal.prev_trading_day(cal.ny_date(self.t)).isoformat(),
        }

    def position_json(self, p: Position) -> dict:
        sym = p.asset.symbol
        m = self.model.markets[sym]
        price = m.last_price
        lastday = m.lastday_close or price
        mv = p.qty * price
        pl = mv - p.cost
        ipl = mv - p.day_base
        q = Decimal("0.01")
        avg = (p.cost / p.qty) if p.qty else ZERO
        plpc = (pl / abs(p.cost)) if p.cost else ZERO
        iplpc = (ipl / abs(p.day_base)) if p.day_base else ZERO
        change = ((price - lastday) / lastday) if lastday else ZERO
        held = self.held.get((sym, "sell" if p.qty > 0 else "buy"), ZERO)
        return {
            "asset_id": p.asset.id,
            "symbol": sym,
            "exchange": p.asset.exchange,
            "asset_class": "us_equity",
            "asset_marginable": True,
            "avg_entry_price": dec_str(avg.quantize(Decimal("0.0000000001"))),
            "qty": dec_str(p.qty),
            "qty_available": dec_str(max(ZERO, abs(p.qty) - held) * (1 if p.qty > 0 else -1)),
            "side": "long" if p.qty > 0 else "short",
            "market_value": dec_str(mv.quantize(q)),
            "cost_basis": dec_str(p.cost.quantize(q)),
            "unrealized_pl": dec_str(pl.quantize(q)),
            "unrealized_plpc": dec_str(plpc.quantize(Decimal("0.0000000001"))),
            "unrealized_intraday_pl": dec_str(ipl.quantize(q)),
            "unrealized_intraday_plpc": dec_str(iplpc.quantize(Decimal("0.0000000001"))),
            "current_price": dec_str(price),
            "lastday_price": dec_str(lastday),
            "change_today": dec_str(change.quantize(Decimal("0.0000000001"))),
        }

    # ------------------------------------------------------------------ events
    def _emit(self, event: str, o: Order, **extra: Any) -> dict | None:
        """Tell the listeners (the trade stream) about `o`; returns the order's JSON
        the update carries (None when nobody listens), which is also what a response
        made at the same moment shows."""
        self.events_emitted += 1
        if not self.listeners:
            return None
        order = o.to_json()
        payload = {
            "event": event,
            "execution_id": uuid4_str(),
            "order": order,
            "timestamp": ts(self.t),
        }
        payload.update(extra)
        for cb in self.listeners:
            cb(payload)
        return order

    # ------------------------------------------------------------------ lookups
    def asset(self, symbol_or_id: str) -> Asset:
        a = (
            self.assets.get(symbol_or_id)
            or self.assets.get(symbol_or_id.upper())
            or self.assets_by_id.get(symbol_or_id.lower())
        )
        if a is None:
            raise not_found(f"asset not found for {symbol_or_id}")
        return a

    def get_order(self, order_id: str) -> Order:
        o = self.orders.get(order_id) or self.orders.get(order_id.lower())
        if o is None:
            raise not_found("order not found")
        return o

    def get_by_client_id(self, cid: str) -> Order:
        o = self.by_client_id.get(cid)
        if o is None:
            raise not_found("order not found")
        return o

    # ------------------------------------------------------------------ submit
    def parse_order(self, body: Any, *, closing: bool = False) -> dict:
        """Validate an order request body; returns normalized fields or raises VenueError."""
        if not isinstance(body, dict):
            raise VenueError(400, 40010000, "request body format is invalid")
        order_class = body.get("order_class")
        if order_class not in (None, "", "simple"):
            if not isinstance(order_class, str):
                raise unprocessable("invalid order_class")
            raise unprocessable(f"order_class {order_class} is not supported by the local venue")
        symbol = body.get("symbol")
        if symbol is None or symbol == "":
            raise unprocessable("symbol is required")
        if not isinstance(symbol, str):
            raise unprocessable("invalid symbol")
        asset = self.assets.get(symbol) or self.assets.get(symbol.upper())
        side = body.get("side")
        if side not in ("buy", "sell"):
            raise unprocessable("invalid side" if side is not None else "side is required")
        otype = body.get("type", body.get("order_type"))
        if otype not in ORDER_TYPES:
            raise unprocessable("invalid type" if otype is not None else "type is required")
        tif = body.get("time_in_force")
        if tif not in TIFS:
            raise unprocessable("invalid time_in_force" if tif is not None else "time_in_force is required")
        qty_raw, notional_raw = body.get("qty"), body.get("notional")
        if qty_raw is not None and notional_raw is not None:
            raise unprocessable("only one of qty or notional may be given")
        if qty_raw is None and notional_raw is None:
            raise unprocessable("qty or notional is required")
        qty = notional = None
        if qty_raw is not None:
            qty = _to_decimal(qty_raw, "qty")
            if qty <= 0:
                raise unprocessable("qty must be > 0")
            if qty > MAX_QTY:
                raise unprocessable("qty is too large")
            if _decimals(qty) > 9:
                raise unprocessable("qty must have at most 9 decimal places")
            qty = qty.normalize() if qty == qty.to_integral_value() else qty
        else:
            notional = _to_decimal(notional_raw, "notional")
            if notional <= 0:
                raise unprocessable("notional must be > 0")
            if notional < 1:
                raise unprocessable("notional must be at least $1")
            if notional > MAX_NOTIONAL:
                raise unprocessable("notional is too large")
            if _decimals(notional) > 2:
                raise unprocessable("notional must have at most 2 decimal places")
        limit_price = stop_price = trail_price = trail_percent = None
        if otype in ("limit", "stop_limit"):
            if body.get("limit_price") is None:
                raise unprocessable("limit_price is required")
            limit_price = check_price(_to_decimal(body["limit_price"], "limit_price"), "limit_price")
        if otype in ("stop", "stop_limit"):
            if body.get("stop_price") is None:
                raise unprocessable("stop_price is required")
            stop_price = check_price(_to_decimal(body["stop_price"], "stop_price"), "stop_price")
        if otype == "trailing_stop":
            tp, tpc = body.get("trail_price"), body.get("trail_percent")
            if (tp is None) == (tpc is None):
                raise unprocessable("exactly one of trail_price or trail_percent is required")
            if tp is not None:
                trail_price = check_price(_to_decimal(tp, "trail_price"), "trail_price")
            else:
                trail_percent = _to_decimal(tpc, "trail_percent")
                if not (0 < trail_percent < 100) or _decimals(trail_percent) > 4:
                    raise unprocessable("trail_percent must be between 0 and 100")
            if tif not in ("day", "gtc"):
                raise unprocessable("trailing_stop orders must be day or gtc")
        extended = _opt_bool(body.get("extended_hours"), "extended_hours")
        cid = body.get("client_order_id")
        if cid is not None:
            if not isinstance(cid, str):
                raise unprocessable("invalid client_order_id")
            if len(cid) > MAX_CLIENT_ORDER_ID:
                raise unprocessable(f"client_order_id must be no more than {MAX_CLIENT_ORDER_ID} characters")
            if cid == "":
                cid = None
        if asset is None:
            raise unprocessable(f'asset "{symbol}" not found')
        if not asset.tradable or asset.status != "active":
            raise unprocessable(f"asset {asset.symbol} is not tradable")
        fractional = qty is not None and qty != qty.to_integral_value()
        if fractional or notional is not None:
            if not asset.fractionable:
                raise unprocessable(f"asset {asset.symbol} is not fractionable")
            if not self.config["fractional_trading"]:
                raise unprocessable("fractional trading is not enabled for this account")
            if tif != "day":
                raise unprocessable("fractional orders must be DAY orders")
        if notional is not None and otype != "market":
            raise unprocessable("notional orders must be market orders")
        if extended and not (otype == "limit" and tif == "day"):
            raise unprocessable("extended hours order must be DAY limit orders")
        if tif in ("opg", "cls") and otype not in ("market", "limit"):
            raise unprocessable(f"{tif} orders must be market or limit orders")
        if tif == "opg" and self._open:
            raise unprocessable("opg orders must be submitted before the market opens")
        return {
            "asset": asset,
            "side": side,
            "type": otype,
            "tif": tif,
            "qty": qty,
            "notional": notional,
            "limit_price": limit_price,
            "stop_price": stop_price,
            "trail_price": trail_price,
            "trail_percent": trail_percent,
            "extended_hours": extended,
            "client_order_id": cid,
            "fractional": fractional,
        }

    def _ref_price(self, f: dict) -> Decimal:
        q = self.model.markets[f["asset"].symbol].quote
        if f["limit_price"] is not None:
            return f["limit_price"]
        if f["stop_price"] is not None:
            return f["stop_price"]
        return q.ap if f["side"] == "buy" else q.bp

    def _pre_trade(self, f: dict, exclude: Order | None = None) -> tuple[Decimal, Decimal, str]:
        """Alpaca's account checks. Returns (reserve, held qty, position_intent)."""
        if self.config["suspend_trade"]:
            raise forbidden("trading is suspended for this account")
        if self.flags["account_blocked"] or self.flags["trading_blocked"] or self.flags["status"] != "ACTIVE":
            raise forbidden("account is not authorized to trade")
        asset: Asset = f["asset"]
        sym, side = asset.symbol, f["side"]
        opposite = "sell" if side == "buy" else "buy"
        if self.side_count.get((sym, opposite)):
            related = [
                o.id
                for o in self.open_by_symbol.get(sym, {}).values()
                if o.side == opposite and o.counted and o is not exclude
            ]
            if related:
                raise forbidden(
                    "potential wash trade detected. use complex orders",
                    reject_reason="opposite side order exists",
                    related_orders=related[:10],
                )
        ref = self._ref_price(f)
        est_qty = f["qty"] if f["qty"] is not None else (f["notional"] / ref).quantize(QTY_QUANT, ROUND_DOWN)
        pos = self.positions.get(sym)
        pos_qty = pos.qty if pos else ZERO
        held_same = self.held.get((sym, side), ZERO)
        if exclude is not None and exclude.side == side:
            held_same -= exclude.held
        opening = True
        if (side == "sell" and pos_qty > 0) or (side == "buy" and pos_qty < 0):
            # reducing: may not exceed what is held by the position and not
            # already promised to other open orders (no flip in one order)
            available = abs(pos_qty) - held_same
            if est_qty > available:
                raise forbidden(
                    f"insufficient qty available for order (requested: {dec_str(est_qty)}, "
                    f"available: {dec_str(max(available, ZERO))})",
                    symbol=sym,
                    existing_qty=dec_str(abs(pos_qty)),
                    held_for_orders=dec_str(held_same),
                    available=dec_str(max(available, ZERO)),
                )
            opening = False
        elif side == "sell":
            if self.config["no_shorting"] or self.margin_multiplier <= 1:
                raise forbidden("account is not allowed to short")
            if not asset.shortable:
                raise forbidden(f"asset {sym} is not shortable")
            if not asset.easy_to_borrow:
                raise forbidden(f"asset {sym} is not easy to borrow and cannot be sold short")
            if f["fractional"] or f["notional"] is not None:
                raise forbidden("fractional orders cannot be sold short")
        if side == "buy":
            intent = "buy_to_close" if pos_qty < 0 else "buy_to_open"
        else:
            intent = "sell_to_close" if pos_qty > 0 else "sell_to_open"
        reserve = ZERO
        if opening:
            cost = f["notional"] if f["notional"] is not None else est_qty * ref
            available_bp = self._base_buying_power() - self.reserved
            if exclude is not None:
                available_bp += exclude.reserve
            if cost > available_bp:
                raise forbidden(
                    "insufficient buying power",
                    buying_power=dec_str(max(available_bp, ZERO)),
                    cost_basis=dec_str(cost.quantize(Decimal("0.01"))),
                )
            reserve = cost
        return reserve, est_qty, intent

    def _new_order(self, f: dict, reserve: Decimal, held: Decimal, intent: str) -> Order:
        cid = f["client_order_id"] or uuid4_str()
        if cid in self.by_client_id:
            raise unprocessable("client_order_id must be unique")
        o = Order()
        self._seq += 1
        o.seq = self._seq
        o.id = uuid4_str()
        o.client_order_id = cid
        o.asset = f["asset"]
        o.symbol = o.asset.symbol
        o.side, o.type, o.tif = f["side"], f["type"], f["tif"]
        o.qty, o.notional = f["qty"], f["notional"]
        o.limit_price, o.stop_price = f["limit_price"], f["stop_price"]
        o.trail_price, o.trail_percent = f["trail_price"], f["trail_percent"]
        o.extended_hours = f["extended_hours"]
        o.position_intent = intent
        now = self.t
        o.created_at = o.updated_at = o.submitted_at = now
        if o.tif in SESSION_TIFS:
            o.session_date = cal.ny_date(now) if self._open else cal.session_date_for(now)
            o.expires_at = cal.session(o.session_date)[1]
        else:
            o.session_date = None
            o.expires_at = cal.session(cal.session_date_for(now + timedelta(days=90)))[1]
        o.reserve = reserve
        o.reserve_px = (reserve / o.qty) if (o.qty and reserve) else ZERO
        o.held = held
        if o.type == "trailing_stop":
            q = self.model.markets[o.symbol].quote
            o.hwm = q.bp if o.side == "sell" else q.ap
            self._update_trailing(o, q)
        return o

    def _book(self, o: Order, register: bool = True) -> None:
        if register:
            self.orders[o.id] = o
            self.by_client_id[o.client_order_id] = o
            self.order_list.append(o)
        self.open_by_symbol.setdefault(o.symbol, {})[o.id] = o
        self.reserved += o.reserve
        key = (o.symbol, o.side)
        self.held[key] = self.held.get(key, ZERO) + o.held
        if not o.pending_new:
            o.counted = True
            self.side_count[key] = self.side_count.get(key, 0) + 1

    def _unbook(self, o: Order) -> None:
        book = self.open_by_symbol.get(o.symbol)
        if book is not None:
            book.pop(o.id, None)
            if not book:
                del self.open_by_symbol[o.symbol]
        self.reserved -= o.reserve
        o.reserve = ZERO
        key = (o.symbol, o.side)
        self.held[key] = self.held.get(key, ZERO) - o.held
        o.held = ZERO
        if o.counted:
            o.counted = False
            self.side_count[key] -= 1

    def submit(self, body: Any) -> dict:
        """POST /v2/orders. Returns the order as the response shows it."""
        f = self.parse_order(body)
        if f["client_order_id"] and f["client_order_id"] in self.by_client_id:
            raise unprocessable("client_order_id must be unique")
        reserve, held, intent = self._pre_trade(f)
        o = self._new_order(f, reserve, held, intent)
        self._book(o)
        return self._activate(o)

    def _activate(self, o: Order) -> dict:
        if self._open and not (o.tif == "opg") and (o.session_date is None or o.session_date <= cal.ny_date(self.t)):
            o.status = "new"
            # the answer shows the order as its "new" update does (before any fill);
            # the listeners only serialize that dict, so both may share it
            snapshot = self._emit("new", o) or o.to_json()
            self._try_fill(o)
        else:
            o.status = "accepted"
            snapshot = self._emit("accepted", o) or o.to_json()
        return snapshot

    # ------------------------------------------------------------------ matching
    def _match_all(self, at_open: bool = False) -> None:
        if not self.open_by_symbol:
            return
        for sym in list(self.open_by_symbol):
            book = self.open_by_symbol.get(sym)
            if not book:
                continue
            q = self.model.markets[sym].quote
            for o in list(book.values()):
                if o.status in FILLABLE and not o.pending_new:
                    if o.tif == "cls":
                        continue
                    self._try_fill(o, quote=q)

    def _update_trailing(self, o: Order, q) -> None:
        assert o.hwm is not None  # set when a trailing stop is booked
        if o.side == "sell":
            if q.bp > o.hwm:
                o.hwm = q.bp
            trail = self._trail(o, o.hwm)
            o.stop_price = (o.hwm - trail).quantize(Decimal("0.01"))
        else:
            if q.ap < o.hwm:
                o.hwm = q.ap
            trail = self._trail(o, o.hwm)
            o.stop_price = (o.hwm + trail).quantize(Decimal("0.01"))

    @staticmethod
    def _trail(o: Order, hwm: Decimal) -> Decimal:
        if o.trail_price is not None:
            return o.trail_price
        assert o.trail_percent is not None  # a trailing stop has one of the two
        return hwm * o.trail_percent / _HUNDRED

    def _try_fill(self, o: Order, quote=None, force: bool = False) -> None:
        if not self._open or (o.tif == "cls" and not force):
            return
        q = quote or self.model.markets[o.symbol].quote
        buy = o.side == "buy"
        px = q.ap if buy else q.bp
        otype = o.type
        if otype == "trailing_stop" and not o.triggered:
            self._update_trailing(o, q)
        if otype in ("stop", "stop_limit", "trailing_stop") and not o.triggered:
            assert o.stop_price is not None  # validated when booked
            if (buy and q.ap >= o.stop_price) or (not buy and q.bp <= o.stop_price):
                o.triggered = True
            else:
                if o.tif in ("ioc", "fok"):
                    self._finish(o, "canceled", self.t)
                return
        if otype in ("limit", "stop_limit"):
            lp = o.limit_price
            assert lp is not None  # validated when booked
            if (buy and px > lp) or (not buy and px < lp):
                if o.tif in ("ioc", "fok", "opg") or force:
                    self._finish(o, "canceled" if not force else "expired", self.t)
                return
        # quantity of this execution
        if o.notional is not None:
            rem_notional = o.notional - o.filled_notional
            qty = (rem_notional / px).quantize(QTY_QUANT, ROUND_DOWN)
            if qty <= 0:
                self._finish(o, "canceled", self.t)
                return
            self._execute(o, qty, px, notional=rem_notional, final=True)
            return
        rem = o.remaining()
        qty = rem
        if (
            o.tif not in ("fok", "opg")
            and not force
            and self.partial_fill_prob > 0
            and self.rng.random() < self.partial_fill_prob
        ):
            if rem == rem.to_integral_value():
                if rem >= 2:
                    qty = Decimal(self.rng.randint(1, int(rem) - 1))
            else:
                part = (rem * Decimal(str(round(self.rng.uniform(0.1, 0.9), 4)))).quantize(QTY_QUANT, ROUND_DOWN)
                if part > 0:
                    qty = part
        self._execute(o, qty, px)
        if o.tif == "ioc" and o.status == "partially_filled":
            self._finish(o, "canceled", self.t)

    def _execute(
        self, o: Order, qty: Decimal, px: Decimal, notional: Decimal | None = None, final: bool = False
    ) -> None:
        sym = o.symbol
        signed = qty if o.side == "buy" else -qty
        value = qty * px
        self.cash -= signed * px
        p = self.positions.get(sym)
        if p is None:
            p = self.positions[sym] = Position(asset=o.asset)
        if p.qty == 0 or (p.qty > 0) == (signed > 0):
            p.qty += signed
            p.cost += signed * px
        elif abs(signed) <= abs(p.qty):
            p.cost -= p.cost * (abs(signed) / abs(p.qty))
            p.qty += signed
        else:
            p.qty += signed
            p.cost = p.qty * px
        p.day_base += signed * px
        if p.qty == 0:
            del self.positions[sym]
        o.filled_qty += qty
        o.filled_cost += value
        if notional is not None:
            o.filled_notional += notional
        # release what this execution used of the reservations
        if o.qty is not None:
            rem = o.qty - o.filled_qty
            new_reserve = rem * o.reserve_px if o.reserve_px else ZERO
            new_held = min(o.held, rem) if o.held else ZERO
        else:
            new_reserve = ZERO
            new_held = ZERO
        self.reserved += new_reserve - o.reserve
        o.reserve = new_reserve
        key = (sym, o.side)
        self.held[key] = self.held.get(key, ZERO) + new_held - o.held
        o.held = new_held
        now = self.t
        o.updated_at = now
        done = final or (o.qty is not None and o.filled_qty >= o.qty)
        position_qty = dec_str(p.qty if p.qty else ZERO)
        if done:
            o.filled_at = now
            o.status = "filled"
            self._unbook(o)
        elif o.status not in ("pending_cancel", "pending_replace"):
            o.status = "partially_filled"
        self._emit(
            "fill" if done else "partial_fill", o, price=dec_str(px), qty=dec_str(qty), position_qty=position_qty
        )

    def _finish(self, o: Order, status: str, t: datetime) -> None:
        o.status = status
        o.updated_at = t
        if status == "canceled":
            o.canceled_at = t
        elif status == "expired":
            o.expired_at = t
        elif status == "replaced":
            o.replaced_at = t
        elif status == "rejected":
            o.failed_at = t
        self._unbook(o)
        self._emit(status, o)

    # ------------------------------------------------------------------ cancel
    def _check_cancelable(self, o: Order) -> None:
        if o.status in FINAL:
            raise unprocessable(f'order is already in "{o.status}" state')
        if o.status == "pending_replace" or o.pending_new:
            raise unprocessable("order is pending replace and cannot be canceled")

    def cancel(self, order_id: str) -> None:
        o = self.get_order(order_id)
        self._check_cancelable(o)
        self._cancel(o)

    def _cancel(self, o: Order) -> None:
        if o.status == "pending_cancel":
            return
        if self.pending_delay > 0 and self.call_later is not None:
            o.status = "pending_cancel"
            o.updated_at = self.t
            self._emit("pending_cancel", o)
            self.call_later(self.pending_delay, lambda: self._complete_cancel(o))
        else:
            self._finish(o, "canceled", self.t)

    def _complete_cancel(self, o: Order) -> None:
        if o.status == "pending_cancel":
            self._finish(o, "canceled", self.t)

    def cancel_all(self) -> list[dict]:
        out = []
        for o in sorted(self.open_orders(), key=lambda o: o.seq):
            if o.pending_new:
                continue  # a replacement the venue has not confirmed yet
            if o.status == "pending_replace":
                err = unprocessable("order is pending replace and cannot be canceled")
                out.append({"id": o.id, "status": err.status, "body": err.body()})
                continue
            self._cancel(o)
            out.append({"id": o.id, "status": 200})
        return out

    # ------------------------------------------------------------------ replace
    def replace(self, order_id: str, body: Any) -> dict:
        o = self.get_order(order_id)
        if not isinstance(body, dict):
            raise VenueError(400, 40010000, "request body format is invalid")
        if o.status in FINAL:
            raise unprocessable(f'order is already in "{o.status}" state')
        if o.status in ("pending_cancel", "pending_replace") or o.pending_new:
            raise unprocessable(f'order is in "{o.status}" state and cannot be replaced')
        if o.notional is not None:
            raise unprocessable("notional orders cannot be replaced")
        known = ("qty", "time_in_force", "limit_price", "stop_price", "trail", "client_order_id")
        if not any(body.get(k) is not None for k in known):
            raise unprocessable("nothing to replace: give qty, time_in_force, limit_price, stop_price or trail")
        fields = {
            "symbol": o.symbol,
            "side": o.side,
            "type": o.type,
            "time_in_force": body.get("time_in_force") if body.get("time_in_force") is not None else o.tif,
            "qty": body.get("qty") if body.get("qty") is not None else dec_str(o.remaining()),
            "limit_price": body.get("limit_price") if body.get("limit_price") is not None else dec_str(o.limit_price),
            "stop_price": body.get("stop_price") if body.get("stop_price") is not None else dec_str(o.stop_price),
            "extended_hours": o.extended_hours,
            "client_order_id": body.get("client_order_id"),
        }
        if o.type == "trailing_stop":
            trail = body.get("trail")
            if o.trail_price is not None:
                fields["trail_price"] = trail if trail is not None else dec_str(o.trail_price)
            else:
                fields["trail_percent"] = trail if trail is not None else dec_str(o.trail_percent)
            fields["stop_price"] = None
        elif body.get("trail") is not None:
            raise unprocessable("trail is only valid for trailing_stop orders")
        f = self.parse_order(fields)
        if f["client_order_id"] and f["client_order_id"] in self.by_client_id:
            raise unprocessable("client_order_id must be unique")
        reserve, held, intent = self._pre_trade(f, exclude=o)
        new = self._new_order(f, reserve, held, intent)
        new.replaces = o.id
        if self.pending_delay > 0 and self.call_later is not None:
            o.status = "pending_replace"
            o.updated_at = self.t
            o.replacement = new
            new.status = "pending_new"
            new.pending_new = True
            # the replacement is registered (its id and client id answer lookups)
            # but takes no reservations until the venue confirms the replace
            new.reserve = new.held = new.reserve_px = ZERO
            self._book(new)
            self._emit("pending_replace", o)
            snapshot = new.to_json()
            self.call_later(self.pending_delay, lambda: self._complete_replace(o, new))
            return snapshot
        return self._do_replace(o, new)

    def _do_replace(self, o: Order, new: Order) -> dict:
        o.replaced_by = new.id
        self._finish(o, "replaced", self.t)
        self._book(new)
        return self._activate(new)

    def _complete_replace(self, o: Order, new: Order) -> None:
        book = self.open_by_symbol.get(new.symbol)
        if book is not None:
            book.pop(new.id, None)
            if not book:
                del self.open_by_symbol[new.symbol]
        new.pending_new = False
        if o.status != "pending_replace":
            # the original filled (or was otherwise finished) while the replace was pending
            new.status = "rejected"
            new.failed_at = new.updated_at = self.t
            self._emit("order_replace_rejected", o)
            return
        o.replacement = None
        o.replaced_by = new.id
        self._finish(o, "replaced", self.t)
        # recompute reservations now that the original released its own
        try:
            f = {
                "asset": new.asset,
                "side": new.side,
                "qty": new.qty,
                "notional": None,
                "limit_price": new.limit_price,
                "stop_price": new.stop_price,
                "fractional": False,
            }
            reserve, held, _ = self._pre_trade(f)
        except VenueError:
            reserve, held = ZERO, new.qty or ZERO
        new.reserve = reserve
        new.reserve_px = (reserve / new.qty) if (new.qty and reserve) else ZERO
        new.held = held
        self._book(new, register=False)
        self._activate(new)

    # ------------------------------------------------------------------ positions
    def get_position(self, symbol_or_id: str) -> Position:
        a = (
            self.assets.get(symbol_or_id)
            or self.assets.get(symbol_or_id.upper())
            or self.assets_by_id.get(symbol_or_id.lower())
        )
        p = self.positions.get(a.symbol) if a else None
        if p is None:
            raise not_found("position does not exist")
        return p

    def close_position(self, symbol_or_id: str, qty: Any = None, percentage: Any = None) -> dict:
        p = self.get_position(symbol_or_id)
        if qty is not None and percentage is not None:
            raise unprocessable("only one of qty or percentage may be given")
        total = abs(p.qty)
        if qty is not None:
            n = _to_decimal(qty, "qty")
            if n <= 0:
                raise unprocessable("qty must be > 0")
            if n > total:
                raise forbidden(
                    f"insufficient qty available for order (requested: {dec_str(n)}, available: {dec_str(total)})",
                    symbol=p.asset.symbol,
                    existing_qty=dec_str(total),
                    available=dec_str(total),
                )
        elif percentage is not None:
            pct = _to_decimal(percentage, "percentage")
            if not (0 < pct <= 100):
                raise unprocessable("percentage must be > 0 and <= 100")
            n = (total * pct / _HUNDRED).quantize(QTY_QUANT, ROUND_DOWN)
            if pct == 100:
                n = total
            elif not p.asset.fractionable:
                n = n.to_integral_value(ROUND_DOWN)
            if n <= 0:
                raise unprocessable("percentage is too small to close any shares")
        else:
            n = total
        return self.submit(
            {
                "symbol": p.asset.symbol,
                "qty": dec_str(n),
                "side": "sell" if p.qty > 0 else "buy",
                "type": "market",
                "time_in_force": "day",
            }
        )

    def close_all(self, cancel_orders: bool) -> list[dict]:
        if cancel_orders:
            self.cancel_all()
        out = []
        for sym in sorted(self.positions):
            try:
                order = self.close_position(sym)
                out.append({"symbol": sym, "status": 200, "body": order})
            except VenueError as exc:
                out.append({"symbol": sym, "status": exc.status, "body": {**exc.body(), "symbol": sym}})
        return out

    # ------------------------------------------------------------------ listing
    def list_orders(
        self,
        status: str = "open",
        limit: int = 50,
        after: datetime | None = None,
        until: datetime | None = None,
        direction: str = "desc",
        side: str | None = None,
        symbols: set[str] | None = None,
    ) -> list[dict]:
        source: Iterable[Order]
        if status == "open":
            if symbols is not None:
                pool = [o for s in symbols for o in self.open_by_symbol.get(s, {}).values()]
            else:
                pool = list(self.open_orders())
            pool.sort(key=lambda o: o.seq, reverse=direction == "desc")
            source = pool
        else:
            source = reversed(self.order_list) if direction == "desc" else self.order_list
        out = []
        for o in source:
            if status == "closed" and o.is_open:
                continue
            if side is not None and o.side != side:
                continue
            if symbols is not None and o.symbol not in symbols:
                continue
            if after is not None and not o.submitted_at > after:
                continue
            if until is not None and not o.submitted_at < until:
                continue
            out.append(o.to_json())
            if len(out) >= limit:
                break
        return out

    # ------------------------------------------------------------------ drills
    def after_price_change(self) -> None:
        self._match_all()
        for cb in self.market_listeners:
            cb()

    def summary(self) -> dict:
        return {
            "time": ts(self.t),
            "market_open": self._open,
            "cash": dec_str(self.cash),
            "equity": dec_str(self.equity()),
            "buying_power": dec_str(self.buying_power()),
            "orders_total": len(self.orders),
            "orders_open": self.open_count(),
            "positions": {s: dec_str(p.qty) for s, p in sorted(self.positions.items())},
            "events_emitted": self.events_emitted,
            "pending_delay": self.pending_delay,
            "partial_fill_prob": self.partial_fill_prob,
        }
