"""What front ends read: the event log and the immutable EngineSnapshot, its rows
rebuilt only where something changed since the last one."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import TYPE_CHECKING

from engine.core.common import EXTERNAL
from engine.model import Fill, OrderStatus
from engine.snapshot import EngineSnapshot, EventRow, FillRow, IntentRow, OrderRow, OverrideRow, PositionRow

if TYPE_CHECKING:
    from engine.core.engine import Engine

_CENT = Decimal("0.01")
_MARK = Decimal("0.0001")


class Publisher:
    def __init__(self, engine: Engine, log_sink: Callable[[EventRow], None] | None = None):
        self.e = engine
        self.snapshot = EngineSnapshot()
        self.dirty = True  # something changed since the last snapshot
        self.dirty_orders: set[str] = set()  # orders changed since the last snapshot (EXTERNAL: external ones)
        self.pl_history: deque[float] = deque(maxlen=120)
        self._log_sink = log_sink
        self._events: deque[EventRow] = deque(maxlen=500)
        self._event_seq = 0
        self._seq = 0
        self._rows_orders: dict[str, OrderRow] = {}
        self._rows_intents: dict[str, IntentRow] = {}
        self._rows_positions: dict[str, PositionRow] = {}
        self._rows_complete = False  # the rows were built from the whole book at least once
        self._quotes: Mapping[str, Decimal] = MappingProxyType({})
        self._fills: deque[FillRow] = deque(maxlen=1000)
        self._fills_shown: tuple[FillRow, ...] = ()
        self.realized_pl = Decimal(0)

    def fill_applied(self, fill: Fill, realized: Decimal) -> None:
        """A fill reached the portfolio (live or replayed from the journal)."""
        self.realized_pl += realized
        self._fills.append(
            FillRow(
                execution_id=fill.execution_id,
                client_order_id=fill.client_order_id,
                symbol=fill.symbol,
                side=fill.side.value,
                qty=fill.qty,
                price=fill.price,
                ts=fill.ts,
                realized_pl=realized.quantize(_CENT),
            )
        )
        self._fills_shown = ()  # rebuilt at the next snapshot

    # -------------------------------------------------------------- event log

    def note(self, kind: str, symbol: str | None, text: str) -> None:
        self._event_seq += 1
        row = EventRow(seq=self._event_seq, ts=self.e.clock.now(), kind=kind, symbol=symbol, text=text)
        self._events.append(row)
        if self._log_sink is not None:
            try:
                self._log_sink(row)
            except Exception:  # pragma: no cover
                pass
        self.dirty = True

    # -------------------------------------------------------------- snapshots

    async def run(self) -> None:
        interval = 1.0 / max(1.0, min(20.0, self.e.settings.console.max_fps * 2))
        while True:
            await asyncio.sleep(interval)
            if self.dirty:
                self.publish()

    def publish(self) -> None:
        e = self.e
        if e.recorder.flush_scheduled:
            # what a snapshot shows is in the journal: commit the loop turn's write-behind first
            e.recorder.flush()
        self.dirty = False
        self._seq += 1
        p = e.portfolio
        metrics = p.metrics(
            overrides=e.overrides, rate=e.risk.rate, now=e.rate_now(), orders_this_bar=e.intents.orders_this_bar
        )
        overrides = {
            s: OverrideRow(
                s,
                o.mode.value if o.mode else None,
                o.max_position_usd,
                o.max_position_pct,
                o.size_multiplier,
                o.side.value if o.side else None,
                e.intents.override_changed.get(s),
            )
            for s, o in e.overrides.items()
        }
        orders = self._order_rows()
        self.snapshot = EngineSnapshot(
            seq=self._seq,
            session_id=e.session_id,
            mode="LIVE" if e.settings.is_live else "PAPER",
            venue=e.venue_kind,
            account_number=e.account_number,
            equity=p.equity.quantize(_CENT),
            last_equity=p.last_equity,
            cash=p.cash,
            buying_power=p.buying_power,
            day_pl=p.daily_pnl.quantize(_CENT),
            daily_loss_limit=metrics.daily_loss_limit.quantize(_CENT),
            trading_state=e.state,
            state_cause=e.state_cause,
            connectivity=e.connectivity,
            venue_time=e.clock.now(),
            market_open=e.clock.market_open(),
            last_bar_ts=e.last_bar_ts,
            bars_processed=e.stats.batches,
            intents=MappingProxyType(self._intent_rows()),
            orders=MappingProxyType(orders),
            positions=MappingProxyType(self._position_rows(metrics)),
            overrides=MappingProxyType(overrides),
            limits=metrics.as_limit_usages(),
            gross_exposure=metrics.gross_exposure,
            net_exposure=metrics.net_exposure,
            pl_history=tuple(self.pl_history),
            events=tuple(self._events)[-200:],
            kill_switch=e.kill,
            trading_ready=e.trading_ready,
            not_ready_reason=e.not_ready_reason,
            open_order_count=sum(1 for r in orders.values() if not r.external),
            external_order_count=len(e.external),
            market_data=e.market_data.status(),
            fills=self._fill_rows(),
            quotes=self._quote_marks(),
            realized_pl=self.realized_pl.quantize(_CENT),
            unrealized_pl=sum((pr.unrealized_pl for pr in metrics.positions), Decimal(0)).quantize(_CENT),
        )

    def _quote_marks(self) -> Mapping[str, Decimal]:
        """Market prices of the symbols held or with working orders (O(symbols));
        the previous mapping when none moved, so readers can compare by identity."""
        marks = {
            sym: b.mark.quantize(_MARK)
            for sym, b in self.e.portfolio.books.items()
            if b.mark > 0 and (b.qty != 0 or b.buy_count or b.sell_count)
        }
        if marks != self._quotes:
            self._quotes = MappingProxyType(marks)
        return self._quotes

    def _fill_rows(self) -> tuple[FillRow, ...]:
        """The same tuple until a fill arrives (readers compare by identity)."""
        if len(self._fills_shown) != len(self._fills) or not self._fills_shown:
            self._fills_shown = tuple(self._fills)
        return self._fills_shown

    def _order_rows(self) -> dict[str, OrderRow]:
        """Working orders as rows, rebuilt only where an order changed since the last
        snapshot (O(changes), not O(open orders)); unchanged rows are the same objects."""
        e = self.e
        dirty, self.dirty_orders = self.dirty_orders, set()
        if not self._rows_complete:
            rows: dict[str, OrderRow] = {}
            for o in e.book.iter_open():
                self._order_row(rows, o.client_order_id)
            self._rows_complete = True
            dirty = {EXTERNAL}
        else:
            rows = dict(self._rows_orders)
            for cid in dirty:
                if cid != EXTERNAL:
                    self._order_row(rows, cid)
        if EXTERNAL in dirty:
            for key in [k for k in rows if k.startswith("ext:")]:
                del rows[key]
            for vid, v in e.external.items():
                rows[f"ext:{vid}"] = OrderRow(
                    client_order_id=v.client_order_id,
                    venue_order_id=v.id,
                    symbol=v.symbol,
                    side=v.side,
                    qty=v.qty or Decimal(0),
                    filled_qty=v.filled_qty,
                    filled_avg_price=v.filled_avg_price,
                    limit_price=v.limit_price,
                    order_type=v.order_type,
                    status=v.status,
                    submitted_at=v.submitted_at,
                    external=True,
                )
        self._rows_orders = rows
        return rows

    def _order_row(self, rows: dict[str, OrderRow], cid: str) -> None:
        o = self.e.book.get(cid)
        if (
            o is None
            or o.external
            or o.status.is_final
            or o.status in (OrderStatus.CREATED, OrderStatus.AWAITING_APPROVAL)
        ):
            rows.pop(cid, None)
            return
        old = rows.get(cid)
        if (
            old is not None
            and old.status == o.status.value
            and old.filled_qty == o.filled_qty
            and old.venue_order_id == o.venue_order_id
        ):
            return
        rows[cid] = OrderRow(
            client_order_id=o.client_order_id,
            venue_order_id=o.venue_order_id,
            symbol=o.symbol,
            side=o.side.value,
            qty=o.qty,
            filled_qty=o.filled_qty,
            filled_avg_price=o.filled_avg_price,
            limit_price=o.limit_price,
            order_type=o.order_type.value,
            status=o.status.value,
            submitted_at=o.submitted_at,
        )

    def _intent_rows(self) -> dict[str, IntentRow]:
        """The waiting intents with the verdict they would get now (re-checked at
        every snapshot, which follows every change of overrides, positions, prices
        or the trading state); a row is rebuilt only when its verdict changed."""
        rows: dict[str, IntentRow] = {}
        cache = self._rows_intents
        verdicts = self.e.intents.current_verdicts()
        for o in self.e.book.awaiting_approval:
            denial = verdicts.get(o.client_order_id)
            verdict, detail = (
                ("ok", "passed the pre-trade checks") if denial is None else (denial.reason.value, denial.detail)
            )
            old = cache.get(o.client_order_id)
            if old is not None and old.verdict == verdict and old.verdict_detail == detail:
                rows[o.client_order_id] = old
                continue
            price = o.limit_price or o.decision_price or Decimal(0)
            rows[o.client_order_id] = IntentRow(
                intent_id=o.client_order_id,
                symbol=o.symbol,
                side=o.side.value,
                qty=o.qty,
                limit_price=o.limit_price,
                notional=(price * o.qty).quantize(_CENT),
                signal=o.signal,
                verdict=verdict,
                verdict_detail=detail,
                expires_at=o.expires_at,
                reason=o.reason or "signal",
            )
        self._rows_intents = rows
        return rows

    def _position_rows(self, metrics) -> dict[str, PositionRow]:
        rows: dict[str, PositionRow] = {}
        cache = self._rows_positions
        overrides = self.e.overrides
        for pr in metrics.positions:
            override = pr.symbol in overrides
            old = cache.get(pr.symbol)
            if (
                old is not None
                and old.qty == pr.qty
                and old.last_price == pr.mark
                and old.avg_entry_price == pr.avg_entry_price
                and old.override == override
            ):
                rows[pr.symbol] = old
                continue
            rows[pr.symbol] = PositionRow(
                symbol=pr.symbol,
                qty=pr.qty,
                avg_entry_price=pr.avg_entry_price.quantize(Decimal("0.0001")),
                last_price=pr.mark,
                market_value=pr.market_value.quantize(_CENT),
                unrealized_pl=pr.unrealized_pl.quantize(_CENT),
                share_of_equity=float(pr.share_of_equity),
                stop_price=pr.stop_price.quantize(_CENT) if pr.stop_price is not None else None,
                override=override,
            )
        self._rows_positions = rows
        return rows
