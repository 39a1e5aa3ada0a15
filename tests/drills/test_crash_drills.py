"""Crash drills: the engine (`execdesk run`) killed with SIGKILL at chosen points
and restarted on the same journal, against the venue (`execdesk sim`) in another
process. After each restart has settled:

- no intent submitted twice (the venue's client ids are unique and each maps to
  exactly one intent of the journal; one sent order per bar and symbol);
- every venue order and fill is in the journal, with the venue's status;
- the positions the journal's fills add up to are the venue's.

The venue's added latency holds requests in flight, so a kill lands between
journaling an intent and sending it (the broker has three workers: the fourth
submit of a bar waits for one) and between sending and the answer.

The short deterministic drill runs in `make test`; the long randomized one is
`slow` (`make drill`)."""

from __future__ import annotations

import os
import random
import resource
import time

import pytest

from tests.drills.drillkit import EngineProcess, drill_config, signal_file, story, submits, wait_submits
from tests.engine.core.enginekit import settle
from tests.support import wait_for


def settled(engine: EngineProcess, sim, *, timeout: float = 60.0):
    c = settle(engine.journal, sim.trading, timeout=timeout, every=1.0)
    assert c.ok, f"{c}\n--- engine log ---\n{engine.log_tail()}"
    return c


def test_kills_between_journal_and_send_and_between_send_and_answer(tmp_path, sim, engines):
    engine = engines(EngineProcess(tmp_path, drill_config(tmp_path, sim.url)))
    engine.start()
    bars = signal_file(engine, sim)

    # 1. a normal bar, then SIGKILL with nothing in flight; restart
    bars.send({"AAPL": 0.6, "MSFT": -0.5})
    wait_submits(engine.journal, 2)
    settled(engine, sim)
    engine.kill9()
    engine.start()

    # 2. the venue is slow (1.5 s per trading request): a bar of four submits; kill
    # right after they are journaled. Some are on the wire (three workers), the
    # rest journaled but never sent.
    sim.faults(latency_ms=1500, scope="trading")
    bars.send({"JPM": 0.6, "XOM": 0.6, "KO": 0.6, "PFE": 0.6})
    bar2 = wait_submits(engine.journal, 6)[2:]
    time.sleep(0.2)
    engine.kill9()
    time.sleep(2.0)  # what was on the wire has landed by now
    sim.clear_faults()
    at_venue = sim.order_ids()
    sent_before_kill = [cid for cid in bar2 if cid in at_venue]
    never_sent = [cid for cid in bar2 if cid not in at_venue]
    assert sent_before_kill and never_sent, (bar2, at_venue)
    engine.start()
    c = settled(engine, sim)
    for cid in sent_before_kill:  # found by the restart's reconciliation
        assert c.journal_orders[cid]["venue_order_id"] is not None
    for cid in never_sent:  # looked up, absent: settled as such, and never sent
        assert c.journal_orders[cid]["status"] == "rejected"

    # 3. slow venue, fast restart: the requests on the wire at the kill land only
    # after the new engine has started and asked for them. "Not there yet" must not
    # be taken for "never there".
    sim.faults(latency_ms=6000, scope="trading")
    bars.send({"INTC": 0.6, "T": 0.6})
    bar3 = wait_submits(engine.journal, 8)[6:]
    time.sleep(0.3)
    engine.kill9()
    sim.clear_faults()  # the new engine is fast; the old requests still take 6 s
    engine.start()
    time.sleep(6.5)  # the old requests have landed now, after the restart's reconciliation
    landed = [cid for cid in bar3 if cid in sim.order_ids()]
    assert landed, bar3
    c = settled(engine, sim)
    for cid in landed:
        assert c.journal_orders[cid]["status"] != "rejected", story(c.events, cid)

    # 4. killed during start-up (its reconciliation), then restarted for good
    engine.kill9()
    engine.start(wait_ready=False)
    time.sleep(1.0)
    engine.kill9()
    engine.start()
    bars.send({"AAPL": 0.3, "MSFT": -0.2})
    wait_submits(engine.journal, 10)
    c = settled(engine, sim)

    assert engine.kills == 5
    assert len(set(submits(engine.journal))) == len(submits(engine.journal))  # SubmitSent once per intent
    assert c.positions, "the drill traded nothing"


def test_a_journal_the_os_refuses_to_write_halts_the_engine_process(tmp_path, sim, engines):
    """A real write failure: RLIMIT_FSIZE = 0 on the running engine process, so
    every write() to the journal fails with EFBIG (Python ignores SIGXFSZ). The
    engine must HALT and send nothing from then on."""
    engine = engines(EngineProcess(tmp_path, drill_config(tmp_path, sim.url)))
    engine.start()
    bars = signal_file(engine, sim)
    bars.send({"AAPL": 0.5})
    wait_submits(engine.journal, 1)
    settled(engine, sim)

    before = sim.order_ids()
    resource.prlimit(engine.proc.pid, resource.RLIMIT_FSIZE, (0, 0))
    # the next bar is the first thing to journal: its intents cannot be written
    bars.send({"MSFT": 0.8, "JPM": 0.7})
    wait_for(
        lambda: (engine.try_status() or {}).get("connectivity", {}).get("journal_ok") is False,
        timeout=30,
        what="the engine to find its journal unwritable",
    )
    status = engine.status()
    assert status["trading_state"] == "HALTED", status
    wait_for(lambda: engine.status()["bars_processed"] >= 2, what="the engine to be done with the bar")
    bars.send({"KO": 0.8})
    wait_for(lambda: engine.status()["bars_processed"] >= 3, what="the engine to take one more bar")
    time.sleep(1.0)
    assert sim.order_ids() == before, "an order left without an audit trail"

    # what the journal holds (up to the failure) is still the truth; a restart on it
    # (without the limit) trades again
    engine.kill9()
    engine.start()
    settled(engine, sim)


@pytest.mark.slow
def test_randomized_crash_drill(tmp_path, sim, engines):
    seed = int(os.environ.get("DRILL_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    print(f"DRILL_SEED={seed}")
    engine = engines(EngineProcess(tmp_path, drill_config(tmp_path, sim.url)))
    engine.start()
    bars = signal_file(engine, sim)
    symbols = ["AAPL", "MSFT", "JPM", "XOM", "KO", "PFE", "INTC", "T"]
    rounds = int(os.environ.get("DRILL_ROUNDS", "12"))
    for i in range(rounds):
        latency = rng.choice([0, 0, 300, 1500, 4000])
        if latency:
            sim.faults(latency_ms=latency, latency_jitter_ms=rng.choice([0, 500]), scope="trading")
        picks = rng.sample(symbols, rng.randint(1, 4))
        before = len(submits(engine.journal))
        bars.send({s: round(rng.uniform(0.2, 0.9), 2) for s in picks})
        how = rng.choice(["after-submit", "after-submit", "random", "startup"])
        if how == "after-submit":
            try:
                wait_submits(engine.journal, before + 1, timeout=10)
            except AssertionError:
                pass  # the bar made no order (already at target): kill anyway
            time.sleep(rng.uniform(0, 1.5))
        else:
            time.sleep(rng.uniform(0, 3))
        engine.kill9()
        if rng.random() < 0.5:
            sim.clear_faults()  # a fast restart behind slow requests
        if how == "startup":
            engine.start(wait_ready=False)
            time.sleep(rng.uniform(0.5, 3))
            engine.kill9()
        sim.clear_faults()
        engine.start()
        if rng.random() < 0.3 or i == rounds - 1:
            settled(engine, sim, timeout=90)
    c = settled(engine, sim, timeout=90)
    assert len(set(submits(engine.journal))) == len(submits(engine.journal))
    assert c.venue_orders
