"""The append-only SQLite journal (WAL) of engine events, with a manifest of
sessions; state after a restart is what replaying it gives."""

from __future__ import annotations

import base64
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import quote

from engine import events as ev
from engine.config import SymbolOverride
from engine.errors import ExecdeskError
from engine.model import TradingState
from engine.orders import OrderBook
from engine.timezones import NEW_YORK

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events(
    seq INTEGER PRIMARY KEY,
    ts TEXT NOT NULL,
    session_id TEXT NOT NULL,
    type TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_session ON events(session_id, seq);
CREATE TABLE IF NOT EXISTS sessions(
    session_id TEXT PRIMARY KEY,
    config_hash TEXT NOT NULL,
    venue_date TEXT NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    how_ended TEXT
);
CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
"""

_INSERT = "INSERT INTO events(ts, session_id, type, payload) VALUES (?, ?, ?, ?)"


class JournalError(ExecdeskError):
    """The journal cannot be opened or written. Trading without an audit trail
    is not allowed: the Engine turns this into HALTED."""


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One replayed row: the event and where/when it was journaled."""

    seq: int
    ts: datetime
    session_id: str
    event: ev.Event | ev.UnknownEvent


@dataclass(frozen=True, slots=True)
class SessionRecord:
    session_id: str
    config_hash: str
    venue_date: date
    started_at: datetime
    ended_at: datetime | None
    how_ended: str | None

    @property
    def ended_cleanly(self) -> bool:
        return self.ended_at is not None


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """What open_session decided, and why (say it to the operator)."""

    session_id: str
    venue_date: date
    resumed: bool
    reason: str
    config_changed: bool = False


def default_venue_date(now: datetime | None = None) -> date:
    """Today at the venue (New York), falling back to UTC without tz data."""
    now = now or datetime.now(UTC)
    return now.astimezone(NEW_YORK).date()


def _utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _new_session_id(venue_date: date) -> str:
    return f"{venue_date:%Y%m%d}-" + base64.b32encode(os.urandom(5)).decode("ascii").lower()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


class Journal:
    """Append-only journal of engine events in one SQLite file (WAL mode).

    Durability: ``append(event)`` commits at once (it survives a crash of the
    process: the data is in the OS); ``append(event, durable=True)`` commits
    with synchronous=FULL, so the WAL is fsynced before it returns (it survives
    a power loss too), and with it every earlier append. Journal each order
    intent (IntentCreated) and each SubmitSent durably before the request
    leaves; ``append_many(events, durable=True)`` is the group commit: one
    transaction, one fsync. ``append_later(event)`` is the write-behind of the
    engine's non-durable events (acks, fills, status changes: facts the venue
    keeps): the row is encoded at once and committed with the next ``flush()``
    — which the Engine calls at the end of its loop turn, so a burst of 53 fills
    is one transaction instead of 53 — or with any other write or read of this
    journal, whichever comes first, so the order of the rows is always the
    order of the calls. Until then a crash of the process may lose them (the
    venue still knows them; reconciliation adopts them after a restart).

    Errors: any failure to open or write (disk full, read-only file, closed or
    corrupt database) raises JournalError, and every later append raises it too
    (the journal does not half-work). The Engine turns JournalError into
    HALTED: no new orders without an audit trail.

    Sessions (the continuation rule): ``open_session(config_hash, venue_date)``
      1. continues the latest session if it did not end cleanly (a crash or
         SIGKILL), whatever the date or configuration: what it may have sent
         must be finished, not orphaned. A changed config hash is recorded.
      2. continues the latest session if it ended cleanly on the same venue
         date with the same config hash (a plain restart during the day);
      3. otherwise, or when the operator asks with new=True, starts a new one
         (new=True after a crash seals the old one as "superseded").
    A continued session keeps its id, so the same batch yields the same
    client_order_ids, and BatchProcessed events (the OrderBook's ledger) tell
    which batches were already processed. ``seal(how)`` ends the session.

    Files: the journal and its -wal/-shm files are created owner-only (0600).
    Threads: one writer (the Engine's task; calls are serialised by a lock);
    readers in other processes use ``Journal(path, readonly=True)``.
    """

    def __init__(self, path: str | os.PathLike[str], *, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        self._lock = threading.Lock()
        self._session_id: str | None = None
        self._venue_date: date | None = None
        self._failure: str | None = None
        self._closed = False
        self._later: list[tuple[str, str, str, str]] = []  # rows of append_later, not committed yet
        try:
            self._conn = self._connect()
        except (sqlite3.Error, OSError) as exc:
            raise JournalError(f"journal {self.path}: cannot open: {exc}") from exc

    # -- opening --------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self.readonly:
            if not self.path.exists():
                raise JournalError(f"journal {self.path}: no such file")
            uri = f"file:{quote(str(self.path.resolve()))}?mode=ro"
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA query_only=ON")
            return conn
        if self.path.is_dir():  # never opened, nor its mode changed, as if it were the journal
            raise JournalError(f"journal {self.path}: cannot open: is a directory, expected the journal's file")
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
                os.close(fd)
            except FileExistsError:
                pass
        elif self.path.stat().st_mode & 0o077:
            os.chmod(self.path, 0o600)  # an audit trail is owner-only
        old_umask = os.umask(0o077)  # -wal and -shm: owner-only as well
        try:
            conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False, timeout=10)
            try:
                mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise JournalError(f"journal {self.path}: cannot use WAL mode (got {mode})")
                conn.execute("PRAGMA synchronous=FULL")
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise JournalError(
                        f"journal {self.path}: schema version {version} is newer than this "
                        f"execdesk understands ({SCHEMA_VERSION})"
                    )
                conn.executescript("BEGIN IMMEDIATE;" + _SCHEMA + f"PRAGMA user_version={SCHEMA_VERSION}; COMMIT;")
                conn.execute("PRAGMA synchronous=NORMAL")
            except BaseException:
                conn.close()
                raise
        finally:
            os.umask(old_umask)
        # The directory entries of the file and of its -wal survive a power loss.
        _fsync_dir(self.path.parent)
        return conn

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                if self._later and self._failure is None and not self.readonly:
                    try:
                        self._write([], [], durable=False)
                    except JournalError:
                        pass  # closing regardless; the failure is recorded
                self._closed = True
                try:
                    self._conn.close()
                except sqlite3.Error:  # pragma: no cover
                    pass

    # -- state ----------------------------------------------------------------------------------

    @property
    def session_id(self) -> str | None:
        return self._session_id

    @property
    def venue_date(self) -> date | None:
        return self._venue_date

    @property
    def ok(self) -> bool:
        """False once a write has failed (or after close)."""
        return self._failure is None and not self._closed

    @property
    def failure(self) -> str | None:
        return self._failure

    def _usable(self) -> None:
        if self._closed:
            raise JournalError(f"journal {self.path} is closed")
        if self._failure is not None:
            raise JournalError(f"journal {self.path} cannot be written since: {self._failure}")
        if self.readonly:
            raise JournalError(f"journal {self.path} is open read-only")

    def _fail(self, exc: BaseException) -> JournalError:
        self._failure = f"{type(exc).__name__}: {exc}"
        return JournalError(f"journal {self.path} cannot be written: {exc}")

    # -- sessions -------------------------------------------------------------------------------

    def sessions(self) -> list[SessionRecord]:
        """Every session in the manifest, oldest first."""
        with self._lock:
            rows = self._read(
                "SELECT session_id, config_hash, venue_date, started_at, ended_at, how_ended "
                "FROM sessions ORDER BY rowid"
            )
        return [_session_record(r) for r in rows]

    def latest_session(self) -> SessionRecord | None:
        with self._lock:
            rows = self._read(
                "SELECT session_id, config_hash, venue_date, started_at, ended_at, how_ended "
                "FROM sessions ORDER BY rowid DESC LIMIT 1"
            )
        return _session_record(rows[0]) if rows else None

    def open_session(self, config_hash: str, venue_date: date | None = None, *, new: bool = False) -> SessionInfo:
        """Start or continue a session (see the class docstring for the rule).
        Journals SessionStarted durably."""
        if self._session_id is not None:
            raise RuntimeError(f"session {self._session_id} is already open: seal() it first")
        venue_date = venue_date or default_venue_date()
        latest = self.latest_session()
        with self._lock:
            self._usable()
            if latest is not None and not new:
                reason = None
                if not latest.ended_cleanly:
                    reason = "the previous run did not end cleanly: continuing its session"
                elif latest.venue_date == venue_date and latest.config_hash == config_hash:
                    reason = "same venue date and configuration: continuing the session"
                if reason is not None:
                    changed = latest.config_hash != config_hash
                    started = ev.SessionStarted(
                        session_id=latest.session_id,
                        config_hash=config_hash,
                        venue_date=latest.venue_date,
                        resumed=True,
                        resume_reason=reason,
                        previous_config_hash=latest.config_hash if changed else None,
                    )
                    self._write(
                        [
                            (
                                "UPDATE sessions SET ended_at=NULL, how_ended=NULL, config_hash=? WHERE session_id=?",
                                (config_hash, latest.session_id),
                            )
                        ],
                        [(latest.session_id, started)],
                        durable=True,
                    )
                    self._session_id, self._venue_date = latest.session_id, latest.venue_date
                    return SessionInfo(latest.session_id, latest.venue_date, True, reason, changed)
            statements: list[tuple[str, tuple]] = []
            pending: list[tuple[str, ev.Event]] = []
            if latest is not None and not latest.ended_cleanly:
                statements.append(
                    (
                        "UPDATE sessions SET ended_at=?, how_ended=? WHERE session_id=?",
                        (_utcnow(), "superseded", latest.session_id),
                    )
                )
                pending.append((latest.session_id, ev.SessionEnded(how="superseded")))
            known = {r.session_id for r in self._session_rows()}
            session_id = _new_session_id(venue_date)
            while session_id in known:  # pragma: no cover - 40 random bits
                session_id = _new_session_id(venue_date)
            statements.append(
                (
                    "INSERT INTO sessions(session_id, config_hash, venue_date, started_at) VALUES (?,?,?,?)",
                    (session_id, config_hash, venue_date.isoformat(), _utcnow()),
                )
            )
            pending.append(
                (session_id, ev.SessionStarted(session_id=session_id, config_hash=config_hash, venue_date=venue_date))
            )
            self._write(statements, pending, durable=True)
            self._session_id, self._venue_date = session_id, venue_date
            reason = (
                "operator asked for a new session"
                if new
                else ("first session of this journal" if latest is None else "new venue date or configuration")
            )
            return SessionInfo(session_id, venue_date, False, reason)

    def seal(self, how: str = "stopped") -> None:
        """End the current session: SessionEnded (durable) and the manifest's end."""
        with self._lock:
            self._usable()
            if self._session_id is None:
                raise RuntimeError("no session is open")
            self._write(
                [
                    (
                        "UPDATE sessions SET ended_at=?, how_ended=? WHERE session_id=?",
                        (_utcnow(), how, self._session_id),
                    )
                ],
                [(self._session_id, ev.SessionEnded(how=how))],
                durable=True,
            )
            self._session_id = None

    # -- appending --------------------------------------------------------------------------------

    def append(self, event: ev.Event, durable: bool = False) -> int:
        """Journal one event in the open session (after every row of append_later
        not yet flushed, in the same transaction); returns its sequence number.
        durable=True: on disk (fsynced) when this returns."""
        with self._lock:
            self._usable()
            sid = self._need_session()
            if self._later:
                return self._write([], [(sid, event)], durable=durable)[-1]
            row = (_utcnow(), sid, event.type, event.payload())
            conn = self._conn
            try:
                if durable:
                    conn.execute("PRAGMA synchronous=FULL")
                    seq = _rowid(conn.execute(_INSERT, row))
                    conn.execute("PRAGMA synchronous=NORMAL")
                else:
                    seq = _rowid(conn.execute(_INSERT, row))
            except (sqlite3.Error, OSError) as exc:
                raise self._fail(exc) from exc
            return seq

    def append_later(self, event: ev.Event) -> None:
        """Journal one event with the next flush() (see the class docstring): its
        row (time, type, payload) is made now, so it reads as if appended now.
        Raises JournalError at once if the journal cannot be written; a failure of
        the write itself is raised by the flush (or whichever write commits it)."""
        with self._lock:
            self._usable()
            sid = self._need_session()
            self._later.append((_utcnow(), sid, event.type, event.payload()))

    @property
    def unflushed(self) -> int:
        """Rows of append_later not committed yet."""
        return len(self._later)

    def flush(self) -> None:
        """Commit the rows of append_later in one transaction (not fsynced)."""
        with self._lock:
            if not self._later:
                return
            self._usable()
            self._write([], [], durable=False)

    def append_many(self, events: Sequence[ev.Event], durable: bool = False) -> list[int]:
        """Journal several events in one transaction (group commit): all or none,
        one fsync when durable. Returns their sequence numbers."""
        if not events:
            return []
        with self._lock:
            self._usable()
            sid = self._need_session()
            return self._write([], [(sid, e) for e in events], durable=durable)

    def _need_session(self) -> str:
        if self._session_id is None:
            raise RuntimeError("no session is open: call open_session() first")
        return self._session_id

    def _write(
        self,
        statements: Iterable[tuple[str, tuple]],
        pending: Iterable[tuple[str, ev.Event]],
        *,
        durable: bool,
    ) -> list[int]:
        conn = self._conn
        seqs: list[int] = []
        later, self._later = self._later, []
        try:
            if durable:
                conn.execute("PRAGMA synchronous=FULL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                if later:  # rows of append_later go first: they were appended first
                    conn.executemany(_INSERT, later)
                for sql, params in statements:
                    conn.execute(sql, params)
                for sid, e in pending:
                    seqs.append(_rowid(conn.execute(_INSERT, (_utcnow(), sid, e.type, e.payload()))))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            if durable:
                conn.execute("PRAGMA synchronous=NORMAL")
        except (sqlite3.Error, OSError) as exc:
            raise self._fail(exc) from exc
        return seqs

    # -- reading ------------------------------------------------------------------------------------

    def _read(self, sql: str, params: tuple = ()) -> list[tuple]:
        if self._closed:
            raise JournalError(f"journal {self.path} is closed")
        if self._later and self._failure is None:
            self._write([], [], durable=False)  # a reader sees every row appended before it asked
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise JournalError(f"journal {self.path}: cannot read: {exc}") from exc

    def _session_rows(self) -> list[SessionRecord]:
        return [
            _session_record(r)
            for r in self._read(
                "SELECT session_id, config_hash, venue_date, started_at, ended_at, how_ended FROM sessions"
            )
        ]

    def replay(self, session_id: str | None = None, after_seq: int = 0) -> Iterator[JournalEntry]:
        """Every event in journal order (of one session, or all), decoded.
        Reads in pages, so a long journal is not loaded at once."""
        for seq, ts, sid, type_name, payload in self.rows(session_id, after_seq):
            yield JournalEntry(seq, datetime.fromisoformat(ts), sid, ev.decode(type_name, payload))

    def rows(self, session_id: str | None = None, after_seq: int = 0) -> Iterator[tuple[int, str, str, str, str]]:
        """Every event row in journal order, undecoded: (seq, ts, session_id, type,
        payload). Pending write-behind rows are committed first (_read). Reads in pages."""
        where = "seq > ?"
        params: list[object] = [after_seq]
        if session_id is not None:
            where += " AND session_id = ?"
            params.append(session_id)
        last = after_seq
        while True:
            with self._lock:
                rows = self._read(
                    f"SELECT seq, ts, session_id, type, payload FROM events WHERE {where} ORDER BY seq LIMIT 5000",
                    (last, *params[1:]),
                )
            if not rows:
                return
            yield from rows
            last = rows[-1][0]

    def last_seq(self) -> int:
        with self._lock:
            return int(self._read("SELECT COALESCE(MAX(seq), 0) FROM events")[0][0])


def _rowid(cursor: sqlite3.Cursor) -> int:
    """The sequence number of the row an INSERT just wrote."""
    if cursor.lastrowid is None:  # pragma: no cover - an INSERT always sets it
        raise sqlite3.OperationalError("the insert wrote no row")
    return int(cursor.lastrowid)


def _session_record(row: tuple) -> SessionRecord:
    sid, config_hash, venue_date, started, ended, how = row
    return SessionRecord(
        session_id=sid,
        config_hash=config_hash,
        venue_date=date.fromisoformat(venue_date),
        started_at=datetime.fromisoformat(started),
        ended_at=datetime.fromisoformat(ended) if ended else None,
        how_ended=how,
    )


# ---- state after a restart -------------------------------------------------------------------


@dataclass
class Recovered:
    """What a replay of the whole journal says: the order book (all sessions,
    so earlier sessions' orders are not mistaken for external ones), the batch
    ledger of the current session, the last trading state and the per-symbol
    overrides (both survive restarts), and the last broker snapshots."""

    book: OrderBook
    trading_state: TradingState | None = None
    trading_state_cause: str = ""
    overrides: dict[str, SymbolOverride] = field(default_factory=dict)
    account: ev.AccountSnapshot | None = None
    positions: ev.PositionsSnapshot | None = None
    last_reconcile: ev.ReconcileCompleted | None = None
    last_seq: int = 0


def recover(entries: Iterable[JournalEntry], session_id: str | None = None) -> Recovered:
    """Fold a replay into the state the Engine starts from. Call it after
    open_session(), as recover(journal.replay(), journal.session_id), so the
    batch ledger follows the session now open (default: the last one started)."""
    book = OrderBook()
    out = Recovered(book=book)

    def tracked() -> Iterator[JournalEntry]:
        for entry in entries:
            e = entry.event
            if isinstance(e, ev.TradingStateChanged):
                out.trading_state, out.trading_state_cause = e.state, e.cause
            elif isinstance(e, ev.OverrideSet):
                if e.override is None:
                    out.overrides.pop(e.symbol, None)
                else:
                    out.overrides[e.symbol] = e.override
            elif isinstance(e, ev.AccountSnapshot):
                out.account = e
            elif isinstance(e, ev.PositionsSnapshot):
                out.positions = e
            elif isinstance(e, ev.ReconcileCompleted):
                out.last_reconcile = e
            out.last_seq = entry.seq
            yield entry

    book.rebuild(tracked(), session_id)
    return out
