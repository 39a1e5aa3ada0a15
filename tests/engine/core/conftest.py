"""Fixtures for the engine fault scenarios: `make_rig(changes, sim)` starts a real
Session (Engine + engine/sim in process, alpaca-py between them); every rig is
stopped at teardown, whatever the test did."""

from __future__ import annotations

import pytest

from tests.engine.core.enginekit import Rig


@pytest.fixture
def make_rig(tmp_path):
    rigs: list[Rig] = []

    def make(changes=None, sim=None) -> Rig:
        rig = Rig(tmp_path / f"rig{len(rigs)}", changes, sim)
        rigs.append(rig)
        return rig

    (tmp_path / "rig0").mkdir()
    for i in range(1, 4):
        (tmp_path / f"rig{i}").mkdir()
    yield make
    for rig in rigs:
        try:
            rig.clear_faults()
        except Exception:
            pass
        rig.stop()
