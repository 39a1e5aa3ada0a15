"""A signal backlog never starves the kill switch (issue 11, item 5): `execdesk run`
as a process follows a JSONL file; 100,000 lines are appended at once, each a fresh
batch that would trade; `execdesk halt` from another process is answered while the
backlog is being read, the cancel-all reaches the venue (seen through alpaca-py: no
open order left), and the journal holds no SubmitSent after the kill switch. The
backlog collapses to its newest batches (docs/signals.md): the rest is journaled as
SignalsSkipped, with a count.

The venue is the test's own (like test_pipeline_cli's halt test): it fills each order
partially at once and its clock is frozen, so the first bar's orders rest there for
the kill switch to cancel. How fast is a benchmark (benchmarks/bench_engine.py), not
a test: the only time asserted is a generous 10 s for the halt's answer."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine import events as ev
from engine.journal import Journal
from engine.sim import SimVenue
from tests.pipeline.pipekit import (
    CREDENTIALS,
    UNIVERSE_PATH,
    VenueEyes,
    cli_env,
    execdesk,
    iso,
    own_venue,
    wait_for,
    wait_status,
)

BACKLOG = 100_000
FIRST_BAR = {"AAPL": 0.9, "MSFT": 0.9, "JPM": 0.9, "KO": 0.9}


@pytest.fixture
def venue() -> Iterator[SimVenue]:
    with own_venue(partial_fill_prob=1.0) as v:
        yield v


def backlog_lines(first: datetime, n: int) -> bytes:
    """n fresh batches, 1 ms apart, each moving AAPL and NVDA: every one would trade."""
    out = []
    for i in range(n):
        ts = (first + timedelta(milliseconds=i)).astimezone(UTC).isoformat(timespec="milliseconds")
        s = 0.5 if i % 2 else -0.5
        out.append(json.dumps({"ts": ts, "signals": {"AAPL": s, "NVDA": -s}}))
    return ("\n".join(out) + "\n").encode()


def journal_events(path: Path) -> list[tuple[datetime, ev.Event]]:
    j = Journal(path, readonly=True)
    try:
        return [(e.ts, e.event) for e in j.replay()]
    finally:
        j.close()


def test_halt_is_answered_while_a_100000_line_backlog_is_read_and_nothing_is_sent_after_it(
    tmp_path, venue, run_process
):
    signals, journal = tmp_path / "signals.jsonl", tmp_path / "journal.sqlite"
    signals.write_bytes(b"")
    config = tmp_path / "execution.toml"
    config.write_text(
        f'[signals]\nkind = "jsonl"\npath = "{signals}"\n\n'
        f'[session]\njournal_path = "{journal}"\nuniverse_path = "{UNIVERSE_PATH}"\n\n'
        f'[broker]\nkind = "alpaca"\ntrading_url = "{venue.trading_url}"\ndata_url = "{venue.data_url}"\n\n'
        '[rollout]\ndefault_mode = "auto"\n'
    )
    env = cli_env(APCA_API_KEY_ID=CREDENTIALS.key_id, APCA_API_SECRET_KEY=CREDENTIALS.secret_key)
    eyes = VenueEyes(venue.trading_url)
    proc = run_process("--config", str(config), "--signals", str(signals), "--journal", str(journal), env=env)
    wait_status(journal, lambda s: s["trading_ready"], what="the session to be ready", proc=proc)

    now = venue.now().replace(microsecond=0)
    with signals.open("ab") as f:
        f.write((json.dumps({"ts": iso(now - timedelta(seconds=60)), "signals": FIRST_BAR}) + "\n").encode())
    wait_for(lambda: len(eyes.open_orders()) == len(FIRST_BAR), what="the first bar's orders to rest", every=0.2)

    first = now - timedelta(seconds=50)
    last = first + timedelta(milliseconds=BACKLOG - 1)
    with signals.open("ab") as f:
        f.write(backlog_lines(first, BACKLOG))
    # the engine has started on the backlog: it acted on a batch of it
    wait_status(journal, lambda s: s["bars_processed"] >= 2, what="the backlog to be read", proc=proc)

    asked = datetime.now(UTC)
    done = execdesk("halt", "--journal", str(journal), env=env, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "HALTED" in done.stdout, done.stdout
    assert "venue confirmed" in done.stdout, done.stdout

    # answered while the backlog is still being worked off: the journal's kill switch
    # comes within 10 s of the request (a process start included)
    events = journal_events(journal)
    [(halted_at, _)] = [(ts, e) for ts, e in events if isinstance(e, ev.KillSwitch) and e.phase == "requested"]
    assert (halted_at - asked).total_seconds() < 10, f"halt journaled {halted_at - asked} after the request"

    # the cancel-all was on the wire: nothing is open at the venue
    wait_for(lambda: eyes.open_orders() == [], what="no open order at the venue", every=0.2)

    # let the run read the rest of the backlog (its newest batch is never skipped),
    # then stop it in order
    wait_status(
        journal,
        lambda s: s["last_bar"] is not None and datetime.fromisoformat(s["last_bar"]) == last,
        what="the backlog's newest batch to be acted on",
        proc=proc,
        timeout=300,
    )
    wait_status(journal, lambda s: s["open_orders"] == 0, what="the session to settle", proc=proc)
    proc.proc.terminate()
    assert proc.wait(120) == 0, proc.describe()

    events = journal_events(journal)
    kill_at = next(i for i, (_, e) in enumerate(events) if isinstance(e, ev.KillSwitch))
    after = [e for _, e in events[kill_at:]]
    sent_after = [e for e in after if isinstance(e, ev.SubmitSent)]
    assert sent_after == [], f"{len(sent_after)} SubmitSent after the kill switch"
    # the halt did preempt the backlog: work on it was still journaled after the kill switch
    assert any(isinstance(e, (ev.BatchProcessed, ev.SignalsSkipped)) for e in after)
    # what was sent before the halt reached the venue once and is final there now
    sent = {e.client_order_id for _, e in events if isinstance(e, ev.SubmitSent)}
    at_venue = eyes.orders_by_client_id()
    assert set(at_venue) <= sent
    assert all(o.status.value in ("canceled", "filled") for o in at_venue.values())
    # every batch of the backlog was either acted on or journaled as skipped, with a
    # count; most were skipped (a backlog collapses to its newest batch)
    skipped = sum(e.count for _, e in events if isinstance(e, ev.SignalsSkipped))
    processed = sum(1 for _, e in events if isinstance(e, ev.BatchProcessed))
    assert skipped + processed == BACKLOG + 1, (skipped, processed)
    assert skipped > processed, (skipped, processed)
    assert CREDENTIALS.secret_key not in proc.stdout + proc.stderr
