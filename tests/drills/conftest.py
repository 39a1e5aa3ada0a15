"""Crash drills: real processes (the venue and the engine), SIGKILL, restart.

`slow` drills (the long randomized one) run only when asked for with `-m slow`
(`make drill`); pyproject's addopts does not deselect them, this file does."""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_collection_modifyitems(config, items):
    if "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow drill: run with -m slow (make drill)")
    here = Path(__file__).resolve().parent
    for item in items:
        if "slow" in item.keywords and here in Path(item.path).resolve().parents:
            item.add_marker(skip)


@pytest.fixture
def sim(tmp_path):
    from tests.drills.drillkit import SimProcess

    venue = SimProcess(tmp_path)
    yield venue
    venue.stop()


@pytest.fixture
def engines():
    """Every EngineProcess a drill makes is stopped at teardown."""
    made = []

    def track(engine):
        made.append(engine)
        return engine

    yield track
    for e in made:
        e.terminate()
