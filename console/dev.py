"""Dev-only: a hand-built EngineSnapshot and a tiny in-memory EngineHandle, to
work on the console's look without an engine and to benchmark UI time. The tests
and the screenshots run against the real engine (engine.session); this is not it.

    python -m console.dev        # the console on made-up data
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import MappingProxyType

from engine.commands import (
    ApproveAll,
    ApproveIntent,
    CancelOrder,
    CommandResult,
    Halt,
    RejectAll,
    RejectIntent,
    Resume,
    SessionCommand,
    SetOverride,
)
from engine.model import TradingState
from engine.snapshot import (
    Connectivity,
    EngineSnapshot,
    EventRow,
    IntentRow,
    KillSwitchStatus,
    LimitUsage,
    OrderRow,
    OverrideRow,
    PositionRow,
)

T0 = datetime(2026, 3, 2, 15, 30, tzinfo=UTC)  # 10:30 ET
UP = Connectivity(rest="up", trade_stream="up", market_data="up")


def order_row(i: int, symbol: str = "AAPL", *, at: datetime = T0) -> OrderRow:
    return OrderRow(
        client_order_id=f"dev-{i:06d}",
        venue_order_id=f"v-{i:06d}",
        symbol=symbol,
        side="buy" if i % 2 else "sell",
        qty=Decimal(100),
        filled_qty=Decimal(0),
        filled_avg_price=None,
        limit_price=Decimal("190.25"),
        order_type="limit",
        status="new",
        submitted_at=at - timedelta(seconds=i % 300),
    )


def demo_snapshot() -> EngineSnapshot:
    intents = {
        "s1-b7-AAPL-1": IntentRow(
            "s1-b7-AAPL-1",
            "AAPL",
            "buy",
            Decimal(52),
            Decimal("190.44"),
            Decimal("9902.88"),
            0.62,
            "ok",
            "",
            T0 + timedelta(seconds=48),
            "signal",
        ),
        "s1-b7-MSFT-2": IntentRow(
            "s1-b7-MSFT-2",
            "MSFT",
            "sell",
            Decimal(12),
            Decimal("411.10"),
            Decimal("4933.20"),
            -0.41,
            "ok",
            "",
            T0 + timedelta(seconds=48),
            "signal",
        ),
        "s1-b7-XOM-3": IntentRow(
            "s1-b7-XOM-3",
            "XOM",
            "buy",
            Decimal(90),
            Decimal("112.90"),
            Decimal("10161.00"),
            0.35,
            "SECTOR_EXPOSURE_EXCEEDS_MAX",
            "energy 31% > 30%",
            T0 + timedelta(seconds=9),
            "signal",
        ),
    }
    orders = {o.client_order_id: o for o in (order_row(1, "NVDA"), order_row(2, "JPM"))}
    orders["ext-1"] = dataclasses.replace(order_row(3, "TSLA"), client_order_id="ext-1", external=True)
    positions = {
        "AAPL": PositionRow(
            "AAPL",
            Decimal(40),
            Decimal("188.10"),
            Decimal("190.30"),
            Decimal("7612.00"),
            Decimal("88.00"),
            0.076,
            Decimal("178.70"),
            False,
        ),
        "JPM": PositionRow(
            "JPM",
            Decimal(-25),
            Decimal("201.00"),
            Decimal("203.40"),
            Decimal("-5085.00"),
            Decimal("-60.00"),
            0.051,
            Decimal("211.05"),
            True,
        ),
    }
    events = tuple(
        EventRow(i, T0 - timedelta(seconds=60 - i), kind, sym, text)
        for i, (kind, sym, text) in enumerate(
            [
                ("info", None, "session started on the built-in venue"),
                ("fill", "AAPL", "bought 40 @ 188.10"),
                ("denial", "XOM", "SECTOR_EXPOSURE_EXCEEDS_MAX: energy 31% > 30%"),
                ("dropped", None, "signal batch 10:28 dropped: 130s old"),
                ("reconnect", None, "trade stream reconnected; reconciled 3 orders"),
            ],
            start=1,
        )
    )
    return EngineSnapshot(
        seq=1,
        session_id="dev",
        account_number="PA-DEV-0001",
        equity=Decimal("100028.00"),
        last_equity=Decimal("100000.00"),
        day_pl=Decimal("28.00"),
        daily_loss_limit=Decimal("2000"),
        connectivity=UP,
        venue_time=T0,
        market_open=True,
        last_bar_ts=T0 - timedelta(seconds=30),
        bars_processed=7,
        intents=MappingProxyType(intents),
        orders=MappingProxyType(orders),
        positions=MappingProxyType(positions),
        overrides=MappingProxyType({"JPM": OverrideRow("JPM", "approve", None, 0.05, 0.5, "long_only")}),
        limits=(
            LimitUsage("gross exposure", 0.127, 0.8),
            LimitUsage("daily loss", 0.0, 2000.0, "USD"),
            LimitUsage("largest position", 0.076, 0.1),
            LimitUsage("sector: tech", 0.076, 0.3),
            LimitUsage("sector: financials", 0.051, 0.3),
            LimitUsage("order rate", 4, 180, "orders/min"),
        ),
        pl_history=(0.0, 5.0, -12.0, -3.0, 10.0, 22.0, 17.0, 28.0),
        events=events,
        trading_ready=True,
        open_order_count=len(orders),
        external_order_count=1,
    )


def _approved(intent, at: datetime | None) -> OrderRow:
    """The working order an approved intent becomes (a limit order, new)."""
    return OrderRow(
        intent.intent_id,
        None,
        intent.symbol,
        intent.side,
        intent.qty,
        Decimal(0),
        None,
        intent.limit_price,
        "limit",
        "new",
        at,
    )


class InMemoryHandle:
    """An EngineHandle over a snapshot that commands edit by hand (dev only)."""

    def __init__(self, snapshot: EngineSnapshot | None = None) -> None:
        self._snapshot = snapshot or demo_snapshot()
        self.commands: list[SessionCommand] = []

    @property
    def snapshot(self) -> EngineSnapshot:
        return self._snapshot

    def publish(self, **changes: object) -> EngineSnapshot:
        self._snapshot = dataclasses.replace(self._snapshot, seq=self._snapshot.seq + 1, **changes)  # type: ignore[arg-type]
        return self._snapshot

    async def execute(self, command: SessionCommand) -> CommandResult:
        return self.execute_sync(command)

    def execute_sync(self, command: SessionCommand, timeout: float = 10.0) -> CommandResult:
        self.commands.append(command)
        s = self._snapshot
        intents, orders = dict(s.intents), dict(s.orders)
        if isinstance(command, (ApproveIntent, RejectIntent)):
            intent = intents.pop(command.intent_id, None)
            if intent is None:
                return CommandResult(False, f"no intent {command.intent_id}")
            if isinstance(command, ApproveIntent):
                orders[intent.intent_id] = _approved(intent, s.venue_time)
        elif isinstance(command, (ApproveAll, RejectAll)):
            if isinstance(command, ApproveAll):
                for intent in intents.values():
                    orders[intent.intent_id] = _approved(intent, s.venue_time)
            intents = {}
        elif isinstance(command, CancelOrder):
            orders.pop(command.client_order_id, None)
        elif isinstance(command, Halt):
            n = len(orders)
            self.publish(
                trading_state=TradingState.HALTED,
                state_cause=command.cause,
                orders=MappingProxyType({}),
                kill_switch=KillSwitchStatus("confirmed", s.venue_time, n, n),
                open_order_count=0,
            )
            return CommandResult(True, f"halted; venue confirmed {n} cancels", n)
        elif isinstance(command, Resume):
            self.publish(trading_state=TradingState.ACTIVE, state_cause="", kill_switch=KillSwitchStatus())
            return CommandResult(True, "resumed")
        elif isinstance(command, SetOverride):
            overrides = dict(s.overrides)
            if command.clear:
                overrides.pop(command.symbol, None)
            else:
                overrides[command.symbol] = OverrideRow(
                    command.symbol,
                    command.mode,
                    command.max_position_usd,
                    command.max_position_pct,
                    command.size_multiplier,
                    command.side,
                )
            self.publish(overrides=MappingProxyType(overrides))
            return CommandResult(True, f"override {command.symbol} set")
        else:
            return CommandResult(False, f"{type(command).__name__} is not simulated here")
        self.publish(intents=MappingProxyType(intents), orders=MappingProxyType(orders), open_order_count=len(orders))
        return CommandResult(True, "ok", 1)

    def stop(self) -> None:
        pass


if __name__ == "__main__":  # pragma: no cover
    from console.app import ExecDeskApp
    from engine.config import Settings

    ExecDeskApp(InMemoryHandle(), Settings()).run()
