"""The Engine's dispatch tables are complete: every message its own tasks post,
every command a front end can send and every timer it starts has a handler, so
nothing put on the inbox is silently dropped."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from pathlib import Path

from engine import commands
from engine.broker.base import ConnectivityChanged, RateLimitChanged, RequestFailed, TradeUpdate, VenueBar, VenueQuote
from engine.config import load_settings
from engine.core import Engine, messages
from engine.journal import Journal
from engine.signals import SignalBatch
from engine.universe import Universe

ROOT = Path(__file__).resolve().parents[3]


def _engine(tmp_path: Path) -> Engine:
    settings = load_settings(ROOT / "config" / "execution.toml", env={})
    universe = Universe.load(ROOT / "config" / "universe.toml")
    return Engine(settings, broker=None, journal=Journal(tmp_path / "j.sqlite"), universe=universe)  # type: ignore[arg-type]


def test_every_inbox_message_type_has_a_handler(tmp_path):
    eng = _engine(tmp_path)
    own = [
        c
        for _, c in inspect.getmembers(messages, inspect.isclass)
        if c.__module__ == messages.__name__ and dataclasses.is_dataclass(c)
    ]
    assert len(own) >= 10
    from_outside = [
        TradeUpdate,
        VenueQuote,
        VenueBar,
        SignalBatch,
        ConnectivityChanged,
        RateLimitChanged,
        RequestFailed,
    ]
    missing = [c.__name__ for c in own + from_outside if c not in eng.handlers]
    assert missing == [], f"inbox messages without a handler: {missing}"


def test_every_command_has_a_handler(tmp_path):
    eng = _engine(tmp_path)
    kinds = typing.get_args(commands.Command)
    assert len(kinds) >= 9
    handled = set(eng._commands) | set(eng._commands_later)  # noqa: SLF001
    missing = [c.__name__ for c in kinds if c not in handled]
    assert missing == [], f"commands without a handler: {missing}"


def test_every_timer_the_engine_starts_has_a_handler(tmp_path):
    eng = _engine(tmp_path)
    started = {name for name, _, _ in eng.timer_intervals()}
    assert len(started) >= 6
    assert started <= set(eng._timers), f"timers without a handler: {started - set(eng._timers)}"  # noqa: SLF001
