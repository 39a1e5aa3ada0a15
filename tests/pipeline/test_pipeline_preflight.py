"""A session starts with its preflight (issue 12 item 5) and stops in order
(issue 11 items 8, 9 and 11), through the real command and the real clients:

- wrong keys stop `execdesk run` with "the API key or secret is wrong", exit 1,
  before the journal exists and without a "rest UP" and an error storm; a blocked
  account likewise; warnings are shown in the event log and journaled;
- an orderly stop (in-process, SIGTERM, SIGHUP) waits for submits already on the
  wire to be answered and journals the answers before sealing: the report never
  shows `submitting` for an order the venue has;
- a URL with credentials is never logged by the stream clients."""

from __future__ import annotations

import json
import logging
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from engine.journal import Journal
from engine.model import OrderStatus
from engine.sim import SimVenue
from tests.pipeline.pipekit import (
    CREDENTIALS,
    UNIVERSE_PATH,
    VenueEyes,
    cli_env,
    execdesk,
    iso,
    own_venue,
    pipeline_settings,
    wait_for,
    wait_status,
)

SIGNALS = {"AAPL": 0.9, "MSFT": 0.9, "JPM": 0.9, "KO": 0.9}


@pytest.fixture
def venue() -> Iterator[SimVenue]:
    with own_venue(partial_fill_prob=1.0) as v:
        yield v


def outside_config(tmp_path: Path, venue: SimVenue, extra: str = "") -> tuple[Path, Path, Path]:
    signals, journal = tmp_path / "signals.jsonl", tmp_path / "journal.sqlite"
    signals.write_bytes(b"")
    config = tmp_path / "execution.toml"
    config.write_text(
        f'[signals]\nkind = "jsonl"\npath = "{signals}"\n\n'
        f'[session]\njournal_path = "{journal}"\nuniverse_path = "{UNIVERSE_PATH}"\n\n'
        f'[broker]\nkind = "alpaca"\ntrading_url = "{venue.trading_url}"\ndata_url = "{venue.data_url}"\n\n'
        '[rollout]\ndefault_mode = "auto"\n' + extra
    )
    return config, signals, journal


def keys_env(key_id: str = CREDENTIALS.key_id, secret: str = CREDENTIALS.secret_key) -> dict[str, str]:
    return cli_env(APCA_API_KEY_ID=key_id, APCA_API_SECRET_KEY=secret)


def line(venue: SimVenue, signals: dict) -> bytes:
    return (json.dumps({"ts": iso(venue.now()), "signals": signals}) + "\n").encode()


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as f:
        f.write(data)


def journal_events(path: Path, type_name: str) -> list:
    reader = Journal(path, readonly=True)
    try:
        return [e.event for e in reader.replay() if e.event.type == type_name]
    finally:
        reader.close()


# ---- the preflight stops a session that cannot trade ------------------------------------


def test_wrong_keys_stop_run_with_a_clear_message_before_the_journal(tmp_path, venue):
    config, _, journal = outside_config(tmp_path, venue)

    done = execdesk(
        "run", "--config", str(config), "--journal", str(journal), env=keys_env("PKWRONGWRONG0001", "not-the-secret-00")
    )

    assert done.returncode == 1, done.stdout + done.stderr
    [first, *_] = done.stderr.splitlines()
    assert first.startswith("error: preflight: credentials: the API key or secret is wrong:"), done.stderr
    assert "rest UP" not in done.stdout and "Traceback" not in done.stderr
    assert "not-the-secret" not in done.stdout + done.stderr
    assert not journal.exists(), "nothing was journaled for a session that never started"


def test_a_blocked_account_stops_run_and_names_it(tmp_path, venue):
    headers = {"APCA-API-KEY-ID": CREDENTIALS.key_id, "APCA-API-SECRET-KEY": CREDENTIALS.secret_key}
    answer = requests.post(
        f"{venue.trading_url}/sim/v1/account", json={"trading_blocked": True}, headers=headers, timeout=10
    )
    assert answer.status_code == 200, answer.text
    config, _, journal = outside_config(tmp_path, venue)

    done = execdesk("run", "--config", str(config), "--journal", str(journal), env=keys_env())

    assert done.returncode == 1, done.stdout + done.stderr
    assert "error: preflight: account: trading is blocked for account" in done.stderr
    assert not journal.exists()


def test_preflight_warnings_are_shown_and_journaled(make_pipe):
    # fractional sizing with a universe symbol the venue does not trade in fractions:
    # a warning, not a blocker (the free plan's 30-symbol stream is no warning at all:
    # the engine polls the rest)
    pipe = make_pipe(position_sizing={"fractional": True})

    texts = pipe.wait(
        lambda: (
            (t := [row.text for row in pipe.snapshot.events]) and any(x.startswith("preflight passed") for x in t) and t
        ),
        what="the preflight's lines in the event log",
    )
    assert any(t.startswith("preflight WARNING: assets: ") and "not fractionable" in t for t in texts), texts
    assert not any("data_plan" in t for t in texts), texts
    assert "preflight passed (built-in venue, 1 warning(s))" in texts, texts
    [checked] = journal_events(pipe.journal_path, "PreflightChecked")
    assert checked.endpoint == "built-in venue"
    assert len(checked.warnings) == 1 and "not fractionable" in checked.warnings[0]


# ---- an orderly stop waits for the answers of submits on the wire -----------------------


def test_a_stop_journals_the_answers_of_submits_still_on_the_wire(tmp_path, venue):
    from engine.report import build_report
    from engine.session import Session

    signals, journal = tmp_path / "signals.jsonl", tmp_path / "journal.sqlite"
    signals.write_bytes(b"")
    settings = pipeline_settings(
        signals, broker={"kind": "alpaca", "trading_url": venue.trading_url, "data_url": venue.data_url}
    )
    session = Session(settings, journal_path=journal, credentials=CREDENTIALS, auto_approve=True).start()
    try:
        wait_for(lambda: session.snapshot.trading_ready, what="the session to be ready")
        # every trading request now takes 1.5 s: the batch's submits are on the wire when the stop comes
        venue.set_faults(latency_ms=1500, scope="trading")
        append(signals, line(venue, SIGNALS))
        engine = session.engine
        wait_for(
            lambda: sum(o.status is OrderStatus.SUBMITTING for o in engine.open_orders()) == len(SIGNALS),
            what="the batch's submits to be on the wire",
        )
    finally:
        session.stop()

    venue.set_faults(latency_ms=0)
    at_venue = VenueEyes(venue.trading_url).orders_by_client_id()
    report = build_report(journal).to_dict()
    assert len(at_venue) == len(SIGNALS)
    assert {o["client_order_id"]: o["status"] for o in report["orders"]} == {
        cid: o.status.value for cid, o in at_venue.items()
    }
    [session_row] = report["sessions"]
    assert session_row["sealed"] is True


def test_sigterm_while_submits_are_on_the_wire_leaves_no_order_submitting(tmp_path, venue, run_process):
    config, signals, journal = outside_config(tmp_path, venue)
    eyes = VenueEyes(venue.trading_url)
    proc = run_process("--config", str(config), "--journal", str(journal), env=keys_env())
    wait_status(journal, lambda s: s["trading_ready"], what="the session to be ready", proc=proc)
    venue.set_faults(latency_ms=2000, scope="trading")
    append(signals, line(venue, SIGNALS))
    wait_status(journal, lambda s: s["open_orders"] == len(SIGNALS), what="the submits to leave", proc=proc)

    proc.proc.send_signal(signal.SIGTERM)

    assert proc.wait() == 0, proc.describe()
    venue.set_faults(latency_ms=0)
    report = json.loads(execdesk("report", "--journal", str(journal), "--format", "json").stdout)
    assert "submitting" not in report["summary"]["orders_by_status"], report["summary"]
    at_venue = eyes.orders_by_client_id()
    assert {o["client_order_id"]: o["status"] for o in report["orders"]} == {
        cid: o.status.value for cid, o in at_venue.items()
    }


def test_sighup_stops_run_in_order_and_seals_the_journal(tmp_path, venue, run_process):
    """The terminal closed: like SIGTERM, not a kill that leaves the journal unsealed."""
    config, signals, journal = outside_config(tmp_path, venue)
    proc = run_process("--config", str(config), "--journal", str(journal), env=keys_env())
    wait_status(journal, lambda s: s["trading_ready"], what="the session to be ready", proc=proc)
    append(signals, line(venue, SIGNALS))
    wait_status(journal, lambda s: s["open_orders"] == len(SIGNALS), what="working orders", proc=proc)

    proc.proc.send_signal(signal.SIGHUP)

    assert proc.wait() == 0, proc.describe()
    assert f"stopped (SIGHUP): journal sealed; {len(SIGNALS)} open order(s) left working" in proc.stdout
    report = json.loads(execdesk("report", "--journal", str(journal), "--format", "json").stdout)
    [session] = report["sessions"]
    assert session["sealed"] is True and session["ended_how"] == "stopped: SIGHUP"


# ---- secrets -------------------------------------------------------------------------------


def test_a_stream_url_with_credentials_is_logged_redacted(make_pipe, venue, caplog):
    """alpaca-py logs "connected to: <url>"; once a session runs, the URL's credentials never reach a log."""
    from engine.broker import streams
    from engine.broker.wire import Scrubber

    make_pipe()  # a session has run: its logging is set up
    caplog.set_level(logging.INFO, logger="alpaca.trading.stream")
    url = venue.trading_stream_url.replace("ws://", "ws://PKURLUSER:url-secret-value@")
    runner = streams.trade_updates(
        CREDENTIALS.key_id,
        CREDENTIALS.secret_key,
        url=url,
        paper=True,
        emit=lambda event: None,
        scrub=Scrubber([CREDENTIALS.key_id, CREDENTIALS.secret_key]),
    )
    runner.start()
    try:
        wait_for(lambda: "connected to" in caplog.text, what="the stream to log its connection")
    finally:
        runner.stop()

    assert "url-secret-value" not in caplog.text and "PKURLUSER" not in caplog.text
    assert "ws://***@127.0.0.1" in caplog.text


# ---- a session that cannot open says why, once -------------------------------------------


@pytest.mark.parametrize("content", [b"not a database at all " * 20, None])
def test_a_session_that_cannot_open_its_journal_says_why_in_one_line(tmp_path, content):
    """A journal that is not SQLite, or a directory: one `error:` line and a non-zero exit, no traceback."""
    journal = tmp_path / "journal.sqlite"
    if content is None:
        journal.mkdir()
    else:
        journal.write_bytes(content)

    done = execdesk("run", "--journal", str(journal), "--bars", "1")

    assert done.returncode in (1, 2), done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: "), done.stderr
    assert "Traceback" not in done.stderr and "Exception in thread" not in done.stderr
