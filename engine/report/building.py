"""Building the report from the journal: every event of a session read back once, the
orders in the state a replay of the whole journal gives, their latencies from journal
times, and the session's counts (approvals, denials, drops, state changes, kill switch).

The journal is read without pydantic (engine/report/light.py: stdlib json into light
events, a light fold of the orders); engine.events is imported only to word the error
for a row the light decoder cannot read."""

from __future__ import annotations

import os
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from engine.report import light
from engine.report.figures import (
    LATENCY_KEYS,
    ReportError,
    _dec,
    _derived,
    _iso,
    _ms,
    _reason_code,
    gc_paused,
    latency_stats,
)
from engine.report.light import Book, Entry, LightDecodeError, Record

if TYPE_CHECKING:
    from engine.journal import Journal, SessionRecord

from engine.report.pnl import (
    _bps,
    _Carry,
    _combine_pnl,
    _fill_rate,
    _fills_and_pnl,
    _slippage_summary,
)


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
    record: SessionRecord | Record | None
    runs: list[dict[str, Any]] = field(default_factory=list)
    orders: list[dict[str, Any]] = field(default_factory=list)
    fills: list[dict[str, Any]] = field(default_factory=list)
    denials: list[dict[str, Any]] = field(default_factory=list)
    venue_rejections: list[dict[str, Any]] = field(default_factory=list)
    dropped: list[dict[str, Any]] = field(default_factory=list)
    state_changes: list[dict[str, Any]] = field(default_factory=list)
    overrides: list[dict[str, Any]] = field(default_factory=list)
    kill_switch: list[dict[str, Any]] = field(default_factory=list)
    reconciliations: list[dict[str, Any]] = field(default_factory=list)
    cancel_requests: Counter = field(default_factory=Counter)
    submit_unknown: int = 0
    batches: int = 0
    skipped_batches: int = 0  # signal batches of a backlog not acted on (SignalsSkipped.count)
    approvals: Counter = field(default_factory=Counter)
    latency_samples: dict[str, list[float]] = field(default_factory=dict)
    pnl: dict[str, Any] = field(default_factory=dict)
    account: dict[str, Any] | None = None
    unknown_events: int = 0
    submitted: set[str] = field(default_factory=set)  # this engine's orders a SubmitSent was journaled for
    #: the orders' and fills' cells in the text tables, when the report fold made them
    #: (renderers.order_cells_of, fill_cells_of; None: made when rendered)
    cells: dict[str, list[list[str]]] | None = None

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
            "runs": [dict(r) for r in self.runs],
        }


@dataclass
class Report:
    """An execution report over one session or several (scope "all")."""

    journal_path: str
    scope: str  # the session id, or "all"
    sessions: list[SessionReport]
    generated_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def session_id(self) -> str:
        return self.scope

    def cells(self) -> dict[str, list[list[str]]] | None:
        """The cells of to_dict()'s orders and fills in the text tables, in their order,
        when every session has them (engine/report/fold.py); else None."""
        if any(s.cells is None for s in self.sessions):
            return None
        return {
            name: [c for s in self.sessions if s.cells is not None for c in s.cells[name]]
            for name in ("orders", "fills")
        }

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (Decimals as exact strings). One object
        for one session or for all: orders, fills and every count cover the
        sessions in scope; ``sessions`` has each session's header. Its lists and
        their rows are new on every call; what a row holds is shared."""
        sessions = self.sessions
        orders = [dict(o) for s in sessions for o in s.orders]
        fills = [dict(f) for s in sessions for f in s.fills]
        samples: dict[str, list[float]] = {k: [] for k in LATENCY_KEYS}
        for s in sessions:
            for k in LATENCY_KEYS:
                samples[k].extend(s.latency_samples.get(k, []))
        denials = [dict(d) for s in sessions for d in s.denials]
        dropped = [dict(d) for s in sessions for d in s.dropped]
        submitted = set().union(*(s.submitted for s in sessions))
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
            "fill_rate": _fill_rate(orders, submitted),
            "slippage": _slippage_summary(fills),
            "pnl": {k: v for k, v in pnl.items() if k != "positions"},
            "account": last.account,
            "approvals": {k: approvals.get(k, 0) for k in ("requested", "approved", "rejected", "expired")},
            "denied": len(denials),
            "venue_rejected": sum(len(s.venue_rejections) for s in sessions),
            "submit_unknown": sum(s.submit_unknown for s in sessions),
            "dropped_signals": len(dropped),
            "skipped_signal_batches": sum(s.skipped_batches for s in sessions),
            "cancel_requests_by_cause": dict(sorted(cancels.items())),
            "state_changes": sum(len(s.state_changes) for s in sessions),
            "kill_switch_events": sum(len(s.kill_switch) for s in sessions),
            "unknown_events": sum(s.unknown_events for s in sessions),
        }
        return {
            "report": "execdesk execution report",
            "generated_at": _iso(self.generated_at),
            "journal": self.journal_path,
            "session_id": self.scope,
            "sessions": [s.header() for s in sessions],
            "summary": summary,
            "latency_ms": {k: latency_stats(samples[k]) for k in LATENCY_KEYS},
            "orders": orders,
            "fills": fills,
            "positions": [dict(p) for p in pnl["positions"]],
            "denials_by_reason": _count_by(denials, "reason"),
            "denials": denials,
            "venue_rejections": [dict(r) for s in sessions for r in s.venue_rejections],
            "dropped_by_reason": _count_by(dropped, "code"),
            "dropped": dropped,
            "state_changes": [dict(c) for s in sessions for c in s.state_changes],
            "overrides": [dict(o) for s in sessions for o in s.overrides],
            "kill_switch": [dict(k) for s in sessions for k in s.kill_switch],
            "reconciliations": [dict(r) for s in sessions for r in s.reconciliations],
        }


def _count_by(rows: Iterable[dict[str, Any]], key: str) -> dict[str, int]:
    counts = Counter(str(r[key]) for r in rows)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


# ---- building -----------------------------------------------------------------------------


def build_report(journal: str | os.PathLike[str] | Journal, session_id: str | None = None) -> Report:
    """The report of one session of a journal (default: the latest), or of every
    session (session_id="all"). journal: a path (opened read-only) or an open
    Journal. Raises ReportError for a missing or unreadable journal, a journal
    without sessions, or an unknown session id."""
    with gc_paused():
        return _build_report(journal, session_id)


def _build_report(journal: str | os.PathLike[str] | Journal, session_id: str | None) -> Report:
    own = isinstance(journal, (str, os.PathLike))
    path = Path(journal) if isinstance(journal, (str, os.PathLike)) else journal.path
    if own and not path.exists():
        raise ReportError(f"journal {path}: no such file")
    if own and path.is_dir():
        raise ReportError(f"journal {path}: is a directory, not a journal file")
    if own:
        read = _read_file(path)
        if read is None:  # not a journal this reader can open: the journal's own words
            read = _read_journal(path, None)
    else:
        assert not isinstance(journal, (str, os.PathLike))
        read = _read_journal(path, journal)
    sessions, rows = read
    if not sessions:
        raise ReportError(f"journal {path} has no sessions yet")
    chosen = _choose(sessions, session_id, path)
    try:
        entries = list(light.decode_rows(rows))
    except LightDecodeError as exc:
        raise ReportError(f"journal {path}: an event cannot be decoded: {_decode_problem(exc)}") from None

    book = Book.from_entries(entries)
    traces = _trace(entries)
    by_session: dict[str, list[Entry]] = {r.session_id: [] for r in sessions}
    fill_seen: set[str] = set()
    unique_fill_seqs: set[int] = set()
    for entry in entries:
        if entry.kind == "FillApplied" and entry.event.fill.execution_id not in fill_seen:
            fill_seen.add(entry.event.fill.execution_id)
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


#: the journal schema this reader knows (engine.journal.SCHEMA_VERSION: kept equal by a test)
SCHEMA_VERSION = 1
_SESSIONS_SQL = (
    "SELECT session_id, config_hash, venue_date, started_at, ended_at, how_ended FROM sessions ORDER BY rowid"
)
_EVENTS_SQL = "SELECT seq, ts, session_id, type, payload FROM events ORDER BY seq"


def open_snapshot(path: Path) -> sqlite3.Connection | None:
    """A read-only connection to a journal file through sqlite3 alone, in one read
    transaction (every query sees the same snapshot); None when the file cannot be
    opened or is not a journal of this schema. The caller closes it."""
    try:
        conn = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True, isolation_level=None)
    except (sqlite3.Error, OSError):
        return None
    try:
        conn.execute("PRAGMA query_only=ON")
        if conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
            conn.execute("BEGIN")
            return conn
    except sqlite3.Error:
        pass
    conn.close()
    return None


def _read_file(path: Path) -> tuple[list[Any], list[tuple]] | None:
    """The sessions and every event row of a journal file, read in one snapshot through
    sqlite3 alone (no engine.journal: it imports the models); None when the file is not
    a journal of this schema (then engine.journal opens it and says why)."""
    conn = open_snapshot(path)
    if conn is None:
        return None
    try:
        sessions = [_record(r) for r in conn.execute(_SESSIONS_SQL).fetchall()]
        rows = conn.execute(_EVENTS_SQL).fetchall()
    except (sqlite3.Error, ValueError, TypeError):
        return None
    finally:
        conn.close()
    return sessions, rows


def _record(row: tuple) -> Record:
    sid, config_hash, venue_date, started, ended, how = row
    return Record(
        session_id=sid,
        config_hash=config_hash,
        venue_date=date.fromisoformat(venue_date),
        started_at=datetime.fromisoformat(started),
        ended_at=datetime.fromisoformat(ended) if ended else None,
        how_ended=how,
    )


def _read_journal(path: Path, journal: Journal | None) -> tuple[list[Any], list[tuple]]:
    """The same through engine.journal: an open Journal (its write-behind committed
    first), or a file the direct read could not open (the journal's error)."""
    from engine.journal import Journal, JournalError

    try:
        j = journal if journal is not None else Journal(path, readonly=True)
        try:
            return list(j.sessions()), list(j.rows())
        finally:
            if journal is None:
                j.close()
    except JournalError as exc:
        raise ReportError(str(exc)) from exc
    except (sqlite3.Error, OSError, ValueError) as exc:
        raise ReportError(f"journal {path}: cannot read: {exc}") from exc


def _decode_problem(exc: LightDecodeError) -> str:
    """What engine.events.decode says of a row the light decoder could not read."""
    from engine import events as ev

    try:
        ev.decode(exc.type_name, exc.payload)
    except ValueError as full:
        return str(full)
    return str(exc)


def _choose(sessions: list[Any], session_id: str | None, path: Path) -> list[Any]:
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


def _trace(entries: list[Entry]) -> dict[str, _Trace]:
    """Per client_order_id, the wall-clock entry time of each lifecycle step."""
    traces: dict[str, _Trace] = {}
    batch_start: dict[tuple, datetime] = {}
    steps = _TRACE_STEPS
    for entry in entries:
        step = steps.get(entry.kind)
        if step is not None:
            step(traces, batch_start, entry, entry.event)
    for tr in traces.values():
        if tr.batch_key is not None:
            tr.created_ts = batch_start[tr.batch_key]  # the batch arrived with its first intent
    return traces


def _traced(traces: dict[str, _Trace], coid: str) -> _Trace:
    tr = traces.get(coid)
    if tr is None:
        tr = traces[coid] = _Trace()
    return tr


def _trace_created(traces, batch_start, entry: Entry, e: Any) -> None:
    tr = _traced(traces, e.order.client_order_id)
    if tr.created_ts is None:
        tr.created_ts, tr.session_id = entry.ts, entry.session_id
        if e.order.bar_ts is not None:
            key = (entry.session_id, e.order.bar_ts, e.batch_seq)
            tr.batch_key = key
            batch_start.setdefault(key, entry.ts)


def _trace_approval_requested(traces, batch_start, entry: Entry, e: Any) -> None:
    tr = _traced(traces, e.client_order_id)
    tr.approval_requested_ts = tr.approval_requested_ts or entry.ts


def _trace_approved(traces, batch_start, entry: Entry, e: Any) -> None:
    tr = _traced(traces, e.client_order_id)
    tr.approved_ts = tr.approved_ts or entry.ts


def _trace_sent(traces, batch_start, entry: Entry, e: Any) -> None:
    tr = _traced(traces, e.client_order_id)
    tr.submit_ts = tr.submit_ts or entry.ts


def _trace_venue_word(traces, batch_start, entry: Entry, e: Any) -> None:
    tr = _traced(traces, e.client_order_id)
    if tr.submit_ts is not None and tr.ack_ts is None:
        tr.ack_ts = entry.ts


def _trace_fill(traces, batch_start, entry: Entry, e: Any) -> None:
    tr = _traced(traces, e.fill.client_order_id)
    if tr.submit_ts is not None and tr.ack_ts is None:
        tr.ack_ts = entry.ts
    tr.first_fill_ts = tr.first_fill_ts or entry.ts


# One step per event type (by the row's type).
_TRACE_STEPS: dict[str, Callable[..., None]] = {
    "IntentCreated": _trace_created,
    "ApprovalRequested": _trace_approval_requested,
    "IntentApproved": _trace_approved,
    "SubmitSent": _trace_sent,
    "SubmitAcked": _trace_venue_word,
    "OrderStatusChanged": _trace_venue_word,
    "FillApplied": _trace_fill,
}


_NO_TRACE = _Trace()  # (read only)


def _order_row(order: Any, session_id: str, tr: _Trace | None) -> dict[str, Any]:
    # (enum members' _value_: their value without Enum's descriptor, at 10,000 rows)
    tr = tr or _NO_TRACE
    slip = None
    filled_avg = order.filled_avg_price
    if filled_avg is not None and order.filled_qty > 0:
        slip = _bps(order.side, filled_avg, order.decision_price)
    denial = order.denial
    submit_ts = tr.submit_ts
    return {
        "session_id": session_id,
        "client_order_id": order.client_order_id,
        "symbol": order.symbol,
        "side": order.side._value_,
        "qty": _dec(order.qty),
        "order_type": order.order_type._value_,
        "time_in_force": order.time_in_force._value_,
        "limit_price": _dec(order.limit_price),
        "status": order.status._value_,
        "filled_qty": _dec(order.filled_qty),
        "filled_avg_price": _dec(filled_avg),
        "decision_price": _dec(order.decision_price),
        "slippage_bps": _derived(slip),
        "signal": order.signal,
        "reason": order.reason,
        "denial_reason": denial._value_ if denial is not None else None,
        "detail": order.denial_detail,
        "external": order.external,
        "reduce_only": order.reduce_only,
        "venue_order_id": order.venue_order_id,
        "bar_ts": _iso(order.bar_ts),
        "created_at": _iso(order.created_at),
        "submitted_at": _iso(order.submitted_at),
        "final_at": _iso(_real_time(order.final_at)),
        "fill_ids": list(order.fill_ids),
        "signal_to_submit_ms": _ms(tr.created_ts, submit_ts),
        "approval_wait_ms": _ms(tr.approval_requested_ts, tr.approved_ts),
        "submit_to_ack_ms": _ms(submit_ts, tr.ack_ts),
        "submit_to_first_fill_ms": _ms(submit_ts, tr.first_fill_ts),
    }


def _real_time(value: datetime | None) -> datetime | None:
    """None for the far-future deadline that journals before the fix recorded as
    the time of intents expired at the next bar (9999-01-01 is not a time)."""
    return None if value is None or value.year >= 9999 else value


def _session_report(
    rec: Any,
    entries: list[Entry],
    book: Book,
    traces: dict[str, _Trace],
    unique_fill_seqs: set[int],
    carry: _Carry | None = None,
) -> tuple[SessionReport, _Carry]:
    sid = rec.session_id
    reader = _SessionReader(SessionReport(session_id=sid, record=rec), unique_fill_seqs)
    reader.read(entries)
    rep = reader.rep
    samples: dict[str, list[float]] = {k: [] for k in LATENCY_KEYS}
    rep.latency_samples = samples

    for coid in reader.order_ids:
        order = book.get(coid)
        if order is None:  # the book refused the intent itself (see OrderBook.skipped)
            continue
        _add_order(rep, samples, _order_entry(order, sid, traces.get(coid)))

    rep.fills, rep.pnl, carry = _fills_and_pnl(sid, reader.fills, reader.snapshots, book, carry)
    return rep, carry


#: what one order gives its session's report: (row, denial or None, submitted, whether its
#: latencies count: traced and not external, signal_to_submit only with submitted)
OrderEntry = tuple[dict[str, Any], "dict[str, Any] | None", bool, bool, bool]


def _order_entry(order: Any, sid: str, tr: _Trace | None) -> OrderEntry:
    """An order's row in its session's report, and what the session's figures take from it."""
    row = _order_row(order, sid, tr)
    denial = None
    if order.denial is not None:
        denial = {
            "client_order_id": order.client_order_id,
            "symbol": order.symbol,
            "side": order.side._value_,
            "reason": order.denial._value_,
            "detail": order.denial_detail,
        }
    counted = tr is not None and not order.external
    submitted = counted and tr is not None and tr.submit_ts is not None
    auto = submitted and tr is not None and tr.approval_requested_ts is None
    return row, denial, counted, submitted, auto


def _add_order(rep: SessionReport, samples: dict[str, list[float]], entry: OrderEntry) -> None:
    """An order's entry (_order_entry) into its session's report, in the session's order."""
    row, denial, counted, submitted, auto = entry
    rep.orders.append(row)
    if denial is not None:
        rep.denials.append(denial)
    if not counted:
        return
    if submitted:
        rep.submitted.add(row["client_order_id"])
        samples["signal_to_submit"].append(row["signal_to_submit_ms"])
        if auto:
            samples["signal_to_submit_auto"].append(row["signal_to_submit_ms"])
    for key in ("approval_wait", "submit_to_ack", "submit_to_first_fill"):
        value = row[f"{key}_ms"]
        if value is not None:
            samples[key].append(value)


class _SessionReader:
    """Reads one session's journal entries into its SessionReport: one handler per
    event type (the table below); other events are not in the report."""

    def __init__(self, rep: SessionReport, unique_fill_seqs: set[int]):
        self.rep = rep
        self.unique_fill_seqs = unique_fill_seqs
        self.order_ids: list[str] = []
        self.seen_orders: set[str] = set()
        self.fills: list[tuple[Entry, Any]] = []
        self.snapshots: list[tuple[Entry, Any]] = []
        self.kill_requested: datetime | None = None

    def read(self, entries: Iterable[Entry]) -> None:
        handlers = self.HANDLERS
        for entry in entries:
            handler = handlers.get(entry.kind)
            if handler is not None:
                handler(self, entry, entry.event)

    def _unknown(self, entry: Entry, e: Any) -> None:
        self.rep.unknown_events += 1

    def _order(self, entry: Entry, e: Any) -> None:
        coid = e.order.client_order_id
        if coid not in self.seen_orders:
            self.seen_orders.add(coid)
            self.order_ids.append(coid)

    def _started(self, entry: Entry, e: Any) -> None:
        self.rep.runs.append(
            {
                "started": _iso(entry.ts),
                "resumed": e.resumed,
                "resume_reason": e.resume_reason or None,
                "config_changed": e.previous_config_hash is not None,
                "ended": None,
                "how": None,
            }
        )

    def _ended(self, entry: Entry, e: Any) -> None:
        runs, ts = self.rep.runs, _iso(entry.ts)
        if runs and runs[-1]["ended"] is None:
            runs[-1].update(ended=ts, how=e.how)
        else:
            runs.append(
                {
                    "started": None,
                    "resumed": None,
                    "resume_reason": None,
                    "config_changed": False,
                    "ended": ts,
                    "how": e.how,
                }
            )

    def _approval_requested(self, entry: Entry, e: Any) -> None:
        self.rep.approvals["requested"] += 1

    def _approved(self, entry: Entry, e: Any) -> None:
        self.rep.approvals["approved"] += 1

    def _rejected(self, entry: Entry, e: Any) -> None:
        self.rep.approvals["rejected"] += 1

    def _expired(self, entry: Entry, e: Any) -> None:
        self.rep.approvals["expired"] += 1

    def _venue_rejected(self, entry: Entry, e: Any) -> None:
        self.rep.venue_rejections.append(
            {
                "ts": _iso(entry.ts),
                "client_order_id": e.client_order_id,
                "http_status": e.http_status,
                "code": e.code,
                "message": e.message,
            }
        )

    def _submit_unknown(self, entry: Entry, e: Any) -> None:
        self.rep.submit_unknown += 1

    def _cancel_requested(self, entry: Entry, e: Any) -> None:
        self.rep.cancel_requests[e.cause] += 1

    def _fill(self, entry: Entry, e: Any) -> None:
        if entry.seq in self.unique_fill_seqs:
            self.fills.append((entry, e))

    def _state_changed(self, entry: Entry, e: Any) -> None:
        self.rep.state_changes.append(
            {
                "ts": _iso(entry.ts),
                "seq": entry.seq,
                "state": e.state.value,
                "previous": e.previous.value if e.previous else None,
                "cause": e.cause,
            }
        )

    def _override_set(self, entry: Entry, e: Any) -> None:
        fields = e.override if isinstance(e.override, dict) else {}
        self.rep.overrides.append(
            {
                "ts": _iso(entry.ts),
                "seq": entry.seq,
                "symbol": e.symbol,
                "cleared": e.override is None,
                "mode": fields.get("mode"),
                "max_position_usd": fields.get("max_position_usd"),
                "max_position_pct": fields.get("max_position_pct"),
                "size_multiplier": fields.get("size_multiplier"),
                "side": fields.get("side"),
            }
        )

    def _kill_switch(self, entry: Entry, e: Any) -> None:
        if e.phase == "requested":
            self.kill_requested = entry.ts
        self.rep.kill_switch.append(
            {
                "ts": _iso(entry.ts),
                "seq": entry.seq,
                "phase": e.phase,
                "counts": dict(e.counts),
                "detail": e.detail,
                "since_request_ms": _ms(self.kill_requested, entry.ts),
            }
        )

    def _dropped(self, entry: Entry, e: Any) -> None:
        self.rep.dropped.append(
            {
                "ts": _iso(entry.ts),
                "symbol": e.symbol,
                "code": _reason_code(e.reason),
                "reason": e.reason,
                "line": e.line,
            }
        )

    def _batch(self, entry: Entry, e: Any) -> None:
        self.rep.batches += 1

    def _skipped(self, entry: Entry, e: Any) -> None:
        self.rep.skipped_batches += e.count

    def _account(self, entry: Entry, e: Any) -> None:
        self.rep.account = {
            "ts": _iso(entry.ts),
            "source": "AccountSnapshot",
            "equity": _dec(e.equity),
            "last_equity": _dec(e.last_equity),
            "day_pl": _derived(e.equity - e.last_equity),
            "cash": _dec(e.cash),
            "buying_power": _dec(e.buying_power),
        }

    def _positions(self, entry: Entry, e: Any) -> None:
        self.snapshots.append((entry, e))

    def _reconciled(self, entry: Entry, e: Any) -> None:
        self.rep.reconciliations.append(
            {
                "ts": _iso(entry.ts),
                "ok": e.ok,
                "trigger": e.trigger,
                "unaccounted": list(e.unaccounted),
                "counts": dict(e.counts),
            }
        )

    # One handler per event type (by the row's type).
    HANDLERS: dict[str, Callable[[_SessionReader, Entry, Any], None]] = {
        "": _unknown,  # a kind this version does not know
        "IntentCreated": _order,
        "OrderExternal": _order,
        "OrderRecovered": _order,
        "SessionStarted": _started,
        "SessionEnded": _ended,
        "ApprovalRequested": _approval_requested,
        "IntentApproved": _approved,
        "IntentRejected": _rejected,
        "IntentExpired": _expired,
        "SubmitRejected": _venue_rejected,
        "SubmitUnknown": _submit_unknown,
        "CancelRequested": _cancel_requested,
        "FillApplied": _fill,
        "TradingStateChanged": _state_changed,
        "OverrideSet": _override_set,
        "KillSwitch": _kill_switch,
        "SignalDropped": _dropped,
        "BatchProcessed": _batch,
        "SignalsSkipped": _skipped,
        "AccountSnapshot": _account,
        "PositionsSnapshot": _positions,
        "ReconcileCompleted": _reconciled,
    }
