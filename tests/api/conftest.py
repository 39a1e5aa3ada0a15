"""Fixtures of the Desk API tests: real Desks (Session -> AlpacaBroker -> alpaca-py ->
engine/sim over HTTP and WebSockets) on a frozen venue clock, closed when the test ends."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine import Desk
from tests.pipeline.pipekit import CREDENTIALS, SEED, START_AT
from tests.support import shipped_settings

#: the built-in venue as the pipeline tests run it: frozen at START_AT (market open),
#: full fills, no per-key request limit
SIM = {
    "frozen_clock": True,
    "seed": SEED,
    "start_at": START_AT,
    "partial_fill_prob": 0.0,
    "rate_limit_per_minute": None,
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("EXECDESK_", "APCA_")):
            monkeypatch.delenv(name)


@pytest.fixture
def open_desk(tmp_path: Path) -> Iterator[Callable[..., Desk]]:
    """open_desk(name="a", auto_approve=False, sim={...}, **sections) -> an open Desk
    on the shipped configuration with the test's changes; closed at the end."""
    opened: list[Desk] = []

    def make(name: str = "desk", *, auto_approve: bool = False, sim: dict[str, Any] | None = None, **sections) -> Desk:
        settings = shipped_settings(**sections)
        desk = Desk.open(
            settings,
            journal=tmp_path / f"{name}.sqlite",
            auto_approve=auto_approve,
            credentials=CREDENTIALS,
            sim={**SIM, **(sim or {})},
        )
        opened.append(desk)
        return desk

    try:
        yield make
    finally:
        for desk in reversed(opened):
            desk.close()
