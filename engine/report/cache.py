"""The report cache: a report built from a full replay of the journal, kept next to
it in ``<journal>.report-cache`` (owner-only), so that the next ``execdesk report`` of
the same journal reads its figures instead of replaying every event again, and the
rendering it printed (text, Markdown and CSV: everything but the header lines that name
the journal and the time) instead of rendering 10,000 orders again.

The file is the standard library's ``marshal`` encoding (version 2), not JSON: writing
and reading it costs a fraction of what ``json`` does for a report of 10,000 orders, and
it holds only plain data (dicts, lists, strings, numbers). A report's data is a blob
of its own, decoded only when a rendering that was not kept is asked for. marshal
is not meant for data from others: a cache file is read only when it belongs to this
user and nobody else can write it (it is written owner-only).

Derived data only; the journal stays the truth. A cached report is used only while
its key still matches: the journal's sessions manifest (every row, so a seal or a
new session changes it), its number of events, its last event (sequence, time,
session, type and a hash of the payload) and a fingerprint of the code that builds
and renders the figures (engine/report, the order book, the events, the journal, the
model) and of the Python version. A
journal without a cache, with a stale one, or with one that cannot be read is
reported from its events, as ever; a cache that cannot be written (a read-only
directory) is simply not written. Nothing here imports the engine's models: a report
served from the cache starts without them.

For a journal whose last session is open, the cache also keeps the report's fold
(engine/report/fold.py) instead of its data: the next report continues it with the rows
journaled since, whatever the key says (the fold checks itself that the journal still
begins with the rows it folded). Its orders and traces are marshal data; the rest is
pickled and read back by an unpickler that makes only the fold's own classes."""

from __future__ import annotations

import hashlib
import marshal
import os
import sqlite3
import stat
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from engine.report.figures import register_memo

CACHE_VERSION = 3
SUFFIX = ".report-cache"
_MAGIC = b"execdesk report cache 3\n"
_MARSHAL = 2  # no back-references: the fastest to write, and readable by every Python 3
_ROWS, _COLS = "$rows", "$cols"
#: the sources whose code decides a report's figures and renderings (relative to engine/)
_SOURCES = (
    "report/building.py",
    "report/pnl.py",
    "report/figures.py",
    "report/light.py",
    "report/renderers.py",  # the renderings kept
    "report/fold.py",  # the fold kept
    "states.py",
    "orders.py",
    "model.py",
    "events.py",
    "journal.py",
    "config.py",
)
_ENGINE = Path(__file__).resolve().parent.parent


def cache_path(journal: str | os.PathLike[str]) -> Path:
    """Where the report cache of a journal lives: ``<journal>.report-cache``."""
    path = Path(journal)
    return path.with_name(path.name + SUFFIX)


def journal_key(journal: str | os.PathLike[str]) -> dict[str, Any] | None:
    """What the cache of this journal must have been built from; None when the
    journal cannot be read this way (then no cache is used or written)."""
    path = Path(journal)
    fingerprint = _code_fingerprint()
    if fingerprint is None or not path.is_file():
        return None
    try:
        uri = f"file:{quote(str(path.resolve()))}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None)
    except (sqlite3.Error, OSError):
        return None
    try:
        conn.execute("PRAGMA query_only=ON")
        conn.execute("BEGIN")  # one snapshot of the journal for all three reads
        sessions = conn.execute(
            "SELECT session_id, config_hash, venue_date, started_at, ended_at, how_ended FROM sessions ORDER BY rowid"
        ).fetchall()
        count, last_seq = conn.execute("SELECT COUNT(*), COALESCE(MAX(seq), 0) FROM events").fetchone()
        last = conn.execute(
            "SELECT seq, ts, session_id, type, payload FROM events ORDER BY seq DESC LIMIT 1"
        ).fetchone()
    except sqlite3.Error:
        return None
    finally:
        conn.close()
    return make_key(fingerprint, sessions, count, last_seq, row_digest(last) if last is not None else None)


def row_digest(row: tuple) -> list[Any]:
    """A journal row (seq, ts, session_id, type, payload) as a key holds it: its payload
    as a SHA-256."""
    seq, ts, sid, type_name, payload = row
    return [seq, ts, sid, type_name, hashlib.sha256(str(payload).encode("utf-8")).hexdigest()]


def make_key(
    fingerprint: str, sessions: list[tuple], count: int, last_seq: int, last_event: list[Any] | None
) -> dict[str, Any]:
    """The cache key of a journal read in one snapshot: its sessions manifest (every
    row), its number of events, its last event (row_digest) and the code's fingerprint
    (journal_key, and the report fold's own read: engine/report/fold.py)."""
    return {
        "version": CACHE_VERSION,
        "code": fingerprint,
        "sessions": [list(r) for r in sessions],
        "events": count,
        "last_seq": last_seq,
        "last_event": last_event,
    }


def load(journal: str | os.PathLike[str], session_id: str | None) -> dict[str, Any] | None:
    """The cached report data (Report.to_dict()) of a session ("latest" or None: the
    last one; "all"), generated now; None unless a cache with a matching key has it."""
    found = load_keyed(journal, session_id)
    return None if found is None else found[0]


def load_keyed(journal: str | os.PathLike[str], session_id: str | None) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """load(), with the journal's key the cache matched: (data, key)."""
    try:
        found = _entry(journal, session_id, "reports")
        if found is None:
            return None
        key, _, blob = found
        compact = marshal.loads(blob)
        if not isinstance(compact, dict):
            return None
        data = _expand(compact)
    except (OSError, ValueError, TypeError, KeyError, AttributeError, EOFError):
        return None
    data["generated_at"] = datetime.now(UTC).isoformat()
    data["journal"] = str(Path(journal))
    return data, key


def load_rendered(
    journal: str | os.PathLike[str], session_id: str | None, fmt: str, table: str, color: bool
) -> tuple[str, str] | None:
    """(scope, rendering) of a report as the renderer wrote it, without its header
    (renderers.render_parts); None unless a cache with a matching key has it. scope:
    the report's session id or "all"."""
    try:
        found = _entry(journal, session_id, "rendered", rendering_name(fmt, table, color))
    except (OSError, ValueError, TypeError, KeyError, AttributeError, EOFError):
        return None
    if found is None or not isinstance(found[2], str):
        return None
    return found[1], found[2]


def rendering_name(fmt: str, table: str, color: bool) -> str:
    """The name a rendering of a report is kept under in the cache (after its scope)."""
    return f"{fmt}|{table if fmt == 'csv' else ''}|{'color' if color else ''}"


def store(
    journal: str | os.PathLike[str],
    key: dict[str, Any] | None,
    data: Mapping[str, Any] | None,
    rendered: Mapping[str, str] | None = None,
    *,
    fold: Any = None,
    exact: bool = False,
) -> bool:
    """Keep a report's data (Report.to_dict(); None: only renderings) for its scope
    and renderings of it ("<scope>|<rendering_name>" -> text), if the journal is still what `key`
    (read before the report was built) says; True when written. exact: `key` was read in
    the same snapshot of the journal as the report's rows (engine/report/fold.py), so it
    is the data's key even if the journal moved on since. fold: the report's fold at that
    snapshot (fold.Fold), kept to be continued by the next report (None: the one kept
    stays, if it is of the same code). Never raises: a report is printed whether or not its
    cache could be written."""
    try:
        if key is None or (not exact and journal_key(journal) != key):
            return False  # the journal moved on meanwhile (a session is writing it)
        path = cache_path(journal)
        reports: dict[str, bytes] = {}
        renderings: dict[str, str] = {}
        kept_fold = None
        cached = _read(path)  # other scopes and renderings of the same journal state stay
        if cached is not None and cached.get("key") == key:
            if isinstance(cached.get("reports"), dict):
                reports = dict(cached["reports"])
            if isinstance(cached.get("rendered"), dict):
                renderings = dict(cached["rendered"])
        if cached is not None and isinstance(cached.get("key"), dict) and cached["key"].get("code") == key["code"]:
            kept_fold = cached.get("fold")  # (a fold says itself which rows it folded: fold._continues)
        if data is not None:
            reports[str(data["session_id"])] = marshal.dumps(_compact(data), _MARSHAL)
        renderings.update(rendered or {})
        if fold is not None:
            kept_fold = _freeze(fold)
        content = {"key": key, "reports": reports, "rendered": renderings, "fold": kept_fold}
        blob = marshal.dumps(content, _MARSHAL)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(_MAGIC)
                f.write(blob)  # (not joined first: a copy of a dozen megabytes fewer)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return True
    except (OSError, ValueError, TypeError, EOFError):
        return False


def _entry(journal: str | os.PathLike[str], session_id: str | None, kind: str, name: str | None = None) -> Any:
    """(key, scope, blob) of the cache entry `kind` ("reports" or "rendered") of the
    session asked for (name: which rendering), when the cache's key matches the journal
    now (key: the journal's)."""
    key = journal_key(journal)
    if key is None or not key["sessions"]:
        return None
    scope = _scope(key, session_id)
    if scope is None:
        return None
    cached = _read(cache_path(journal))
    if cached is None or cached.get("key") != key:
        return None
    entries = cached.get(kind)
    if not isinstance(entries, dict):
        return None
    blob = entries.get(scope if name is None else f"{scope}|{name}")
    return None if blob is None else (key, scope, blob)


def _read(path: Path) -> dict[str, Any] | None:
    """The cache file's contents; None when there is none, it is not a cache of this
    version, or it is not this user's alone (then it is not decoded at all). The file
    read last is decoded once (a report reads its cache more than once; a cache is
    replaced, never written in place, so its inode and times name one content)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if st.st_uid != os.geteuid() or st.st_mode & 0o022 or not _is_regular(st.st_mode):
            return None
        stamp = (str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        if stamp in _LAST_READ:
            return _LAST_READ[stamp]
        blob = f.read()
    if not blob.startswith(_MAGIC):
        return None
    value = marshal.loads(memoryview(blob)[len(_MAGIC) :])
    if not isinstance(value, dict):
        return None
    _LAST_READ.clear()
    _LAST_READ[stamp] = value
    return value


#: the cache file read last, by its stat (_read); forgotten when the report is done (a
#: long-lived process, the session that printed its closing report, holds none of it)
_LAST_READ: dict[tuple, dict[str, Any]] = {}
register_memo(_LAST_READ)


def _is_regular(mode: int) -> bool:
    return stat.S_ISREG(mode)


def _scope(key: dict[str, Any], session_id: str | None) -> str | None:
    """The cache entry a requested session names (None: not one the journal has)."""
    if session_id in (None, "", "latest"):
        return str(key["sessions"][-1][0])
    if session_id == "all" or any(row[0] == session_id for row in key["sessions"]):
        return session_id
    return None  # unknown: the full path says so in its own words


def _compact(data: Mapping[str, Any]) -> dict[str, Any]:
    """Lists of rows with the same keys as columns and rows (the orders and fills of
    10,000 orders read back several times faster than as objects)."""
    out: dict[str, Any] = {}
    for name, value in data.items():
        if isinstance(value, list) and value and all(isinstance(r, dict) for r in value):
            cols = list(value[0])
            if all(list(r) == cols for r in value):
                out[name] = {_COLS: cols, _ROWS: [list(r.values()) for r in value]}
                continue
        out[name] = value
    return out


def _expand(compact: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in compact.items():
        if isinstance(value, dict) and set(value) == {_COLS, _ROWS}:
            cols, rows = value[_COLS], value[_ROWS]
            if any(len(row) != len(cols) for row in rows):
                raise ValueError(f"report cache: a row of {name} does not fit its columns")
            out[name] = [dict(zip(cols, row, strict=False)) for row in rows]
        else:
            out[name] = value
    return out


def _code_fingerprint() -> str | None:
    paths = [_ENGINE / name for name in _SOURCES]
    try:
        stamp = tuple((st.st_ino, st.st_size, st.st_mtime_ns) for st in map(os.stat, paths))
    except OSError:
        return None  # the code cannot be checked: no cache
    if _FINGERPRINT and _FINGERPRINT[0] == stamp:
        return _FINGERPRINT[1]
    digest = hashlib.sha256(f"{CACHE_VERSION} {sys.version_info[:2]}".encode())
    for path in paths:
        try:
            digest.update(path.read_bytes())
        except OSError:
            return None
    _FINGERPRINT[:] = [stamp, digest.hexdigest()]
    return _FINGERPRINT[1]


_FINGERPRINT: list[Any] = []  # [the sources' stat, their fingerprint] (read again when one changes)


# ---- the fold kept (engine/report/fold.py) ------------------------------------------------

#: what a kept fold may be made of: the unpickler makes nothing else (no other class, no call)
_FOLD_CLASSES = {
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("collections", "Counter"),
    ("decimal", "Decimal"),
    ("datetime", "datetime"),
    ("datetime", "date"),
    ("datetime", "timedelta"),
    ("datetime", "timezone"),
    ("engine.report.fold", "Fold"),
    ("engine.report.fold", "_FoldReader"),
    ("engine.report.building", "SessionReport"),
    ("engine.report.building", "_Trace"),
    ("engine.report.light", "Book"),
    ("engine.report.light", "Ev"),
    ("engine.report.light", "Pos"),
    ("engine.report.pnl", "_PnLFold"),
    ("engine.report.pnl", "_Carry"),
    ("engine.states", "Side"),
    ("engine.states", "OrderStatus"),
    ("engine.states", "OrderType"),
    ("engine.states", "TimeInForce"),
    ("engine.states", "DenialReason"),
    ("engine.states", "TradingState"),
}


def _unpickler(blob: bytes) -> Any:
    """An unpickler of blob that makes only _FOLD_CLASSES (pickle is imported only
    here: a report served from the cache's renderings never needs it)."""
    import io
    import pickle

    class FoldUnpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            if (module, name) not in _FOLD_CLASSES:
                raise pickle.UnpicklingError(f"report cache: {module}.{name} is not part of a report fold")
            return super().find_class(module, name)

    return FoldUnpickler(io.BytesIO(blob))


def _freeze(fold: Any) -> bytes:
    """The fold as kept: its orders and traces as plain data (marshal, no objects), the
    rest pickled (its sessions' lists and counts, P&L so far, the orders' rows)."""
    import pickle

    orders, traces = fold.freeze()
    fold.set_base(lambda value: pickle.dumps(value, protocol=5))
    return marshal.dumps((pickle.dumps(fold, protocol=5), orders, traces), 4)


def fold_of(cached: Mapping[str, Any] | None) -> Any:
    """The fold a cache (read()) kept, when it is of this code (its key's fingerprint);
    else None. Only the classes of a fold are made (_FOLD_CLASSES)."""
    if cached is None:
        return None
    key, blob = cached.get("key"), cached.get("fold")
    if not isinstance(key, dict) or not isinstance(blob, bytes) or key.get("code") != _code_fingerprint():
        return None
    try:
        core, orders, traces = marshal.loads(blob)
        fold = _unpickler(core).load()
        if not (isinstance(orders, dict) and isinstance(traces, dict)) or type(fold).__name__ != "Fold":
            return None
        fold.load_base(lambda blob: _unpickler(blob).load())
        fold.frozen_orders, fold.frozen_traces = orders, traces
        return fold
    except Exception:  # anything else than a fold of this code: not used (derived data)
        return None


def read(journal: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The cache of a journal as it is (any key), or None (none, not this version, not
    this user's alone, unreadable)."""
    try:
        return _read(cache_path(journal))
    except (OSError, ValueError, TypeError, EOFError):
        return None


def fingerprint() -> str | None:
    """The fingerprint of the code that builds and renders a report (in every key)."""
    return _code_fingerprint()
