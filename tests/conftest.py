"""Fixtures any test folder may use. The kits themselves are tests/support (waiting,
settings, the venue in a process of its own) and each folder's *kit.py."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.pipeline.pipekit import RunProcess


@pytest.fixture
def run_process(tmp_path: Path) -> Iterator[Callable[..., RunProcess]]:
    """`run_process(*argv, env=None, where=None)` starts `execdesk run ...` in the
    background (see RunProcess; its output files in `where`, the test's tmp_path by
    default); every process started is closed after the test."""
    started: list[RunProcess] = []

    def start(*argv: str, env: dict[str, str] | None = None, where: Path | None = None) -> RunProcess:
        proc = RunProcess(where or tmp_path, *argv, env=env)
        started.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in started:
            proc.close()


@pytest.fixture
def private_runtime_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The test's sessions put their control sockets in a runtime dir of the test's
    own (short, so that socket paths fit), removed afterwards with whatever killed
    sessions left there. Modules whose every test needs it say
    `pytestmark = pytest.mark.usefixtures("private_runtime_dir")`."""
    runtime = Path(tempfile.mkdtemp(prefix="xd", dir="/tmp"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    try:
        yield runtime
    finally:
        shutil.rmtree(runtime, ignore_errors=True)
