"""A small trading desk for risk scenarios: settings, universe, portfolio, checks and
a context at a fixed venue time, with verbs that read like the scenario."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from engine.config import Settings, SymbolOverride
from engine.model import Side
from engine.portfolio import Portfolio
from engine.risk import CheckContext, Denial, PreTradeRisk
from engine.sizing import OrderPurpose, ProposedOrder, marketable_limit
from engine.universe import Universe
from tests.support import UNIVERSE as UNIVERSE_PATH
from tests.support import shipped_settings, with_sections

UNIVERSE = Universe.load(UNIVERSE_PATH)
NOW = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)
D = Decimal


def settings_with(**changes: Any) -> Settings:
    """The default configuration with changes given as section__key=value."""
    sections: dict[str, dict[str, Any]] = {}
    for dotted, value in changes.items():
        section, key = dotted.split("__", 1)
        sections.setdefault(section, {})[key] = value
    return with_sections(shipped_settings(), **sections)


class Desk:
    def __init__(
        self,
        settings: Settings | None = None,
        *,
        equity: str | int = 100_000,
        buying_power: str | int | None = None,
        assets: Any = None,
    ):
        self.settings = settings or settings_with()
        self.assets = UNIVERSE if assets is None else assets
        self.pf = Portfolio(self.settings, _sectors(self.assets))
        eq = D(equity)
        self.pf.set_account(eq, eq, eq, D(buying_power) if buying_power is not None else 2 * eq)
        self.risk = PreTradeRisk(self.settings, assets=self.assets)
        self.ctx = CheckContext(now=NOW, overrides=self.settings.rollout.overrides)
        self._ids = 0

    # -- given ---------------------------------------------------------------------

    def quote(self, sym: str, price: str | float | Decimal, *, spread: str = "0.02", age: float = 0):
        p = D(str(price))
        half = D(spread) / 2
        self.pf.on_quote(sym, p - half, p + half, NOW - timedelta(seconds=age))
        return self

    def quote_all(self):
        for a in UNIVERSE:
            self.quote(a.symbol, a.price)
        return self

    def holding(self, sym: str, qty: int | str, price: str | float | Decimal | None = None):
        """A position bought (or sold short) at `price` (default: the mid)."""
        b = self.pf.book(sym)
        if b is None or not b.quote_ok:
            self.quote(sym, price if price is not None else _ref_price(sym))
        px = D(str(price)) if price is not None else self.pf.book(sym).mark
        q = D(qty)
        self.pf.apply_fill(sym, Side.BUY if q > 0 else Side.SELL, abs(q), px)
        return self

    def working(self, sym: str, side: Side, qty: int | str, reduce_only: bool = False) -> str:
        self._ids += 1
        cid = f"w-{self._ids}"
        b = self.pf.book(sym)
        px = b.ask if side is Side.BUY else b.bid
        self.pf.order_opened(cid, sym, side, D(qty), px, reduce_only)
        return cid

    def override(self, sym: str, **fields: Any):
        self.ctx.overrides = {**self.ctx.overrides, sym: SymbolOverride(**fields)}
        return self

    # -- when ----------------------------------------------------------------------

    def order(
        self,
        sym: str,
        side: Side,
        qty: int | str,
        *,
        limit: str | Decimal | None = "marketable",
        reduce_only: bool = False,
        purpose: OrderPurpose = OrderPurpose.SIGNAL,
        confirmed: bool = False,
    ) -> ProposedOrder:
        b = self.pf.book(sym)
        if b is not None and b.quote_ok:
            decision = b.mark
            if limit == "marketable":
                limit = marketable_limit(side, b.bid, b.ask, self.pf.limits.limit_price_offset)
        else:
            decision = D(str(_ref_price(sym)))
            if limit == "marketable":
                limit = decision
        return ProposedOrder(
            symbol=sym,
            side=side,
            qty=D(qty),
            limit_price=D(limit) if limit is not None else None,
            decision_price=decision,
            reduce_only=reduce_only,
            purpose=purpose,
            operator_confirmed=confirmed,
        )

    def check(self, order: ProposedOrder) -> Denial | None:
        return self.risk.check(self.pf, order, self.ctx)

    def buy(self, sym: str, qty: int | str, **kw: Any) -> Denial | None:
        return self.check(self.order(sym, Side.BUY, qty, **kw))

    def sell(self, sym: str, qty: int | str, **kw: Any) -> Denial | None:
        return self.check(self.order(sym, Side.SELL, qty, **kw))


def _ref_price(sym: str) -> Decimal:
    return UNIVERSE.get(sym).price if sym in UNIVERSE else D("10")


def _sectors(assets: Any) -> dict[str, str]:
    if isinstance(assets, dict):
        return {s: getattr(a, "sector", "Unknown") for s, a in assets.items()}
    return {a.symbol: a.sector for a in assets}
