"""The headless session as an operator runs it: `execdesk run` as a process, and
`execdesk status|halt|resume` from other processes over the control socket.

- halt on a running session with working orders: the venue (a SimVenue the test
  owns, reached by the session as broker.kind = "alpaca" with trading_url / data_url
  — the way any Alpaca-API endpoint is configured) has no open order afterwards,
  seen through alpaca-py; `status --json` says HALTED; `halt` prints the venue's
  confirmation; `resume` returns ACTIVE.
- a command for a session that is not running exits non-zero and says so.
- `run --bars N` on the built-in venue stops by itself after N batches and prints
  the report; SIGTERM stops it in order (exit 0, open orders left working and said
  so, the journal sealed).

Orders rest at the venue because it fills each one partially at once
(partial_fill_prob 1.0) and its clock does not move (frozen, or a crawl)."""

from __future__ import annotations

import json
import os
import pty
import signal
import socket
import stat
import subprocess
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from engine.control import socket_path_for
from engine.sim import SimVenue
from tests.pipeline.pipekit import (
    CREDENTIALS,
    DEADLINE,
    EXECDESK,
    ROOT,
    SEED,
    UNIVERSE_PATH,
    VenueEyes,
    cli_env,
    execdesk,
    iso,
    own_venue,
    status_now,
    wait_for,
    wait_status,
)

#: six orders of 10% each (whole shares, at least two: the first fill is partial)
SIGNALS = {"AAPL": 0.9, "MSFT": 0.9, "JPM": 0.9, "KO": 0.9, "XOM": 0.9, "PG": 0.9}


def config_text(signals: Path, journal: Path, extra: str = "") -> str:
    return (
        f'[signals]\nkind = "jsonl"\npath = "{signals}"\n\n'
        f'[session]\njournal_path = "{journal}"\nuniverse_path = "{UNIVERSE_PATH}"\n\n' + extra
    )


def line(ts: datetime, signals: dict) -> bytes:
    return (json.dumps({"ts": iso(ts), "signals": signals}) + "\n").encode()


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as f:
        f.write(data)


@pytest.fixture
def outside_venue() -> Iterator[SimVenue]:
    """A venue of the test's own: the session reaches it over HTTP like any Alpaca
    endpoint, and the test looks at it through alpaca-py."""
    with own_venue(partial_fill_prob=1.0) as v:
        yield v


def test_halt_on_a_running_session_leaves_no_open_order_at_the_venue(tmp_path, outside_venue, run_process):
    signals, journal = tmp_path / "signals.jsonl", tmp_path / "journal.sqlite"
    signals.write_bytes(b"")
    config = tmp_path / "execution.toml"
    config.write_text(
        config_text(
            signals,
            journal,
            (
                f'[broker]\nkind = "alpaca"\ntrading_url = "{outside_venue.trading_url}"\n'
                f'data_url = "{outside_venue.data_url}"\n\n'
                '[rollout]\ndefault_mode = "auto"\n'
            ),
        )
    )
    env = cli_env(APCA_API_KEY_ID=CREDENTIALS.key_id, APCA_API_SECRET_KEY=CREDENTIALS.secret_key)
    eyes = VenueEyes(outside_venue.trading_url)

    proc = run_process("--config", str(config), "--signals", str(signals), "--journal", str(journal), env=env)
    status = wait_status(journal, lambda s: s["trading_ready"], what="the session to be ready", proc=proc)
    sock = socket_path_for(journal)
    assert stat.S_IMODE(sock.parent.stat().st_mode) == 0o700, "only the owner can enter the socket's directory"
    assert stat.S_ISSOCK(sock.stat().st_mode) and stat.S_IMODE(sock.stat().st_mode) == 0o600
    assert {"trading_state", "open_orders", "positions", "equity", "day_pl"} <= set(status)
    assert status["venue"] == "ALPACA" and status["mode"] == "PAPER"
    append(signals, line(outside_venue.now(), SIGNALS))
    working = wait_for(
        lambda: len(eyes.open_orders()) == len(SIGNALS) and eyes.open_orders(),
        what="six working orders at the venue",
        every=0.2,
    )
    assert {o.status.value for o in working} == {"partially_filled"}
    status = wait_status(journal, lambda s: s["open_orders"] == len(SIGNALS), what="the session to see them", proc=proc)
    assert status["trading_state"] == "ACTIVE"

    done = execdesk("halt", "--journal", str(journal), env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "HALTED" in done.stdout
    assert f"venue confirmed {len(SIGNALS)} cancels" in done.stdout, done.stdout
    assert eyes.open_orders() == [], "no open order is left at the venue"
    assert {o.status.value for o in eyes.orders()} == {"canceled"}

    done = execdesk("status", "--journal", str(journal), "--json", env=env)
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert status["trading_state"] == "HALTED"
    assert status["kill_switch"] == {
        "phase": "confirmed",
        "cancels_requested": len(SIGNALS),
        "cancels_confirmed": len(SIGNALS),
    }
    wait_status(journal, lambda s: s["open_orders"] == 0, what="the session's book to be empty", proc=proc)

    # HALTED: a new bar sends nothing
    append(signals, line(outside_venue.now() + timedelta(seconds=1), {"NVDA": 0.5}))
    wait_status(journal, lambda s: s["bars_processed"] == 2, what="the bar while HALTED", proc=proc)
    assert "NVDA" not in {o.symbol for o in eyes.orders()}

    done = execdesk("resume", "--journal", str(journal), env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ACTIVE" in done.stdout
    assert status_now(journal)["trading_state"] == "ACTIVE"
    done = execdesk("resume", "--journal", str(journal), env=env)
    assert done.returncode != 0 and "already ACTIVE" in done.stdout + done.stderr

    proc.proc.send_signal(signal.SIGTERM)
    assert proc.wait() == 0, proc.describe()
    assert CREDENTIALS.secret_key not in proc.stdout + proc.stderr


def test_a_command_for_a_session_that_is_not_running_says_so_and_fails(tmp_path):
    journal = tmp_path / "nobody.sqlite"
    for command in (["status", "--json"], ["halt"], ["resume"], ["flatten"]):
        done = execdesk(command[0], "--journal", str(journal), *command[1:])
        assert done.returncode != 0, command
        assert "no session is running" in done.stderr, (command, done.stderr)
        assert "Traceback" not in done.stderr
    # a socket left behind by a session that died is not a running session
    sock = socket.socket(socket.AF_UNIX)
    socket_path_for(journal).parent.mkdir(mode=0o700, exist_ok=True)
    sock.bind(str(socket_path_for(journal)))
    sock.close()
    done = execdesk("halt", "--journal", str(journal))
    assert done.returncode != 0 and "no session is running" in done.stderr, done.stderr


def embedded_config(tmp_path: Path, sim: str) -> tuple[Path, Path, Path]:
    signals, journal = tmp_path / "signals.jsonl", tmp_path / "journal.sqlite"
    signals.write_bytes(b"")
    config = tmp_path / "execution.toml"
    config.write_text(config_text(signals, journal, f"[sim]\nseed = {SEED}\n{sim}\n"))
    return config, signals, journal


def venue_time(status: dict) -> datetime:
    return datetime.fromisoformat(status["venue_time"]).replace(microsecond=0)


def test_run_with_bars_stops_by_itself_and_prints_the_report(tmp_path, run_process):
    config, signals, journal = embedded_config(tmp_path, "partial_fill_prob = 0.0")
    proc = run_process(
        "--config", str(config), "--signals", str(signals), "--journal", str(journal), "--bars", "2", "--auto-approve"
    )
    status = wait_status(journal, lambda s: s["trading_ready"] and s["market_open"], what="the session", proc=proc)
    now = venue_time(status)
    append(signals, line(now, {"AAPL": 0.5, "MSFT": -0.4}))
    wait_status(
        journal,
        lambda s: s["bars_processed"] == 1 and s["open_orders"] == 0 and s["positions"] == 2,
        what="the first bar's orders to fill",
        proc=proc,
    )
    append(signals, line(now + timedelta(seconds=1), {"AAPL": 0.2, "JPM": 0.3}))

    assert proc.wait() == 0, proc.describe()
    out = proc.stdout
    assert "2 batch(es) processed, their orders final" in out, proc.describe()
    assert "journal sealed" in out and "0 open order(s) left working at the venue" in out
    assert "execdesk execution report" in out, "the report is printed at the end"
    assert out.index("journal sealed") < out.index("execdesk execution report")

    report = json.loads(execdesk("report", "--journal", str(journal), "--format", "json").stdout)
    assert report["summary"]["batches"] == 2
    assert report["summary"]["orders"] == 4  # AAPL, MSFT; then AAPL (down), JPM
    assert report["summary"]["orders_by_status"] == {"filled": 4}
    [session] = report["sessions"]
    assert session["sealed"] is True
    for order in report["orders"]:
        assert order["client_order_id"] in out, "the printed report lists every order"
    done = execdesk("status", "--journal", str(journal))
    assert done.returncode != 0 and "no session is running" in done.stderr


def test_sigterm_stops_in_order_leaving_open_orders_working(tmp_path, run_process):
    # the venue clock crawls (1 venue second in 1,000): the partial fills stay partial
    config, signals, journal = embedded_config(tmp_path, "partial_fill_prob = 1.0\nspeed = 0.001")
    proc = run_process("--config", str(config), "--signals", str(signals), "--journal", str(journal), "--auto-approve")
    status = wait_status(journal, lambda s: s["trading_ready"] and s["market_open"], what="the session", proc=proc)
    append(signals, line(venue_time(status), SIGNALS))
    wait_status(journal, lambda s: s["open_orders"] == len(SIGNALS), what="six working orders", proc=proc)

    proc.proc.send_signal(signal.SIGTERM)
    assert proc.wait() == 0, proc.describe()
    out = proc.stdout
    assert f"stopped (SIGTERM): journal sealed; {len(SIGNALS)} open order(s) left working at the venue" in out, (
        proc.describe()
    )
    assert f"stopping: no new orders; {len(SIGNALS)} open order(s) left working at the venue" in out
    assert "execdesk execution report" in out

    report = json.loads(execdesk("report", "--journal", str(journal), "--format", "json").stdout)
    [session] = report["sessions"]
    assert session["sealed"] is True and session["ended_at"]
    assert session["ended_how"] == "stopped: SIGTERM"
    assert session["runs"][-1]["how"] == "stopped: SIGTERM"
    assert report["summary"]["orders_by_status"] == {"partially_filled": len(SIGNALS)}
    assert not report["summary"]["cancel_requests_by_cause"], "a stop cancels nothing"
    done = execdesk("status", "--journal", str(journal), "--json")
    assert done.returncode != 0 and "no session is running" in done.stderr


def test_auto_approve_is_refused_in_live_mode(tmp_path):
    signals, journal = tmp_path / "signals.jsonl", tmp_path / "journal.sqlite"
    signals.write_bytes(b"")
    config = tmp_path / "execution.toml"
    config.write_text(config_text(signals, journal, '[execution]\nmode = "live"\n'))
    done = execdesk("run", "--config", str(config), "--live", "--auto-approve", "--journal", str(journal))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "--auto-approve is refused in live mode" in done.stderr
    assert not journal.exists(), "nothing was started"


def test_in_a_terminal_run_shows_a_live_status_and_sigint_stops_it_in_order(tmp_path):
    """A terminal gets the live Rich status (state, equity, orders); Ctrl-C (SIGINT)
    stops the session in order, like SIGTERM."""
    config, signals, journal = embedded_config(tmp_path, "partial_fill_prob = 0.0")
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [
            *EXECDESK,
            "run",
            "--config",
            str(config),
            "--signals",
            str(signals),
            "--journal",
            str(journal),
            "--auto-approve",
        ],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=ROOT,
        env=cli_env(TERM="xterm-256color", COLUMNS="160", LINES="40"),
    )
    os.close(slave)
    chunks: list[bytes] = []

    def read() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the terminal's other end closed
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    screen = lambda: b"".join(chunks).decode("utf-8", "replace")  # noqa: E731
    try:
        status = wait_status(journal, lambda s: s["trading_ready"] and s["market_open"], what="the session")
        append(signals, line(venue_time(status), {"AAPL": 0.5}))
        wait_status(journal, lambda s: s["positions"] == 1 and s["open_orders"] == 0, what="the AAPL fill")
        wait_for(lambda: "positions 1" in screen(), what="the live status to show the position", every=0.2)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(DEADLINE) == 0, screen()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        reader.join(10)
        os.close(master)
    text = screen()
    assert "ACTIVE" in text and "equity" in text and "last bar" in text
    assert "stopped (SIGINT): journal sealed; 0 open order(s) left working at the venue" in text, text[-3000:]
    assert "execdesk execution report" in text
    assert "Traceback" not in text


def test_run_with_bars_stops_when_its_orders_time_out_and_says_so(tmp_path, run_process):
    """--bars N waits for the batches' orders to be final, but not for ever: orders
    still working after max(approval_timeout, submit_timeout) (+5 s) end the run."""
    config, signals, journal = embedded_config(tmp_path, "partial_fill_prob = 1.0\nspeed = 0.001")
    config.write_text(
        config.read_text() + "\n[rollout]\napproval_timeout = 1\n\n[order_management]\nsubmit_timeout = 1\n"
    )
    proc = run_process(
        "--config", str(config), "--signals", str(signals), "--journal", str(journal), "--bars", "1", "--auto-approve"
    )
    status = wait_status(journal, lambda s: s["trading_ready"] and s["market_open"], what="the session", proc=proc)
    append(signals, line(venue_time(status), SIGNALS))
    assert proc.wait() == 0, proc.describe()
    out = proc.stdout
    assert f"1 batch(es) processed; {len(SIGNALS)} order(s) not final after 6s (timed out)" in out, proc.describe()
    assert f"{len(SIGNALS)} open order(s) left working at the venue" in out
