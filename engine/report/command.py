"""`execdesk report` (and `python -m engine.report`): options, the journal to read,
and the exit status: 0, or `error: ...` on stderr and 2 (missing or unreadable
journal, unknown session) or 1 (anything else), never a traceback."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.exitcodes import ExitCode
from engine.report import cache
from engine.report.figures import CSV_TABLES, FORMATS, ReportError, gc_paused
from engine.report.renderers import render_head, render_parts


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
    journal as it is now, else built from the journal's events (continuing the fold the
    cache kept, engine/report/fold.py) and kept in the cache for the next time
    (engine/report/cache.py)."""
    with gc_paused():
        built = _report_data(path, session_id)
        if built.built:
            _store(path, built)
        return built.data


class _Built:
    """A report's data, the journal's cache key it is of, whether it was built from the
    journal's events (not read from the cache), and the fold it was built with (None:
    building.build_report, or read from the cache); exact: the key was read in the same
    snapshot as the rows."""

    def __init__(
        self,
        data: dict[str, Any],
        key: dict[str, Any] | None,
        built: bool,
        fold: Any,
        exact: bool,
        cells: dict[str, list[list[str]]] | None = None,
    ):
        self.data, self.key, self.built, self.fold, self.exact = data, key, built, fold, exact
        self.cells = cells  # the fold's cells of the orders and fills in the text tables


def _report_data(path: Path, session_id: str | None) -> _Built:
    """report_data without writing the cache. Built, in this order: the data the cache
    kept for the journal as it is now; the fold the cache kept, continued with the rows
    journaled since (or a new fold of every row); building.build_report (a journal the
    fold cannot report: its error, or one it cannot fold, see fold.Fold.holds). The key
    of build_report's data is read before it is built (cache.store writes nothing if the
    journal moved on since)."""
    found = cache.load_keyed(path, session_id)
    if found is not None:
        return _Built(found[0], found[1], False, None, False)
    if path.is_file():
        from engine.report.fold import fold_report  # the journal's events: only when replaying

        got = fold_report(path, session_id, cache.fold_of(cache.read(path)), cache.fingerprint())
        if got is not None:
            report, key, fold = got
            keep = fold if key is not None and _still_written(key) else None
            return _Built(report.to_dict(), key, True, keep, True, report.cells())
    from engine.report.building import build_report

    key = cache.journal_key(path)
    return _Built(build_report(path, session_id).to_dict(), key, True, None, False)


def _still_written(key: dict[str, Any]) -> bool:
    """Whether the journal's last session is open (a session may still be writing it):
    only then is the fold kept for the next report to continue. Keeping 10,000 orders'
    fold costs about a quarter of a second; a sealed journal is reported from the
    renderings and data kept instead, and a session resumed on it is replayed once."""
    sessions = key.get("sessions") or []
    return bool(sessions) and sessions[-1][4] is None  # (ended_at)


def _store(path: Path, built: _Built, rendered: dict[str, str] | None = None) -> None:
    # a fold is kept at the data's own key: another format or scope of the same journal is
    # folded from it with no new row, so its data is not kept as well (that would cost as
    # much again to write)
    data = built.data if built.built and built.fold is None else None
    cache.store(path, built.key, data, rendered, fold=built.fold, exact=built.exact)


def render_report(path: Path, session_id: str | None, fmt: str, table: str, color: bool) -> str:
    """The report as `execdesk report` prints it: the rendering the report cache kept
    (with a head naming the journal and the time now), else rendered from the report's
    data (report_data), and the rendering kept in the cache for the next time."""
    with gc_paused():  # hundreds of thousands of objects that live until the end
        return _render_report(path, session_id, fmt, table, color)


def _render_report(path: Path, session_id: str | None, fmt: str, table: str, color: bool) -> str:
    hit = cache.load_rendered(path, session_id, fmt, table, color)
    if hit is not None:
        scope, kept = hit
        return render_head(fmt, str(path), scope, datetime.now(UTC).isoformat(), color=color) + kept
    built = _report_data(path, session_id)
    data = built.data
    head, body = render_parts(data, fmt, table=table, color=color, cells=built.cells)
    if body is None:  # JSON: the data is the rendering
        if built.built:
            _store(path, built)
        return head
    name = f"{data['session_id']}|{cache.rendering_name(fmt, table, color)}"
    _store(path, built, {name: body})
    return head + body


def _error(message: str) -> None:
    for line in str(message).splitlines() or [""]:
        print(f"error: {line}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    """`execdesk report`: print the report; 0, or `error: ...` on stderr and 2
    (missing or unreadable journal, unknown session), never a traceback."""
    fmt = getattr(args, "format", "text") or "text"
    try:
        path = _journal_path(args)
        color = fmt == "text" and sys.stdout.isatty() and not os.environ.get("NO_COLOR")
        table = getattr(args, "table", "orders") or "orders"
        text = render_report(path, getattr(args, "session", None), fmt, table, color)
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
