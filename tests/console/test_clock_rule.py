"""One clock rule: every time the console shows is the venue's clock, written in the
zone `[console] timezone` chooses (venue = New York, ET; utc; local) and labelled
where shown (the status bar's clock and bar time, the event log's title)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from console import format as fmt
from console.app import ExecDeskApp
from engine.config import ConfigError, load_settings
from tests.console.deskkit import Desk, screen_text, until
from tests.support import shipped_settings

TS = datetime(2026, 3, 2, 15, 4, 5, tzinfo=UTC)  # 10:04:05 in New York


@pytest.fixture(autouse=True)
def venue_zone_after():
    yield
    fmt.set_display_zone("venue")


def test_each_zone_is_written_and_labelled() -> None:
    fmt.set_display_zone("venue")
    assert fmt.venue_clock(TS) == "10:04:05 ET" and fmt.short_time(TS) == "10:04:05"
    fmt.set_display_zone("utc")
    assert fmt.venue_clock(TS) == "15:04:05 UTC" and fmt.venue_clock(TS, with_seconds=False) == "15:04 UTC"
    assert fmt.short_time(TS) == "15:04:05" and fmt.zone_label() == "UTC"
    fmt.set_display_zone("local")
    local = TS.astimezone()
    assert fmt.venue_clock(TS) == f"{local:%H:%M:%S} {local.tzname()}"


def test_check_config_refuses_an_unknown_zone(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[console]\ntimezone = "mars"\n')
    with pytest.raises(ConfigError) as exc:
        load_settings(path)
    assert "console.timezone" in str(exc.value)


async def test_the_console_shows_utc_when_asked(tmp_path: Path, pinned_session_id: str) -> None:
    desk = Desk(tmp_path / "journal.sqlite", shipped_settings(console={"timezone": "utc"}))
    try:
        app = ExecDeskApp(desk.handle, desk.settings)
        async with app.run_test(size=(160, 48)) as pilot:
            venue_time = desk.handle.snapshot.venue_time
            assert venue_time is not None
            await until(pilot, lambda: "UTC" in screen_text(app), what="a UTC clock on screen")
            text = screen_text(app)
            assert f"{venue_time.astimezone(UTC):%H:%M}" in text, text
            assert "Events (UTC)" in text and " ET" not in text, text
    finally:
        desk.stop()
