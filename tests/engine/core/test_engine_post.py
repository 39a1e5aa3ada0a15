"""Engine.post from other threads (the trade stream's updates): every item reaches
the inbox, each thread's in the order it posted them, and a burst posted while the
loop is busy is handed over in a few loop callbacks, not one per item."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from engine.config import load_settings
from engine.core import Engine
from engine.core.inbox import Inbox
from engine.journal import Journal
from engine.universe import Universe

ROOT = Path(__file__).resolve().parents[3]


def _engine_on_this_loop(tmp_path: Path) -> Engine:
    settings = load_settings(ROOT / "config" / "execution.toml", env={})
    universe = Universe.load(ROOT / "config" / "universe.toml")
    eng = Engine(settings, broker=None, journal=Journal(tmp_path / "j.sqlite"), universe=universe)  # type: ignore[arg-type]
    # what Engine.start sets up before anything may post, without a broker
    eng._loop = asyncio.get_running_loop()  # noqa: SLF001
    eng._loop_thread = threading.get_ident()  # noqa: SLF001
    eng._inbox = Inbox(eng.lane_of)  # noqa: SLF001
    return eng


def _drain(eng: Engine) -> list:
    out = []
    while (item := eng._inbox.take()) is not None:  # noqa: SLF001
        out.append(item)
    return out


async def test_a_burst_from_other_threads_arrives_whole_in_order_in_few_hand_overs(tmp_path):
    eng = _engine_on_this_loop(tmp_path)
    loop = asyncio.get_running_loop()
    wakeups = 0
    real = loop.call_soon_threadsafe

    def counting(*args, **kwargs):
        nonlocal wakeups
        wakeups += 1
        return real(*args, **kwargs)

    loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
    try:
        per_thread = 300

        def poster(tag: str) -> None:
            for i in range(per_thread):
                eng.post((tag, i))

        threads = [threading.Thread(target=poster, args=(t,)) for t in "abc"]
        for t in threads:
            t.start()
        for t in threads:
            t.join()  # the loop was busy (blocked here) the whole time: nothing handed over yet
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        got = _drain(eng)
        assert len(got) == 3 * per_thread
        for tag in "abc":
            assert [i for t, i in got if t == tag] == list(range(per_thread))
        assert wakeups == 1  # one hand-over for the whole burst (the loop never ran in between)

        # an item posted after that hand-over ran is not stranded: it gets a hand-over of its own
        t = threading.Thread(target=eng.post, args=(("late", 0),))
        t.start()
        t.join()
        deadline = time.monotonic() + 5
        late: list = []
        while not late and time.monotonic() < deadline:
            await asyncio.sleep(0.001)
            late = _drain(eng)
        assert late == [("late", 0)]
        assert wakeups == 2
    finally:
        loop.call_soon_threadsafe = real  # type: ignore[method-assign]


async def test_a_post_on_the_loops_own_thread_is_put_at_once(tmp_path):
    eng = _engine_on_this_loop(tmp_path)
    eng.post("here")
    assert _drain(eng) == ["here"]
