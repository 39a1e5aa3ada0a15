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
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import sqlite3
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Iterable, Sequence

from pydantic import ValidationError

from engine import events as ev
from engine.journal import Journal, JournalEntry, JournalError, SessionRecord
from engine.model import Order, OrderStatus, Position, Side
from engine.orders import OrderBook

__all__ = [
    "CSV_TABLES",
    "FORMATS",
    "LATENCY_KEYS",
    "Report",
    "ReportError",
    "SessionReport",
    "add_arguments",
    "build_report",
    "render",
    "run",
]

FORMATS = ("text", "md", "csv", "json")
CSV_TABLES = ("orders", "fills")
#: Latency series, in the order they are shown.
LATENCY_KEYS = (
    "signal_to_submit",
    "signal_to_submit_auto",
    "approval_wait",
    "submit_to_ack",
    "submit_to_first_fill",
)
PERCENTILES = (50, 90, 99)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

_BPS = Decimal(10000)
_BPS_PLACES = Decimal("0.0001")
_RATE_PLACES = Decimal("0.0001")

ORDER_COLUMNS = (
    "session_id",
    "client_order_id",
    "symbol",
    "side",
    "qty",
    "order_type",
    "limit_price",
    "status",
    "filled_qty",
    "filled_avg_price",
    "decision_price",
    "slippage_bps",
    "signal",
    "reason",
    "denial_reason",
    "detail",
    "external",
    "venue_order_id",
    "bar_ts",
    "created_at",
    "submitted_at",
    "final_at",
    "signal_to_submit_ms",
    "approval_wait_ms",
    "submit_to_ack_ms",
    "submit_to_first_fill_ms",
)

FILL_COLUMNS = (
    "session_id",
    "execution_id",
    "client_order_id",
    "symbol",
    "side",
    "qty",
    "price",
    "ts",
    "decision_price",
    "slippage_bps",
    "slippage_cost",
    "realized_pl",
    "journal_seq",
)


class ReportError(Exception):
    """The report cannot be built: no such journal, no such session, unreadable file."""


# ---- small helpers ---------------------------------------------------------------------


def _dec(value: Decimal | None) -> str | None:
    """A Decimal from the journal as an exact string (never exponent notation)."""
    if value is None:
        return None
    return format(value, "f")


def _derived(value: Decimal | None) -> str | None:
    """A computed Decimal as an exact string without trailing zeros."""
    if value is None:
        return None
    if value == 0:
        return "0"
    return format(value.normalize(), "f")


def _q(value: Decimal, places: Decimal) -> Decimal:
    return value.quantize(places, rounding=ROUND_HALF_EVEN)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _ms(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds() * 1000.0, 3)


def _bps(side: Side, price: Decimal, decision: Decimal | None) -> Decimal | None:
    """Slippage of price against decision in basis points, positive = worse
    (a buy paid above, a sell received below)."""
    if decision is None or decision <= 0:
        return None
    return _q(side.sign * (price - decision) / decision * _BPS, _BPS_PLACES)


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile: the smallest value with at least p% of the
    values at or below it. None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def latency_stats(values: Sequence[float]) -> dict[str, Any]:
    out: dict[str, Any] = {"count": len(values)}
    for p in PERCENTILES:
        out[f"p{p}"] = percentile(values, p)
    out["max"] = max(values) if values else None
    return out


def _reason_code(reason: str) -> str:
    """"CODE: detail" -> "CODE" (the whole text when there is no code)."""
    code, sep, _ = reason.partition(":")
    code = code.strip()
    return code if sep and code else reason.strip() or "UNSPECIFIED"


def _printable(text: str | None, limit: int = 80) -> str:
    """One line, control characters escaped, at most limit characters: for
    echoing signal input (which may be binary garbage) in text and Markdown."""
    if text is None:
        return ""
    out = []
    for ch in text:
        if ch.isprintable():
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    s = "".join(out)
    return s if len(s) <= limit else s[: limit - 1] + "…"


# ---- the figures ----------------------------------------------------------------------------


@dataclass
class _Trace:
    """Where one order's events sit in the journal (wall-clock entry times)."""

    session_id: str | None = None
    created_ts: datetime | None = None
    batch_key: tuple | None = None
    approval_requested_ts: datetime | None = None
    approved_ts: datetime | None = None
    submit_ts: datetime | None = None
    ack_ts: datetime | None = None  # the venue's first word after the submit
    first_fill_ts: datetime | None = None


@dataclass
class SessionReport:
    """The figures of one session (see docs/report.md). Built by build_report."""

    session_id: str
    record: SessionRecord | None
    runs: list[dict[str, Any]] = field(default_factory=list)
    orders: list[dict[str, Any]] = field(default_factory=list)
    fills: list[dict[str, Any]] = field(default_factory=list)
    denials: list[dict[str, Any]] = field(default_factory=list)
    venue_rejections: list[dict[str, Any]] = field(default_factory=list)
    dropped: list[dict[str, Any]] = field(default_factory=list)
    state_changes: list[dict[str, Any]] = field(default_factory=list)
    kill_switch: list[dict[str, Any]] = field(default_factory=list)
    reconciliations: list[dict[str, Any]] = field(default_factory=list)
    cancel_requests: Counter = field(default_factory=Counter)
    submit_unknown: int = 0
    batches: int = 0
    approvals: Counter = field(default_factory=Counter)
    latency_samples: dict[str, list[float]] = field(default_factory=dict)
    pnl: dict[str, Any] = field(default_factory=dict)
    account: dict[str, Any] | None = None
    unknown_events: int = 0

    def header(self) -> dict[str, Any]:
        rec = self.record
        if rec is None:
            ended_how = "unknown (not in the journal's manifest)"
        elif rec.ended_at is None:
            ended_how = "not sealed: still running, or the process stopped without sealing it (crash)"
        else:
            ended_how = rec.how_ended or "stopped"
        return {
            "session_id": self.session_id,
            "venue_date": rec.venue_date.isoformat() if rec else None,
            "config_hash": rec.config_hash if rec else None,
            "started_at": _iso(rec.started_at) if rec else None,
            "ended_at": _iso(rec.ended_at) if rec else None,
            "ended_how": ended_how,
            "sealed": bool(rec and rec.ended_at is not None),
            "runs": self.runs,
        }


@dataclass
class Report:
    """An execution report over one session or several (scope "all")."""

    journal_path: str
    scope: str  # the session id, or "all"
    sessions: list[SessionReport]
    generated_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    @property
    def session_id(self) -> str:
        return self.scope

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (Decimals as exact strings). One object
        for one session or for all: orders, fills and every count cover the
        sessions in scope; ``sessions`` has each session's header."""
        sessions = self.sessions
        orders = [o for s in sessions for o in s.orders]
        fills = [f for s in sessions for f in s.fills]
        samples: dict[str, list[float]] = {k: [] for k in LATENCY_KEYS}
        for s in sessions:
            for k in LATENCY_KEYS:
                samples[k].extend(s.latency_samples.get(k, []))
        denials = [d for s in sessions for d in s.denials]
        dropped = [d for s in sessions for d in s.dropped]
        approvals: Counter = Counter()
        cancels: Counter = Counter()
        for s in sessions:
            approvals.update(s.approvals)
            cancels.update(s.cancel_requests)
        last = sessions[-1]
        pnl = _combine_pnl([s.pnl for s in sessions])
        status_counts = Counter(o["status"] for o in orders)
        summary = {
            "orders": len(orders),
            "orders_by_status": dict(sorted(status_counts.items())),
            "batches": sum(s.batches for s in sessions),
            "fills": len(fills),
            "fill_rate": _fill_rate(orders),
            "slippage": _slippage_summary(fills),
            "pnl": {k: v for k, v in pnl.items() if k != "positions"},
            "account": last.account,
            "approvals": {k: approvals.get(k, 0) for k in ("requested", "approved", "rejected", "expired")},
            "denied": len(denials),
            "venue_rejected": sum(len(s.venue_rejections) for s in sessions),
            "submit_unknown": sum(s.submit_unknown for s in sessions),
            "dropped_signals": len(dropped),
            "cancel_requests_by_cause": dict(sorted(cancels.items())),
            "state_changes": sum(len(s.state_changes) for s in sessions),
            "kill_switch_events": sum(len(s.kill_switch) for s in sessions),
            "unknown_events": sum(s.unknown_events for s in sessions),
        }
        return _public({
            "report": "execdesk execution report",
            "generated_at": _iso(self.generated_at),
            "journal": self.journal_path,
            "session_id": self.scope,
            "sessions": [s.header() for s in sessions],
            "summary": summary,
            "latency_ms": {k: latency_stats(samples[k]) for k in LATENCY_KEYS},
            "orders": orders,
            "fills": fills,
            "positions": pnl["positions"],
            "denials_by_reason": _count_by(denials, "reason"),
            "denials": denials,
            "venue_rejections": [r for s in sessions for r in s.venue_rejections],
            "dropped_by_reason": _count_by(dropped, "code"),
            "dropped": dropped,
            "state_changes": [c for s in sessions for c in s.state_changes],
            "kill_switch": [k for s in sessions for k in s.kill_switch],
            "reconciliations": [r for s in sessions for r in s.reconciliations],
        })


def _count_by(rows: Iterable[dict[str, Any]], key: str) -> dict[str, int]:
    counts = Counter(str(r[key]) for r in rows)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _fill_rate(orders: list[dict[str, Any]]) -> dict[str, Any]:
    """Over this engine's orders that were sent to the venue (a SubmitSent was
    journaled): filled qty / submitted qty, filled orders / submitted orders."""
    sent = [o for o in orders if o["_submitted"] and not o["external"]]
    submitted_qty = sum((Decimal(o["qty"]) for o in sent), Decimal(0))
    filled_qty = sum((Decimal(o["filled_qty"]) for o in sent), Decimal(0))
    filled = sum(1 for o in sent if o["status"] == OrderStatus.FILLED.value)
    any_fill = sum(1 for o in sent if Decimal(o["filled_qty"]) > 0)
    return {
        "orders_submitted": len(sent),
        "orders_filled": filled,
        "orders_with_fills": any_fill,
        "orders_rate": _derived(_q(Decimal(filled) / len(sent), _RATE_PLACES)) if sent else None,
        "submitted_qty": _derived(submitted_qty),
        "filled_qty": _derived(filled_qty),
        "qty_rate": _derived(_q(filled_qty / submitted_qty, _RATE_PLACES)) if submitted_qty else None,
    }


def _slippage_summary(fills: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-fill slippage summarised: weighted by decision notional (the
    implementation shortfall of the session, in bps), the simple mean, the best
    and worst fill, and the cost in money (positive = paid)."""
    rows = [f for f in fills if f["slippage_bps"] is not None]
    if not rows:
        return {"fills": 0, "fills_without_decision_price": len(fills), "weighted_bps": None,
                "mean_bps": None, "best_bps": None, "worst_bps": None, "cost": "0"}
    cost = sum((Decimal(f["slippage_cost"]) for f in rows), Decimal(0))
    notional = sum((Decimal(f["decision_price"]) * Decimal(f["qty"]) for f in rows), Decimal(0))
    bps = [Decimal(f["slippage_bps"]) for f in rows]
    return {
        "fills": len(rows),
        "fills_without_decision_price": len(fills) - len(rows),
        "weighted_bps": _derived(_q(cost / notional * _BPS, _BPS_PLACES)) if notional else None,
        "mean_bps": _derived(_q(sum(bps, Decimal(0)) / len(bps), _BPS_PLACES)),
        "best_bps": _derived(min(bps)),
        "worst_bps": _derived(max(bps)),
        "cost": _derived(cost),
    }


def _combine_pnl(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One session's P&L as is; several: realized summed, positions and
    unrealized from the last session (they carry over)."""
    if len(parts) == 1:
        return parts[0]
    last = parts[-1]
    realized = sum((Decimal(p["realized"]) for p in parts), Decimal(0))
    out = dict(last)
    out["realized"] = _derived(realized)
    out["opening_positions_source"] = parts[0]["opening_positions_source"]
    out["realized_by_session"] = {p["session_id"]: p["realized"] for p in parts}
    return out


# ---- building -----------------------------------------------------------------------------


def build_report(journal: str | os.PathLike[str] | Journal, session_id: str | None = None) -> Report:
    """The report of one session of a journal (default: the latest), or of every
    session (session_id="all"). journal: a path (opened read-only) or an open
    Journal. Raises ReportError for a missing or unreadable journal, a journal
    without sessions, or an unknown session id."""
    own = not isinstance(journal, Journal)
    path = Path(journal) if own else journal.path
    if own and not path.exists():
        raise ReportError(f"journal {path}: no such file")
    if own and path.is_dir():
        raise ReportError(f"journal {path}: is a directory, not a journal file")
    try:
        j = Journal(path, readonly=True) if own else journal
        try:
            sessions = j.sessions()
            if not sessions:
                raise ReportError(f"journal {path} has no sessions yet")
            chosen = _choose(sessions, session_id, path)
            entries = list(j.replay())
        finally:
            if own:
                j.close()
    except ReportError:
        raise
    except JournalError as exc:
        raise ReportError(str(exc)) from exc
    except (sqlite3.Error, OSError) as exc:
        raise ReportError(f"journal {path}: cannot read: {exc}") from exc
    except (ValidationError, ValueError) as exc:
        raise ReportError(f"journal {path}: an event cannot be decoded: {exc}") from exc

    book = OrderBook.from_replay(entries)
    traces = _trace(entries)
    by_session: dict[str, list[JournalEntry]] = {r.session_id: [] for r in sessions}
    fill_seen: set[str] = set()
    unique_fill_seqs: set[int] = set()
    for entry in entries:
        e = entry.event
        if isinstance(e, ev.FillApplied) and e.fill.execution_id not in fill_seen:
            fill_seen.add(e.fill.execution_id)
            unique_fill_seqs.add(entry.seq)
        if entry.session_id in by_session:
            by_session[entry.session_id].append(entry)
    # Every session in journal order, so that positions carry from one to the next.
    built: dict[str, SessionReport] = {}
    carry: _Carry | None = None
    for rec in sessions:
        built[rec.session_id], carry = _session_report(
            rec, by_session[rec.session_id], book, traces, unique_fill_seqs, carry
        )
    reports = [built[rec.session_id] for rec in chosen]
    scope = "all" if session_id == "all" else chosen[0].session_id
    return Report(journal_path=str(path), scope=scope, sessions=reports)


def _choose(sessions: list[SessionRecord], session_id: str | None, path: Path) -> list[SessionRecord]:
    if session_id in (None, "", "latest"):
        return [sessions[-1]]
    if session_id == "all":
        return list(sessions)
    for rec in sessions:
        if rec.session_id == session_id:
            return [rec]
    known = ", ".join(r.session_id for r in sessions[-10:])
    more = f" (and {len(sessions) - 10} earlier)" if len(sessions) > 10 else ""
    raise ReportError(f"journal {path} has no session {session_id!r}; its sessions: {known}{more}")


def _trace(entries: list[JournalEntry]) -> dict[str, _Trace]:
    """Per client_order_id, the wall-clock entry time of each lifecycle step."""
    traces: dict[str, _Trace] = {}
    batch_start: dict[tuple, datetime] = {}

    def t(coid: str) -> _Trace:
        tr = traces.get(coid)
        if tr is None:
            tr = traces[coid] = _Trace()
        return tr

    for entry in entries:
        e = entry.event
        if isinstance(e, ev.IntentCreated):
            tr = t(e.order.client_order_id)
            if tr.created_ts is None:
                tr.created_ts, tr.session_id = entry.ts, entry.session_id
                if e.order.bar_ts is not None:
                    key = (entry.session_id, e.order.bar_ts, e.batch_seq)
                    tr.batch_key = key
                    batch_start.setdefault(key, entry.ts)
        elif isinstance(e, ev.ApprovalRequested):
            tr = t(e.client_order_id)
            tr.approval_requested_ts = tr.approval_requested_ts or entry.ts
        elif isinstance(e, ev.IntentApproved):
            tr = t(e.client_order_id)
            tr.approved_ts = tr.approved_ts or entry.ts
        elif isinstance(e, ev.SubmitSent):
            tr = t(e.client_order_id)
            tr.submit_ts = tr.submit_ts or entry.ts
        elif isinstance(e, (ev.SubmitAcked, ev.OrderStatusChanged)):
            tr = t(e.client_order_id)
            if tr.submit_ts is not None and tr.ack_ts is None:
                tr.ack_ts = entry.ts
        elif isinstance(e, ev.FillApplied):
            tr = t(e.fill.client_order_id)
            if tr.submit_ts is not None and tr.ack_ts is None:
                tr.ack_ts = entry.ts
            tr.first_fill_ts = tr.first_fill_ts or entry.ts
    for tr in traces.values():
        if tr.batch_key is not None:
            tr.created_ts = batch_start[tr.batch_key]  # the batch arrived with its first intent
    return traces


def _order_row(order: Order, session_id: str, tr: _Trace | None) -> dict[str, Any]:
    tr = tr or _Trace()
    slip = None
    if order.filled_avg_price is not None and order.filled_qty > 0:
        slip = _bps(order.side, order.filled_avg_price, order.decision_price)
    return {
        "session_id": session_id,
        "client_order_id": order.client_order_id,
        "symbol": order.symbol,
        "side": order.side.value,
        "qty": _dec(order.qty),
        "order_type": order.order_type.value,
        "time_in_force": order.time_in_force.value,
        "limit_price": _dec(order.limit_price),
        "status": order.status.value,
        "filled_qty": _dec(order.filled_qty),
        "filled_avg_price": _dec(order.filled_avg_price),
        "decision_price": _dec(order.decision_price),
        "slippage_bps": _derived(slip),
        "signal": order.signal,
        "reason": order.reason,
        "denial_reason": order.denial.value if order.denial is not None else None,
        "detail": order.denial_detail,
        "external": order.external,
        "reduce_only": order.reduce_only,
        "venue_order_id": order.venue_order_id,
        "bar_ts": _iso(order.bar_ts),
        "created_at": _iso(order.created_at),
        "submitted_at": _iso(order.submitted_at),
        "final_at": _iso(order.final_at),
        "fill_ids": list(order.fill_ids),
        "signal_to_submit_ms": _ms(tr.created_ts, tr.submit_ts),
        "approval_wait_ms": _ms(tr.approval_requested_ts, tr.approved_ts),
        "submit_to_ack_ms": _ms(tr.submit_ts, tr.ack_ts),
        "submit_to_first_fill_ms": _ms(tr.submit_ts, tr.first_fill_ts),
        "_submitted": tr.submit_ts is not None,
    }


def _session_report(
    rec: SessionRecord,
    entries: list[JournalEntry],
    book: OrderBook,
    traces: dict[str, _Trace],
    unique_fill_seqs: set[int],
    carry: "_Carry | None" = None,
) -> tuple[SessionReport, "_Carry"]:
    sid = rec.session_id
    rep = SessionReport(session_id=sid, record=rec)
    samples: dict[str, list[float]] = {k: [] for k in LATENCY_KEYS}
    rep.latency_samples = samples
    order_ids: list[str] = []
    seen_orders: set[str] = set()
    fills: list[tuple[JournalEntry, ev.FillApplied]] = []
    snapshots: list[tuple[JournalEntry, ev.PositionsSnapshot]] = []
    kill_requested: datetime | None = None

    for entry in entries:
        e = entry.event
        ts = _iso(entry.ts)
        if isinstance(e, ev.UnknownEvent):
            rep.unknown_events += 1
        elif isinstance(e, (ev.IntentCreated, ev.OrderExternal)):
            coid = e.order.client_order_id
            if coid not in seen_orders:
                seen_orders.add(coid)
                order_ids.append(coid)
        elif isinstance(e, ev.SessionStarted):
            rep.runs.append({"started": ts, "resumed": e.resumed, "resume_reason": e.resume_reason or None,
                             "config_changed": e.previous_config_hash is not None,
                             "ended": None, "how": None})
        elif isinstance(e, ev.SessionEnded):
            if rep.runs and rep.runs[-1]["ended"] is None:
                rep.runs[-1].update(ended=ts, how=e.how)
            else:
                rep.runs.append({"started": None, "resumed": None, "resume_reason": None,
                                 "config_changed": False, "ended": ts, "how": e.how})
        elif isinstance(e, ev.ApprovalRequested):
            rep.approvals["requested"] += 1
        elif isinstance(e, ev.IntentApproved):
            rep.approvals["approved"] += 1
        elif isinstance(e, ev.IntentRejected):
            rep.approvals["rejected"] += 1
        elif isinstance(e, ev.IntentExpired):
            rep.approvals["expired"] += 1
        elif isinstance(e, ev.SubmitRejected):
            rep.venue_rejections.append({"ts": ts, "client_order_id": e.client_order_id,
                                         "http_status": e.http_status, "code": e.code, "message": e.message})
        elif isinstance(e, ev.SubmitUnknown):
            rep.submit_unknown += 1
        elif isinstance(e, ev.CancelRequested):
            rep.cancel_requests[e.cause] += 1
        elif isinstance(e, ev.FillApplied):
            if entry.seq in unique_fill_seqs:
                fills.append((entry, e))
        elif isinstance(e, ev.TradingStateChanged):
            rep.state_changes.append({"ts": ts, "seq": entry.seq, "state": e.state.value,
                                      "previous": e.previous.value if e.previous else None, "cause": e.cause})
        elif isinstance(e, ev.KillSwitch):
            if e.phase == "requested":
                kill_requested = entry.ts
            rep.kill_switch.append({"ts": ts, "seq": entry.seq, "phase": e.phase, "counts": dict(e.counts),
                                    "detail": e.detail, "since_request_ms": _ms(kill_requested, entry.ts)})
        elif isinstance(e, ev.SignalDropped):
            rep.dropped.append({"ts": ts, "symbol": e.symbol, "code": _reason_code(e.reason),
                                "reason": e.reason, "line": e.line})
        elif isinstance(e, ev.BatchProcessed):
            rep.batches += 1
        elif isinstance(e, ev.AccountSnapshot):
            rep.account = {"ts": ts, "source": "AccountSnapshot", "equity": _dec(e.equity),
                           "last_equity": _dec(e.last_equity), "day_pl": _derived(e.equity - e.last_equity),
                           "cash": _dec(e.cash), "buying_power": _dec(e.buying_power)}
        elif isinstance(e, ev.PositionsSnapshot):
            snapshots.append((entry, e))
        elif isinstance(e, ev.ReconcileCompleted):
            rep.reconciliations.append({"ts": ts, "ok": e.ok, "trigger": e.trigger,
                                        "unaccounted": list(e.unaccounted), "counts": dict(e.counts)})

    for coid in order_ids:
        order = book.get(coid)
        if order is None:  # the book refused the intent itself (see OrderBook.skipped)
            continue
        tr = traces.get(coid)
        row = _order_row(order, sid, tr)
        rep.orders.append(row)
        if order.denial is not None:
            rep.denials.append({"client_order_id": coid, "symbol": order.symbol, "side": order.side.value,
                                "reason": order.denial.value, "detail": order.denial_detail})
        if tr is None or order.external:
            continue
        if tr.submit_ts is not None:
            samples["signal_to_submit"].append(row["signal_to_submit_ms"])
            if tr.approval_requested_ts is None:
                samples["signal_to_submit_auto"].append(row["signal_to_submit_ms"])
        for key in ("approval_wait", "submit_to_ack", "submit_to_first_fill"):
            value = row[f"{key}_ms"]
            if value is not None:
                samples[key].append(value)

    rep.fills, rep.pnl, carry = _fills_and_pnl(sid, fills, snapshots, book, carry)
    return rep, carry


@dataclass
class _Carry:
    """A session's closing positions and last prices, the next one's opening
    when it journaled no positions snapshot before its first fill."""

    session_id: str
    positions: dict[str, Position]
    marks: dict[str, tuple[int, Decimal, str]]


def _fills_and_pnl(
    sid: str,
    fills: list[tuple[JournalEntry, ev.FillApplied]],
    snapshots: list[tuple[JournalEntry, ev.PositionsSnapshot]],
    book: OrderBook,
    carry: _Carry | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any], _Carry]:
    first_fill_seq = fills[0][0].seq if fills else None
    opening = None
    for entry, snap in snapshots:
        if first_fill_seq is None or entry.seq < first_fill_seq:
            opening = (entry, snap)
    positions: dict[str, Position] = {}
    if opening is not None:
        for p in opening[1].positions:
            positions[p.symbol] = Position(symbol=p.symbol, qty=p.qty, avg_entry_price=p.avg_entry_price)
        opening_source = f"positions snapshot (journal seq {opening[0].seq})"
    elif carry is not None and any(p.qty != 0 for p in carry.positions.values()):
        for p in carry.positions.values():
            if p.qty != 0:
                positions[p.symbol] = Position(symbol=p.symbol, qty=p.qty, avg_entry_price=p.avg_entry_price)
        opening_source = f"carried from session {carry.session_id} (no positions snapshot before the first fill)"
    else:
        opening_source = "flat: no positions snapshot before the first fill, none carried"

    # the most recent price per symbol: (seq, price, source)
    marks: dict[str, tuple[int, Decimal, str]] = dict(carry.marks) if carry is not None else {}
    for entry, snap in snapshots:
        for p in snap.positions:
            if p.last_price is not None:
                marks[p.symbol] = (entry.seq, p.last_price, "positions_snapshot")

    rows: list[dict[str, Any]] = []
    realized_by_symbol: dict[str, Decimal] = {}
    for entry, e in fills:
        f = e.fill
        order = book.get(f.client_order_id)
        decision = order.decision_price if order is not None else None
        bps = _bps(f.side, f.price, decision)
        cost = f.side.sign * (f.price - decision) * f.qty if bps is not None else None
        pos = positions.setdefault(f.symbol, Position(symbol=f.symbol))
        realized = pos.apply_fill(f.side, f.qty, f.price)
        realized_by_symbol[f.symbol] = realized_by_symbol.get(f.symbol, Decimal(0)) + realized
        prev = marks.get(f.symbol)
        if prev is None or prev[0] < entry.seq:
            marks[f.symbol] = (entry.seq, f.price, "last_fill")
        rows.append({
            "session_id": sid,
            "execution_id": f.execution_id,
            "client_order_id": f.client_order_id,
            "symbol": f.symbol,
            "side": f.side.value,
            "qty": _dec(f.qty),
            "price": _dec(f.price),
            "ts": _iso(f.ts),
            "journaled_at": _iso(entry.ts),
            "journal_seq": entry.seq,
            "order_status": e.status.value if e.status is not None else None,
            "decision_price": _dec(decision),
            "slippage_bps": _derived(bps),
            "slippage_cost": _derived(cost),
            "realized_pl": _derived(realized),
        })

    last_fill_seq = fills[-1][0].seq if fills else 0
    broker_final = None
    if snapshots and snapshots[-1][0].seq > last_fill_seq:
        broker_final = {p.symbol: p for p in snapshots[-1][1].positions}
    pos_rows = []
    unrealized_total = Decimal(0)
    sources: set[str] = set()
    unmarked = []
    for symbol in sorted(set(positions) | set(broker_final or {})):
        pos = positions.get(symbol, Position(symbol=symbol))
        realized = realized_by_symbol.get(symbol, Decimal(0))
        if pos.qty == 0 and realized == 0 and not (broker_final and symbol in broker_final):
            continue
        mark = marks.get(symbol)
        unrealized = None
        if pos.qty != 0:
            if mark is not None:
                unrealized = (mark[1] - pos.avg_entry_price) * pos.qty
                unrealized_total += unrealized
                sources.add(mark[2])
            else:
                unmarked.append(symbol)
        broker = broker_final.get(symbol) if broker_final is not None else None
        broker_qty = (broker.qty if broker is not None else Decimal(0)) if broker_final is not None else None
        pos_rows.append({
            "symbol": symbol,
            "qty": _derived(pos.qty),
            "avg_entry_price": _derived(pos.avg_entry_price) if pos.qty != 0 else None,
            "mark_price": _dec(mark[1]) if mark is not None and pos.qty != 0 else None,
            "mark_source": mark[2] if mark is not None and pos.qty != 0 else None,
            "unrealized_pl": _derived(unrealized),
            "realized_pl": _derived(realized),
            "broker_qty": _derived(broker_qty),
            "matches_broker": None if broker_qty is None else broker_qty == pos.qty,
        })
    if not sources:
        source = "none (no open position)" if not unmarked else "none (no price in the journal)"
    elif len(sources) == 1:
        source = sources.pop()
    else:
        source = "mixed (per position: mark_source)"
    realized_total = sum(realized_by_symbol.values(), Decimal(0))
    pnl = {
        "session_id": sid,
        "method": "average cost",
        "opening_positions_source": opening_source,
        "realized": _derived(realized_total),
        "unrealized": _derived(unrealized_total),
        "unrealized_source": source,
        "unmarked_symbols": unmarked,
        "positions": pos_rows,
    }
    if broker_final is not None:  # the broker's word is the closing position
        closing = {sym: Position(symbol=sym, qty=p.qty, avg_entry_price=p.avg_entry_price)
                   for sym, p in broker_final.items()}
    else:
        closing = {sym: p for sym, p in positions.items() if p.qty != 0}
    return rows, pnl, _Carry(sid, closing, marks)


# ---- rendering -------------------------------------------------------------------------------


def render(report: Report, fmt: str = "text", *, table: str = "orders", color: bool = False) -> str:
    """The report as text (a terminal report), md (Markdown), csv (one table:
    table="orders" or "fills") or json (one object). color: bold titles in text
    (ANSI), for a terminal."""
    data = report.to_dict()
    if fmt == "json":
        return json.dumps(data, indent=2, ensure_ascii=False)
    if fmt == "csv":
        if table not in CSV_TABLES:
            raise ValueError(f"csv table must be one of {', '.join(CSV_TABLES)}, not {table!r}")
        return _render_csv(data, table)
    if fmt == "md":
        return _render_md(data)
    if fmt == "text":
        return _render_text(data, color=color)
    raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")


def _public(value: Any) -> Any:
    """Drop the private keys (leading underscore) before output."""
    if isinstance(value, dict):
        return {k: _public(v) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, list):
        return [_public(v) for v in value]
    return value


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.3e}"
    return str(value)


def _num(value: str | None, places: int) -> str:
    """A Decimal string rounded for reading (exact figures are in the JSON)."""
    if value is None:
        return ""
    try:
        return f"{Decimal(value):,.{places}f}"
    except (InvalidOperation, ValueError):
        return str(value)


def _pct(rate: str | None) -> str:
    return "" if rate is None else f"{Decimal(rate) * 100:.2f}%"


def _ts(value: str | None) -> str:
    """An ISO timestamp for reading: "2026-03-05 14:30:05.020" (UTC), exact in the JSON."""
    if not value:
        return ""
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        return value
    if t.tzinfo is not None:
        t = t.astimezone(timezone.utc)
    return t.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + ("Z" if t.tzinfo is not None else "")


def _ms_cell(value: float | None) -> str:
    return "" if value is None else f"{value:,.1f}"


# sections shared by text and Markdown: (title, columns, rows) -----------------------------------


def _sections(data: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]], str | None]]:
    s = data["summary"]
    fr, sl, pnl = s["fill_rate"], s["slippage"], s["pnl"]
    acct = s["account"]
    multi = data["session_id"] == "all"
    out: list[tuple[str, list[str], list[list[str]], str | None]] = []

    sess_rows = []
    for h in data["sessions"]:
        runs = len(h["runs"])
        sess_rows.append([h["session_id"], h["venue_date"] or "", _ts(h["started_at"]), _ts(h["ended_at"]),
                          h["ended_how"], str(runs)])
    out.append(("Session" + ("s" if multi else ""),
                ["session", "venue date", "started", "ended", "how it ended", "runs"], sess_rows, None))

    summary = [
        ["orders", str(s["orders"])],
        ["orders by status", ", ".join(f"{k} {v}" for k, v in s["orders_by_status"].items()) or "none"],
        ["batches processed", str(s["batches"])],
        ["orders submitted", str(fr["orders_submitted"])],
        ["fill rate (orders)", f"{fr['orders_filled']}/{fr['orders_submitted']} filled "
                               f"({_pct(fr['orders_rate'])}); {fr['orders_with_fills']} with any fill"],
        ["fill rate (qty)", f"{_num(fr['filled_qty'], 2)} / {_num(fr['submitted_qty'], 2)} ({_pct(fr['qty_rate'])})"],
        ["fills", str(s["fills"])],
        ["slippage (notional-weighted)", f"{_num(sl['weighted_bps'], 2)} bps" if sl["weighted_bps"] else "n/a"],
        ["slippage (mean / best / worst)",
         f"{_num(sl['mean_bps'], 2)} / {_num(sl['best_bps'], 2)} / {_num(sl['worst_bps'], 2)} bps"
         if sl["mean_bps"] is not None else "n/a"],
        ["slippage cost", _num(sl["cost"], 2)],
        ["realized P&L (average cost)", _num(pnl["realized"], 2)],
        ["unrealized P&L", f"{_num(pnl['unrealized'], 2)} (marked at: {pnl['unrealized_source']})"],
        ["opening positions", pnl["opening_positions_source"]],
    ]
    if acct:
        summary.append(["account (last snapshot)",
                        f"equity {_num(acct['equity'], 2)}, day P&L {_num(acct['day_pl'], 2)} "
                        f"(equity - last_equity)"])
    ap = s["approvals"]
    summary += [
        ["approvals", f"requested {ap['requested']}, approved {ap['approved']}, "
                      f"rejected {ap['rejected']}, expired {ap['expired']}"],
        ["not sent (denied, operator-rejected, approval expired)", str(s["denied"])],
        ["rejected by the venue", str(s["venue_rejected"])],
        ["submit outcome unknown", str(s["submit_unknown"])],
        ["dropped signals", str(s["dropped_signals"])],
        ["cancel requests", ", ".join(f"{k} {v}" for k, v in s["cancel_requests_by_cause"].items()) or "0"],
        ["risk-state changes", str(s["state_changes"])],
        ["kill-switch events", str(s["kill_switch_events"])],
    ]
    out.append(("Summary", ["figure", "value"], summary, None))

    lat_rows = []
    for key, st in data["latency_ms"].items():
        lat_rows.append([key.replace("_", " "), str(st["count"]), _ms_cell(st["p50"]), _ms_cell(st["p90"]),
                         _ms_cell(st["p99"]), _ms_cell(st["max"])])
    out.append(("Latency (ms, from journal times)", ["series", "n", "p50", "p90", "p99", "max"], lat_rows, None))

    order_cols = (["session"] if multi else []) + [
        "client_order_id", "symbol", "side", "qty", "status", "filled", "avg price", "limit", "decision",
        "slip bps", "signal", "reason", "denial / detail", "ext"]
    order_rows = []
    for o in data["orders"]:
        denial = o["denial_reason"] or ""
        if o["detail"]:
            denial = f"{denial}: {o['detail']}" if denial else o["detail"]
        row = [o["client_order_id"], o["symbol"], o["side"], _cell(o["qty"]), o["status"], _cell(o["filled_qty"]),
               _num(o["filled_avg_price"], 4), _cell(o["limit_price"]), _cell(o["decision_price"]),
               _num(o["slippage_bps"], 2), "" if o["signal"] is None else f"{o['signal']:+.3f}",
               o["reason"] or "", _printable(denial, 60), "ext" if o["external"] else ""]
        order_rows.append(([o["session_id"]] if multi else []) + row)
    out.append((f"Orders ({len(order_rows)})", order_cols, order_rows, "no orders"))

    fill_rows = [[f["execution_id"], f["client_order_id"], f["symbol"], f["side"], f["qty"], f["price"], _ts(f["ts"]),
                  _num(f["slippage_bps"], 2), _num(f["realized_pl"], 2)] for f in data["fills"]]
    out.append((f"Fills ({len(fill_rows)})",
                ["execution_id", "client_order_id", "symbol", "side", "qty", "price", "ts", "slip bps", "realized"],
                fill_rows, "no fills"))

    pos_rows = [[p["symbol"], p["qty"], _num(p["avg_entry_price"], 4), _num(p["mark_price"], 4),
                 p["mark_source"] or "", _num(p["unrealized_pl"], 2), _num(p["realized_pl"], 2),
                 _cell(p["broker_qty"])] for p in data["positions"]]
    out.append(("Positions and P&L (average cost)",
                ["symbol", "qty", "avg entry", "mark", "mark source", "unrealized", "realized", "broker qty"],
                pos_rows, "no positions"))

    out.append(("Denials by reason (local checks, nothing sent)", ["reason", "count"],
                [[k, str(v)] for k, v in data["denials_by_reason"].items()], "no denials"))
    out.append(("Rejected by the venue", ["client_order_id", "http", "code", "message"],
                [[r["client_order_id"], _cell(r["http_status"]), _cell(r["code"]), _printable(r["message"], 80)]
                 for r in data["venue_rejections"]], "no venue rejections"))
    out.append(("Dropped signals by reason", ["reason", "count"],
                [[k, str(v)] for k, v in data["dropped_by_reason"].items()], "no dropped signals"))
    out.append(("Dropped signals", ["ts", "symbol", "reason", "input"],
                [[_ts(d["ts"]), d["symbol"] or "", _printable(d["reason"], 60), _printable(d["line"], 50)]
                 for d in data["dropped"]], None))
    out.append(("Risk-state changes", ["ts", "from", "to", "cause"],
                [[_ts(c["ts"]), c["previous"] or "", c["state"], _printable(c["cause"], 80)] for c in data["state_changes"]],
                "no risk-state changes"))
    out.append(("Kill switch", ["ts", "phase", "after request (ms)", "counts", "detail"],
                [[_ts(k["ts"]), k["phase"], _ms_cell(k["since_request_ms"]),
                  ", ".join(f"{a} {b}" for a, b in k["counts"].items()), _printable(k["detail"], 60)]
                 for k in data["kill_switch"]], "no kill-switch events"))
    return out


_NUMERIC_CHARS = frozenset("0123456789+-.,%")


def _is_numeric(cell: str) -> bool:
    return bool(cell) and cell[0] in "+-0123456789" and set(cell) <= _NUMERIC_CHARS


def _text_table(cols: list[str], rows: list[list[str]]) -> list[str]:
    """Aligned columns (numbers to the right), a rule under the header. Plain
    string work: a table of 10,000 orders renders in a fraction of a second."""
    widths = [len(c) for c in cols]
    numeric = [True] * len(cols)
    for r in rows:
        for i, cell in enumerate(r):
            if len(cell) > widths[i]:
                widths[i] = len(cell)
            if cell and numeric[i] and not _is_numeric(cell):
                numeric[i] = False

    def line(cells: list[str]) -> str:
        out = [c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, numeric)]
        return "   ".join(out).rstrip()

    return [line(cols), "   ".join("─" * w for w in widths), *(line(r) for r in rows)]


def _render_text(data: dict[str, Any], *, color: bool = False) -> str:
    bold, plain = ("\x1b[1m", "\x1b[0m") if color else ("", "")
    lines = [f"{bold}execdesk execution report{plain}",
             f"journal: {_printable(data['journal'], 200)}   scope: {data['session_id']}   "
             f"generated: {_ts(data['generated_at'])}"]
    for title, cols, rows, empty in _sections(data):
        if not rows:
            if empty:
                lines += ["", f"{bold}{title}{plain}: {empty}"]
            continue
        lines += ["", f"{bold}{title}{plain}", *_text_table(cols, rows)]
    return "\n".join(lines) + "\n"


def _md_escape(value: str) -> str:
    return _printable(value, 200).replace("\\", "\\\\").replace("|", "\\|").replace("`", "\\`")


def _render_md(data: dict[str, Any]) -> str:
    lines = ["# execdesk execution report", "",
             f"- journal: `{_md_escape(data['journal'])}`",
             f"- scope: `{data['session_id']}`",
             f"- generated: {_ts(data['generated_at'])}", ""]
    for title, cols, rows, empty in _sections(data):
        if not rows and not empty:
            continue
        lines += [f"## {title}", ""]
        if not rows:
            lines += [f"_{empty}_", ""]
            continue
        lines.append("| " + " | ".join(_md_escape(c) for c in cols) + " |")
        lines.append("|" + "|".join("---" for _ in cols) + "|")
        for r in rows:
            lines.append("| " + " | ".join(_md_escape(x) for x in r) + " |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _render_csv(data: dict[str, Any], table: str) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    cols = ORDER_COLUMNS if table == "orders" else FILL_COLUMNS
    w.writerow(cols)
    for row in data[table]:
        w.writerow([_csv_cell(row.get(c)) for c in cols])
    return buf.getvalue()


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# ---- command line -------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`execdesk report` options."""
    parser.add_argument(
        "--journal", metavar="PATH", default=None,
        help="journal file (default: session.journal_path of the configuration)",
    )
    parser.add_argument(
        "--format", choices=FORMATS, default="text",
        help="text (default, for a terminal), md (Markdown), csv (one table, see --table) or json (one object)",
    )
    parser.add_argument(
        "--session", metavar="ID|all", default=None,
        help="the session to report: a session id, 'latest' (default) or 'all'",
    )
    parser.add_argument(
        "--table", choices=CSV_TABLES, default="orders",
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


def _error(message: str) -> None:
    for line in str(message).splitlines() or [""]:
        print(f"error: {line}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    """`execdesk report`: print the report; 0, or `error: ...` on stderr and 2
    (missing or unreadable journal, unknown session), never a traceback."""
    fmt = getattr(args, "format", "text") or "text"
    try:
        path = _journal_path(args)
        report = build_report(path, getattr(args, "session", None))
        color = fmt == "text" and sys.stdout.isatty() and not os.environ.get("NO_COLOR")
        text = render(report, fmt, table=getattr(args, "table", "orders") or "orders", color=color)
    except ReportError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except Exception as exc:  # a bug, or a journal this version does not understand
        _error(f"cannot build the report: {type(exc).__name__}: {exc}")
        return EXIT_FAILURE
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:  # `execdesk report | head`
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except OSError:
            pass
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m engine.report` (the same as `execdesk report`)."""
    parser = argparse.ArgumentParser(prog="execdesk report", description="execution report from a journal")
    parser.add_argument("-c", "--config", metavar="PATH", default=None)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
