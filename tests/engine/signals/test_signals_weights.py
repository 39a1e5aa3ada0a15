"""Target weights as input: a JSONL line with "weights" instead of "signals", a CSV
with a `weight` column instead of `signal`, and batches pushed by the Desk API; one
with both is refused."""

from __future__ import annotations

import asyncio
import math

import pytest

from engine.signals import CsvFileSource, JsonlFileSource, PushSource, SignalInputError, SignalKind
from tests.engine.signals.signal_fakes import NOW, UNIVERSE, FakeMarket, drain, reasons

TS = "2026-11-25T14:39:00Z"


async def read_all(source, settle: float = 0.1):
    it = source.batches(FakeMarket())
    task = asyncio.ensure_future(drain(it))
    await asyncio.sleep(settle)
    await source.aclose()
    return await asyncio.wait_for(task, 5)


async def test_a_jsonl_line_of_weights_is_a_batch_of_target_weights(tmp_path):
    path = tmp_path / "w.jsonl"
    path.write_text(
        f'{{"ts": "{TS}", "weights": {{"AAPL": 0.05, "MSFT": -0.02}}}}\n'
        f'{{"ts": "2026-11-25T14:39:10Z", "signals": {{"AAPL": 0.3}}}}\n'
    )
    batches = await read_all(JsonlFileSource(path, known_symbols=UNIVERSE, max_age=120, poll_interval=0.01))
    assert [(b.kind, dict(b.signals)) for b in batches] == [
        (SignalKind.WEIGHT, {"AAPL": 0.05, "MSFT": -0.02}),
        (SignalKind.SCORE, {"AAPL": 0.3}),
    ]


async def test_a_jsonl_line_with_both_signals_and_weights_is_refused_whole(tmp_path):
    path = tmp_path / "both.jsonl"
    path.write_text(f'{{"ts": "{TS}", "signals": {{"AAPL": 0.1}}, "weights": {{"MSFT": 0.02}}}}\n')
    [batch] = await read_all(JsonlFileSource(path, known_symbols=UNIVERSE, max_age=120, poll_interval=0.01))
    assert batch.rejected and reasons(batch) == ["MALFORMED_LINE"]
    assert 'both "signals" and "weights"' in batch.dropped[0].detail


async def test_a_weight_out_of_range_is_dropped_naming_the_symbol_and_value(tmp_path):
    path = tmp_path / "w.jsonl"
    path.write_text(f'{{"ts": "{TS}", "weights": {{"AAPL": 1.5, "MSFT": 0.02}}}}\n')
    [batch] = await read_all(JsonlFileSource(path, known_symbols=UNIVERSE, max_age=120, poll_interval=0.01))
    assert dict(batch.signals) == {"MSFT": 0.02} and reasons(batch) == ["OUT_OF_RANGE"]
    assert "AAPL: expected a weight (fraction of equity) in [-1, 1], found 1.5" in batch.dropped[0].detail


async def test_a_csv_with_a_weight_column_is_read_as_target_weights(tmp_path):
    path = tmp_path / "w.csv"
    path.write_text(f"ts,symbol,weight\n{TS},AAPL,0.05\n{TS},MSFT,-0.02\n")
    source = CsvFileSource(path, known_symbols=UNIVERSE, max_age=120, poll_interval=0.01, idle_flush=30)
    [batch] = await read_all(source)
    assert batch.kind is SignalKind.WEIGHT and dict(batch.signals) == {"AAPL": 0.05, "MSFT": -0.02}


async def test_a_csv_header_with_both_signal_and_weight_is_a_bad_header(tmp_path):
    path = tmp_path / "both.csv"
    path.write_text(f"ts,symbol,signal,weight\n{TS},AAPL,0.05,0.1\n")
    source = CsvFileSource(path, known_symbols=UNIVERSE, max_age=120, poll_interval=0.01, idle_flush=30)
    batches = await read_all(source)
    assert reasons(batches[0]) == ["BAD_HEADER"]
    assert "both signal and weight" in batches[0].dropped[0].detail
    assert not any(b.signals for b in batches), "nothing of such a file is acted on"


async def test_a_pushed_batch_with_a_bad_entry_is_refused_whole_and_moves_no_mark():
    source = PushSource(known_symbols=UNIVERSE, max_age=120)
    market = FakeMarket()
    with pytest.raises(SignalInputError) as refused:
        source.push(market, NOW, {"AAPL": math.inf, "MSFT": 0.1}, SignalKind.SCORE)
    assert [p.reason for p in refused.value.problems] == ["INFINITE"]
    assert "AAPL" in str(refused.value) and "Infinity" in str(refused.value)
    taken = source.push(market, NOW, {"MSFT": 0.1}, SignalKind.WEIGHT)
    assert taken.kind is SignalKind.WEIGHT and dict(taken.signals) == {"MSFT": 0.1}
    with pytest.raises(SignalInputError, match="DUPLICATE_BATCH"):
        source.push(market, NOW, {"MSFT": 0.2}, SignalKind.WEIGHT)
    [batch] = await read_all_pushed(source, market)
    assert batch is taken


async def read_all_pushed(source: PushSource, market: FakeMarket):
    it = source.batches(market)
    await source.aclose()
    return await asyncio.wait_for(drain(it), 5)
