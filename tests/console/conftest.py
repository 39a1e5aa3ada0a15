"""Fixtures for the console tests: a real trading session per test (the Engine on
the built-in venue, frozen venue clock, fixed seed, a fresh journal). Nothing of the
engine is mocked; only the journal's random session id is pinned so that snapshots
(which show client order ids) are the same on every run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("engine.session")

from tests.console.deskkit import SESSION_ID, Desk


@pytest.fixture
def pinned_session_id(monkeypatch: pytest.MonkeyPatch) -> str:
    import engine.journal

    # the first session of the journal is pinned; a later one (every restart on the
    # built-in venue is a new session) gets a fresh id, as the journal requires
    real = engine.journal._new_session_id
    made: list[str] = []

    def session_id(venue_date):
        made.append(SESSION_ID if not made else real(venue_date))
        return made[-1]

    monkeypatch.setattr(engine.journal, "_new_session_id", session_id)
    return SESSION_ID


@pytest.fixture
def desk(tmp_path: Path, pinned_session_id: str) -> Iterator[Desk]:
    d = Desk(tmp_path / "journal.sqlite")
    try:
        yield d
    finally:
        d.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """A failed console test says what the engine said: its trading state and its last
    event-log rows (a race with the engine is then visible in the report)."""
    outcome = yield
    report = outcome.get_result()
    desk = getattr(item, "funcargs", {}).get("desk")
    if report.when != "call" or not report.failed or not isinstance(desk, Desk):
        return
    try:
        snap = desk.handle.snapshot
        rows = "\n".join(
            f"  {row.ts:%H:%M:%S.%f} {row.kind:>10} {row.symbol or '':<5} {row.text}" for row in snap.events[-25:]
        )
        engine = desk.session.engine
        clock = f"engine clock {engine.clock.now():%H:%M:%S.%f}" if engine is not None else "no engine"
        head = f"trading state {snap.trading_state}, {len(snap.intents)} intents, {clock}"
        report.sections.append(("engine", f"{head}\n{rows}"))
    except Exception as exc:  # the report must not fail because the desk did
        report.sections.append(("engine", f"(no snapshot: {exc})"))
