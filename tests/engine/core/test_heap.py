"""The engine's collector policy: frozen at start, collected only at idle moments,
unfrozen at stop (engine.core.heap)."""

from __future__ import annotations

import gc

import pytest

from engine.core.heap import HeapPolicy


@pytest.fixture
def clean_freeze():
    gc.unfreeze()
    yield
    gc.unfreeze()


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_started_engine_freezes_what_it_holds_and_stop_gives_it_back(clean_freeze):
    policy = HeapPolicy(every=10, clock=Clock())
    policy.on_start()
    assert gc.get_freeze_count() > 0, "a started engine's objects are frozen: full collections skip them"
    policy.on_stop()
    assert gc.get_freeze_count() == 0, "after stop the collector sees everything again"


def test_collects_only_when_idle_and_at_most_every_interval(clean_freeze):
    clock = Clock()
    policy = HeapPolicy(every=10, clock=clock)
    policy.on_start()
    clock.t += 11
    assert not policy.on_second(idle=False), "never while a batch is on the wire"
    assert policy.collections == 0

    class Cycle:
        pass

    a, b = Cycle(), Cycle()
    a.other, b.other = b, a  # a garbage cycle made after the freeze
    del a, b
    assert policy.on_second(idle=True)
    assert policy.collections == 1
    assert not any(type(o) is Cycle for o in gc.get_objects()), "the idle collection freed the cycle"
    clock.t += 5
    assert not policy.on_second(idle=True), "not again within the interval"
    clock.t += 6
    assert policy.on_second(idle=True)
    assert policy.collections == 2
    policy.on_stop()


def test_does_nothing_before_start_or_after_stop(clean_freeze):
    clock = Clock()
    policy = HeapPolicy(every=1, clock=clock)
    clock.t += 5
    assert not policy.on_second(idle=True)
    policy.on_start()
    policy.on_stop()
    clock.t += 5
    assert not policy.on_second(idle=True)
    assert gc.get_freeze_count() == 0


def test_full_collection_every_few_minutes_frees_garbage_that_was_frozen(clean_freeze):
    import weakref

    clock = Clock()
    policy = HeapPolicy(every=10, clock=clock, full_every=300)

    class Cycle:
        pass

    a, b = Cycle(), Cycle()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    policy.on_start()  # the cycle is alive now: frozen with the rest
    frozen = gc.get_freeze_count()
    assert frozen > 0
    del a, b  # garbage from now on, but frozen: a short collection never sees it
    clock.t += 11
    assert policy.on_second(idle=True)
    assert policy.full_collections == 0, "only the short collection before full_every"
    assert gone() is not None, "a frozen cycle survives the short idle collections"
    clock.t += 300
    assert not policy.on_second(idle=False), "never while a batch is on the wire, not even when due"
    assert gone() is not None
    assert policy.on_second(idle=True)
    assert policy.full_collections == 1
    assert gone() is None, "the full idle collection freed the cycle that was frozen"
    assert gc.get_freeze_count() > 0, "the survivors are frozen again"
    clock.t += 11
    assert policy.on_second(idle=True)
    assert policy.full_collections == 1, "the short collections go on in between"
    policy.on_stop()
