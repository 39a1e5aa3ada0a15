"""JSONL on stdin (signals.path = "-"): from an asyncio StreamReader or from a real
pipe; the source ends at end of input, and a last line without newline is truncated."""

from __future__ import annotations

import asyncio
import io
import os

from engine.config import Settings
from engine.signals import JsonlStreamSource, open_source
from tests.engine.signals.signal_fakes import UNIVERSE, FakeMarket, drain, reasons


def line(signals: str, ts: str) -> bytes:
    return f'{{"ts": "{ts}", "signals": {signals}}}\n'.encode()


async def test_stdin_through_a_pipe_as_it_is_written():
    """Given the source reading a pipe, when a producer writes lines over time (one
    split across writes), then batches come as lines complete and end at EOF."""
    r, w = os.pipe()
    reader_file = os.fdopen(r, "rb", buffering=0)
    settings = Settings.model_validate({"signals": {"kind": "jsonl", "path": "-"}})
    source = open_source(settings, known_symbols=UNIVERSE, stdin=reader_file)
    assert isinstance(source, JsonlStreamSource)
    it = source.batches(FakeMarket())
    got = []

    async def consume():
        async for b in it:
            got.append(b)

    task = asyncio.ensure_future(consume())
    first = line('{"AAPL": 0.1}', "2026-11-25T14:39:00Z")
    os.write(w, first[:15])
    await asyncio.sleep(0.05)
    assert got == []
    os.write(w, first[15:] + b"not json\n")
    for _ in range(100):
        if len(got) == 2:
            break
        await asyncio.sleep(0.01)
    assert [reasons(b) for b in got] == [[], ["MALFORMED_LINE"]]
    os.write(w, line('{"MSFT": -0.2}', "2026-11-25T14:39:30Z") + b'{"ts": "2026-11-25T14:39:4')
    os.close(w)
    await asyncio.wait_for(task, 5)
    assert [reasons(b) for b in got] == [[], ["MALFORMED_LINE"], [], ["TRUNCATED_LINE"]]
    assert got[2].signals == {"MSFT": -0.2}
    assert [b.origin for b in got] == ["stdin:1", "stdin:2", "stdin:3", "stdin:4"]
    reader_file.close()


async def test_aclose_on_a_silent_pipe_returns_at_once():
    """A producer that never writes nor closes does not hold up shutdown."""
    r, w = os.pipe()
    reader_file = os.fdopen(r, "rb", buffering=0)
    source = JsonlStreamSource(reader_file, known_symbols=UNIVERSE, max_age=120)
    it = source.batches(FakeMarket())
    os.write(w, b'{"ts": "2026-11')
    task = asyncio.ensure_future(drain(it))
    await asyncio.sleep(0.05)
    await source.aclose()
    [batch] = await asyncio.wait_for(task, 1)
    assert reasons(batch) == ["TRUNCATED_LINE"]
    os.close(w)


async def test_stdin_from_a_stream_reader_and_a_text_stream():
    reader = asyncio.StreamReader()
    reader.feed_data(line('{"AAPL": 0.5}', "2026-11-25T14:39:00Z"))
    reader.feed_eof()
    [batch] = await drain(JsonlStreamSource(reader, known_symbols=UNIVERSE, max_age=120).batches(FakeMarket()))
    assert batch.signals == {"AAPL": 0.5}

    text_stdin = io.TextIOWrapper(io.BytesIO(line('{"MSFT": 0.5}', "2026-11-25T14:39:00Z")))
    [batch] = await drain(JsonlStreamSource(text_stdin, known_symbols=UNIVERSE, max_age=120).batches(FakeMarket()))
    assert batch.signals == {"MSFT": 0.5}


async def test_a_failing_stream_ends_the_source_with_a_reason():
    class Broken(io.RawIOBase):
        def readable(self):
            return True

        def readinto(self, b):
            raise OSError(5, "Input/output error")

    [batch] = await drain(JsonlStreamSource(Broken(), known_symbols=UNIVERSE, max_age=120).batches(FakeMarket()))
    assert reasons(batch) == ["READ_ERROR"]
    assert "reading failed: OSError" in batch.dropped[0].detail
