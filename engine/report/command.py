"""`execdesk report` (and `python -m engine.report`): options, the journal to read,
and the exit status: 0, or `error: ...` on stderr and 2 (missing or unreadable
journal, unknown session) or 1 (anything else), never a traceback."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.exitcodes import ExitCode
from engine.report import cache
from engine.report.figures import CSV_TABLES, FORMATS, ReportError
from engine.report.renderers import render_data


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`execdesk report` options."""
    parser.add_argument(
        "--journal",
        metavar="PATH",
        default=None,
        help="journal file (default: session.journal_path of the configuration)",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="text",
        help="text (default, for a terminal), md (Markdown), csv (one table, see --table) or json (one object)",
    )
    parser.add_argument(
        "--session",
        metavar="ID|all",
        default=None,
        help="the session to report: a session id, 'latest' (default) or 'all'",
    )
    parser.add_argument(
        "--table",
        choices=CSV_TABLES,
        default="orders",
        help="with --format csv: which table to print, orders (default) or fills",
    )


def _journal_path(args: argparse.Namespace) -> Path:
    given = getattr(args, "journal", None)
    if given:
        return Path(given)
    from engine.config import ConfigError, load_settings

    try:
        # Reading a report never trades: a live configuration needs no --live here.
        settings = load_settings(getattr(args, "config", None), live_confirmed=True)
    except ConfigError as exc:
        raise ReportError(
            "no --journal given and the configuration (for session.journal_path) cannot be loaded:\n"
            + "\n".join(exc.problems)
        ) from None
    return Path(settings.session.journal_path)


def report_data(path: Path, session_id: str | None) -> dict[str, Any]:
    """The report's data (Report.to_dict()): from the report cache when it matches the
    journal as it is now, else built from the journal's events and kept in the cache
    for the next time (engine/report/cache.py)."""
    data = cache.load(path, session_id)
    if data is not None:
        return data
    from engine.report.building import build_report  # the models: only when replaying

    key = cache.journal_key(path)
    data = build_report(path, session_id).to_dict()
    cache.store(path, key, data)
    return data


def _error(message: str) -> None:
    for line in str(message).splitlines() or [""]:
        print(f"error: {line}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    """`execdesk report`: print the report; 0, or `error: ...` on stderr and 2
    (missing or unreadable journal, unknown session), never a traceback."""
    fmt = getattr(args, "format", "text") or "text"
    try:
        path = _journal_path(args)
        data = report_data(path, getattr(args, "session", None))
        color = fmt == "text" and sys.stdout.isatty() and not os.environ.get("NO_COLOR")
        text = render_data(data, fmt, table=getattr(args, "table", "orders") or "orders", color=color)
    except ReportError as exc:
        _error(str(exc))
        return ExitCode.USAGE
    except Exception as exc:  # a bug, or a journal this version does not understand
        _error(f"cannot build the report: {type(exc).__name__}: {exc}")
        return ExitCode.FAILURE
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:  # `execdesk report | head`
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except OSError:
            pass
    return ExitCode.OK


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m engine.report` (the same as `execdesk report`)."""
    parser = argparse.ArgumentParser(prog="execdesk report", description="execution report from a journal")
    parser.add_argument("-c", "--config", metavar="PATH", default=None)
    add_arguments(parser)
    return run(parser.parse_args(argv))
