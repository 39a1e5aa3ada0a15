"""The report as a fold of the journal that can be continued: the state that building a
report leaves behind (the orders' light fold, their traces, each session's counts and
lists, each session's P&L so far), kept in the report cache, so that a report of a
journal that a session is still writing decodes and folds only the rows journaled since
the last report (rows are append-only: engine/journal.py forbids UPDATE and DELETE).

``Fold.feed`` takes journal entries in journal order; ``Fold.report`` gives the Report
that building.build_report gives for the rows fed so far and the sessions manifest as
it is now (tests/engine/report/test_report_fold.py holds them byte for byte equal on
the report tests' journals and on a 10,000-order one, fed at once and in pieces).

The same folds as building.build_report, interleaved per entry (each of them reads an
entry's own fields only): the order book (light.Book), the traces, the fills' first
occurrences, and per session its reader and its P&L. Two things a full build reads at
the end are kept apart so that a later entry still counts: the order rows are computed
when reported, for the orders an entry touched since (the rest are kept), and a fill
journaled before its order has its decision price looked up again when reported.

What a continued fold cannot know it says (``Fold.regular``), and the caller then
builds the report from every event as before: the sessions' P&L carries from one session
to the next in the manifest's order, so the fold holds only while each session's rows
come after the previous session's (a new row of an earlier session, a manifest that
names a session the rows met before it was there, or sessions in another order)."""

from __future__ import annotations

import marshal
import sqlite3
from collections.abc import Callable, Iterable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from engine.report import light
from engine.report.building import (
    _EVENTS_SQL,
    _SESSIONS_SQL,
    _TRACE_STEPS,
    LATENCY_KEYS,
    OrderEntry,
    Report,
    SessionReport,
    _add_order,
    _choose,
    _order_entry,
    _record,
    _SessionReader,
    _Trace,
    open_snapshot,
)
from engine.report.cache import make_key, row_digest
from engine.report.light import (
    _BOOK,
    _ORDER_KEYS,
    _SIDE,
    _STATUS,
    _TIF,
    _TYPE,
    Book,
    Entry,
    Ev,
    LightDecodeError,
    _dec,
    _dt,
    _Skip,
)
from engine.report.pnl import _Carry, _PnLFold
from engine.report.renderers import order_cells_of
from engine.states import DenialReason

#: the version of the fold's state (a kept fold of another version is not continued)
FOLD_VERSION = 1
#: rows (order entries made again, fills) outside the fold's base before it is made anew
BASE_REBUILD = 2000


class _FoldReader(_SessionReader):
    """A session's reader whose fills and snapshots go to the session's P&L fold as
    they come (instead of being kept for _fills_and_pnl)."""

    def __init__(self, rep: SessionReport, unique_fill_seqs: set[int], pnl: _PnLFold, book: Book):
        super().__init__(rep, unique_fill_seqs)
        self.pnl, self.book = pnl, book

    def _fill(self, entry: Entry, e: Any) -> None:
        if entry.seq in self.unique_fill_seqs:
            self.pnl.fill(entry, e, self.book)

    def _positions(self, entry: Entry, e: Any) -> None:
        self.pnl.snapshot(entry, e)

    HANDLERS: dict[str, Callable[..., None]] = {  # (its own fills and snapshots)
        **_SessionReader.HANDLERS,
        "FillApplied": _fill,
        "PositionsSnapshot": _positions,
    }


def _coid(kind: str, e: Any) -> str | None:
    """The client order id an entry is about (None: none)."""
    if e is None or kind == "":
        return None
    d = e.__dict__
    if "client_order_id" in d:
        return d["client_order_id"]
    if "order" in d:
        return d["order"].client_order_id
    if "fill" in d:
        return d["fill"].client_order_id
    return None


class Fold:
    """The report's fold over the journal rows fed so far (see the module)."""

    def __init__(self) -> None:
        self.version = FOLD_VERSION
        self.rows = 0  # entries fed
        self.last_seq = 0
        self.last_event: list[Any] | None = None  # the digest of the last row fed (row_digest)
        self.book = Book()
        self.traces: dict[str, _Trace] = {}
        self.batch_start: dict[tuple, Any] = {}
        self.fill_seen: set[str] = set()
        self.unique_fill_seqs: set[int] = set()
        self.readers: dict[str, _FoldReader] = {}
        self.session_order: list[str] = []  # sessions in the order their rows began
        self.before: dict[str, list[str]] = {}  # per session: the manifest's sessions before it then
        self.met_unlisted: set[str] = set()  # sessions met in rows before the manifest named them
        self.regular = True
        self.entries: dict[tuple[str, str], OrderEntry] = {}  # (session, coid) -> its order entry
        self.cells: dict[tuple[str, str], list[str]] = {}  # its row's cells (renderers.order_cells_of)
        self.dirty: set[str] = set()  # orders touched since their entries were made
        # orders and traces kept as plain data (freeze(): what the cache keeps of them),
        # made objects again when an entry touches them or a report reads them
        self.frozen_orders: dict[str, bytes] = {}  # (each marshal's of a tuple: decoded when thawed)
        self.frozen_traces: dict[str, bytes] = {}
        # the order entries, cells and fills as a pickle made at an earlier keeping
        # (set_base), and (not pickled) what of them came from it
        self.base: bytes | None = None
        self._base_entries: dict[tuple[str, str], OrderEntry] | None = None
        self._base_cells: dict[tuple[str, str], list[str]] | None = None

    def __getstate__(self) -> dict[str, Any]:
        """The fold to pickle: without its frozen orders and traces (kept apart:
        freeze()) and without what its base holds (set_base()): the order entries and
        cells that are not the base's, the base's that are gone, and each session's
        fills after the base's (_PnLFold.__getstate__)."""
        state = dict(self.__dict__)
        state["frozen_orders"], state["frozen_traces"] = {}, {}
        base_entries, base_cells = self._base_entries or {}, self._base_cells or {}
        state["entries"] = {k: v for k, v in self.entries.items() if base_entries.get(k) is not v}
        state["cells"] = {k: v for k, v in self.cells.items() if base_cells.get(k) is not v}
        state["gone"] = [k for k in base_entries if k not in self.entries]
        state["_base_entries"] = state["_base_cells"] = None
        return state

    def set_base(self, dumps: Callable[[Any], bytes]) -> None:
        """Make a new base (the order entries and cells and each session's fills, as
        dumps encodes them) when there is none or what is not in it has grown past
        BASE_REBUILD rows: the next pickles of the fold carry the base's bytes as they
        are, not the 10,000 rows encoded again."""
        if self.base is not None and self._base_entries is not None:
            new = sum(1 for k, v in self.entries.items() if self._base_entries.get(k) is not v)
            new += sum(len(r.pnl.rows) - r.pnl.base_len for r in self.readers.values())
            if new < BASE_REBUILD:
                return
        entries, cells = dict(self.entries), dict(self.cells)
        fills = {sid: (list(r.pnl.rows), list(r.pnl.cells)) for sid, r in self.readers.items()}
        self.base = dumps((entries, cells, fills))
        self._base_entries, self._base_cells = entries, cells
        for r in self.readers.values():
            r.pnl.base_len = len(r.pnl.rows)

    def load_base(self, loads: Callable[[bytes], Any]) -> None:
        """After unpickling: the base's rows back in the fold (loads decodes it)."""
        gone = self.__dict__.pop("gone", [])
        if self.base is None:
            return
        entries, cells, fills = loads(self.base)
        merged, merged_cells = dict(entries), dict(cells)
        for k in gone:
            merged.pop(k, None)
            merged_cells.pop(k, None)
        merged.update(self.entries)
        merged_cells.update(self.cells)
        self.entries, self.cells = merged, merged_cells
        self._base_entries, self._base_cells = entries, cells
        for sid, r in self.readers.items():
            rows, row_cells = fills.get(sid, ([], []))
            if len(rows) != r.pnl.base_len:
                raise ValueError("report fold: its base does not hold a session's fills")
            r.pnl.rows, r.pnl.cells = rows + r.pnl.rows, row_cells + r.pnl.cells

    def freeze(self) -> tuple[dict[str, bytes], dict[str, bytes]]:
        """The orders and traces as plain data (those that are made of what an order and
        a trace are made of; any other stays an object), and the fold keeps them so."""
        _freeze_into(self.book.orders, self.frozen_orders, _freeze_order)
        _freeze_into(self.traces, self.frozen_traces, _freeze_trace)
        return self.frozen_orders, self.frozen_traces

    def order(self, coid: str) -> Any:
        """The book's order (None: the book has none)."""
        order = self.book.orders.get(coid)
        if order is None and coid in self.frozen_orders:
            order = self.book.orders[coid] = _thaw_order(self.frozen_orders.pop(coid))
        return order

    def trace(self, coid: str) -> _Trace | None:
        tr = self.traces.get(coid)
        if tr is None and coid in self.frozen_traces:
            tr = self.traces[coid] = _thaw_trace(self.frozen_traces.pop(coid))
        return tr

    # ---- feeding -----------------------------------------------------------------------

    def feed(self, entries: Iterable[Entry], manifest: list[str]) -> None:
        """Fold entries (journal order, after every entry fed before), with the
        sessions manifest as read with them (session ids in its order)."""
        listed = set(manifest)
        book, traces, batch_start = self.book, self.traces, self.batch_start
        books, steps = _BOOK, _TRACE_STEPS
        fill_seen, unique = self.fill_seen, self.unique_fill_seqs
        dirty = self.dirty
        reader: _FoldReader | None = None
        reader_sid: str | None = None
        frozen_orders, frozen_traces = self.frozen_orders, self.frozen_traces
        for entry in entries:
            kind, e = entry.kind, entry.event
            coid = _coid(kind, e)
            if coid is not None:  # (every fold below reads this order's state only)
                if coid in frozen_orders:
                    book.orders[coid] = _thaw_order(frozen_orders.pop(coid))
                if coid in frozen_traces:
                    traces[coid] = _thaw_trace(frozen_traces.pop(coid))
                dirty.add(coid)
            handler = books.get(kind)
            if handler is not None:
                try:
                    handler(book, e)
                except _Skip:
                    book.skipped += 1
            step = steps.get(kind)
            if step is not None:
                step(traces, batch_start, entry, e)
                if kind == "IntentCreated":
                    tr = traces[e.order.client_order_id]
                    if tr.batch_key is not None:
                        tr.created_ts = batch_start[tr.batch_key]  # (building._trace's last step)
            if kind == "FillApplied" and e.fill.execution_id not in fill_seen:
                fill_seen.add(e.fill.execution_id)
                unique.add(entry.seq)
            sid = entry.session_id
            if sid != reader_sid:
                reader = self._reader(sid, manifest, listed)
                reader_sid = sid
            if reader is not None:
                handle = reader.HANDLERS.get(kind)
                if handle is not None:
                    handle(reader, entry, e)
            self.rows += 1
            self.last_seq = entry.seq

    def _reader(self, sid: str, manifest: list[str], listed: set[str]) -> _FoldReader | None:
        if sid not in listed:
            self.met_unlisted.add(sid)  # ignored, as a full build ignores it
            return None
        reader = self.readers.get(sid)
        if reader is not None:
            if self.session_order[-1] != sid:
                self.regular = False  # an earlier session's row after a later one's
            return reader
        before = manifest[: manifest.index(sid)]
        if any(s not in before for s in self.session_order):
            self.regular = False  # sessions whose rows began earlier are after it in the manifest
        carry = self._carry(before)
        pnl = _PnLFold(sid, carry)
        rep = SessionReport(session_id=sid, record=None)
        reader = self.readers[sid] = _FoldReader(rep, self.unique_fill_seqs, pnl, self.book)
        self.session_order.append(sid)
        self.before[sid] = list(before)
        return reader

    def _carry(self, sessions: list[str]) -> _Carry | None:
        """The closing positions and marks after these sessions (manifest order)."""
        carry: _Carry | None = None
        for sid in sessions:
            reader = self.readers.get(sid)
            pnl = reader.pnl if reader is not None else _PnLFold(sid, carry)
            carry = pnl.result(self.order)[2]
        return carry

    # ---- reporting ---------------------------------------------------------------------

    def holds(self, manifest: list[str]) -> bool:
        """Whether this fold gives a full build's report with this manifest."""
        if not self.regular or self.met_unlisted & set(manifest):
            return False
        for sid in self.session_order:
            if sid not in manifest or manifest[: manifest.index(sid)] != self.before[sid]:
                return False
        return True

    def report(self, path: str, sessions: list[Any], chosen: list[Any], scope: str) -> Report:
        """The Report of `chosen` (records of the manifest `sessions`), as
        building.build_report gives it (call holds() first)."""
        get, entries, dirty, cells = self.order, self.entries, self.dirty, self.cells
        wanted = {rec.session_id for rec in chosen}
        built: dict[str, SessionReport] = {}
        carry: _Carry | None = None
        for rec in sessions:
            sid = rec.session_id
            reader = self.readers.get(sid)
            if reader is None:  # no rows (yet): an empty session, carrying positions through
                fills, pnl, carry, fill_cells = _PnLFold(sid, carry).result(get)
                if sid in wanted:
                    built[sid] = _empty(rec, fills, pnl)
                    built[sid].cells = {"orders": [], "fills": fill_cells}
                continue
            fills, pnl, carry, fill_cells = reader.pnl.result(get)
            if sid not in wanted:
                continue
            got = reader.rep
            rep = SessionReport(
                session_id=sid,
                record=rec,
                runs=got.runs,
                venue_rejections=got.venue_rejections,
                dropped=got.dropped,
                state_changes=got.state_changes,
                overrides=got.overrides,
                kill_switch=got.kill_switch,
                reconciliations=got.reconciliations,
                cancel_requests=got.cancel_requests,
                submit_unknown=got.submit_unknown,
                batches=got.batches,
                skipped_batches=got.skipped_batches,
                approvals=got.approvals,
                account=got.account,
                unknown_events=got.unknown_events,
            )
            samples: dict[str, list[float]] = {k: [] for k in LATENCY_KEYS}
            rep.latency_samples = samples
            order_cells: list[list[str]] = []
            for coid in reader.order_ids:
                key = (sid, coid)
                entry = entries.get(key)
                if entry is None or coid in dirty:
                    order = self.order(coid)
                    if order is None:  # the book refused the intent itself
                        entries.pop(key, None)
                        continue
                    entry = entries[key] = _order_entry(order, sid, self.trace(coid))
                    cells[key] = order_cells_of(entry[0])
                _add_order(rep, samples, entry)
                order_cells.append(cells[key])
            rep.fills, rep.pnl = fills, pnl
            rep.cells = {"orders": order_cells, "fills": fill_cells}
            built[sid] = rep
        # the entries of the orders touched in the sessions not reported now are made again when they are
        for coid in dirty:
            for sid in self.readers:
                if sid not in wanted:
                    entries.pop((sid, coid), None)
                    cells.pop((sid, coid), None)
        dirty.clear()
        reports = [built[rec.session_id] for rec in chosen]
        return Report(journal_path=path, scope=scope, sessions=reports)


def _empty(rec: Any, fills: list[dict[str, Any]], pnl: dict[str, Any]) -> SessionReport:
    rep = SessionReport(session_id=rec.session_id, record=rec)
    rep.latency_samples = {k: [] for k in LATENCY_KEYS}
    rep.fills, rep.pnl = fills, pnl
    return rep


# ---- the journal read from where a fold stopped -----------------------------------------


def fold_report(
    path: Path, session_id: str | None, kept: Fold | None, fingerprint: str | None
) -> tuple[Report, dict[str, Any] | None, Fold] | None:
    """(the report, the cache key of the journal state it is of, the fold after it):
    `kept` continued with the rows journaled since it was made, when the journal still
    begins with the rows it folded (else a new fold of every row). None when the fold
    cannot say (not a journal of this schema, a row the light decoder cannot read, no
    sessions, a fold that does not hold): the caller builds the report as before, which
    also words any error. The key is read in the same snapshot as the rows (None
    without a code fingerprint: nothing is kept then). Raises ReportError for an unknown
    session."""
    conn = open_snapshot(path)  # one snapshot: the manifest, the rows and the key
    if conn is None:
        return None
    try:
        raw_sessions = conn.execute(_SESSIONS_SQL).fetchall()
        count, last_seq = conn.execute("SELECT COUNT(*), COALESCE(MAX(seq), 0) FROM events").fetchone()
        if kept is not None and not _continues(conn, kept):
            kept = None
        since = kept.last_seq if kept is not None else None
        if since is None:
            rows = conn.execute(_EVENTS_SQL).fetchall()
        else:
            rows = conn.execute(_EVENTS_SINCE_SQL, (since,)).fetchall()
        last = rows[-1] if rows else _last_row(conn, last_seq)
        sessions = [_record(r) for r in raw_sessions]
    except (sqlite3.Error, ValueError, TypeError):
        return None
    finally:
        conn.close()
    if not sessions:
        return None
    manifest = [rec.session_id for rec in sessions]
    chosen = _choose(sessions, session_id, path)
    try:
        entries = list(light.decode_rows(rows))
    except LightDecodeError:
        return None
    fold = kept if kept is not None else Fold()
    fold.feed(entries, manifest)
    if not fold.holds(manifest):
        return None
    if last is not None:
        fold.last_event = row_digest(last)
    scope = "all" if session_id == "all" else chosen[0].session_id
    report = fold.report(str(path), sessions, chosen, scope)
    key = None if fingerprint is None else make_key(fingerprint, raw_sessions, count, last_seq, fold.last_event)
    return report, key, fold


_EVENTS_SINCE_SQL = "SELECT seq, ts, session_id, type, payload FROM events WHERE seq > ? ORDER BY seq"


def _last_row(conn: sqlite3.Connection, seq: int) -> tuple | None:
    return conn.execute("SELECT seq, ts, session_id, type, payload FROM events WHERE seq = ?", (seq,)).fetchone()


def _continues(conn: sqlite3.Connection, kept: Fold) -> bool:
    """Whether the journal still begins with the rows the fold folded: as many rows up
    to its last one, and its last one the same (rows are never updated or deleted; this
    is the check that the file is still that journal)."""
    if kept.version != FOLD_VERSION or kept.rows == 0:
        return False
    (upto,) = conn.execute("SELECT COUNT(*) FROM events WHERE seq <= ?", (kept.last_seq,)).fetchone()
    if upto != kept.rows:
        return False
    row = _last_row(conn, kept.last_seq)
    return row is not None and row_digest(row) == kept.last_event


# ---- orders and traces as plain data ---------------------------------------------------------

_D = Decimal
_T = datetime
_ISO = datetime.isoformat
#: an order's fields that are decimals and times (their type checked when frozen: an enum
#: field is read by its _value_, which only an enum member has)
_DECIMALS = ("qty", "limit_price", "filled_qty", "filled_avg_price", "decision_price")
_TIMES = ("bar_ts", "created_at", "submitted_at", "final_at", "expires_at")


def _freeze_into(objects: dict[str, Any], frozen: dict[str, bytes], freeze: Callable[[Any], tuple | None]) -> None:
    """Each object freeze() can make plain data of, moved from objects to frozen (as
    marshal's bytes of it: a report decodes only the ones it touches)."""
    done = []
    for coid, obj in objects.items():
        try:
            plain = freeze(obj)
        except AttributeError:  # (not an enum member where an order has one)
            continue
        if plain is not None:
            frozen[coid] = marshal.dumps(plain, 4)
            done.append(coid)
    for coid in done:
        del objects[coid]


def _iso_or_none(v: Any) -> str | None:
    return None if v is None else v.isoformat()


def _freeze_order(o: Any) -> tuple | None:
    """An order (light.Ev) as a tuple of plain values; None when it is not made of
    exactly what the light decoder makes an order of (then it stays an object)."""
    d = o.__dict__
    if d.keys() != _ORDER_KEYS:
        return None
    for name in _DECIMALS:
        v = d[name]
        if v is not None and type(v) is not _D:
            return None
    for name in _TIMES:
        v = d[name]
        if v is not None and type(v) is not _T:
            return None
    if type(d["fill_ids"]) is not list or any(type(x) is not str for x in d["fill_ids"]):
        return None
    lp, fa, dp = d["limit_price"], d["filled_avg_price"], d["decision_price"]
    denial = d["denial"]
    return (
        d["client_order_id"],
        d["symbol"],
        d["side"]._value_,
        str(d["qty"]),
        d["order_type"]._value_,
        d["time_in_force"]._value_,
        None if lp is None else str(lp),
        d["status"]._value_,
        d["venue_order_id"],
        str(d["filled_qty"]),
        None if fa is None else str(fa),
        _iso_or_none(d["bar_ts"]),
        d["signal"],
        None if dp is None else str(dp),
        d["reduce_only"],
        d["reason"],
        None if denial is None else denial._value_,
        d["denial_detail"],
        d["external"],
        _iso_or_none(d["created_at"]),
        _iso_or_none(d["submitted_at"]),
        _iso_or_none(d["final_at"]),
        _iso_or_none(d["expires_at"]),
        list(d["fill_ids"]),
    )


def _thaw_order(blob: bytes) -> Any:
    t = marshal.loads(blob)
    (coid, symbol, side, qty, otype, tif, lp, status, voi, fq, fa, bar, signal, dp, ro, reason, denial, detail,
     external, created, submitted, final, expires, fill_ids) = t  # fmt: skip
    e = Ev.__new__(Ev)
    e.__dict__ = {
        "client_order_id": coid,
        "symbol": symbol,
        "side": _SIDE[side],
        "qty": _dec(qty),
        "order_type": _TYPE[otype],
        "time_in_force": _TIF[tif],
        "limit_price": None if lp is None else _dec(lp),
        "status": _STATUS[status],
        "venue_order_id": voi,
        "filled_qty": _dec(fq),
        "filled_avg_price": None if fa is None else _dec(fa),
        "bar_ts": None if bar is None else _dt(bar),
        "signal": signal,
        "decision_price": None if dp is None else _dec(dp),
        "reduce_only": ro,
        "reason": reason,
        "denial": None if denial is None else DenialReason(denial),
        "denial_detail": detail,
        "external": external,
        "created_at": None if created is None else _dt(created),
        "submitted_at": None if submitted is None else _dt(submitted),
        "final_at": None if final is None else _dt(final),
        "expires_at": None if expires is None else _dt(expires),
        "fill_ids": list(fill_ids),
    }
    return e


_TRACE_TIMES = ("created_ts", "approval_requested_ts", "approved_ts", "submit_ts", "ack_ts", "first_fill_ts")


def _freeze_trace(tr: _Trace) -> tuple | None:
    key = tr.batch_key
    if key is not None and not (len(key) == 3 and type(key[1]) is _T):
        return None
    times = (tr.created_ts, tr.approval_requested_ts, tr.approved_ts, tr.submit_ts, tr.ack_ts, tr.first_fill_ts)
    for v in times:
        if v is not None and type(v) is not _T:
            return None
    iso = _ISO
    return (
        tr.session_id,
        None if key is None else (key[0], iso(key[1]), key[2]),
        *[None if v is None else iso(v) for v in times],
    )


def _thaw_trace(blob: bytes) -> _Trace:
    sid, key, *times = marshal.loads(blob)
    tr = _Trace(session_id=sid, batch_key=None if key is None else (key[0], _dt(key[1]), key[2]))
    for name, v in zip(_TRACE_TIMES, times, strict=True):
        if v is not None:
            setattr(tr, name, _dt(v))
    return tr
