"""The base of every error the engine raises on purpose (a bad configuration, a
journal it cannot use, a session that cannot start, ...): `except ExecdeskError`
catches them all and nothing else. engine/sim, a separate system, has its own."""

from __future__ import annotations

__all__ = ["ExecdeskError"]


class ExecdeskError(Exception):
    """Something the engine refuses or cannot do, said in words for the operator.
    Subclasses may carry `problems` (one line each) and an exit `code`."""
