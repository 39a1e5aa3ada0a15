"""One session per journal and the session protocol, with real processes: a
headless `execdesk run` owns its journal (a second one refuses and names the
holder), serves its socket for any journal path, and is driven from outside —
`execdesk pending/approve/reject/override/stop` and attached SessionClients (two
at once, a read-only observer) — with what they do seen at the venue through
alpaca-py."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from engine.commands import ApproveIntent, Halt, RejectAll, StopSession
from engine.control import SessionClient, request, socket_path_for
from engine.journal import Journal
from engine.lock import is_locked, read_holder
from engine.sim import SimVenue
from tests.pipeline.pipekit import (
    CREDENTIALS,
    UNIVERSE_PATH,
    RunProcess,
    VenueEyes,
    cli_env,
    execdesk,
    iso,
    own_venue,
    wait_for,
    wait_status,
)

SIGNALS = {"AAPL": 0.5, "MSFT": 0.4, "JPM": 0.3}


pytestmark = pytest.mark.usefixtures("private_runtime_dir")


@pytest.fixture
def venue() -> Iterator[SimVenue]:
    with own_venue(partial_fill_prob=0.0) as v:
        yield v


def setup(tmp_path: Path, venue: SimVenue, journal: Path | None = None) -> tuple[Path, Path, Path, dict]:
    signals = tmp_path / "signals.jsonl"
    signals.write_bytes(b"")
    journal = journal or tmp_path / "journal.sqlite"
    config = tmp_path / "execution.toml"
    config.write_text(
        f'[signals]\nkind = "jsonl"\npath = "{signals}"\n\n'
        f'[session]\njournal_path = "{journal}"\nuniverse_path = "{UNIVERSE_PATH}"\n\n'
        f'[broker]\nkind = "alpaca"\ntrading_url = "{venue.trading_url}"\ndata_url = "{venue.data_url}"\n\n'
        '[rollout]\ndefault_mode = "approve"\napproval_timeout = 3600\n'
    )
    env = cli_env(APCA_API_KEY_ID=CREDENTIALS.key_id, APCA_API_SECRET_KEY=CREDENTIALS.secret_key)
    return config, signals, journal, env


def send_bar(signals: Path, ts: datetime, values: dict) -> None:
    with signals.open("ab") as f:
        f.write((json.dumps({"ts": iso(ts), "signals": values}) + "\n").encode())


def start_session(run_process, config: Path, signals: Path, journal: Path, env: dict) -> RunProcess:
    proc = run_process("--config", str(config), "--signals", str(signals), "--journal", str(journal), env=env)
    wait_status(journal, lambda s: s["trading_ready"], what="the session to be ready", proc=proc)
    return proc


# ------------------------------------------------------------------ one session per journal


def test_a_second_run_on_the_same_journal_refuses_and_names_the_holder(tmp_path, venue, run_process):
    config, signals, journal, env = setup(tmp_path, venue)
    first = start_session(run_process, config, signals, journal, env)
    holder = read_holder(journal)
    assert holder is not None and holder.pid == first.proc.pid and holder.socket == str(socket_path_for(journal))

    second_dir = tmp_path / "second"
    second_dir.mkdir()
    second = run_process("--config", str(config), "--journal", str(journal), env=env, where=second_dir)
    assert second.wait() != 0, second.describe()
    assert f"is in use by pid {first.proc.pid}" in second.stderr, second.describe()
    assert "execdesk run" in second.stderr and "since" in second.stderr
    assert "Traceback" not in second.stderr
    # the Python API refuses the same way
    from engine.config import load_settings
    from engine.session import Session, SessionError

    with pytest.raises(SessionError, match=f"in use by pid {first.proc.pid}"):
        Session(load_settings(config), journal_path=journal, credentials=CREDENTIALS).start()
    # the first one kept its journal and keeps trading: its session id is the only one
    assert first.proc.poll() is None
    status = wait_status(journal, lambda s: s["trading_state"] == "ACTIVE", what="the first session", proc=first)
    first.proc.send_signal(signal.SIGTERM)
    assert first.wait() == 0, first.describe()
    assert not is_locked(journal)
    with Journal(journal) as j:
        ids = {s.session_id for s in j.sessions()}
    assert ids == {status["session_id"]}, "the refused run wrote nothing into the journal"


def test_a_long_journal_path_still_gets_a_private_control_socket(tmp_path, venue, run_process):
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    journal = deep / "a-journal-with-a-long-name.sqlite"
    assert len(str(journal)) > 107
    config, signals, journal, env = setup(tmp_path, venue, journal)
    proc = start_session(run_process, config, signals, journal, env)
    sock = socket_path_for(journal)
    assert len(str(sock)) < 107
    assert stat.S_ISSOCK(sock.stat().st_mode) and stat.S_IMODE(sock.stat().st_mode) == 0o600
    assert stat.S_IMODE(sock.parent.stat().st_mode) == 0o700 and sock.parent.stat().st_uid == os.getuid()
    done = execdesk("status", "--journal", str(journal), env=env)
    assert done.returncode == 0 and "ACTIVE" in done.stdout, done.stderr
    proc.proc.send_signal(signal.SIGTERM)
    assert proc.wait() == 0, proc.describe()
    assert not sock.exists(), "the socket is removed on the way out"


def test_a_regular_file_where_the_socket_goes_stops_the_session_and_is_kept(tmp_path, venue, run_process):
    config, signals, journal, env = setup(tmp_path, venue)
    sock = socket_path_for(journal)
    sock.parent.mkdir(mode=0o700, exist_ok=True)
    sock.write_text("not a socket")
    try:
        proc = run_process("--config", str(config), "--signals", str(signals), "--journal", str(journal), env=env)
        assert proc.wait() != 0, proc.describe()
        assert "is not a socket" in proc.stderr and "not trading without it" in proc.stderr, proc.describe()
        assert "Traceback" not in proc.stderr
        assert sock.read_text() == "not a socket", "the file is left alone"
        assert VenueEyes(venue.trading_url).orders() == []
    finally:
        sock.unlink()


# ------------------------------------------------------------------ the protocol, headless


def test_headless_pending_approve_reject_override_and_stop(tmp_path, venue, run_process):
    config, signals, journal, env = setup(tmp_path, venue)
    proc = start_session(run_process, config, signals, journal, env)
    eyes = VenueEyes(venue.trading_url)
    send_bar(signals, venue.now(), SIGNALS)
    wait_status(journal, lambda s: s["awaiting_approval"] == len(SIGNALS), what="three intents", proc=proc)

    done = execdesk("pending", "--journal", str(journal), "--json", env=env)
    assert done.returncode == 0, done.stderr
    pending = {i["symbol"]: i for i in json.loads(done.stdout)}
    assert set(pending) == set(SIGNALS)
    assert all(isinstance(i["qty"], str) for i in pending.values()), "quantities travel as decimal strings"
    text = execdesk("pending", "--journal", str(journal), env=env).stdout
    assert pending["AAPL"]["intent_id"] in text

    done = execdesk("approve", pending["AAPL"]["intent_id"], "--journal", str(journal), env=env)
    assert done.returncode == 0 and "approved" in done.stdout, done.stdout + done.stderr
    order = wait_for(lambda: eyes.order(pending["AAPL"]["intent_id"]), what="AAPL at the venue")
    assert order.symbol == "AAPL"
    done = execdesk("approve", "no-such-intent", "--journal", str(journal), env=env)
    assert done.returncode != 0
    done = execdesk("approve", "--journal", str(journal), env=env)
    assert done.returncode == 2 and "give one intent ID or --all" in done.stderr

    done = execdesk("reject", "--all", "--journal", str(journal), env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    wait_status(journal, lambda s: s["awaiting_approval"] == 0, what="the queue to be empty", proc=proc)
    assert eyes.order(pending["MSFT"]["intent_id"]) is None

    done = execdesk(
        "override", "nvda", "--mode", "off", "--max-usd", "5000", "--side", "long", "--journal", str(journal), env=env
    )
    assert done.returncode == 0, done.stdout + done.stderr
    done = execdesk("override", "NVDA", "--journal", str(journal), env=env)
    assert done.returncode == 2 and "at least one of" in done.stderr

    done = execdesk("stop", "--journal", str(journal), env=env)
    assert done.returncode == 0 and "session stopped" in done.stdout, done.stdout + done.stderr
    assert proc.wait() == 0, proc.describe()
    assert "journal sealed" in proc.stdout

    report = json.loads(execdesk("report", "--journal", str(journal), "--format", "json", env=env).stdout)
    [session] = report["sessions"]
    assert session["sealed"] and "stopped by operator" in session["ended_how"]
    with Journal(journal) as j:
        commands = [e.event for e in j.replay() if e.event.type == "OperatorCommand"]
    assert [c.command for c in commands] == ["approve", "approve", "reject_all", "override", "stop"]
    assert all(c.user and c.client_id and c.pid for c in commands), commands
    assert commands[3].detail["symbol"] == "NVDA" and commands[3].detail["side"] == "long_only"


def test_bad_requests_are_answered_and_the_connection_stays_usable(tmp_path, venue, run_process):
    config, signals, journal, env = setup(tmp_path, venue)
    proc = start_session(run_process, config, signals, journal, env)
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(20)
    s.connect(str(socket_path_for(journal)))
    f = s.makefile("rwb")

    def ask(raw: bytes) -> dict:
        f.write(raw + b"\n")
        f.flush()
        return json.loads(f.readline())

    assert ask(b'{"cmd": ["halt"]}') == {"ok": False, "error": 'expected an object with a string "cmd"'}
    assert ask(b"not json")["ok"] is False
    assert ask(b'{"cmd": "approve", "intent_id": 7, "id": 3}') == {
        "ok": False,
        "error": '"intent_id" must be a non-empty string',
        "id": 3,
    }
    assert "unknown command" in ask(b'{"cmd": "sell_everything"}')["error"]
    hello = ask(b'{"cmd": "hello", "version": 1, "client": "test"}')
    assert hello["version"] == 1 and hello["client_id"] and hello["pid"] == proc.proc.pid
    assert ask(b'{"cmd": "status"}')["status"]["trading_state"] == "ACTIVE"
    too_long = ask(b'{"cmd": "status", "pad": "' + b"x" * 70_000 + b'"}')
    assert too_long == {"ok": False, "error": "request longer than 65536 bytes"}
    assert f.readline() == b"", "after a line too long the connection is closed (its end is unknown)"
    s.close()
    assert proc.proc.poll() is None
    assert "Traceback" not in proc.stdout + proc.stderr


# ------------------------------------------------------------------ attached clients


def test_two_attached_clients_see_the_same_queue_and_one_stop_reaches_both(tmp_path, venue, run_process):
    config, signals, journal, env = setup(tmp_path, venue)
    proc = start_session(run_process, config, signals, journal, env)
    eyes = VenueEyes(venue.trading_url)
    sock = socket_path_for(journal)
    one = SessionClient(sock, name="one").start(timeout=30)
    two = SessionClient(sock, name="two").start(timeout=30)
    observer = SessionClient(sock, name="observer", read_only=True).start(timeout=30)
    try:
        send_bar(signals, venue.now(), SIGNALS)
        for client in (one, two, observer):
            wait_for(lambda c=client: len(c.snapshot.intents) == len(SIGNALS), what=f"the queue in {client.name}")
        assert set(one.snapshot.intents) == set(two.snapshot.intents) == set(observer.snapshot.intents)
        row = next(r for r in one.snapshot.intents.values() if r.symbol == "MSFT")
        assert two.snapshot.intents[row.intent_id] == row, "the same row, Decimals and datetimes round-tripped"

        refused = observer.execute_sync(ApproveIntent(row.intent_id))
        assert not refused.ok and "read-only" in refused.message
        result = one.execute_sync(ApproveIntent(row.intent_id), timeout=30)
        assert result.ok, result
        wait_for(lambda: eyes.order(row.intent_id), what="the approved order at the venue")
        wait_for(lambda: row.intent_id not in two.snapshot.intents, what="the second client to see it leave the queue")
        wait_for(lambda: row.intent_id not in observer.snapshot.intents, what="the observer to see it")

        two.close()  # one detaches; the other keeps working
        assert one.execute_sync(RejectAll(), timeout=30).ok
        wait_for(lambda: not one.snapshot.intents, what="the queue to be empty")

        halted = observer.execute_sync(Halt(), timeout=30)
        assert halted.ok, "the observer can pull the kill switch"
        wait_for(lambda: one.snapshot.trading_state.value == "HALTED", what="every client to see HALTED")

        stopped = one.execute_sync(StopSession(), timeout=30)
        assert stopped.ok and "stopping" in stopped.message
        wait_for(lambda: observer.link.state == "gone", what="the observer to see the session go")
        assert "the session ended" in observer.link.detail and "stopped by operator (one c" in observer.link.detail
        assert observer.snapshot.trading_state.value == "HALTED", "the last state is kept"
        assert proc.wait() == 0, proc.describe()
    finally:
        for client in (one, two, observer):
            client.close()
    status_after = execdesk("status", "--journal", str(journal), env=env)
    assert status_after.returncode != 0


def test_an_attached_client_reattaches_when_the_session_is_back(tmp_path, venue, run_process):
    config, signals, journal, env = setup(tmp_path, venue)
    first = start_session(run_process, config, signals, journal, env)
    client = SessionClient(socket_path_for(journal), name="watcher").start(timeout=30)
    try:
        session_id = client.snapshot.session_id
        first.proc.kill()  # a crash: no goodbye
        first.wait()
        wait_for(lambda: client.link.state == "gone", what="the client to notice the session is gone")
        assert "closed the connection" in client.link.detail
        assert client.snapshot.session_id == session_id, "the last state is kept while away"
        assert not client.execute_sync(Halt()).ok, "nothing is sent while detached"

        second = start_session(run_process, config, signals, journal, env)
        wait_for(lambda: client.link.up, what="the client to re-attach by itself", timeout=60)
        assert client.session_pid == second.proc.pid
        assert request(socket_path_for(journal), "status")["clients"][0]["name"] == "watcher"
    finally:
        client.close()


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to connect as another user")
def test_a_client_of_another_user_is_refused(tmp_path, venue, run_process, monkeypatch):
    import tempfile

    runtime = Path(tempfile.mkdtemp(prefix="xd", dir="/tmp"))  # short: the socket's path must fit
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    try:
        _refuse_another_user(tmp_path, venue, run_process, runtime)
    finally:
        shutil.rmtree(runtime, ignore_errors=True)


def _refuse_another_user(tmp_path: Path, venue: SimVenue, run_process, runtime: Path) -> None:
    import subprocess
    import sys

    config, signals, journal, env = setup(tmp_path, venue)
    env["XDG_RUNTIME_DIR"] = str(runtime)
    proc = start_session(run_process, config, signals, journal, env)
    sock = socket_path_for(journal)
    assert sock.parent == runtime / "execdesk"
    # defeat the first fence (a 0700 directory, a 0600 socket) to reach the second: the peer's uid
    for path, mode in ((runtime, 0o711), (sock.parent, 0o711), (sock, 0o666)):
        os.chmod(path, mode)
    other = (
        "import os, socket, sys\n"
        "os.setgid(65534); os.setuid(65534)\n"
        "s = socket.socket(socket.AF_UNIX); s.settimeout(20); s.connect(sys.argv[1])\n"
        "print(s.makefile().readline())\n"  # refused at once, before it can ask for anything
    )
    done = subprocess.run([sys.executable, "-c", other, str(sock)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"ok": False, "error": "refused: this session serves only the user who runs it"}
    assert [c["name"] for c in request(sock, "status")["clients"]] == ["client"], "only the test's own request"
    proc.proc.send_signal(signal.SIGTERM)
    assert proc.wait() == 0, proc.describe()


def test_an_attached_client_rebuilds_the_same_snapshot_the_session_publishes(make_pipe):
    """Whole snapshot, then changes: what the client holds equals the session's own
    EngineSnapshot, Decimal for Decimal, row for row, after trading and an override."""
    from decimal import Decimal

    from engine.commands import SetOverride
    from engine.session_protocol import decode_snapshot, encode_snapshot
    from engine.snapshot import EngineSnapshot

    pipe = make_pipe(auto_approve=True)
    client = SessionClient(socket_path_for(pipe.journal_path), name="mirror").start(timeout=30)
    try:
        pipe.send({"AAPL": 0.5, "MSFT": -0.4, "JPM": 0.3})
        pipe.wait_settled("the first bar's orders to fill")
        assert client.execute_sync(SetOverride("KO", mode="off", max_position_usd=Decimal("1234.50"))).ok
        pipe.send({"AAPL": 0.2, "KO": 0.8})
        pipe.wait_settled("the second bar's orders to fill")

        def same() -> bool:
            return client.snapshot.seq == pipe.snapshot.seq and client.snapshot == pipe.snapshot

        wait_for(same, what="the client's snapshot to equal the session's")
        snap = client.snapshot
        assert isinstance(snap, EngineSnapshot) and snap.positions and snap.events and snap.limits
        assert isinstance(next(iter(snap.positions.values())).qty, Decimal)
        assert snap.overrides["KO"].max_position_usd == Decimal("1234.50")
        assert decode_snapshot(json.loads(json.dumps(encode_snapshot(pipe.snapshot)))) == pipe.snapshot
    finally:
        client.close()


def test_attach_and_read_only_never_start_a_session(tmp_path):
    journal = tmp_path / "nobody.sqlite"
    for flag in ("--attach", "--read-only"):
        done = execdesk("console", flag, "--journal", str(journal), timeout=60)
        assert done.returncode == 1, done.stdout + done.stderr
        assert f"no session is running for {journal}" in done.stderr
        assert not is_locked(journal) and not journal.exists()
    for command in (["pending"], ["approve", "--all"], ["stop"]):
        done = execdesk(*command, "--journal", str(journal))
        assert done.returncode == 1 and "no session is running" in done.stderr, (command, done.stderr)
