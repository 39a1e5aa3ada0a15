"""CSV signals: `ts,symbol,signal` rows; consecutive rows with the same ts are one
batch, emitted when the ts changes, when the file stops growing, or at close."""

from __future__ import annotations

import asyncio

import pytest

import engine.signals.files as signal_files  # where MAX_CSV_GROUP_ROWS is read
from engine.signals import CsvFileSource, SignalSourceError
from tests.engine.signals.signal_fakes import FIXTURES, UNIVERSE, FakeMarket, drain, reasons, utc

TRADABLE = UNIVERSE - {"XOM"}


def source_for(path, *, idle_flush: float = 30.0) -> CsvFileSource:
    return CsvFileSource(path, known_symbols=UNIVERSE, max_age=120, poll_interval=0.01, idle_flush=idle_flush)


async def read_all(path, market: FakeMarket | None = None, *, settle: float = 0.1):
    """Read a file as it stands, then close the source and collect everything."""
    source = source_for(path)
    it = source.batches(market or FakeMarket(tradable=TRADABLE))
    out = []

    async def collect():
        async for b in it:
            out.append(b)

    task = asyncio.ensure_future(collect())
    await asyncio.sleep(settle)
    await source.aclose()
    await asyncio.wait_for(task, 5)
    return out


async def next_batches(it, n, timeout=3.0):
    out = []

    async def collect():
        async for b in it:
            out.append(b)
            if len(out) == n:
                return

    await asyncio.wait_for(collect(), timeout)
    return out


async def test_the_csv_corpus_end_to_end():
    """Given the CSV corpus, then bad rows are refused on the spot, each group of
    rows with one ts is one batch with its own drops, and nothing stops the source."""
    batches = await read_all(FIXTURES / "corpus.csv")
    summary = [(b.origin, reasons(b), dict(b.signals), b.rejected) for b in batches]
    assert summary == [
        ("corpus.csv:14", ["MALFORMED_LINE"], {}, True),
        ("corpus.csv:15", ["BAD_TIMESTAMP"], {}, True),
        ("corpus.csv:16", ["BINARY_GARBAGE"], {}, True),
        (
            "corpus.csv:2-18",
            sorted(
                [
                    "NAN",
                    "INFINITE",
                    "NOT_A_NUMBER",
                    "NOT_A_NUMBER",
                    "NOT_A_NUMBER",
                    "NOT_A_NUMBER",
                    "OUT_OF_RANGE",
                    "OUT_OF_RANGE",
                    "UNKNOWN_SYMBOL",
                    "UNTRADABLE_SYMBOL",
                    "DUPLICATE_SYMBOL",
                ]
            ),
            {"AAPL": 0.42, "MSFT": -0.3},
            False,
        ),
        ("corpus.csv:19-20", [], {"AAPL": 0.5, "MSFT": -0.5}, False),
        ("corpus.csv:21", ["OUT_OF_ORDER"], {}, True),
        ("corpus.csv:22", ["DUPLICATE_BATCH"], {}, True),
        ("corpus.csv:25", ["MALFORMED_LINE"], {}, True),
        ("corpus.csv:26", ["TRUNCATED_LINE"], {}, True),
        ("corpus.csv:24", [], {"AAPL": 0.3}, False),
    ]
    group = batches[3]
    assert group.ts == utc("2026-11-25T14:38:05+00:00")
    by_symbol = {d.symbol: d for d in group.dropped}
    assert by_symbol["NVDA"].line == 4 and by_symbol["NVDA"].detail.startswith("corpus.csv:4: NVDA")
    assert by_symbol["KO"].detail.startswith("corpus.csv:12,13: KO appears 2 times")
    assert by_symbol["TSLA"].detail.endswith("found text ''")
    assert by_symbol["V"].reason == "NOT_A_NUMBER"  # 0.1_0 is not a plain decimal number
    assert by_symbol["MA"].reason == "OUT_OF_RANGE"  # 1e400 is a (too) large number, not infinity
    assert by_symbol["AMZN"].reason == "INFINITE"
    assert batches[6].dropped[0].detail.startswith("corpus.csv:22: a batch for 2026-11-25T14:38:30Z was already taken")


async def test_a_group_is_emitted_when_the_ts_changes_even_while_the_file_grows(tmp_path):
    path = tmp_path / "signals.csv"
    path.write_text("ts,symbol,signal\n2026-11-25T14:39:00Z,AAPL,0.1\n2026-11-25T14:39:00Z,MSFT,0.2\n")
    source = source_for(path)
    it = source.batches(FakeMarket())
    pending = asyncio.ensure_future(next_batches(it, 1))
    await asyncio.sleep(0.1)
    assert not pending.done(), "the group may still grow: nothing is emitted yet"
    with path.open("a") as f:
        f.write("2026-11-25T14:39:00Z,NVDA,0.3\n2026-11-25T14:40:00Z,AAPL,-0.1\n")
    [batch] = await asyncio.wait_for(pending, 2)
    assert batch.signals == {"AAPL": 0.1, "MSFT": 0.2, "NVDA": 0.3}
    assert batch.origin == "signals.csv:2-4"
    await source.aclose()
    [last] = await drain(it)
    assert last.signals == {"AAPL": -0.1} and last.origin == "signals.csv:5"


async def test_a_group_is_emitted_when_the_file_stops_growing_and_late_rows_are_refused(tmp_path):
    """Given a file whose last group is complete, when it has not grown for
    idle_flush seconds, then that group is emitted; rows for the same bar written
    after that are a DUPLICATE_BATCH, never a second trade."""
    path = tmp_path / "signals.csv"
    path.write_text("ts,symbol,signal\n2026-11-25T14:39:00Z,AAPL,0.1\n")
    source = source_for(path, idle_flush=0.1)
    it = source.batches(FakeMarket())
    [batch] = await next_batches(it, 1)
    assert batch.signals == {"AAPL": 0.1}
    with path.open("a") as f:
        f.write("2026-11-25T14:39:00Z,MSFT,0.2\n")
    [late] = await next_batches(it, 1)
    assert reasons(late) == ["DUPLICATE_BATCH"] and late.rejected
    await source.aclose()
    assert await drain(it) == []


async def test_the_header_may_order_the_columns_and_carry_extra_ones(tmp_path):
    path = tmp_path / "signals.csv"
    path.write_text(
        "Symbol,Signal,TS,model\nAAPL,0.25,2026-11-25T14:39:00Z,v3\nMSFT,-0.5,2026-11-25T14:39:00Z,v3\nNVDA,0.1\n"
    )
    batches = await read_all(path)
    assert [(reasons(b), dict(b.signals)) for b in batches] == [
        (["MALFORMED_LINE"], {}),
        ([], {"AAPL": 0.25, "MSFT": -0.5}),
    ]
    assert "2 fields, expected 4" in batches[0].dropped[0].detail


async def test_a_missing_header_is_reported_and_the_standard_columns_are_assumed(tmp_path):
    path = tmp_path / "signals.csv"
    path.write_text("2026-11-25T14:39:00Z,AAPL,0.9\n2026-11-25T14:39:00Z,MSFT,0.2\n")
    batches = await read_all(path)
    assert [(reasons(b), dict(b.signals)) for b in batches] == [(["BAD_HEADER"], {}), ([], {"MSFT": 0.2})]
    assert "is not the header ts,symbol,signal" in batches[0].dropped[0].detail


async def test_a_group_too_large_is_refused_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(signal_files, "MAX_CSV_GROUP_ROWS", 3)
    path = tmp_path / "signals.csv"
    rows = "".join(f"2026-11-25T14:39:00Z,AAPL,0.{i}\n" for i in range(5))
    path.write_text("ts,symbol,signal\n" + rows)
    [batch] = await read_all(path)
    assert reasons(batch) == ["BATCH_TOO_LARGE"] and batch.rejected
    assert "5 rows" in batch.dropped[0].detail


async def test_a_stale_group_is_refused(tmp_path):
    path = tmp_path / "signals.csv"
    path.write_text("ts,symbol,signal\n2026-11-25T14:00:00Z,AAPL,0.1\n2026-11-25T14:00:00Z,MSFT,0.1\n")
    [batch] = await read_all(path)
    assert reasons(batch) == ["STALE_BATCH"]
    assert "2 signals not acted on" in batch.dropped[0].detail


def test_a_missing_csv_is_a_clear_startup_error(tmp_path):
    with pytest.raises(SignalSourceError, match=r"signals.path .*missing.csv.* \(csv\): file not found"):
        CsvFileSource(tmp_path / "missing.csv", known_symbols=UNIVERSE, max_age=120)


async def test_a_csv_truncated_and_rewritten_larger_between_two_polls_is_read_from_its_header(tmp_path):
    """The same inode, truncated and written again larger before the next look: read
    again from its header, rows numbered from line 1, the new bars taken."""
    path = tmp_path / "signals.csv"
    path.write_text("ts,symbol,signal\n2026-11-25T14:39:00Z,AAPL,0.1\n")
    source = source_for(path, idle_flush=0.1)
    it = source.batches(FakeMarket())
    [first] = await next_batches(it, 1)
    assert first.signals == {"AAPL": 0.1}
    with path.open("r+") as f:
        f.truncate(0)
        f.write(
            "ts,symbol,signal\n2026-11-25T14:39:30Z,MSFT,0.2\n2026-11-25T14:39:30Z,NVDA,0.3\n"
            "2026-11-25T14:39:45Z,KO,0.4\n"
        )
    batches = await next_batches(it, 2)
    assert [b.origin for b in batches] == ["signals.csv:2-3", "signals.csv:4"]
    assert [b.signals for b in batches] == [{"MSFT": 0.2, "NVDA": 0.3}, {"KO": 0.4}]
    assert not any(b.dropped for b in batches)
    await source.aclose()
