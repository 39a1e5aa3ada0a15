"""The public instrument hooks (engine.core.observe, AlpacaBroker.observe_requests):
a real Session on engine/sim through alpaca-py; an observer handed to the Session
sees Engine.start's phases, each batch handled and every submit's answer, and the
broker's request observer sees every submit leave."""

from __future__ import annotations

import threading
from pathlib import Path

from engine import events as ev
from engine.core.observe import EngineObserver
from tests.engine.core.enginekit import CREDENTIALS, START_AT, SYMBOLS, SignalFile, journal_events, settings_for
from tests.support import wait_for


class Seen(EngineObserver):
    def __init__(self) -> None:
        self.phases: dict[str, float] = {}
        self.batches: list[tuple[object, int]] = []
        self.answers: dict[str, str] = {}
        self.threads: set[str] = set()

    def start_phase(self, name: str, seconds: float) -> None:
        self.phases[name] = seconds

    def batch_handled(self, batch, submits: int) -> None:
        self.batches.append((batch.ts, submits))
        self.threads.add(threading.current_thread().name)

    def submit_answered(self, client_order_id, outcome) -> None:
        self.answers[client_order_id] = outcome.kind.value
        self.threads.add(threading.current_thread().name)


def test_an_observer_sees_the_start_each_batch_and_every_answer(tmp_path: Path):
    from engine.session import Session

    seen = Seen()
    settings = settings_for(tmp_path)
    journal = tmp_path / "journal.sqlite"
    session = Session.from_settings(
        settings,
        journal_path=journal,
        sim_overrides={"start_at": START_AT},
        auto_approve=True,
        credentials=CREDENTIALS,
        observers=[seen],
    ).start()
    try:
        eng = session.engine
        requests: list[str] = []
        eng.broker.observe_requests(requests.append)
        assert set(seen.phases) == {"journal", "reconcile"}, seen.phases
        assert all(s >= 0 for s in seen.phases.values())
        wait_for(lambda: len(eng.market_view().quotes()) >= len(SYMBOLS), what="quotes for every symbol")
        ts = SignalFile(Path(settings.signals.path), session.venue.now).send({"AAPL": 0.9, "MSFT": 0.9})
        wait_for(lambda: any(b == ts for b, _ in seen.batches), what="the batch handled")
        submits = dict(seen.batches)[ts]
        assert submits == 2, seen.batches
        wait_for(lambda: len(seen.answers) >= 2, what="both answers")
        sent = [e.client_order_id for e in journal_events(journal) if isinstance(e, ev.SubmitSent)]
        assert sorted(seen.answers) == sorted(sent)
        assert set(seen.answers.values()) == {"acked"}, seen.answers
        assert requests.count("submit_order") == 2, requests
        assert len(seen.threads) == 1, f"observers are called in the engine's loop only: {seen.threads}"
        # answered and nothing waiting: the engine is idle, when engine.core.heap may collect
        wait_for(lambda: eng.idle, what="the engine idle after the batch")
        assert eng.heap.frozen
    finally:
        session.stop()
