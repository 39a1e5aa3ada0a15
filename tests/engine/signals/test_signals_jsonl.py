"""JSONL signals: one batch per line, from a file followed as it grows or from stdin.
Every bad line or entry is dropped with a reason; the rest of the batch, and the
source, carry on."""

from __future__ import annotations

import asyncio
import itertools
import os
from datetime import timedelta

import pytest

from engine.signals import (
    MAX_DROPS_PER_BATCH,
    MAX_LINE_BYTES,
    JsonlFileSource,
    JsonlStreamSource,
    SignalSourceError,
)
from tests.engine.signals.signal_fakes import FIXTURES, UNIVERSE, FakeMarket, drain, reasons, utc

TS = "2026-11-25T14:39:00Z"  # one minute before the fake venue's clock
TRADABLE = UNIVERSE - {"XOM"}  # XOM is in the universe but not tradable today


def line(signals_json: str, ts: str = TS) -> bytes:
    return f'{{"ts": "{ts}", "signals": {signals_json}}}\n'.encode()


async def run_stream(data: bytes, *, market: FakeMarket | None = None, max_age: float = 120):
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    source = JsonlStreamSource(reader, known_symbols=UNIVERSE, max_age=max_age)
    return await drain(source.batches(market or FakeMarket(tradable=TRADABLE)))


# (case, line, expected drop reasons, expected signals, whole line refused)
CASES = [
    ("good", line('{"AAPL": 0.42, "MSFT": -0.3}'), [], {"AAPL": 0.42, "MSFT": -0.3}, False),
    (
        "bounds are inclusive, ints are numbers",
        line('{"AAPL": 1, "MSFT": -1, "NVDA": 0, "AMZN": -0.0}'),
        [],
        {"AAPL": 1.0, "MSFT": -1.0, "NVDA": 0.0, "AMZN": 0.0},
        False,
    ),
    ("empty signals is a bar without signals", line("{}"), [], {}, False),
    (
        "extra top-level keys are ignored",
        b'{"model": "v3", "ts": "' + TS.encode() + b'", "signals": {"AAPL": 0.1}}\n',
        [],
        {"AAPL": 0.1},
        False,
    ),
    ("NaN", line('{"AAPL": NaN, "MSFT": 0.1}'), ["NAN"], {"MSFT": 0.1}, False),
    (
        "infinities",
        line('{"AAPL": Infinity, "MSFT": -Infinity, "NVDA": 0.2}'),
        ["INFINITE", "INFINITE"],
        {"NVDA": 0.2},
        False,
    ),
    (
        "a number too big for a float is out of range, not infinite",
        line('{"AAPL": 1e400, "MSFT": -1e400, "NVDA": 0.2}'),
        ["OUT_OF_RANGE", "OUT_OF_RANGE"],
        {"NVDA": 0.2},
        False,
    ),
    ("a huge integer", line('{"AAPL": ' + "9" * 5000 + ', "NVDA": 0.2}'), ["OUT_OF_RANGE"], {"NVDA": 0.2}, False),
    ("string number is not a number", line('{"AAPL": "0.5", "NVDA": 0.2}'), ["NOT_A_NUMBER"], {"NVDA": 0.2}, False),
    ("null", line('{"AAPL": null, "NVDA": 0.2}'), ["NOT_A_NUMBER"], {"NVDA": 0.2}, False),
    (
        "true is not 1.0, false is not 0.0",
        line('{"AAPL": true, "MSFT": false, "NVDA": 0.2}'),
        ["NOT_A_NUMBER", "NOT_A_NUMBER"],
        {"NVDA": 0.2},
        False,
    ),
    (
        "arrays and objects",
        line('{"AAPL": [0.1], "MSFT": {"v": 0.1}, "NVDA": 0.2}'),
        ["NOT_A_NUMBER", "NOT_A_NUMBER"],
        {"NVDA": 0.2},
        False,
    ),
    (
        "outside [-1, 1]",
        line('{"AAPL": 1.5, "MSFT": -1.0001, "NVDA": 2, "AMZN": 0.99}'),
        ["OUT_OF_RANGE"] * 3,
        {"AMZN": 0.99},
        False,
    ),
    (
        "unknown symbols",
        line('{"ZZZZ": 0.1, "aapl": 0.2, "": 0.3, "MSFT": 0.4}'),
        ["UNKNOWN_SYMBOL"] * 3,
        {"MSFT": 0.4},
        False,
    ),
    ("untradable symbol", line('{"XOM": 0.3, "MSFT": 0.4}'), ["UNTRADABLE_SYMBOL"], {"MSFT": 0.4}, False),
    (
        "duplicate key in the signals object",
        line('{"AAPL": 0.1, "AAPL": 0.9, "MSFT": 0.2}'),
        ["DUPLICATE_SYMBOL"],
        {"MSFT": 0.2},
        False,
    ),
    ("malformed JSON", line('{"AAPL": 0.1,}'), ["MALFORMED_LINE"], {}, True),
    ("not an object", b"[1, 2, 3]\n", ["MALFORMED_LINE"], {}, True),
    ("a bare number", b"0.5\n", ["MALFORMED_LINE"], {}, True),
    ("no signals key", b'{"ts": "' + TS.encode() + b'"}\n', ["MALFORMED_LINE"], {}, True),
    ("signals is a list", line('[["AAPL", 0.1]]'), ["MALFORMED_LINE"], {}, True),
    (
        "ts twice",
        b'{"ts": "' + TS.encode() + b'", "ts": "2026-11-25T14:39:30Z", "signals": {"AAPL": 0.1}}\n',
        ["MALFORMED_LINE"],
        {},
        True,
    ),
    (
        "signals twice",
        b'{"ts": "' + TS.encode() + b'", "signals": {"AAPL": 0.1}, "signals": {"AAPL": -0.1}}\n',
        ["MALFORMED_LINE"],
        {},
        True,
    ),
    ("deeply nested", b"[" * 100_000 + b"]" * 100_000 + b"\n", ["MALFORMED_LINE"], {}, True),
    ("missing ts", b'{"signals": {"AAPL": 0.1}}\n', ["BAD_TIMESTAMP"], {}, True),
    ("null ts", b'{"ts": null, "signals": {"AAPL": 0.1}}\n', ["BAD_TIMESTAMP"], {}, True),
    ("unparseable ts", line('{"AAPL": 0.1}', ts="yesterday"), ["BAD_TIMESTAMP"], {}, True),
    ("ts without timezone", line('{"AAPL": 0.1}', ts="2026-11-25T14:39:00"), ["BAD_TIMESTAMP"], {}, True),
    ("date only", line('{"AAPL": 0.1}', ts="2026-11-25"), ["BAD_TIMESTAMP"], {}, True),
    ("epoch number ts", b'{"ts": 1795618740, "signals": {"AAPL": 0.1}}\n', ["BAD_TIMESTAMP"], {}, True),
    ("stale", line('{"AAPL": 0.1}', ts="2026-11-25T14:37:59Z"), ["STALE_BATCH"], {}, True),
    ("far in the future", line('{"AAPL": 0.1}', ts="2026-11-25T15:00:00Z"), ["FUTURE_TIMESTAMP"], {}, True),
    ("NUL bytes", line('{"AAPL": 0.1}').rstrip(b"\n") + b"\x00\x00\n", ["BINARY_GARBAGE"], {}, True),
    ("invalid UTF-8", b'{"ts": "' + TS.encode() + b'", "signals": {"AAPL\xff": 0.1}}\n', ["BINARY_GARBAGE"], {}, True),
    ("PNG header", b"\x89PNG\r\x1a\x00\x00\x00\rIHDR\x00\x00\x01\x00\n", ["BINARY_GARBAGE"], {}, True),
    ("escape character", b"\x1b[31m" + line('{"AAPL": 0.1}'), ["BINARY_GARBAGE"], {}, True),
    ("truncated last line (no newline at end of input)", line('{"AAPL": 0.1}')[:-12], ["TRUNCATED_LINE"], {}, True),
]


@pytest.mark.parametrize("case,data,expected_reasons,expected_signals,rejected", CASES, ids=[c[0] for c in CASES])
async def test_one_line(case, data, expected_reasons, expected_signals, rejected):
    """Given one line of input, then exactly these drops and these signals; the
    batch is refused whole only for line-level problems."""
    [batch] = await run_stream(data)
    assert reasons(batch) == sorted(expected_reasons), [d.detail for d in batch.dropped]
    assert dict(batch.signals) == expected_signals
    assert batch.rejected is rejected
    for d in batch.dropped:
        assert d.detail.startswith("stdin:1"), d.detail  # says where
        assert d.line == 1
    assert all(type(v) is float for v in batch.signals.values())


async def test_timestamps_with_offsets_become_utc_and_blank_lines_are_skipped():
    data = b"\n   \n" + line('{"AAPL": -0.25}', ts="2026-11-25T09:39:00-05:00") + b"\r\n"
    [batch] = await run_stream(data)
    assert batch.ts == utc("2026-11-25T14:39:00+00:00")
    assert batch.ts.utcoffset() == timedelta(0)
    assert batch.origin == "stdin:3"
    assert batch.signals == {"AAPL": -0.25}


async def test_crlf_and_bom_are_tolerated():
    data = b"\xef\xbb\xbf" + line('{"AAPL": 0.1}').rstrip(b"\n") + b"\r\n"
    [batch] = await run_stream(data)
    assert batch.signals == {"AAPL": 0.1} and not batch.dropped


async def test_out_of_order_and_repeated_bars_are_refused_but_later_lines_proceed():
    data = (
        line('{"AAPL": 0.1}', ts="2026-11-25T14:39:00Z")
        + line('{"AAPL": 0.2}', ts="2026-11-25T14:38:30Z")  # older than the last batch
        + line('{"AAPL": 0.3}', ts="2026-11-25T14:39:00Z")  # the same bar again
        + line('{"AAPL": 0.4}', ts="2026-11-25T14:40:00Z")
    )
    batches = await run_stream(data)
    assert [reasons(b) for b in batches] == [[], ["OUT_OF_ORDER"], ["DUPLICATE_BATCH"], []]
    assert [dict(b.signals) for b in batches] == [{"AAPL": 0.1}, {}, {}, {"AAPL": 0.4}]
    assert "older than the last batch 2026-11-25T14:39:00Z" in batches[1].dropped[0].detail


async def test_a_stale_batch_does_not_move_the_bar_clock():
    data = line('{"AAPL": 0.1}', ts="2026-11-25T14:30:00Z") + line('{"AAPL": 0.2}', ts="2026-11-25T14:39:00Z")
    batches = await run_stream(data)
    assert [reasons(b) for b in batches] == [["STALE_BATCH"], []]
    assert "600s old" in batches[0].dropped[0].detail and "max_age 120s" in batches[0].dropped[0].detail


async def test_untradable_is_judged_against_the_market_at_each_batch():
    market = FakeMarket(tradable=UNIVERSE)
    data = line('{"XOM": 0.3}')
    [batch] = await run_stream(data, market=market)
    assert batch.signals == {"XOM": 0.3}


async def test_drop_details_say_what_was_found_and_where():
    [batch] = await run_stream(line('{"AAPL": NaN, "aapl": 0.2, "MSFT": 7}'))
    details = {d.reason: d.detail for d in batch.dropped}
    assert details["NAN"] == "stdin:1: AAPL: expected a number in [-1, 1], found NaN"
    assert "unknown symbol 'aapl'" in details["UNKNOWN_SYMBOL"] and "AAPL" in details["UNKNOWN_SYMBOL"]
    assert details["OUT_OF_RANGE"] == "stdin:1: MSFT: expected a number in [-1, 1], found 7"
    assert {d.symbol for d in batch.dropped} == {"AAPL", "aapl", "MSFT"}


async def test_very_many_bad_entries_are_summarised():
    junk = ", ".join(f'"Z{i}": 0.1' for i in range(5000))
    [batch] = await run_stream(line("{" + junk + ', "AAPL": 0.5}'))
    assert batch.signals == {"AAPL": 0.5}
    assert len(batch.dropped) == MAX_DROPS_PER_BATCH
    assert batch.dropped[-1].reason == "TOO_MANY_DROPS"
    assert "4901 more entries dropped (UNKNOWN_SYMBOL: 4901)" in batch.dropped[-1].detail


async def test_a_line_over_1_mib_is_skipped_and_the_next_line_is_read():
    huge = b'{"ts": "' + TS.encode() + b'", "signals": {"AAPL": 0.1, "pad": "' + b"x" * (MAX_LINE_BYTES + 10) + b'"}}\n'
    batches = await run_stream(huge + line('{"MSFT": 0.2}', ts="2026-11-25T14:39:30Z"))
    assert [reasons(b) for b in batches] == [["LINE_TOO_LONG"], []]
    assert f"limit {MAX_LINE_BYTES}" in batches[0].dropped[0].detail
    assert batches[1].signals == {"MSFT": 0.2}


def test_line_splitter_never_holds_more_than_the_limit():
    """A line too long is skipped as it streams past: memory stays at the limit."""
    from engine.signals import _LineSplitter, _TooLong

    splitter = _LineSplitter(max_bytes=100)
    out = []
    for _ in range(50):
        out += splitter.feed(b"y" * 64)
        assert len(splitter._buf) <= 100
    out += splitter.feed(b"tail\nok\n")
    assert out == [(1, _TooLong(50 * 64 + 4)), (2, b"ok")]


# ------------------------------------------------------------------ the fixture corpus

# tests/fixtures/signals/corpus.jsonl, line by line: (drop reasons, signals).
# The fake venue clock is 14:40:00Z and max_age 120 s.
CORPUS_EXPECTED = {
    1: (["STALE_BATCH"], {}),
    2: ([], {"AAPL": 0.42, "MSFT": -0.3}),
    3: (["NAN"], {"MSFT": 0.1}),
    4: (["INFINITE", "INFINITE"], {"NVDA": 0.2}),
    5: (["NOT_A_NUMBER"] * 6, {"TSLA": 0.3}),
    6: (["OUT_OF_RANGE"] * 3, {"AMZN": 1.0, "GOOGL": -1.0, "META": 0.0}),
    7: (["UNKNOWN_SYMBOL", "UNKNOWN_SYMBOL", "UNTRADABLE_SYMBOL"], {"MSFT": 0.4}),
    8: (["DUPLICATE_SYMBOL"], {"MSFT": 0.2}),
    9: (["MALFORMED_LINE"], {}),
    10: (["MALFORMED_LINE"], {}),
    11: (["MALFORMED_LINE"], {}),
    12: (["MALFORMED_LINE"], {}),
    13: (["MALFORMED_LINE"], {}),
    14: (["BAD_TIMESTAMP"], {}),
    15: (["BAD_TIMESTAMP"], {}),
    16: (["BAD_TIMESTAMP"], {}),
    17: (["BAD_TIMESTAMP"], {}),
    18: ([], {"AAPL": -0.25}),
    19: (["OUT_OF_ORDER"], {}),
    20: (["DUPLICATE_BATCH"], {}),
    21: (["FUTURE_TIMESTAMP"], {}),
    22: (["BINARY_GARBAGE"], {}),
    23: (["BINARY_GARBAGE"], {}),
    24: (["BINARY_GARBAGE"], {}),
    # 25 is blank: no batch
    26: ([], {"NVDA": 0.05}),
    27: (["TRUNCATED_LINE"], {}),
}


async def test_the_corpus_file_end_to_end_nothing_stops_the_source():
    """Given the corpus file, when it is read to the end and the source is closed,
    then every line gives exactly its expected batch, in order."""
    source = JsonlFileSource(FIXTURES / "corpus.jsonl", known_symbols=UNIVERSE, max_age=120, poll_interval=0.01)
    it = source.batches(FakeMarket(tradable=TRADABLE))
    first = await take_from(it, 25)
    await source.aclose()
    batches = first + await drain(it)
    got = {
        b.dropped[0].line if b.dropped else int(b.origin.rsplit(":", 1)[1]): (reasons(b), dict(b.signals))
        for b in batches
    }
    assert got == CORPUS_EXPECTED
    assert len(batches) == len(CORPUS_EXPECTED)
    assert all(b.origin.startswith("corpus.jsonl:") for b in batches)


async def take_from(it, n):
    out = []

    async def collect():
        async for b in it:
            out.append(b)
            if len(out) == n:
                return

    await asyncio.wait_for(collect(), 5)
    return out


# ------------------------------------------------------------------ following a file


async def test_a_file_is_followed_as_it_grows(tmp_path):
    """Given a source started on a file, when lines are appended later (one of them
    in two writes), then each becomes a batch as soon as its newline arrives."""
    path = tmp_path / "signals.jsonl"
    path.write_bytes(line('{"AAPL": 0.1}', ts="2026-11-25T14:39:00Z"))
    source = JsonlFileSource(path, known_symbols=UNIVERSE, max_age=120, poll_interval=0.01)
    market = FakeMarket()
    it = source.batches(market)
    [first] = await take_from(it, 1)
    assert first.signals == {"AAPL": 0.1} and first.origin == "signals.jsonl:1"

    second = line('{"MSFT": -0.2}', ts="2026-11-25T14:39:20Z")
    with path.open("ab") as f:
        f.write(second[:20])
        f.flush()
        pending = asyncio.ensure_future(take_from(it, 1))
        await asyncio.sleep(0.1)
        assert not pending.done(), "a partial line must be held until its newline arrives"
        f.write(second[20:])
        f.flush()
        [batch] = await asyncio.wait_for(pending, 2)
    assert batch.signals == {"MSFT": -0.2} and batch.origin == "signals.jsonl:2"

    with path.open("ab") as f:
        f.write(b"garbage\x00\n" + line('{"NVDA": 0.3}', ts="2026-11-25T14:39:40Z"))
    later = await take_from(it, 2)
    assert [reasons(b) for b in later] == [["BINARY_GARBAGE"], []]
    assert later[1].signals == {"NVDA": 0.3}

    await source.aclose()
    assert await drain(it) == []


async def test_closing_a_followed_file_with_a_partial_line_reports_it_truncated(tmp_path):
    path = tmp_path / "signals.jsonl"
    path.write_bytes(line('{"AAPL": 0.1}')[:-5])
    source = JsonlFileSource(path, known_symbols=UNIVERSE, max_age=120, poll_interval=0.01)
    it = source.batches(FakeMarket())
    waiting = asyncio.ensure_future(take_from(it, 1))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    await source.aclose()
    [batch] = await asyncio.wait_for(waiting, 2)
    assert reasons(batch) == ["TRUNCATED_LINE"] and batch.rejected
    assert await drain(it) == []


async def test_a_quiet_file_does_not_busy_loop(tmp_path):
    """Following a file that does not grow sleeps between looks (poll interval)."""
    path = tmp_path / "signals.jsonl"
    path.write_bytes(b"")
    source = JsonlFileSource(path, known_symbols=UNIVERSE, max_age=120, poll_interval=0.05)
    reads = 0
    real_read = source._file.read

    def counting_read():
        nonlocal reads
        reads += 1
        return real_read()

    source._file.read = counting_read
    task = asyncio.ensure_future(drain(source.batches(FakeMarket())))
    await asyncio.sleep(0.5)
    await source.aclose()
    assert await asyncio.wait_for(task, 2) == []
    assert reads <= 0.5 / 0.05 + 3, reads


async def test_a_replaced_file_is_read_from_its_start_and_old_bars_are_not_repeated(tmp_path):
    path = tmp_path / "signals.jsonl"
    path.write_bytes(line('{"AAPL": 0.1}', ts="2026-11-25T14:39:00Z"))
    source = JsonlFileSource(path, known_symbols=UNIVERSE, max_age=120, poll_interval=0.01)
    it = source.batches(FakeMarket())
    await take_from(it, 1)
    replacement = tmp_path / "new.jsonl"
    replacement.write_bytes(
        line('{"AAPL": 0.1}', ts="2026-11-25T14:39:00Z") + line('{"AAPL": 0.5}', ts="2026-11-25T14:39:30Z")
    )
    os.replace(replacement, path)
    batches = await take_from(it, 2)
    assert [reasons(b) for b in batches] == [["DUPLICATE_BATCH"], []]
    assert batches[1].signals == {"AAPL": 0.5}
    await source.aclose()


def test_a_missing_file_is_a_clear_startup_error(tmp_path):
    with pytest.raises(SignalSourceError, match="file not found") as err:
        JsonlFileSource(tmp_path / "nope.jsonl", known_symbols=UNIVERSE, max_age=120)
    assert "nope.jsonl" in str(err.value)
    with pytest.raises(SignalSourceError, match="is a directory"):
        JsonlFileSource(tmp_path, known_symbols=UNIVERSE, max_age=120)


async def test_a_file_that_vanishes_before_reading_ends_the_source_with_a_reason(tmp_path):
    path = tmp_path / "signals.jsonl"
    path.write_bytes(b"")
    source = JsonlFileSource(path, known_symbols=UNIVERSE, max_age=120, poll_interval=0.01)
    path.unlink()
    [batch] = await drain(source.batches(FakeMarket()))
    assert reasons(batch) == ["READ_ERROR"] and "FileNotFoundError" in batch.dropped[0].detail


async def test_open_source_follows_the_configured_file(tmp_path):
    from engine.config import Settings
    from engine.signals import CsvFileSource, open_source

    path = tmp_path / "signals.jsonl"
    path.write_bytes(line('{"AAPL": 0.1}'))
    settings = Settings.model_validate({"signals": {"kind": "jsonl", "path": str(path)}})
    source = open_source(settings, known_symbols=UNIVERSE)
    assert isinstance(source, JsonlFileSource)
    [batch] = await take_from(source.batches(FakeMarket()), 1)
    assert batch.signals == {"AAPL": 0.1}
    await source.aclose()

    csv_path = tmp_path / "signals.csv"
    csv_path.write_text("ts,symbol,signal\n")
    settings = Settings.model_validate({"signals": {"kind": "csv", "path": str(csv_path)}})
    assert isinstance(open_source(settings, known_symbols=UNIVERSE), CsvFileSource)


def rewrite_in_place(path, data: bytes) -> None:
    """Truncate the file and write it again, larger: the same inode, no moment at which
    a look would see it shorter than what was read (a writer between two polls)."""
    with path.open("r+b") as f:
        f.truncate(0)
        f.write(data)
        f.flush()


async def test_a_file_truncated_and_rewritten_larger_between_two_polls_is_read_from_its_start(tmp_path):
    """Given a followed file whose two lines were read, when it is truncated and
    rewritten larger (same inode) before the next look, then the source starts again
    from the first line: no new batch lost, line numbers from 1."""
    path = tmp_path / "signals.jsonl"
    path.write_bytes(
        line('{"AAPL": 0.1}', ts="2026-11-25T14:39:00Z") + line('{"AAPL": 0.2}', ts="2026-11-25T14:39:10Z")
    )
    inode = path.stat().st_ino
    source = JsonlFileSource(path, known_symbols=UNIVERSE, max_age=120, poll_interval=0.05)
    it = source.batches(FakeMarket())
    assert [b.signals for b in await take_from(it, 2)] == [{"AAPL": 0.1}, {"AAPL": 0.2}]
    new = [
        line('{"MSFT": -0.25, "NVDA": 0.5}', ts="2026-11-25T14:39:20Z"),
        line('{"JPM": 0.3}', ts="2026-11-25T14:39:30Z"),
        line('{"KO": 0.4}', ts="2026-11-25T14:39:40Z"),
    ]
    rewrite_in_place(path, b"".join(new))
    assert path.stat().st_ino == inode and path.stat().st_size > len(new[0]) + len(new[1]) - 10
    batches = await take_from(it, 3)
    assert [b.origin for b in batches] == ["signals.jsonl:1", "signals.jsonl:2", "signals.jsonl:3"]
    assert [b.signals for b in batches] == [{"MSFT": -0.25, "NVDA": 0.5}, {"JPM": 0.3}, {"KO": 0.4}]
    assert not any(b.dropped for b in batches)
    assert source._file.rewrites == 1  # noqa: SLF001
    await source.aclose()


async def test_a_rewrite_that_keeps_the_head_is_seen_by_the_bytes_before_the_offset(tmp_path):
    """The first 4 KiB are the same (a long first line), the rest was rewritten: the
    bytes just before the read offset differ, and the file is read again."""
    first = b'{"ts": "2026-11-25T14:39:00Z", "model": "' + b"x" * 5000 + b'", "signals": {"AAPL": 0.1}}\n'
    path = tmp_path / "signals.jsonl"
    path.write_bytes(first + line('{"AAPL": 0.2}', ts="2026-11-25T14:39:10Z"))
    source = JsonlFileSource(path, known_symbols=UNIVERSE, max_age=120, poll_interval=0.05)
    it = source.batches(FakeMarket())
    assert len(await take_from(it, 2)) == 2
    rewrite_in_place(
        path, first + line('{"MSFT": 0.7}', ts="2026-11-25T14:39:20Z") + line('{"KO": 0.4}', ts="2026-11-25T14:39:30Z")
    )
    batches = await take_from(it, 3)
    assert [b.origin for b in batches] == ["signals.jsonl:1", "signals.jsonl:2", "signals.jsonl:3"]
    assert reasons(batches[0]) == ["OUT_OF_ORDER"]  # a bar already passed is not taken again
    assert [b.signals for b in batches[1:]] == [{"MSFT": 0.7}, {"KO": 0.4}]
    await source.aclose()


async def test_reading_a_backlog_lets_the_event_loop_run(tmp_path):
    """Given 10,000 lines already in the file, when the source reads them, then other
    tasks on the loop (the engine, its control socket) run every LINES_PER_YIELD lines
    instead of waiting for the whole backlog."""
    from engine.signals import LINES_PER_YIELD

    n = 10_000
    start = utc("2026-11-25T14:39:00Z")
    path = tmp_path / "signals.jsonl"
    path.write_bytes(
        b"".join(
            line('{"AAPL": 0.1}', ts=(start + timedelta(milliseconds=i)).isoformat().replace("+00:00", "Z"))
            for i in range(n)
        )
    )
    source = JsonlFileSource(path, known_symbols=UNIVERSE, max_age=120, poll_interval=0.05)
    ticks: list[int] = []
    got: list[int] = []

    async def other_task():
        while True:
            ticks.append(len(got))
            await asyncio.sleep(0)

    ticker = asyncio.ensure_future(other_task())
    try:
        async for _batch in source.batches(FakeMarket()):
            got.append(1)
            if len(got) == n:
                break
    finally:
        ticker.cancel()
        await source.aclose()
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert len(ticks) >= n // LINES_PER_YIELD, f"the loop ran {len(ticks)} times while {n} lines were read"
    assert max(gaps) <= LINES_PER_YIELD, f"{max(gaps)} lines were read without letting the loop run"
