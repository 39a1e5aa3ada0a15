"""The venue is the truth, with real processes: `execdesk sim` and `execdesk run`.

- The venue restarted on the same port under a running engine (it comes back
  empty): after the stream reconnects the session fails closed, saying the venue
  has none of its orders; the kill switch counts what the venue cancelled (none);
  a restart of the engine on the same journal fails closed again at start-up.
- The journal loses its tail (restored from a copy taken before the last batch)
  while that batch's orders rest at the venue: the restart recognises them by
  their client_order_ids and adopts them (journaled as recovered, counted against
  the limits), so the next bar does not buy the same shares again; journal and
  venue agree order by order and fill by fill."""

from __future__ import annotations

import os
import sqlite3
import time
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

from engine import events as ev
from engine.control import request, socket_path_for
from tests.drills.drillkit import EngineProcess, SimProcess, drill_config, signal_file, wait_submits
from tests.engine.core.enginekit import journal_events, settle, venue_orders
from tests.support import wait_for


def settled(engine: EngineProcess, sim: SimProcess, timeout: float = 60.0):
    c = settle(engine.journal, sim.trading, timeout=timeout, every=1.0)
    assert c.ok, f"{c}\n--- engine log ---\n{engine.log_tail()}"
    return c


def held(engine: EngineProcess, what: str, timeout: float = 90.0) -> dict:
    """Wait until the engine says trading is held for `what`; its status."""

    def check():
        status = engine.try_status()
        if engine.proc is not None and engine.proc.poll() is not None:
            raise AssertionError(f"the engine exited ({engine.proc.returncode}):\n{engine.log_tail()}")
        if status and not status["trading_ready"] and what in status["not_ready_reason"]:
            return status
        return None

    return wait_for(check, timeout=timeout, every=0.2, what=f"trading held ({what}):\n{engine.log_tail(1500)}")


def of(journal: Path, kind: type) -> list:
    return [e for e in journal_events(journal) if isinstance(e, kind)]


def test_a_venue_restarted_empty_on_the_same_port_fails_the_session_closed(tmp_path, engines):
    sim = SimProcess(tmp_path, name="sim-1")
    try:
        engine = engines(EngineProcess(tmp_path, drill_config(tmp_path, sim.url)))
        engine.start()
        bars = signal_file(engine, sim)
        bars.send({"AAPL": 0.6, "MSFT": -0.5})
        wait_submits(engine.journal, 2)
        settled(engine, sim)
        port = sim.port
    finally:
        sim.stop()

    sim = SimProcess(tmp_path, port=port, name="sim-2")  # the same address, an empty venue
    try:
        assert sim.port == port
        status = held(engine, "none of this session's orders")
        assert status["trading_state"] == "HALTED", status
        assert [m.what for m in of(engine.journal, ev.VenueMismatch)] == ["orders"]
        sent_before = len(of(engine.journal, ev.SubmitSent))

        # the kill switch: one cancel-all, and it counts what the venue cancelled
        request(socket_path_for(engine.journal), "halt")
        wait_for(
            lambda: [k for k in of(engine.journal, ev.KillSwitch) if k.phase == "confirmed"],
            what="the kill switch confirmed",
        )
        sent = [k for k in of(engine.journal, ev.KillSwitch) if k.phase == "sent"]
        assert sent[-1].counts["requested"] == 0, sent
        assert venue_orders(sim.trading) == []

        # a restart on the same journal: detected at start-up as well
        engine.terminate()
        engine.start(wait_ready=False)
        held(engine, "none of this session's orders")
        assert len(of(engine.journal, ev.VenueMismatch)) == 2
        signal_file(engine, sim).send({"JPM": 0.6})
        time.sleep(3.0)
        assert len(of(engine.journal, ev.SubmitSent)) == sent_before, "an order left a session held closed"
        assert venue_orders(sim.trading) == []
    finally:
        engine.terminate()
        sim.stop()


def copy_journal(src: Path, dst: Path) -> None:
    """A consistent copy of a live journal (SQLite's online backup)."""
    source = sqlite3.connect(f"file:{src}?mode=ro", uri=True)
    target = sqlite3.connect(dst)
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()


BAR2 = {"JPM": 0.6, "XOM": 0.6, "KO": 0.6}


def test_a_lost_journal_tail_does_not_trade_the_same_shares_twice(tmp_path, sim, engines):
    # signals older than 5 s are stale: the lost batch is not read again after the restart
    config = drill_config(tmp_path, sim.url, {"signals": {"max_age": 5}})
    engine = engines(EngineProcess(tmp_path, config))
    engine.start()
    bars = signal_file(engine, sim)
    bars.send({"AAPL": 0.6})
    wait_submits(engine.journal, 1)
    settled(engine, sim)
    backup = tmp_path / "journal-backup.sqlite"
    copy_journal(engine.journal, backup)  # the journal as it was before the last batch

    # the last batch: three buys that rest at the venue (its price moves 3% up while
    # the slow venue holds the requests)
    sim.faults(latency_ms=1500, scope="trading")
    bars.send(BAR2)
    bar2 = wait_submits(engine.journal, 4)[1:]
    sim.drill("prices/shock", {"symbols": list(BAR2), "pct": 3.0})
    wait_for(lambda: sim.state()["venue"]["orders_total"] >= 4, what="the batch at the venue")
    sim.clear_faults()
    c = settled(engine, sim)
    resting = {o["client_order_id"]: o for o in c.venue_orders if o["client_order_id"] in bar2}
    assert [o["status"] for o in resting.values()] == ["new"] * 3, resting

    # the journal loses its tail: the engine dies, the backup is restored
    engine.kill9()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{engine.journal}{suffix}").unlink(missing_ok=True)
    os.replace(backup, engine.journal)
    assert not [e for e in journal_events(engine.journal) if getattr(e, "client_order_id", None) in bar2]
    time.sleep(5.5)  # the lost batch's signals are stale now
    engine.start()

    recovered = of(engine.journal, ev.OrderRecovered)
    assert sorted(e.order.client_order_id for e in recovered) == sorted(bar2), recovered
    assert all(not e.order.external for e in recovered)

    # the next bar wants the same positions, and one more: nothing is bought twice
    bars.send({**BAR2, "PFE": 0.9})
    wait_for(
        lambda: any(o["symbol"] == "PFE" for o in venue_orders(sim.trading)),
        what="the next bar's order at the venue",
    )
    c = settled(engine, sim)
    exposure: dict[str, Decimal] = defaultdict(Decimal)
    for o in c.venue_orders:
        live = o["status"] in ("new", "accepted", "partially_filled")
        exposure[o["symbol"]] += Decimal(o["filled_qty"]) + (Decimal(o["qty"]) - Decimal(o["filled_qty"])) * live
    for o in resting.values():
        assert exposure[o["symbol"]] <= Decimal(o["qty"]), (
            f"{o['symbol']}: {exposure[o['symbol']]} bought or working, one batch wanted {o['qty']}"
        )
    for cid in bar2:  # adopted, so the next bar's unfilled policy cancelled them like its own
        assert c.journal_orders[cid]["status"] == "canceled", c.journal_orders[cid]
