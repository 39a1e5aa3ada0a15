"""Properties of the signal sources: no input crashes a source, and nothing invalid
ever reaches SignalBatch.signals."""

from __future__ import annotations

import asyncio
import json
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.signals import JsonlStreamSource, _LineSplitter
from tests.engine.signals.signal_fakes import UNIVERSE, FakeMarket, drain

TRADABLE = UNIVERSE - {"XOM"}
SYMBOLS = [*sorted(UNIVERSE)[:8], "XOM", "ZZZZ", "aapl", ""]


def run(chunks: list[bytes]):
    async def main():
        reader = asyncio.StreamReader()
        for c in chunks:
            reader.feed_data(c)
        reader.feed_eof()
        source = JsonlStreamSource(reader, known_symbols=UNIVERSE, max_age=120)
        return await drain(source.batches(FakeMarket(tradable=TRADABLE)))

    return asyncio.run(main())


def assert_only_valid(batches):
    for b in batches:
        assert b.ts.utcoffset() is not None
        if b.rejected:
            assert not b.signals and b.dropped
        for symbol, value in b.signals.items():
            assert symbol in TRADABLE
            assert type(value) is float and math.isfinite(value) and -1 <= value <= 1
        for d in b.dropped:
            assert d.reason.isupper() and d.detail


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=6))
def test_arbitrary_bytes_never_crash_and_never_trade(chunks):
    assert_only_valid(run(chunks))


VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-1, max_value=1),
    st.integers(min_value=-3, max_value=3),
    st.booleans(),
    st.none(),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
)


def to_json(value) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, float) and math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return json.dumps(value)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(SYMBOLS), VALUES), max_size=12))
def test_exactly_the_valid_entries_are_kept(pairs):
    """Given any list of (symbol, value) pairs written as one JSON object (duplicates
    included), then a symbol is kept iff it appears once, is known and tradable, and
    its value is a finite number in [-1, 1] that is not a boolean."""
    body = ", ".join(f"{json.dumps(k)}: {to_json(v)}" for k, v in pairs)
    line = f'{{"ts": "2026-11-25T14:39:00Z", "signals": {{{body}}}}}\n'.encode()
    [batch] = run([line])
    assert_only_valid([batch])
    counts = {}
    for k, _ in pairs:
        counts[k] = counts.get(k, 0) + 1
    expected = {
        k: float(v)
        for k, v in pairs
        if counts[k] == 1
        and k in TRADABLE
        and not isinstance(v, bool)
        and isinstance(v, (int, float))
        and math.isfinite(v)
        and -1 <= v <= 1
    }
    assert dict(batch.signals) == expected
    assert len(batch.dropped) == len(counts) - len(expected)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.lists(st.integers(min_value=1, max_value=50), max_size=20))
def test_lines_do_not_depend_on_how_the_input_is_chunked(data, cuts):
    whole = _LineSplitter(max_bytes=64)
    expected = whole.feed(data) + ([whole.finish()] if whole.pending else [])
    pieces, at = [], 0
    for c in cuts:
        pieces.append(data[at : at + c])
        at += c
    pieces.append(data[at:])
    split = _LineSplitter(max_bytes=64)
    got = [item for p in pieces for item in split.feed(p)]
    if split.pending:
        got.append(split.finish())
    assert got == expected
