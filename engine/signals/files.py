"""File and stdin sources: JSONL or CSV files read from the start and followed as
they grow (tail -f), and JSONL on a stream (stdin). A file rewritten in place (new
inode, shorter, or other bytes where the old ones were) is read again from its
start. Reading yields to the event loop every LINES_PER_YIELD lines, so a backlog
never holds up the engine that shares the loop."""

from __future__ import annotations

import asyncio
import csv
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.signals.base import _Closed, _SourceBase
from engine.signals.decoding import (
    MAX_LINE_BYTES,
    _blank,
    _clip,
    _decode_line,
    _Entry,
    _iso,
    _LineSplitter,
    _parse_ts,
    _read_jsonl_line,
    _text_value,
    _TooLong,
)
from engine.signals.types import DropReason, MarketView, SignalBatch, SignalKind, SignalSourceError
from engine.signals.validation import _Judge

__all__ = ["CsvFileSource", "JsonlFileSource", "JsonlStreamSource"]

READ_CHUNK = 64 * 1024
POLL_INTERVAL = 0.2  # seconds between looks at a followed file that has not grown
CSV_IDLE_FLUSH = 0.5  # seconds a CSV file must stop growing before its last group is emitted
MAX_CSV_GROUP_ROWS = 10_000  # a CSV group larger than this is refused whole
LINES_PER_YIELD = 100  # lines read before the source lets the event loop run
HEAD_BYTES = 4096  # bytes at the start of a followed file that must stay the same
TAIL_BYTES = 256  # bytes just before the read offset that must stay the same


class _JsonlLines(_SourceBase):
    """Shared by the file and stream JSONL sources: bytes -> batches."""

    name = "jsonl"

    def __init__(self, known_symbols: frozenset[str], max_age: float):
        super().__init__(known_symbols, max_age)
        self._splitter = _LineSplitter()

    async def _batches_from(self, market: MarketView, chunk: bytes) -> AsyncIterator[SignalBatch]:
        """The chunk's batches, letting the event loop run every LINES_PER_YIELD lines."""
        for i, (n, raw) in enumerate(self._splitter.feed(chunk), 1):
            if not _blank(raw):
                yield self._line_batch(market, n, raw)
            if i % LINES_PER_YIELD == 0:
                await asyncio.sleep(0)
        await asyncio.sleep(0)

    def _end_batches(self, market: MarketView) -> list[SignalBatch]:
        tail = self._splitter.finish()
        if tail is None:
            return []
        line_no, raw = tail
        where = f"{self.name}:{line_no}"
        if isinstance(raw, _TooLong):
            return [
                self._judge.reject(
                    market,
                    DropReason.LINE_TOO_LONG,
                    f"{where}: line of {raw.size} bytes (limit {MAX_LINE_BYTES}), unfinished at close",
                    origin=where,
                    line=line_no,
                )
            ]
        if _blank(raw):
            return []
        return [
            self._judge.reject(
                market,
                DropReason.TRUNCATED_LINE,
                f"{where}: last line has no newline at close "
                f"({len(raw)} bytes: {_clip(raw.decode('utf-8', 'replace'), 40)!r})",
                origin=where,
                line=line_no,
            )
        ]

    def _line_batch(self, market: MarketView, line_no: int, raw: bytes | _TooLong) -> SignalBatch:
        where = f"{self.name}:{line_no}"
        if isinstance(raw, _TooLong):
            return self._judge.reject(
                market,
                DropReason.LINE_TOO_LONG,
                f"{where}: line of {raw.size} bytes skipped (limit {MAX_LINE_BYTES})",
                origin=where,
                line=line_no,
            )
        text, why = _decode_line(raw, line_no)
        if text is None:
            return self._judge.reject(market, DropReason.BINARY_GARBAGE, f"{where}: {why}", origin=where, line=line_no)
        verdict = _read_jsonl_line(text, line_no, where)
        if verdict.reason is not None:
            return self._judge.reject(market, verdict.reason, verdict.detail, origin=where, line=line_no)
        assert verdict.ts is not None
        return self._judge.judge(
            market, verdict.ts, verdict.entries, origin=where, where=where, line=line_no, kind=verdict.kind
        )


def _read_failed(judge: _Judge, market: MarketView, where: str, exc: BaseException) -> SignalBatch:
    return judge.reject(
        market,
        DropReason.READ_ERROR,
        f"{where}: reading failed: {type(exc).__name__}: {_clip(str(exc))}; this source ends here",
        origin=where,
    )


class _FollowedFile:
    """A file read from the start and then followed as it grows (tail -f). If the path
    names another file (new inode), the file is shorter than what was read, or the
    bytes read before (its first HEAD_BYTES, the TAIL_BYTES before the offset) are not
    there any more (truncated and rewritten larger between two looks), it is read
    again from the start."""

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None
        self._ino: int | None = None
        self._pos = 0
        self._head = b""  # the first HEAD_BYTES read
        self._tail = b""  # the last TAIL_BYTES read, ending at _pos
        self.rewrites = 0  # times the file was found rewritten and read again

    def open(self) -> None:
        self._fd = os.open(self.path, os.O_RDONLY)
        self._ino = os.fstat(self._fd).st_ino
        self._pos = 0
        self._head = self._tail = b""

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def read(self) -> bytes:
        """The next chunk (b"" when nothing new)."""
        assert self._fd is not None
        chunk = os.pread(self._fd, READ_CHUNK, self._pos)
        if chunk:
            self._pos += len(chunk)
            if len(self._head) < HEAD_BYTES:
                self._head += chunk[: HEAD_BYTES - len(self._head)]
            self._tail = (self._tail + chunk[-TAIL_BYTES:])[-TAIL_BYTES:]
        return chunk

    def rewritten(self) -> str | None:
        """Why what is at the path no longer continues what was read (None: it does)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None  # being replaced: keep the old one until the new one appears
        if st.st_ino != self._ino:
            return "replaced"
        if st.st_size < self._pos:
            return "truncated"
        assert self._fd is not None
        if self._head and os.pread(self._fd, len(self._head), 0) != self._head:
            return "rewritten"
        if self._tail and os.pread(self._fd, len(self._tail), self._pos - len(self._tail)) != self._tail:
            return "rewritten"
        return None

    def restarted(self) -> bool:
        """True (and reopened at the start) when the file was replaced, truncated or
        rewritten since the last read."""
        if self.rewritten() is None:
            return False
        self.close()
        self.open()
        self.rewrites += 1
        return True


def _checked_path(path: str, kind: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise SignalSourceError(f"signals.path {path!r} ({kind}): file not found", path=path)
    if p.is_dir():
        raise SignalSourceError(f"signals.path {path!r} ({kind}): is a directory, expected a file", path=path)
    try:
        os.close(os.open(p, os.O_RDONLY))
    except OSError as exc:
        raise SignalSourceError(f"signals.path {path!r} ({kind}): cannot read: {exc.strerror}", path=path) from None
    return p


class JsonlFileSource(_JsonlLines):
    """One batch per line of a JSONL file, read from its start and followed as it grows.
    Ends only after aclose(); a last line still without newline then is TRUNCATED_LINE."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        known_symbols: frozenset[str],
        max_age: float,
        poll_interval: float = POLL_INTERVAL,
    ):
        super().__init__(known_symbols, max_age)
        self._file = _FollowedFile(_checked_path(os.fspath(path), "jsonl"))
        self.name = self._file.path.name
        self._poll = poll_interval

    async def batches(self, market: MarketView) -> AsyncIterator[SignalBatch]:
        try:
            self._file.open()
        except OSError as exc:
            yield _read_failed(self._judge, market, f"{self.name}:1", exc)
            return
        try:
            while True:
                closing = self._closing.is_set()  # read once more after aclose(), then stop
                try:
                    # checked before every read: a rewrite between two looks is not read
                    # from the old offset
                    restarted = not closing and self._file.restarted()
                    chunk = b"" if restarted else self._file.read()
                except OSError as exc:
                    yield _read_failed(self._judge, market, f"{self.name}:{self._splitter.line_no + 1}", exc)
                    break
                if restarted:
                    for batch in self._end_batches(market):
                        yield batch
                    self._splitter = _LineSplitter()  # line numbers start again at 1
                    continue
                if chunk:
                    async for batch in self._batches_from(market, chunk):
                        yield batch
                    continue
                if closing:
                    break
                await self._pause(self._poll)
            for batch in self._end_batches(market):
                yield batch
        finally:
            self._file.close()


class JsonlStreamSource(_JsonlLines):
    """One batch per line from a stream (stdin): an asyncio.StreamReader, or a binary
    file object read by a daemon thread. Ends at end of input or aclose()."""

    def __init__(self, stream: Any, *, known_symbols: frozenset[str], max_age: float, name: str = "stdin"):
        super().__init__(known_symbols, max_age)
        self.name = name
        if isinstance(stream, asyncio.StreamReader):
            self._reader: asyncio.StreamReader | None = stream
            self._fileobj = None
        else:
            self._reader = None
            self._fileobj = getattr(stream, "buffer", stream)  # text stdin -> its bytes
            if not (hasattr(self._fileobj, "read1") or hasattr(self._fileobj, "read")):
                raise SignalSourceError(f"signals from {name}: {type(stream).__name__} is not readable")

    async def batches(self, market: MarketView) -> AsyncIterator[SignalBatch]:
        read = self._reader.read if self._reader is not None else self._thread_reader()
        while True:
            try:
                chunk = await self._unless_closed(read(READ_CHUNK))
            except _Closed:
                break
            except Exception as exc:  # noqa: BLE001 - a broken stream ends the source, said in a drop
                where = f"{self.name}:{self._splitter.line_no + 1}"
                yield _read_failed(self._judge, market, where, exc)
                break
            if not chunk:
                break
            async for batch in self._batches_from(market, chunk):
                yield batch
        for batch in self._end_batches(market):
            yield batch

    def _thread_reader(self) -> Callable[[int], Awaitable[bytes]]:
        """A daemon thread reads the file object and hands chunks to the loop; it never
        holds up shutdown (a blocking read on a silent pipe cannot be cancelled)."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes | BaseException] = asyncio.Queue()
        fileobj = self._fileobj
        assert fileobj is not None  # a stream without a StreamReader has a file object
        read_some = getattr(fileobj, "read1", None) or fileobj.read

        def pump() -> None:
            while True:
                try:
                    chunk = read_some(READ_CHUNK)
                    item: bytes | BaseException = bytes(chunk or b"")
                except BaseException as exc:  # noqa: BLE001
                    item = exc
                try:
                    loop.call_soon_threadsafe(queue.put_nowait, item)
                except RuntimeError:  # loop closed
                    return
                if not isinstance(item, bytes) or not item:
                    return

        threading.Thread(target=pump, name=f"signals-{self.name}", daemon=True).start()

        async def read(_: int) -> bytes:
            item = await queue.get()
            if isinstance(item, BaseException):
                raise item
            return item

        return read


@dataclass
class _CsvGroup:
    ts: datetime
    first_line: int
    last_line: int
    entries: list[_Entry] = field(default_factory=list)
    rows: int = 0


class CsvFileSource(_SourceBase):
    """`ts,symbol,signal` rows (header first; `weight` instead of `signal` for target
    weights); consecutive rows with the same ts form one batch, emitted when the ts
    changes, when the file has not grown for CSV_IDLE_FLUSH seconds, or at aclose().
    The file is followed as it grows, like JSONL."""

    COLUMNS = ("ts", "symbol", "signal")
    WEIGHT_COLUMNS = ("ts", "symbol", "weight")

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        known_symbols: frozenset[str],
        max_age: float,
        poll_interval: float = POLL_INTERVAL,
        idle_flush: float = CSV_IDLE_FLUSH,
    ):
        super().__init__(known_symbols, max_age)
        self._file = _FollowedFile(_checked_path(os.fspath(path), "csv"))
        self.name = self._file.path.name
        self._poll = poll_interval
        self._idle_flush = idle_flush
        self._splitter = _LineSplitter()
        self._columns: tuple[int, int, int] | None = None
        self._width = 3
        self._group: _CsvGroup | None = None
        self._kind = SignalKind.SCORE

    async def batches(self, market: MarketView) -> AsyncIterator[SignalBatch]:
        loop = asyncio.get_running_loop()
        try:
            self._file.open()
        except OSError as exc:
            yield _read_failed(self._judge, market, f"{self.name}:1", exc)
            return
        last_growth = loop.time()
        try:
            while True:
                closing = self._closing.is_set()
                try:
                    restarted = not closing and self._file.restarted()
                    chunk = b"" if restarted else self._file.read()
                except OSError as exc:
                    yield _read_failed(self._judge, market, f"{self.name}:{self._splitter.line_no + 1}", exc)
                    break
                if restarted:
                    for batch in self._end(market):
                        yield batch
                    self._splitter, self._columns, self._width = _LineSplitter(), None, 3
                    self._kind = SignalKind.SCORE
                    continue
                if chunk:
                    last_growth = loop.time()
                    for i, (n, raw) in enumerate(self._splitter.feed(chunk), 1):
                        for batch in self._row(market, n, raw):
                            yield batch
                        if i % LINES_PER_YIELD == 0:
                            await asyncio.sleep(0)
                    await asyncio.sleep(0)
                    continue
                if closing:
                    break
                if self._group is not None and loop.time() - last_growth >= self._idle_flush:
                    yield self._flush(market)
                    continue
                await self._pause(self._poll)
            for batch in self._end(market):
                yield batch
        finally:
            self._file.close()

    def _end(self, market: MarketView) -> list[SignalBatch]:
        out = []
        tail = self._splitter.finish()
        if tail is not None and not _blank(tail[1]):
            n, raw = tail
            where = f"{self.name}:{n}"
            if isinstance(raw, _TooLong):
                out.append(
                    self._judge.reject(
                        market,
                        DropReason.LINE_TOO_LONG,
                        f"{where}: line of {raw.size} bytes (limit {MAX_LINE_BYTES}), unfinished at close",
                        origin=where,
                        line=n,
                    )
                )
            else:
                out.append(
                    self._judge.reject(
                        market,
                        DropReason.TRUNCATED_LINE,
                        f"{where}: last row has no newline at close ({_clip(raw.decode('utf-8', 'replace'), 40)!r})",
                        origin=where,
                        line=n,
                    )
                )
        if self._group is not None:
            out.append(self._flush(market))
        return out

    def _flush(self, market: MarketView) -> SignalBatch:
        group, self._group = self._group, None
        assert group is not None
        span = f"{group.first_line}" if group.first_line == group.last_line else f"{group.first_line}-{group.last_line}"
        origin = f"{self.name}:{span}"
        if group.rows > MAX_CSV_GROUP_ROWS:
            return self._judge.reject(
                market,
                DropReason.BATCH_TOO_LARGE,
                f"{origin}: {group.rows} rows for {_iso(group.ts)} (limit {MAX_CSV_GROUP_ROWS}); none acted on",
                origin=origin,
                ts=group.ts,
                line=group.first_line,
            )
        return self._judge.judge(
            market,
            group.ts,
            group.entries,
            origin=origin,
            where=f"{self.name}:{group.first_line}",
            line=group.first_line,
            kind=self._kind,
        )

    def _row(self, market: MarketView, n: int, raw: bytes | _TooLong) -> list[SignalBatch]:
        where = f"{self.name}:{n}"
        reject = self._judge.reject
        if isinstance(raw, _TooLong):
            return [
                reject(
                    market,
                    DropReason.LINE_TOO_LONG,
                    f"{where}: line of {raw.size} bytes skipped (limit {MAX_LINE_BYTES})",
                    origin=where,
                    line=n,
                )
            ]
        if _blank(raw):
            return []
        text, why = _decode_line(raw, n)
        if text is None:
            return [reject(market, DropReason.BINARY_GARBAGE, f"{where}: {why}", origin=where, line=n)]
        try:
            cells = [c.strip() for c in next(csv.reader([text], strict=True))]
        except (csv.Error, StopIteration) as exc:
            return [reject(market, DropReason.MALFORMED_LINE, f"{where}: not a CSV row: {exc}", origin=where, line=n)]
        if self._columns is None:
            return self._header(market, n, cells, where)
        if len(cells) != self._width:
            return [
                reject(
                    market,
                    DropReason.MALFORMED_LINE,
                    f"{where}: {len(cells)} fields, expected {self._width} ({','.join(self.COLUMNS)})",
                    origin=where,
                    line=n,
                )
            ]
        ts_raw, symbol, value = (cells[i] for i in self._columns)
        ts, why = _parse_ts(ts_raw)
        if ts is None:
            return [
                reject(
                    market,
                    DropReason.BAD_TIMESTAMP,
                    f"{where}: {why}",
                    origin=where,
                    line=n,
                    symbol=_clip(symbol) or None,
                )
            ]
        out = []
        if self._group is not None and self._group.ts != ts:
            out.append(self._flush(market))
        if self._group is None:
            self._group = _CsvGroup(ts=ts, first_line=n, last_line=n)
        group = self._group
        group.last_line = n
        group.rows += 1
        if group.rows <= MAX_CSV_GROUP_ROWS:
            group.entries.append(_Entry(symbol, _text_value(value), n))
        return out

    def _header(self, market: MarketView, n: int, cells: list[str], where: str) -> list[SignalBatch]:
        names = [c.lower() for c in cells]
        both = "signal" in names and "weight" in names
        for columns, kind in ((self.COLUMNS, SignalKind.SCORE), (self.WEIGHT_COLUMNS, SignalKind.WEIGHT)):
            if not both and all(names.count(c) == 1 for c in columns):
                self._columns = tuple(names.index(c) for c in columns)  # type: ignore[assignment]
                self._width = len(names)
                self._kind = kind
                return []
        self._columns, self._width, self._kind = (0, 1, 2), 3, SignalKind.SCORE
        why = "has both signal and weight columns (a file is scores or target weights)" if both else "is not"
        return [
            self._judge.reject(
                market,
                DropReason.BAD_HEADER,
                f"{where}: first row {_clip(','.join(cells), 60)!r} {why} the header ts,symbol,signal"
                " (or ts,symbol,weight); line skipped, columns taken as ts,symbol,signal",
                origin=where,
                line=n,
            )
        ]
