"""`make screenshots`: SVG screenshots of the console on a live session — the built-in
venue, the demo model, a frozen venue clock and a fixed seed — into screenshots/.

    python -m console.screenshots [--out screenshots]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from pathlib import Path

from console.app import ExecDeskApp
from console.screens.confirm import ConfirmScreen
from console.screens.drill import DrillScreen
from console.screens.override import OverrideScreen
from engine.commands import ApproveAll, ApproveIntent
from engine.config import Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]
START_AT = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # a Monday, 10:00 New York
SEED = 7
WIDE = (160, 48)
NARROW = (80, 24)

#: file name -> what it shows (for the README and the operator guide)
SHOTS = {
    "console-main.svg": "the main screen on a live paper session (160x48)",
    "console-main-80x24.svg": "the same in an 80x24 terminal",
    "console-approval.svg": "the approval flow: approve all asks first",
    "console-override.svg": "the per-symbol override dialog",
    "console-halted.svg": "after the kill switch: HALTED, venue confirmed the cancels",
    "console-help.svg": "the help screen: every key and its binding id",
    "console-position.svg": "a position's drill-down: its price chart, entries, stop and history",
}


def _settings() -> Settings:
    settings = load_settings(ROOT / "config" / "execution.toml", env={})
    settings.session.universe_path = str(ROOT / "config" / "universe.toml")
    return settings


def _wait(predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


async def _until(pilot, predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        await pilot.pause(0.05)
    await pilot.pause(0.2)


def _more_bars(handle, before: int) -> bool:
    return handle.snapshot.bars_processed > before


def _bars(session, handle, n: int, interval: float) -> None:
    for _ in range(n):
        before = handle.snapshot.bars_processed
        session.venue.advance(interval)
        _wait(partial(_more_bars, handle, before))


def _rest(session, intent) -> None:
    """Move the quote 1% away from the intent's limit so its order rests at the venue."""
    if intent.limit_price is None:
        return
    away, cent = Decimal("0.01"), Decimal("0.01")
    limit = intent.limit_price
    if intent.side == "buy":
        bid = (limit * (1 + away)).quantize(cent)
        session.venue.set_quote(intent.symbol, bid, bid + 2 * cent)
    else:
        ask = (limit * (1 - away)).quantize(cent)
        session.venue.set_quote(intent.symbol, ask - 2 * cent, ask)


async def _shoot(out: Path) -> list[Path]:
    from engine.session import Session

    settings = _settings()
    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="execdesk-shots-") as tmp:
        session = Session.from_settings(
            settings,
            journal_path=Path(tmp) / "journal.sqlite",
            sim_overrides={"frozen_clock": True, "seed": SEED, "start_at": START_AT},
            auto_approve=False,
        )
        handle = session.start()
        interval = settings.session.bar_interval
        try:
            # a session with a history: the first bar approved and filled (positions),
            # half of the second bar approved with the quotes moved away from the
            # limits (working orders), the other half waiting for the operator
            _bars(session, handle, 1, interval)
            await handle.execute(ApproveAll())
            _wait(lambda: not handle.snapshot.orders, timeout=5)
            time.sleep(1.1)  # the order-rate limit counts per second of wall time
            _bars(session, handle, 1, interval)
            _wait(lambda: bool(handle.snapshot.intents))
            waiting = list(handle.snapshot.intents.values())
            for intent in waiting[: len(waiting) // 2]:
                _rest(session, intent)
                await handle.execute(ApproveIntent(intent.intent_id))
            _wait(lambda: bool(handle.snapshot.orders), timeout=5)
            time.sleep(0.5)

            def save(app: ExecDeskApp, name: str) -> None:
                path = out / name
                path.write_text(app.export_screenshot(title="execdesk"), encoding="utf-8")
                written.append(path)

            app = ExecDeskApp(handle, settings, clock_in_view=False)
            async with app.run_test(size=NARROW) as pilot:
                await _until(pilot, lambda: app._shown_seq is not None)
                save(app, "console-main-80x24.svg")

            app = ExecDeskApp(handle, settings, clock_in_view=False)
            async with app.run_test(size=WIDE) as pilot:
                await _until(pilot, lambda: app._shown_seq is not None)
                save(app, "console-main.svg")

                await pilot.press("question_mark")
                await pilot.pause(0.2)
                save(app, "console-help.svg")
                await pilot.press("escape")
                await pilot.pause(0.2)

                if handle.snapshot.intents:
                    await pilot.press("A")
                    await _until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
                    save(app, "console-approval.svg")
                    await pilot.press("n")
                    await pilot.pause()

                main = app.main_screen
                assert main is not None
                positions = main.positions
                if positions.row_count:
                    positions.focus()
                    positions.move_cursor(row=0, animate=False)
                    await pilot.press("enter")
                    await _until(pilot, lambda: isinstance(app.screen, DrillScreen))
                    save(app, "console-position.svg")
                    await pilot.press("escape")
                    await pilot.pause()
                    main.queue.focus()

                await pilot.press("o")
                await _until(pilot, lambda: isinstance(app.screen, OverrideScreen))
                save(app, "console-override.svg")
                await pilot.press("escape")
                await pilot.pause()

                await pilot.press("ctrl+k")
                await app.workers.wait_for_complete()
                await _until(pilot, lambda: handle.snapshot.kill_switch.phase in ("confirmed", "failed"))
                save(app, "console-halted.svg")
        finally:
            session.stop()
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m console.screenshots", description=__doc__)
    parser.add_argument("--out", default=str(ROOT / "screenshots"), help="folder for the SVG files")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written = asyncio.run(_shoot(out))
    for path in written:
        print(f"{path}  {SHOTS.get(path.name, '')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
