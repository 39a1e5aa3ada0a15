"""open_source: the signal source `[signals]` of the configuration names."""

from __future__ import annotations

import sys
from typing import Any

from engine.config import Settings
from engine.signals.files import CsvFileSource, JsonlFileSource, JsonlStreamSource
from engine.signals.models import CallableSource, DemoSource, load_callable
from engine.signals.types import SignalSource, SignalSourceError

__all__ = ["open_source"]


def open_source(settings: Settings, *, known_symbols: frozenset[str], stdin: Any = None) -> SignalSource:
    """The source `[signals]` names. Raises SignalSourceError when it cannot start
    (file missing or unreadable, callable that does not import)."""
    cfg = settings.signals
    known = frozenset(known_symbols)
    if cfg.kind == "demo":
        return DemoSource(known_symbols=known, max_age=cfg.max_age)
    if cfg.kind == "callable":
        return CallableSource(
            load_callable(cfg.callable), known_symbols=known, max_age=cfg.max_age, name=f"callable:{cfg.callable}"
        )
    if cfg.kind == "jsonl" and cfg.path == "-":
        return JsonlStreamSource(stdin if stdin is not None else sys.stdin, known_symbols=known, max_age=cfg.max_age)
    if cfg.kind == "jsonl":
        return JsonlFileSource(cfg.path, known_symbols=known, max_age=cfg.max_age)
    if cfg.kind == "csv":
        return CsvFileSource(cfg.path, known_symbols=known, max_age=cfg.max_age)
    raise SignalSourceError(f"signals.kind {cfg.kind!r} is not a known source")  # pragma: no cover
