"""`execdesk console` (and plain `execdesk`, `make run`): attach the console to the
session of a journal, starting that session first as a background process of its
own when none is running. The session outlives the console: quitting detaches,
closing the terminal or killing the console leaves it trading.

    execdesk console                    start the session if needed, then attach
    execdesk console --attach           attach to a running session only
    execdesk console --read-only        an observer: sends nothing but the kill switch

The background session is `execdesk run --journal J` (the same configuration),
in a new process session (os.setsid: no controlling terminal, so no SIGHUP when
the terminal goes), its output in `<journal>.session.log`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from engine.config import Settings
from engine.control import ControlError, SessionClient, request
from engine.exitcodes import ExitCode
from engine.lock import is_locked, read_holder, socket_path_for

#: seconds a freshly started background session has to serve its socket
START_TIMEOUT = 90.0


def session_log_path(journal: Path) -> Path:
    return journal.with_name(journal.name + ".session.log")


def start_background_session(
    journal: Path, *, config: str | None = None, live: bool = False, timeout: float = START_TIMEOUT
) -> int:
    """Start `execdesk run` for this journal as a detached process and wait until it
    answers on its socket. Returns its pid; raises ControlError saying why not."""
    journal.parent.mkdir(parents=True, exist_ok=True)
    log_path = session_log_path(journal)
    argv = [sys.executable, "-m", "console.cli"]
    if config:
        argv += ["--config", config]
    if live:
        argv.append("--live")
    argv += ["run", "--journal", str(journal)]
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=fd,
            stderr=fd,
            start_new_session=True,  # its own session: the terminal closing does not reach it
            close_fds=True,
            cwd=os.getcwd(),
        )
    finally:
        os.close(fd)
    sock = socket_path_for(journal)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-5:]
            raise ControlError(
                f"the session did not start (exit {proc.returncode}); its log {log_path} says:\n" + "\n".join(tail)
            )
        try:
            if request(sock, "status", timeout=5).get("ok"):
                return proc.pid
        except ControlError:
            pass
        time.sleep(0.2)
    raise ControlError(f"the session (pid {proc.pid}) did not answer within {timeout:.0f} s: see {log_path}")


def run_console(
    settings: Settings,
    *,
    journal_path: str | Path | None = None,
    attach_only: bool = False,
    read_only: bool = False,
    config: str | None = None,
    live: bool = False,
) -> int:
    """Run the console until the operator quits (detaches). Returns an exit code."""
    from console.app import ExecDeskApp

    journal = Path(journal_path or settings.session.journal_path)
    sock = socket_path_for(journal)
    started = ""
    if not is_locked(journal):
        if attach_only or read_only:
            print(f"error: no session is running for {journal} (start one with `execdesk console`)", file=sys.stderr)
            return ExitCode.FAILURE
        print(f"starting the session for {journal} in the background ...", file=sys.stderr, flush=True)
        try:
            pid = start_background_session(journal, config=config, live=live)
        except ControlError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return ExitCode.FAILURE
        started = f"started session pid {pid}, its output in {session_log_path(journal)}"
    client = SessionClient(sock, name="console-ro" if read_only else "console", read_only=read_only)
    try:
        client.start(timeout=30)
    except ControlError as exc:
        holder = read_holder(journal)
        who = f" (held by {holder.describe()})" if holder else ""
        print(f"error: {exc}{who}", file=sys.stderr)
        return ExitCode.FAILURE
    app = ExecDeskApp(client, settings, attached=True, read_only=read_only)
    try:
        app.run()
    finally:
        link = client.link
        client.close()
    if started:
        print(started)
    if link.state == "gone":
        print(f"console closed; {link.detail}")
    else:
        print(
            f"detached: the session keeps running (pid {client.session_pid}, journal {journal}); "
            "`execdesk console` attaches again, `execdesk stop` stops it."
        )
    return ExitCode.OK
