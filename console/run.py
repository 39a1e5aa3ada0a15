"""Start a session and the console over it; stop the session when the operator quits.
What `execdesk console` (and plain `execdesk`, `make run`) calls."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from engine.config import Settings
from engine.exitcodes import ExitCode


def run_console(settings: Settings, *, journal_path: str | Path | None = None, **session_options: Any) -> int:
    """Run the console until the operator quits. Returns an exit code.

    With the default configuration (broker.kind = "sim") this starts the built-in
    venue and the demo signal model, so a live session shows within seconds at any
    hour. Open orders stay working at the venue when the console quits."""
    from console.app import ExecDeskApp
    from engine.session import Session, SessionError

    session = Session.from_settings(settings, journal_path=journal_path, **session_options)
    try:
        handle = session.start()
    except SessionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.FAILURE
    try:
        ExecDeskApp(handle, settings).run()
    finally:
        session.stop()
    working = handle.snapshot.open_order_count
    if working:
        print(f"{working} orders left working at the venue (the console cancels nothing on quit).")
    return ExitCode.OK
