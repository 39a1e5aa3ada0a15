"""The console attached to a headless session over its socket, with real processes:
a Pilot-driven console approves an intent that reaches the venue; a real
`execdesk console --attach` in a terminal (a pty) is killed (SIGKILL, SIGHUP) and
the session keeps trading; two consoles show the same queue, and when one stops
the session the other says so on screen, keeping the last state."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from console.app import ExecDeskApp
from console.link import LinkBanner
from console.screens.confirm import ConfirmScreen
from console.screens.main import MainScreen
from engine.control import SessionClient, request, socket_path_for
from engine.sim import SimVenue
from tests.console.deskkit import until
from tests.pipeline.pipekit import (
    CREDENTIALS,
    EXECDESK,
    ROOT,
    SEED,
    UNIVERSE_PATH,
    RunProcess,
    VenueEyes,
    cli_env,
    execdesk,
    iso,
    own_venue,
    pipeline_settings,
    wait_for,
    wait_status,
)

SIZE = (160, 48)
SIGNALS = {"AAPL": 0.5, "MSFT": 0.4, "JPM": 0.3}


pytestmark = pytest.mark.usefixtures("private_runtime_dir")


@pytest.fixture
def venue() -> Iterator[SimVenue]:
    with own_venue(partial_fill_prob=0.0) as v:
        yield v


class Headless:
    """`execdesk run` on the test's venue in approve mode, fed by a JSONL file."""

    def __init__(self, tmp_path: Path, venue: SimVenue):
        self.venue = venue
        self.signals = tmp_path / "signals.jsonl"
        self.signals.write_bytes(b"")
        self.journal = tmp_path / "journal.sqlite"
        self.config = tmp_path / "execution.toml"
        self.config.write_text(
            f'[signals]\nkind = "jsonl"\npath = "{self.signals}"\n\n'
            f'[session]\njournal_path = "{self.journal}"\nuniverse_path = "{UNIVERSE_PATH}"\n\n'
            f'[broker]\nkind = "alpaca"\ntrading_url = "{venue.trading_url}"\ndata_url = "{venue.data_url}"\n\n'
            '[rollout]\ndefault_mode = "approve"\napproval_timeout = 3600\n'
        )
        self.env = cli_env(APCA_API_KEY_ID=CREDENTIALS.key_id, APCA_API_SECRET_KEY=CREDENTIALS.secret_key)
        self.proc = RunProcess(
            tmp_path, "--config", str(self.config), "--signals", str(self.signals), "--journal", str(self.journal),
            env=self.env,
        )  # fmt: skip
        self.status(lambda s: s["trading_ready"], "the session to be ready")
        self.sock = socket_path_for(self.journal)
        self.eyes = VenueEyes(venue.trading_url)
        self.settings = pipeline_settings(self.signals)
        self._bars = 0

    def status(self, predicate, what: str) -> dict:
        return wait_status(self.journal, predicate, what=what, proc=self.proc)

    def bar(self, values: dict = SIGNALS) -> None:
        from datetime import timedelta

        ts = self.venue.now().replace(microsecond=0) - timedelta(seconds=30) + timedelta(seconds=self._bars)
        self._bars += 1
        with self.signals.open("ab") as f:
            f.write((json.dumps({"ts": iso(ts), "signals": values}) + "\n").encode())
        self.status(lambda s: s["bars_processed"] >= self._bars, f"bar {self._bars} processed")

    def pending(self) -> list[dict]:
        return request(self.sock, "pending")["intents"]

    def close(self) -> None:
        self.proc.close()


@pytest.fixture
def headless(tmp_path, venue):
    h = Headless(tmp_path, venue)
    try:
        yield h
    finally:
        h.close()


def attached_app(
    headless: Headless, name: str = "console", read_only: bool = False
) -> tuple[ExecDeskApp, SessionClient]:
    client = SessionClient(headless.sock, name=name, read_only=read_only).start(timeout=30)
    return ExecDeskApp(client, headless.settings, clock_in_view=False, attached=True, read_only=read_only), client


async def test_a_console_attached_over_the_socket_approves_an_intent_that_reaches_the_venue(headless) -> None:
    headless.bar()
    app, client = attached_app(headless)
    try:
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            assert isinstance(screen, MainScreen)
            await until(pilot, lambda: screen.queue.selected_key is not None, what="an intent under the cursor")
            intent_id = screen.queue.selected_key
            assert intent_id in {i["intent_id"] for i in headless.pending()}
            # a row on screen for less than [console] new_row_guard_ms is not approved
            await until(pilot, lambda: not screen.queue.new_keys, what="the rows to be on screen long enough")
            await pilot.press("a")
            await until(pilot, lambda: intent_id not in client.snapshot.intents, what="the intent to leave the queue")
            await app.workers.wait_for_complete()
            order = wait_for(lambda: headless.eyes.order(intent_id), what="the approved order at the venue")
            assert order.client_order_id == intent_id
            await pilot.press("q")
        assert app.ended == "detached"
    finally:
        client.close()
    assert headless.proc.proc.poll() is None, "quitting the console only detaches"
    assert request(headless.sock, "status")["status"]["trading_state"] == "ACTIVE"


async def test_two_consoles_show_the_same_queue_and_a_stop_from_one_is_said_on_the_other(headless) -> None:
    headless.bar()
    first, one = attached_app(headless, "one")
    second, two = attached_app(headless, "two", read_only=True)
    try:
        async with first.run_test(size=SIZE) as p1, second.run_test(size=SIZE) as p2:
            s1, s2 = first.screen, second.screen
            assert isinstance(s1, MainScreen) and isinstance(s2, MainScreen)
            want = {i["intent_id"] for i in headless.pending()}
            await until(p1, lambda: set(s1.queue._source) == want, what="the queue on the first console")
            await until(p2, lambda: set(s2.queue._source) == want, what="the same queue on the second")

            await p1.press("S")
            await until(p1, lambda: isinstance(first.screen, ConfirmScreen), what="the stop confirmation")
            await p1.press("y")
            assert headless.proc.wait() == 0, headless.proc.describe()

            await until(p2, lambda: bool(s2.query(LinkBanner)), what="the second console to say the session went")
            banner = str(s2.query_one(LinkBanner).render())
            assert "STALE" in banner and "the session ended: stopped by operator" in banner, banner
            assert set(s2.queue._source) == want, "the last state stays on screen"
    finally:
        one.close()
        two.close()


# ------------------------------------------------------------------ a real console in a terminal


class TerminalConsole:
    """`execdesk console --attach` in a pseudo-terminal of its own, its screen drained."""

    def __init__(self, headless: Headless):
        self.master, slave = pty.openpty()
        os.set_blocking(self.master, True)
        env = {**headless.env, "TERM": "xterm-256color", "COLUMNS": "160", "LINES": "48"}
        self.proc = subprocess.Popen(
            [*EXECDESK, "--config", str(headless.config), "console", "--attach", "--journal", str(headless.journal)],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=ROOT,
            env=env,
            start_new_session=True,
        )
        os.close(slave)
        self.screen = bytearray()
        self._drain = threading.Thread(target=self._read, daemon=True)
        self._drain.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            if not data:
                return
            self.screen += data

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        os.close(self.master)


def consoles_attached(headless: Headless) -> list[dict]:
    return [c for c in request(headless.sock, "status")["clients"] if c["name"] == "console"]


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGHUP])
def test_killing_a_real_console_leaves_the_session_trading(headless, how) -> None:
    term = TerminalConsole(headless)
    try:
        wait_for(lambda: consoles_attached(headless), what="the terminal console to attach", timeout=60)
        wait_for(lambda: b"execdesk" in term.screen or len(term.screen) > 2000, what="the console on screen")
        term.proc.send_signal(how)
        assert term.proc.wait(30) != 0
        wait_for(lambda: not consoles_attached(headless), what="the session to see the console go")
    finally:
        term.close()
    # the session trades on: a new bar, an approval from the command line, an order at the venue
    assert headless.proc.proc.poll() is None
    headless.bar({"NVDA": 0.4})
    [nvda] = [i for i in headless.pending() if i["symbol"] == "NVDA"]
    done = execdesk("approve", nvda["intent_id"], "--journal", str(headless.journal), env=headless.env)
    assert done.returncode == 0, done.stdout + done.stderr
    wait_for(lambda: headless.eyes.order(nvda["intent_id"]), what="the order at the venue")
    headless.status(lambda s: s["open_orders"] == 0 and s["positions"] >= 1, "the order filled and tracked")


# ------------------------------------------------------------------ `execdesk console` starts the session


class ConsoleInTerminal(TerminalConsole):
    """`execdesk console ARGS...` in a pseudo-terminal (what `make run` runs)."""

    def __init__(self, argv: list[str], env: dict[str, str]):
        self.master, slave = pty.openpty()
        os.set_blocking(self.master, True)
        self.proc = subprocess.Popen(
            [*EXECDESK, *argv],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=ROOT,
            env={**env, "TERM": "xterm-256color", "COLUMNS": "160", "LINES": "48"},
            start_new_session=True,
        )
        os.close(slave)
        self.screen = bytearray()
        self._drain = threading.Thread(target=self._read, daemon=True)
        self._drain.start()

    def press(self, keys: bytes) -> None:
        os.write(self.master, keys)


def clients_of(sock: Path) -> list[dict]:
    """The clients attached to the session at sock ([] while none answers yet)."""
    from engine.control import ControlError

    try:
        return request(sock, "status")["clients"]
    except ControlError:
        return []


def test_plain_console_starts_a_session_that_outlives_it_and_a_second_console_attaches(tmp_path) -> None:
    from engine.lock import is_locked, read_holder

    journal = tmp_path / "journal.sqlite"
    config = tmp_path / "execution.toml"
    config.write_text(
        f'[session]\njournal_path = "{journal}"\nuniverse_path = "{UNIVERSE_PATH}"\n\n[sim]\nseed = {SEED}\n'
    )
    env = cli_env()
    argv = ["--config", str(config), "console", "--journal", str(journal)]
    sock = socket_path_for(journal)
    first = ConsoleInTerminal(argv, env)
    session_pid = None
    try:
        holder = wait_for(lambda: is_locked(journal) and read_holder(journal), what="a session to hold the journal")
        session_pid = holder.pid
        assert session_pid != first.proc.pid, "the session is a process of its own"
        assert " run --journal " in holder.command
        wait_for(
            lambda: any(c["name"] == "console" for c in clients_of(sock)),
            what="the console to attach",
            timeout=60,
        )
        first.proc.send_signal(signal.SIGHUP)  # the terminal closed
        first.proc.wait(30)
        assert os.getpgid(session_pid) != os.getpgid(os.getpid())
        wait_for(
            lambda: not any(c["name"] == "console" for c in clients_of(sock)),
            what="the session to run on without a console",
        )
        assert request(sock, "status")["ok"]

        second = ConsoleInTerminal(argv, env)
        try:
            wait_for(
                lambda: any(c["name"] == "console" for c in clients_of(sock)),
                what="the second console to attach",
                timeout=60,
            )
            assert read_holder(journal).pid == session_pid, "the second console attached; no second session"
            second.press(b"q")
            assert second.proc.wait(30) == 0
            wait_for(lambda: b"detached: the session keeps running" in second.screen, what="the detach message")
        finally:
            second.close()
        assert request(sock, "status")["ok"], "still running after the console detached"
        done = execdesk("stop", "--journal", str(journal), env=env)
        assert done.returncode == 0 and "session stopped" in done.stdout, done.stdout + done.stderr
        assert not is_locked(journal)
        log = journal.with_name(journal.name + ".session.log").read_text()
        assert "journal sealed" in log, log[-2000:]
    finally:
        first.close()
        if session_pid is not None and is_locked(journal):
            os.kill(session_pid, signal.SIGKILL)
