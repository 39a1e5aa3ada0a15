"""Messages the console's widgets and screens send each other: small dataclasses."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from engine.commands import CommandResult, SessionCommand
from engine.snapshot import EngineSnapshot


@dataclass
class SnapshotApplied(Message):
    """A new engine snapshot was rendered (after the tables were reconciled)."""

    snapshot: EngineSnapshot


@dataclass
class CommandFinished(Message):
    """The Engine answered a command the operator gave (None: a batch of none)."""

    command: SessionCommand | None
    result: CommandResult
    label: str


@dataclass
class CommandFailed(Message):
    """A command could not be delivered to the Engine (it raised)."""

    command: SessionCommand
    error: str
    label: str


@dataclass
class FilterChanged(Message):
    """The operator changed the event-log filter."""

    text: str
