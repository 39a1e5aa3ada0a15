"""execdesk engine: headless sizing, pre-trade risk, orders, journal and reconciliation.

The embeddable API is `from engine import Desk` (docs/api.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["BatchResult", "Desk", "SignalInputError", "SymbolResult", "Verdict"]

if TYPE_CHECKING:  # pragma: no cover
    from engine.desk import BatchResult, Desk, SignalInputError, SymbolResult, Verdict


def __getattr__(name: str) -> Any:
    """`from engine import Desk` without importing the session machinery for every
    `import engine.x` (the venue and report commands stay light)."""
    if name in __all__:
        from engine import desk

        return getattr(desk, name)
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
