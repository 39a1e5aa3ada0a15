"""EngineObserver: the public hooks for instruments (benchmarks, diagnostics) that
want to know when the engine did something, without wrapping its internals.

An observer is handed to the Engine (`Engine.observe`, or `Session(observers=...)`
so that it sees the start-up too). Every method is called inside the engine's own
loop, synchronously, right after the engine did what it names; it must be quick
and must not change engine state. An observer that raises is logged; the engine
goes on. Each method does nothing by
default, so an observer overrides only what it needs."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.broker.base import SubmitOutcome
    from engine.signals import SignalBatch


class EngineObserver:
    def batch_handled(self, batch: SignalBatch, submits: int) -> None:
        """A signal batch was sized, checked and journaled; `submits` orders of it
        (counted from the engine's start) left for the venue."""

    def submit_answered(self, client_order_id: str, outcome: SubmitOutcome) -> None:
        """The answer to a submit (acked, rejected, unknown, withheld) was applied."""

    def start_phase(self, name: str, seconds: float) -> None:
        """A phase of Engine.start finished: "journal" (open, replay and rebuild),
        "reconcile" (the start-up reconciliation with the venue)."""
