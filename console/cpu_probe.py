"""Dev-only: the console's own CPU on the main screen and with a dialog or the help
screen on top, on hand-built snapshots that change ten times a second (console.dev).

    python -m console.cpu_probe      # prints CPU % of one core per screen
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

from console.app import ExecDeskApp
from console.dev import InMemoryHandle, demo_snapshot
from engine.config import Settings

SECONDS = 4.0


async def probe(size: tuple[int, int] = (160, 48)) -> dict[str, float]:
    handle = InMemoryHandle(demo_snapshot())
    app = ExecDeskApp(handle, Settings(), clock_in_view=True)
    out: dict[str, float] = {}
    async with app.run_test(size=size) as pilot:
        await pilot.pause()

        async def live(name: str) -> None:
            """Publish a changed snapshot every 100 ms (clock, P&L) and measure."""
            await pilot.pause(0.3)
            t0, c0 = time.perf_counter(), time.thread_time()
            i = 0
            while time.perf_counter() - t0 < SECONDS:
                snap = handle.snapshot
                i += 1
                handle.publish(
                    venue_time=(snap.venue_time or datetime.now(UTC)) + timedelta(milliseconds=100),
                    pl_history=(*snap.pl_history[-200:], float(i % 17)),
                    day_pl=snap.day_pl + 1,
                )
                await asyncio.sleep(0.1)
            out[name] = 100 * (time.thread_time() - c0) / (time.perf_counter() - t0)

        await live("main screen")
        await pilot.press("question_mark")
        await live("help screen open")
        await pilot.press("escape")
        await pilot.press("o")
        await live("override dialog open")
        await pilot.press("escape")
        await live("main screen again")
    return out


def main() -> None:
    for name, pct in asyncio.run(probe()).items():
        print(f"{name:<24} {pct:5.1f} % of a core")


if __name__ == "__main__":  # pragma: no cover
    main()
