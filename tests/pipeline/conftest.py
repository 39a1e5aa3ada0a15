"""Fixtures for the end-to-end pipeline tests: real Sessions on the built-in venue,
each with its own journal and signal file, stopped at the end of the test."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.pipeline.pipekit import Pipe


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The configuration and the keys come from the test, never from the caller's shell."""
    for name in list(os.environ):
        if name.startswith(("EXECDESK_", "APCA_")):
            monkeypatch.delenv(name)


@pytest.fixture
def make_pipe(tmp_path: Path) -> Iterator[Callable[..., Pipe]]:
    """make_pipe(**kw) -> a started Pipe (see pipekit.Pipe); every one is stopped
    when the test ends, whatever happened."""
    started: list[Pipe] = []

    def make(**kw) -> Pipe:
        pipe = Pipe(tmp_path, **kw)
        started.append(pipe)
        return pipe

    try:
        yield make
    finally:
        for pipe in reversed(started):
            pipe.stop()
