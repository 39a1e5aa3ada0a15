"""Fixtures for configuration scenarios: a clean environment, a config file in a
temporary directory, and `execdesk check-config` run in-process."""

from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine.cli import main


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    @property
    def errors(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.startswith("error: ")]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No EXECDESK_* override or APCA_* credential leaks in from the developer's shell."""
    for name in list(os.environ):
        if name.startswith(("EXECDESK_", "APCA_")):
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.fixture
def write_config(tmp_path: Path):
    def write(text: str, name: str = "execution.toml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


@pytest.fixture
def cli(clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """cli("check-config", path) -> CliResult, with stdout and stderr captured."""

    def run(*argv: str | os.PathLike[str]) -> CliResult:
        code = main([str(a) for a in argv])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run
