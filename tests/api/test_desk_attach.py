"""Desk.attach: the team's process as a client of a session running elsewhere — a
headless `execdesk run` (its own process, its own JSONL source) on a venue of the
test's own reached over HTTP like Alpaca and watched through alpaca-py. The attached
Desk's batches go through that session's inbox, checks and journal (journaled with
the client's id), it sees its orders filled at the venue, and closing it detaches:
the session keeps running and keeps taking its own source's bars."""

from __future__ import annotations

import math
import signal
from collections.abc import Iterator
from datetime import timedelta

import pytest

from engine import Desk, SignalInputError, Verdict
from engine.desk import DeskError
from engine.journal import Journal
from engine.sim import SimVenue
from tests.pipeline.pipekit import (
    CREDENTIALS,
    UNIVERSE_PATH,
    RunProcess,
    VenueEyes,
    cli_env,
    own_venue,
    wait_status,
)
from tests.pipeline.test_pipeline_attach import send_bar
from tests.support import wait_for

pytestmark = pytest.mark.usefixtures("private_runtime_dir")


@pytest.fixture
def venue() -> Iterator[SimVenue]:
    with own_venue(partial_fill_prob=0.0) as v:
        yield v


@pytest.fixture
def session(tmp_path, venue):
    """A headless `execdesk run` trading on `venue`, fed by a JSONL file: (process, journal, signals)."""
    signals = tmp_path / "signals.jsonl"
    signals.write_bytes(b"")
    journal = tmp_path / "journal.sqlite"
    config = tmp_path / "execution.toml"
    config.write_text(
        f'[signals]\nkind = "jsonl"\npath = "{signals}"\n\n'
        f'[session]\njournal_path = "{journal}"\nuniverse_path = "{UNIVERSE_PATH}"\n\n'
        f'[broker]\nkind = "alpaca"\ntrading_url = "{venue.trading_url}"\ndata_url = "{venue.data_url}"\n\n'
        '[rollout]\ndefault_mode = "auto"\n'
    )
    env = cli_env(APCA_API_KEY_ID=CREDENTIALS.key_id, APCA_API_SECRET_KEY=CREDENTIALS.secret_key)
    proc = RunProcess(tmp_path, "--config", str(config), "--journal", str(journal), env=env)
    try:
        wait_status(journal, lambda s: s["trading_ready"], what="the session to be ready", proc=proc)
        yield proc, journal, signals
    finally:
        proc.close()


def test_an_attached_desk_trades_through_a_running_session_and_detaching_leaves_it_running(session, venue):
    proc, journal, signals = session
    eyes = VenueEyes(venue.trading_url)
    ts = venue.now() - timedelta(seconds=30)
    desk = Desk.attach(journal, name="model")
    try:
        assert desk.attached and desk.venue is None and desk.journal_path == journal
        assert desk.snapshot.trading_ready

        result = desk.submit_signals(ts, {"AAPL": 0.5, "MSFT": -0.4, "JPM": 0.05})
        assert result["AAPL"].verdict in (Verdict.SENT, Verdict.FILLED)
        assert result["JPM"].verdict is Verdict.NO_ORDER and result["JPM"].reason == "BELOW_THRESHOLD"
        result.wait(30)
        assert result.final and not result.timed_out
        assert result["AAPL"].verdict is Verdict.FILLED and result["MSFT"].verdict is Verdict.FILLED
        for cid in result.client_order_ids:
            at_venue = eyes.order(cid)
            assert at_venue is not None and at_venue.status.value == "filled", (cid, at_venue)
        aapl = result["AAPL"].intent
        assert aapl is not None and aapl.filled_qty == aapl.qty and aapl.filled_avg_price is not None

        # target weights go the same way
        targets = desk.submit_targets(ts + timedelta(seconds=1), {"XOM": 0.03}).wait(30)
        assert targets["XOM"].verdict is Verdict.FILLED
        assert eyes.order(targets["XOM"].client_order_ids[0]).symbol == "XOM"

        # bad input is refused whole, in the same words as in process, and sends nothing
        before = len(eyes.orders())
        with pytest.raises(SignalInputError) as refused:
            desk.submit_signals(ts + timedelta(seconds=2), {"AAPL": 0.5, "MSFT": math.nan, "NOPE": 0.1})
        text = str(refused.value)
        assert "MSFT: expected a number in [-1, 1], found NaN" in text and "'NOPE'" in text
        assert {p.reason for p in refused.value.problems} == {"NAN", "UNKNOWN_SYMBOL"}
        with pytest.raises(SignalInputError, match=r"AAPL: expected a weight .* found 1\.5"):
            desk.submit_targets(ts + timedelta(seconds=2), {"AAPL": 1.5})
        # text is not a number over the socket either: the same problem as in process (test_desk.py)
        with pytest.raises(SignalInputError) as text_value:
            desk.submit_signals(ts + timedelta(seconds=2), {"AAPL": "0.5", "MSFT": 0.25})
        assert [(p.reason, p.symbol) for p in text_value.value.problems] == [("NOT_A_NUMBER", "AAPL")]
        assert "AAPL: expected a number in [-1, 1], found text '0.5'" in str(text_value.value)
        with pytest.raises(SignalInputError, match="DUPLICATE_BATCH"):
            desk.submit_signals(ts + timedelta(seconds=1), {"AAPL": 0.2})
        with pytest.raises(SignalInputError, match="no timezone"):
            desk.submit_signals((ts + timedelta(seconds=2)).replace(tzinfo=None), {"AAPL": 0.5})
        assert len(eyes.orders()) == before

        # the event stream and the commands
        wait_for(lambda: "fill" in {row.kind for row in desk.events()}, what="fill rows in the event stream")
        assert desk.override("KO", mode="off").ok
        wait_for(lambda: "KO" in desk.snapshot.overrides, what="the override in the snapshot")

        # a read-only Desk looks, but may not submit
        observer = Desk.attach(journal, name="observer", read_only=True)
        try:
            with pytest.raises(DeskError, match="read-only client may not submit"):
                observer.submit_signals(ts + timedelta(seconds=3), {"AAPL": 0.1})
            assert not observer.approve_all().ok
            assert observer.snapshot.session_id == desk.snapshot.session_id
        finally:
            observer.close()

        # the session's own source and the attached Desk share one order of bars
        send_bar(signals, ts + timedelta(seconds=5), {"JPM": 0.6})
        wait_status(journal, lambda s: s["bars_processed"] == 3, what="the file's bar", proc=proc)
        with pytest.raises(SignalInputError, match="OUT_OF_ORDER"):
            desk.submit_signals(ts + timedelta(seconds=4), {"AAPL": 0.2})
    finally:
        desk.close()  # detach
    with pytest.raises(DeskError, match="closed"):
        desk.submit_signals(ts + timedelta(seconds=4), {"AAPL": 0.1})

    # the session keeps running, and keeps taking its own source's bars
    assert proc.proc.poll() is None
    send_bar(signals, ts + timedelta(seconds=6), {"KO": 0.6, "CVX": 0.6})
    status = wait_status(journal, lambda s: s["bars_processed"] == 4, what="the file's next bar", proc=proc)
    assert status["trading_state"] == "ACTIVE"
    wait_for(lambda: "CVX" in {o.symbol for o in eyes.orders()}, what="the file's CVX order at the venue")

    proc.proc.send_signal(signal.SIGTERM)
    assert proc.wait() == 0, proc.describe()
    with Journal(journal) as j:
        commands = [e.event for e in j.replay() if e.event.type == "OperatorCommand"]
    batches = [c for c in commands if c.command == "submit_batch"]
    assert len(batches) == 7, batches  # every batch handed in is journaled, refused or not
    assert all(c.client_id.startswith("model c") and c.user and c.pid for c in batches), batches
    assert batches[0].detail["kind"] == "score" and '"AAPL":"0.5"' in batches[0].detail["values"]
    assert batches[1].detail["kind"] == "weight"


def test_attaching_where_no_session_runs_says_so(tmp_path):
    with pytest.raises(DeskError, match="could not attach"):
        Desk.attach(tmp_path / "nobody.sqlite", timeout=3)


def test_the_attach_example_of_docs_api_md_runs(tmp_path, capsys):
    """The shell and Python blocks of docs/api.md's "Attaching" section, as written
    (the journal and signal file in tmp_path; the built-in venue of the shipped
    configuration): the Desk's batch is reported, and the session outlives it."""
    from tests.support import ROOT

    text = (ROOT / "docs" / "api.md").read_text()
    section = text.split("## Attaching to a running session", 1)[1]
    shell = section.split("```sh\n", 1)[1].split("```", 1)[0]
    code = section.split("```python\n", 2)[2].split("```", 1)[0]
    journal, none = tmp_path / "attach-example.sqlite", tmp_path / "none.jsonl"
    assert "execdesk run --journal var/attach-example.sqlite --signals var/none.jsonl --auto-approve" in shell
    assert '"var/attach-example.sqlite"' in code
    none.write_bytes(b"")
    proc = RunProcess(tmp_path, "--journal", str(journal), "--signals", str(none), "--auto-approve", env=cli_env())
    try:
        wait_status(journal, lambda s: s["trading_ready"], what="the session to be ready", proc=proc)
        exec(compile(code.replace('"var/attach-example.sqlite"', repr(str(journal))), "api.md", "exec"), {})
        out = capsys.readouterr().out
        assert "AAPL" in out and "MSFT" in out and "JPM" in out
        status = wait_status(journal, lambda s: s["bars_processed"] == 1, what="the Desk's batch", proc=proc)
        assert status["trading_state"] == "ACTIVE" and proc.proc.poll() is None
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.wait() == 0, proc.describe()
    finally:
        proc.close()
