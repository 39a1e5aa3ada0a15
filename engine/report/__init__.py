"""The execution report: what a session did, read back from its journal.

    build_report(journal, session_id=None) -> Report   # the figures
    render(report, fmt)                    -> str      # "text" | "md" | "csv" | "json"
    add_arguments(parser) / run(args)      -> int      # `execdesk report`

The report reads the journal only (opened read-only, so it works while a session
is still writing it) and never talks to the venue. Every figure and how it is
computed is described in docs/report.md; the short version:

* orders: every order created in the session (IntentCreated or OrderExternal),
  in the state a replay of the whole journal gives (OrderBook.from_replay);
* fills: every FillApplied journaled in the session, de-duplicated by execution
  id, with its slippage against the order's decision price (positive = worse);
* latencies from the wall-clock times the events were journaled;
* realized P&L by average cost over the session's fills, starting from the
  broker's positions snapshot when one was journaled before the first fill;
  unrealized P&L marked at the most recent price the journal has (the last
  positions snapshot or the last fill, named per position).

All Decimal figures are exact strings in the JSON; the text and Markdown
renderings round them for reading. ``render`` works from ``Report.to_dict()``, so
every format shows the same numbers.

    figures.py    formats, tables, latency series, ReportError; how a figure is written
    building.py   build_report: the journal read back into SessionReports
    fold.py       the report as a fold of the journal that the next report continues with the
                  rows journaled since (a journal that a session is still writing)
    cache.py      the report cache next to the journal (the fold, the renderings printed,
                  keyed by the journal's content)
    pnl.py        slippage, fill rate, realized and unrealized P&L (average cost)
    renderers.py  render: text, Markdown, CSV, JSON
    command.py    `execdesk report` / `python -m engine.report`; render_report (through the cache)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.report.command import add_arguments, main, run
from engine.report.figures import (
    CSV_TABLES,
    FILL_COLUMNS,
    FORMATS,
    LATENCY_KEYS,
    ORDER_COLUMNS,
    PERCENTILES,
    ReportError,
    latency_stats,
    percentile,
)
from engine.report.renderers import render

if TYPE_CHECKING:
    from engine.report.building import Report, SessionReport, build_report

# building (the journal's events and the order book: pydantic models) is imported when
# first used, so that `execdesk report` served from the report cache never loads it
_LAZY = {"Report", "SessionReport", "build_report"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from engine.report import building

        return getattr(building, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CSV_TABLES",
    "FILL_COLUMNS",
    "FORMATS",
    "LATENCY_KEYS",
    "ORDER_COLUMNS",
    "PERCENTILES",
    "Report",
    "ReportError",
    "SessionReport",
    "add_arguments",
    "build_report",
    "latency_stats",
    "main",
    "percentile",
    "render",
    "run",
]
