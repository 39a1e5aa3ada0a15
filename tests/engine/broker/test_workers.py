"""The broker's worker threads (engine.broker.alpaca._Workers, in place of
ThreadPoolExecutor): every call runs once, at most `size` threads, started only as
calls need them; a call cancelled before a worker took it never runs, one already
running cannot be cancelled; shutdown cancels what waits and ends the threads."""

from __future__ import annotations

import threading

import pytest

from engine.broker.alpaca import _Workers
from tests.support import wait_for


def test_every_call_runs_once_on_at_most_size_threads_started_as_needed():
    pool = _Workers(3, "t-workers")
    ran: list[int] = []
    names: set[str] = set()

    def call(i: int) -> None:
        names.add(threading.current_thread().name)
        ran.append(i)

    pool.submit(call, 0)
    wait_for(lambda: ran == [0], timeout=5, what="the first call")
    for i in range(1, 200):
        pool.submit(call, i)
    wait_for(lambda: len(ran) == 200, timeout=10, what="200 calls")
    assert sorted(ran) == list(range(200))
    assert 1 <= len(names) <= 3 and all(n.startswith("t-workers_") for n in names)
    pool.shutdown()
    pool.join()
    with pytest.raises(RuntimeError):
        pool.submit(call, 999)


def test_one_worker_busy_at_a_time_is_one_thread():
    pool = _Workers(8, "t-serial")
    done: list[int] = []
    for i in range(20):
        pool.submit(done.append, i)
        wait_for(lambda i=i: len(done) == i + 1, timeout=5, what=f"call {i}")
    assert len(pool._threads) == 1  # noqa: SLF001 - an idle worker was always there
    pool.shutdown()
    pool.join()


def test_a_waiting_call_can_be_cancelled_a_running_one_cannot_and_shutdown_cancels_the_rest():
    pool = _Workers(1, "t-cancel")
    gate, started = threading.Event(), threading.Event()
    ran: list[str] = []

    def blocker() -> None:
        started.set()
        gate.wait(10)
        ran.append("blocker")

    running = pool.submit(blocker)
    assert started.wait(5)
    waiting = pool.submit(ran.append, "cancelled")
    left = pool.submit(ran.append, "left at shutdown")
    assert running.cancel() is False  # already running
    assert waiting.cancel() is True
    assert waiting.cancel() is True  # still cancelled: its slot is the caller's to give back
    pool.shutdown()
    gate.set()
    pool.join()
    assert ran == ["blocker"]
    assert left.cancel() is True  # shutdown cancelled it before any worker took it
