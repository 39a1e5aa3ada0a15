"""Issue 15: the engine at network latency, against the built-in venue in its own
process (tests.support.VenueProcess, as Alpaca would be), through alpaca-py:

1. the real pipeline (a 53-signal batch on the engine's inbox -> sizing -> checks
   -> journal -> alpaca-py -> engine/sim -> every order acked) with 0, 10, 25 and
   50 ms added to every trading REST request (the sim's `latency_ms` fault, scope
   `trading`), 100+ batches per setting: p50/p99 batch-to-all-acked, the engine's
   CPU per order (process CPU time while the engine works on a batch and its fills,
   / orders), and, in the same run, raw alpaca-py sending the same orders to its own
   copy of the venue (same fault) at the engine's concurrency (broker.workers) and at
   its best concurrency of 4 / 16 / 32 / 53 threads; the ratio engine / raw-best;
   and, on that venue too, alpaca-py's own CPU for the same calls (pipeline_run.
   AlpacaShare: submit_order with the broker's settings in one thread, its CPU per call;
   a plain alpaca-py TradingStream's thread CPU per update), so that the engine's CPU
   per order is reported whole and as "engine's own" = total - alpaca-py's share
   (raw alpaca-py's venue thus has a trade-stream listener too, as the engine's has);
   and the same split measured inside the engine (InProcessShare): alpaca-py's CPU for
   the very submit_order calls and trade updates of each measured batch, in the
   engine's own worker and stream threads, subtracted batch by batch. That one is the
   fairer reading (the same alpaca-py work in the same conditions, by construction):
   the separate measurement is taken on a tenth of the batches (i % 20 in (0, 1))
   while the total is the median of all of them, in a process without the engine's
   loop and stream threads beside it, and its difference moved by up to 0.2 ms between
   settings and runs for the same engine code (0.41 at 25 ms and 0.64 at 50 ms in one
   make bench); in a 40-batch run the two shares agreed at 0 ms (1.215 / 1.208 ms) and
   the separate one was 0.02-0.13 ms higher at 25 and 50 ms. Both are reported;
2. the kill switch with 1,000 open orders while 53 submits are on the wire at 25 ms
   (through the broker: the desk's working buys cover every symbol, so a signal
   batch would make no order): Halt -> alpaca-py cancel_orders called (the cancel-all request leaves),
   and -> the venue handling DELETE /v2/orders (built-in venue in this process, the
   desk of benchmarks/bench_engine.py moved to the open).

Goals (issue 15): at 25 ms p99 <= 160 ms and <= 1.2 x raw alpaca-py at its best;
at 0 ms p99 <= 100 ms; engine CPU per order <= 0.5 ms median; cancel-all on the
wire <= 50 ms after the command. Timestamps come from public engine surfaces
(benchmarks/pipeline_run.py: an EngineObserver, AlpacaBroker.observe_requests).

Run alone: `python -m benchmarks.bench_latency` (or `python -m benchmarks --only latency`)."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import statistics
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

from benchmarks.pipeline_run import (
    CREDS,
    AlpacaShare,
    BatchProbe,
    bench_settings,
    build_desk,
    limit_request,
    load_average,
    ms,
    on_loop,
    own_process_session,
    pct,
    print_rows,
    run_batch,
    run_parts,
    start_venue_process,
    thread_cpu_exact,
)
from tests.support import wait_for

# BENCH_LATENCY_BATCHES / BENCH_LATENCY_MS: fewer batches or settings for a quick look
# (`make bench` uses the defaults); BENCH_LATENCY_HEAP_AB=1: in each setting, blocks of 10
# batches alternately with the engine's collector policy off (automatic collections, as
# before engine.core.heap) and on, reported side by side; BENCH_KILL_ROUNDS: rounds of the kill switch
LATENCIES_MS = tuple(int(x) for x in os.environ.get("BENCH_LATENCY_MS", "0,10,25,50").split(","))
BATCHES = int(os.environ.get("BENCH_LATENCY_BATCHES", "100"))
HEAP_AB = os.environ.get("BENCH_LATENCY_HEAP_AB", "") not in ("", "0")
WARMUP = 4  # even: each setting starts on a buy batch, so raw alpaca-py buys before it sells
SWEEP_THREADS = (4, 16, 32, 53)
SWEEP_ROUNDS = 8
# alpaca-py's own CPU: measured on the batches i with i % SHARE_EVERY in (0, 1) (a buy
# batch and the sell batch after it, so the venue's positions stay even)
SHARE_EVERY = 20
KILL_ORDERS = 1000
KILL_LATENCY_MS = 25
# the kill switch on the wire: rounds (each its own desk), the median and the worst reported. 20, not 5:
# the tail came from 1 round in 5 to 20 (issue 15), which 5 rounds cannot show
KILL_ROUNDS = int(os.environ.get("BENCH_KILL_ROUNDS", "20"))

P99_25_TARGET_MS = 160.0
RATIO_TARGET = 1.2
P99_0_TARGET_MS = 100.0
CPU_TARGET_MS = 0.5
KILL_WIRE_TARGET_MS = 50.0


def set_faults(url: str, **faults: Any) -> dict:
    """POST /sim/v1/faults on a venue process (the drill API, with the account's keys)."""
    req = urllib.request.Request(
        url.rstrip("/") + "/sim/v1/faults",
        data=json.dumps(faults).encode(),
        method="POST",
        headers={
            "APCA-API-KEY-ID": CREDS.key_id,
            "APCA-API-SECRET-KEY": CREDS.secret_key,
            "Content-Type": "application/json",
        },
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


class Raw:
    """Plain alpaca-py (default models, as a user would) against its own venue process."""

    def __init__(self, url: str):
        from alpaca.trading.client import TradingClient

        self.client = TradingClient(CREDS.key_id, CREDS.secret_key, paper=True, url_override=url)
        self.pools: dict[int, ThreadPoolExecutor] = {}
        self.ids = itertools.count(1)  # next() is atomic: the sending threads share it
        self.sent = 0

    def _request(self, spec):
        return limit_request(spec, f"raw-lat-{next(self.ids)}")

    def send(self, specs, threads: int) -> float:
        """All of specs with `threads` in flight: ms until the last answer."""
        pool = self.pools.get(threads)
        if pool is None:
            pool = self.pools[threads] = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=f"raw-{threads}")
        self.sent += len(specs)
        t0 = time.perf_counter()
        futures = [pool.submit(lambda s=spec: self.client.submit_order(self._request(s))) for spec in specs]
        for f in futures:
            f.result()
        return (time.perf_counter() - t0) * 1000

    def close(self) -> None:
        for pool in self.pools.values():
            pool.shutdown(wait=True)


class InProcessShare:
    """alpaca-py's own CPU inside the engine's process, in the engine's own threads, for
    the very calls and updates of the measured batches (the same work in the same
    conditions, by construction): the broker's alpaca-py TradingClient.submit_order is
    timed in its worker (time.thread_time around the call, less the broker's own
    response hook, which runs inside it: parse_ratelimit_headers + the limiter), and
    building alpaca-py's request model (engine.broker.wire.order_request, in the
    worker too) is alpaca-py's as in AlpacaShare; the engine's trade stream thread's
    CPU is split into the broker's own handler (timed: parsing the update, posting it
    to the engine) and the rest (alpaca-py's TradingStream: websockets, JSON, its
    dispatch). What of ours is left inside the timed call: _VenueAdapter.send's permit
    check (a few attribute reads); the thread_time reads (~1 us per call and per
    update) land on alpaca-py's side. An instrument on private attributes of the
    broker (its alpaca-py client and trade stream), not a public surface."""

    def __init__(self, eng: Any) -> None:
        import threading

        self._tl = threading.local()
        self.calls: list[float] = []  # seconds, alpaca-py's part of each submit_order (list.append: thread-safe)
        self.hooks: list[float] = []  # seconds, the broker's response hook inside each
        self.handler_cpu = 0.0  # seconds, the broker's own trade-update handler
        self.updates = 0
        broker = eng.broker
        client = broker._trading  # noqa: SLF001 - an instrument on the broker's alpaca-py client
        real_submit = client.submit_order
        tl = self._tl

        def submit_order(*args: Any, **kwargs: Any) -> Any:
            tl.hook = 0.0
            c0 = time.thread_time()
            try:
                return real_submit(*args, **kwargs)
            finally:
                self.calls.append(time.thread_time() - c0 - tl.hook)

        client.submit_order = submit_order
        from engine.broker import alpaca as broker_module

        real_model = broker_module.order_request

        def order_request(*args: Any, **kwargs: Any) -> Any:
            c0 = time.thread_time()
            try:
                return real_model(*args, **kwargs)
            finally:
                self.calls.append(time.thread_time() - c0)  # alpaca-py's request model (pydantic)

        broker_module.order_request = order_request  # type: ignore[assignment]
        self._restore = lambda: setattr(broker_module, "order_request", real_model)
        from engine.broker.alpaca import rest_session

        session = rest_session(client)
        hooks = session.hooks["response"] if session is not None else []
        for i, hook in enumerate(hooks):
            hooks[i] = self._timed_hook(hook)
        stream = broker._trade_stream.stream  # noqa: SLF001 - alpaca-py's TradingStream of the engine
        real_handler = stream._trade_updates_handler  # noqa: SLF001

        async def on_update(msg: Any) -> None:
            c0 = time.thread_time()
            try:
                await real_handler(msg)  # ours: never waits (it parses and posts)
            finally:
                self.handler_cpu += time.thread_time() - c0
                self.updates += 1

        stream._trade_updates_handler = on_update  # noqa: SLF001

    def close(self) -> None:
        """Put engine.broker.alpaca's order_request back (the module is shared by every
        engine of this process: the kill-switch bench after this one builds its own)."""
        self._restore()

    def _timed_hook(self, hook: Any) -> Any:
        tl = self._tl

        def timed(*args: Any, **kwargs: Any) -> Any:
            c0 = time.thread_time()
            try:
                return hook(*args, **kwargs)
            finally:
                spent = time.thread_time() - c0
                tl.hook = getattr(tl, "hook", 0.0) + spent
                self.hooks.append(spent)

        return timed

    def mark(self) -> tuple[int, float, int, float, int]:
        """(timed alpaca-py calls, the broker's handler CPU, updates, the trade stream thread's CPU, hooks) so far."""
        stream = thread_cpu_exact("broker-trade_stream") or 0.0
        return len(self.calls), self.handler_cpu, self.updates, stream, len(self.hooks)

    def between(self, a: tuple[int, float, int, float, int], b: tuple[int, float, int, float, int]) -> dict[str, float]:
        """alpaca-py's CPU seconds between two marks: its submit_order calls and request
        models, and the trade stream thread's CPU less the broker's handler; the broker's
        handler and response hooks; the counts."""
        submit = sum(self.calls[a[0] : b[0]])
        handler = b[1] - a[1]
        stream = (b[3] - a[3]) - handler
        hook = sum(self.hooks[a[4] : b[4]])
        return {"submit": submit, "stream": stream, "handler": handler, "hook": hook, "updates": b[2] - a[2]}


def bench_latencies(tmp: Path) -> list[dict]:
    settings = bench_settings(order_reconciliation_interval=3600)
    workers = settings.broker.workers
    procs = []
    session = raw = share = None
    inproc: InProcessShare | None = None
    results: dict[int, dict[str, Any]] = {}
    try:
        eng_venue = start_venue_process()
        procs.append(eng_venue)
        raw_venue = start_venue_process()
        procs.append(raw_venue)
        session = own_process_session(settings, eng_venue.url, tmp / "latency.sqlite")
        eng = session.engine
        raw = Raw(raw_venue.url)
        share = AlpacaShare(raw_venue.url, eng.broker.in_flight)
        probe = BatchProbe(eng)
        on_loop(session, probe.attach())
        inproc = InProcessShare(eng)
        k = 0
        share_started = False
        for latency in LATENCIES_MS:
            for v in (eng_venue, raw_venue):
                set_faults(v.url, latency_ms=latency, scope="trading")
            specs: list[list] = []  # the last buy batch and the last sell batch, for raw alpaca-py
            for _ in range(WARMUP):
                res, _cpu = run_batch(session, probe, k)
                specs.append(res["orders"])
                k += 1
            specs = specs[-2:]
            if not share_started:
                share.start(specs[0][0])
                share_started = True
            sweep: dict[int, list[float]] = {}
            for threads in SWEEP_THREADS:
                sweep[threads] = [raw.send(specs[i % 2], threads) for i in range(SWEEP_ROUNDS)]
            best = min(SWEEP_THREADS, key=lambda t: statistics.median(sweep[t]))
            eng_ms, cpu_per_order, raw_same, raw_best, counts = [], [], [], [], set()
            heap_off: list[float] = []  # BENCH_LATENCY_HEAP_AB: the batches with the policy off
            loop_cpu: list[float] = []  # the engine loop thread's CPU per order (ms)
            share_one: list[float] = []  # alpaca-py's CPU per submit_order, one thread: per batch (ms)
            share_burst: list[float] = []  # the same at the broker's concurrency (ms)
            in_alpaca: list[float] = []  # alpaca-py's CPU per order inside the engine (InProcessShare, ms)
            in_handler: list[float] = []  # the broker's trade-update handler per order (ms)
            stream0, updates0, sent0 = share.stream_cpu(), share.updates, share.orders_sent + raw.sent
            for i in range(BATCHES):
                heap_on = not HEAP_AB or (i // 10) % 2 == 0
                if HEAP_AB and i % 10 == 0 and heap_on:
                    eng.heap.on_start()
                elif HEAP_AB and i % 10 == 0:
                    eng.heap.on_stop()
                m0, l0 = inproc.mark(), thread_cpu_exact()
                res, cpu = run_batch(session, probe, k)
                l1, m1 = thread_cpu_exact(), inproc.mark()
                split = inproc.between(m0, m1)
                in_alpaca.append((split["submit"] + split["stream"]) * 1000 / max(res["n"], 1))
                in_handler.append(split["handler"] * 1000 / max(res["n"], 1))
                if l0 is not None and l1 is not None:
                    loop_cpu.append((l1 - l0) * 1000 / max(res["n"], 1))
                k += 1
                counts.add(res["n"])
                (eng_ms if heap_on else heap_off).append(res["total_ms"])
                cpu_per_order.append(cpu * 1000 / max(res["n"], 1))
                runs = [workers] if best == workers else [workers, best]
                if i % 2:
                    runs.reverse()  # who goes first after the engine: alternate
                got = {t: raw.send(res["orders"], t) for t in runs}
                raw_same.append(got[workers])
                raw_best.append(got[best])
                if i % SHARE_EVERY in (0, 1):
                    one = share.submit_cpu(res["orders"])
                    burst = share.burst_cpu(res["orders"], eng.broker.in_flight)
                    share_one.append(sum(one) * 1000 / max(len(one), 1))
                    share_burst.append(sum(burst) * 1000 / max(len(burst), 1))
                share.settle()  # raw alpaca-py's updates handled before the engine's next batch
            time.sleep(0.2)  # the last fills' updates
            updates = share.updates - updates0
            sent = share.orders_sent + raw.sent - sent0
            stream_cpu = share.stream_cpu() - stream0
            results[latency] = {
                "eng": eng_ms,
                "cpu": cpu_per_order,
                "same": raw_same,
                "best": raw_best,
                "best_threads": best,
                "sweep": {t: statistics.median(v) for t, v in sweep.items()},
                "counts": counts,
                "heap_off": heap_off,
                "loop_cpu": loop_cpu,
                "in_alpaca": in_alpaca,
                "in_handler": in_handler,
                "share_one": share_one,
                "share_burst": share_burst,
                "in_flight": eng.broker.in_flight,
                "share_stream": stream_cpu * 1000 / max(sent, 1),  # ms per order
                "updates_per_order": updates / max(sent, 1),
                "stream_per_update": stream_cpu * 1e6 / max(updates, 1),  # us
            }
        if HEAP_AB:
            eng.heap.on_start()
        on_loop(session, probe.detach())
    finally:
        if inproc is not None:
            inproc.close()
        if session is not None:
            session.stop()
        if raw is not None:
            raw.close()
        if share is not None:
            share.close()
        for proc in procs:
            proc.stop()
    return latency_rows(results, workers)


def latency_rows(results: dict[int, dict[str, Any]], workers: int) -> list[dict]:
    rows: list[dict] = [
        {
            "name": "setup of the latency benchmarks",
            "value": BATCHES,
            "unit": "batches per setting",
            "target": "(>= 100)",
            "note": f"{WARMUP} warm-up batches per setting; alternately +0.5 on all 53 symbols and 0.0 with "
            "below_threshold=flatten; venue and raw alpaca-py's venue each in their own process (frozen clock, "
            f"rate limit off), latency_ms fault with scope trading on both; engine broker.workers = {workers}; "
            f"raw best concurrency picked from {'/'.join(map(str, SWEEP_THREADS))} threads by the median of "
            f"{SWEEP_ROUNDS} sends; load average {load_average()} (shared machine)",
        }
    ]
    for latency, r in results.items():
        eng, best, same = r["eng"], r["best"], r["same"]
        p50, p99 = statistics.median(eng), pct(eng, 99)
        b50, b99 = statistics.median(best), pct(best, 99)
        s50, s99 = statistics.median(same), pct(same, 99)
        ratio = p99 / b99
        cpu = statistics.median(r["cpu"])
        n = next(iter(r["counts"])) if len(r["counts"]) == 1 else f"{sorted(r['counts'])} (not 53 each!)"
        sweep = ", ".join(f"{t}: {v:.0f}" for t, v in r["sweep"].items())
        p99_row: dict[str, Any] = {
            "name": f"{latency} ms latency: 53-signal batch -> every order acked, p99",
            "value": ms(p99),
            "unit": "ms",
        }
        if latency == 25:
            p99_row.update(target=f"<= {P99_25_TARGET_MS:g}", ok=p99 <= P99_25_TARGET_MS)
        elif latency == 0:
            p99_row.update(target=f"<= {P99_0_TARGET_MS:g}", ok=p99 <= P99_0_TARGET_MS)
        else:
            p99_row.update(target="(reported)")
        p99_row["note"] = f"p50 {p50:.1f} ms, max {max(eng):.1f} ms over {len(eng)} batches of {n} orders"
        rows.append(p99_row)
        off = r.get("heap_off")
        if off:
            rows.append(
                {
                    "name": f"{latency} ms latency: the same, engine.core.heap off (automatic collections), p99",
                    "value": ms(pct(off, 99)),
                    "unit": "ms",
                    "target": "(before / after, same run)",
                    "note": f"p50 {statistics.median(off):.1f} ms, max {max(off):.1f} ms over {len(off)} batches, in "
                    f"blocks of 10 alternating with the {len(eng)} batches of the row above (policy on)",
                }
            )
        rows.append(
            {
                "name": f"{latency} ms latency: raw alpaca-py, the same orders, best concurrency, p50 / p99",
                "value": ms(b50),
                "unit": "ms",
                "target": "(baseline)",
                "note": f"p99 {b99:.1f} ms with {r['best_threads']} threads; at the engine's {workers}: p50 "
                f"{s50:.1f} / p99 {s99:.1f} ms; sweep medians (threads: ms) {sweep}",
            }
        )
        ratio_row: dict[str, Any] = {
            "name": f"{latency} ms latency: engine p99 / raw alpaca-py best p99",
            "value": round(ratio, 2),
            "unit": "x",
        }
        if latency == 25:
            ratio_row.update(target=f"<= {RATIO_TARGET:g}", ok=ratio <= RATIO_TARGET)
        else:
            ratio_row.update(target="(reported)")
        ratio_row["note"] = f"p50 ratio {p50 / b50:.2f}"
        rows.append(ratio_row)
        rows.append(
            {
                "name": f"{latency} ms latency: engine CPU per order, median",
                "value": round(cpu, 3),
                "unit": "ms",
                "target": f"<= {CPU_TARGET_MS:g}",
                "ok": cpu <= CPU_TARGET_MS,
                "note": "time.process_time of this process while the engine handles one batch until its orders are "
                "acked and filled (sizing, checks, journal, alpaca-py, trade updates, streams), / orders; the "
                f"venue is another process; p90 {pct(r['cpu'], 90):.3f} ms",
            }
        )
        rows += share_rows(latency, cpu, r)
    return rows


def share_rows(latency: int, total: float, r: dict[str, Any]) -> list[dict]:
    """alpaca-py's measured share of the CPU per order and what is left: the engine's own."""
    nan = float("nan")
    one = statistics.median(r["share_one"]) if r["share_one"] else nan
    burst = statistics.median(r["share_burst"]) if r["share_burst"] else nan
    stream = r["share_stream"]
    alpaca = burst + stream
    own = total - alpaca
    on_total = "met" if total <= CPU_TARGET_MS else "missed"
    if latency == 0:
        alt = f"with alpaca-py's one-thread figure instead of the burst's: {total - one - stream:.3f} ms"
    else:  # one call per round trip leaves the thread idle in between: cold caches, ~2x the CPU per call
        alt = "the one-thread figure is not used at this latency (idle between calls, it overstates alpaca-py)"
    return [
        {
            "name": f"{latency} ms latency: alpaca-py's own CPU per order (submit_order + its trade stream), median",
            "value": round(alpaca, 3),
            "unit": "ms",
            "target": "(measured share)",
            "note": f"against its own venue process, submit_order with the broker's settings (raw_data, no retry, "
            f"lean requests session; no engine code on the path), the calling thread's CPU per call (thread_time), "
            f"the batch's 53 orders at once from the broker's {r['in_flight']} threads: {burst:.3f} ms; the same "
            f"one after the other in one thread: {one:.3f} ms (a thread that waits a round trip between calls "
            f"pays more per call on this machine: cold caches) ({len(r['share_burst'])} batches each); plain "
            f"alpaca-py TradingStream (websockets + JSON + its dispatch, a handler that only counts): "
            f"{r['stream_per_update']:.0f} us per update x {r['updates_per_order']:.2f} updates per order = "
            f"{stream:.3f} ms",
        },
        {
            "name": f"{latency} ms latency: engine's own CPU per order (total - alpaca-py's measured share), median",
            "value": round(own, 3),
            "unit": "ms",
            "target": f"<= {CPU_TARGET_MS:g}",
            "ok": own <= CPU_TARGET_MS,
            "note": f"{total:.3f} ms total (the engine CPU row above; the goal {on_total} on the total) - "
            f"{alpaca:.3f} ms alpaca-py (burst + stream, the row above): sizing, checks, journal, the broker's own "
            "code (limiter, adapter, worker hops, parsing the answers), the engine's handling of the trade "
            f"updates, snapshots; {alt}",
        },
        *in_process_rows(latency, r),
        {
            "name": f"{latency} ms latency: the engine's loop thread CPU per order, median",
            "value": round(statistics.median(r["loop_cpu"]), 3) if r["loop_cpu"] else "n/a",
            "unit": "ms",
            "target": f"<= {CPU_TARGET_MS:g}",
            "ok": bool(r["loop_cpu"]) and statistics.median(r["loop_cpu"]) <= CPU_TARGET_MS,
            "note": "the third reading, measured rather than subtracted: the execdesk-engine thread's CPU "
            "(/proc schedstat) over the same batches: sizing, checks, journal, the broker's loop-side code, "
            "the handling of acks and trade updates, snapshots; all that is ours but what runs in the broker's "
            "workers and the stream thread (rate-limit adapter and hook, parsing the updates: tens of us); p90 "
            + (f"{pct(r['loop_cpu'], 90):.3f} ms" if r["loop_cpu"] else "n/a"),
        },
    ]


def in_process_rows(latency: int, r: dict[str, Any]) -> list[dict]:
    """The split measured inside the engine (InProcessShare), batch by batch: the
    engine's own = the batch's total - alpaca-py's CPU for that batch's calls and updates."""
    if not r.get("in_alpaca"):
        return []
    alpaca = statistics.median(r["in_alpaca"])
    own_each = [t - a for t, a in zip(r["cpu"], r["in_alpaca"], strict=True)]
    own = statistics.median(own_each)
    handler = statistics.median(r["in_handler"])
    return [
        {
            "name": f"{latency} ms latency: alpaca-py's own CPU per order inside the engine (its submit_order "
            "calls + its trade stream), median",
            "value": round(alpaca, 3),
            "unit": "ms",
            "target": "(measured share)",
            "note": "in the engine's own threads, for the very calls and updates of each measured batch "
            "(InProcessShare): thread_time around the broker's alpaca-py submit_order in its workers, less the "
            "broker's response hook inside it; the engine's trade stream thread's CPU less the broker's own "
            f"handler ({handler:.3f} ms per order: parsing the updates, posting them); p90 "
            f"{pct(r['in_alpaca'], 90):.3f} ms over {len(r['in_alpaca'])} batches",
        },
        {
            "name": f"{latency} ms latency: engine's own CPU per order (total - alpaca-py's share inside the "
            "engine), median",
            "value": round(own, 3),
            "unit": "ms",
            "target": f"<= {CPU_TARGET_MS:g}",
            "ok": own <= CPU_TARGET_MS,
            "note": "batch by batch: the batch's process CPU / orders (the engine CPU row) - alpaca-py's CPU for "
            "that batch's calls and updates (the row above), the median of the differences; what the subtraction "
            "above does with alpaca-py measured on its own venue, without the engine's threads beside it and on "
            f"a tenth of the batches; p90 {pct(own_each, 90):.3f} ms",
        },
    ]


def bench_kill_on_wire(tmp: Path) -> list[dict]:
    """Halt with 1,000 of the engine's orders resting at the venue while a 53-order
    batch is on the wire at 25 ms, KILL_ROUNDS times (each a desk of its own): the
    median and the worst round are the figures, every round is in the note (one round
    is noise on a shared machine: 7-80 ms were seen for the same code)."""
    rounds = []
    for i in range(KILL_ROUNDS):
        round_dir = tmp / f"kill-{i}"
        round_dir.mkdir()
        rounds.append(_kill_once(round_dir))
    wires = [r["wire"] for r in rounds]
    wire, worst = statistics.median(wires), max(wires)
    mid = min(rounds, key=lambda r: abs(r["wire"] - wire))
    slow = max(rounds, key=lambda r: r["wire"])
    name = (
        f"kill switch, {KILL_ORDERS:,} open orders + a 53-order batch on the wire at {KILL_LATENCY_MS} ms: "
        "Halt -> cancel-all request on the wire"
    )
    return [
        {
            "name": name,
            "value": ms(wire),
            "unit": "ms",
            "target": f"<= {KILL_WIRE_TARGET_MS:g}",
            "ok": wire <= KILL_WIRE_TARGET_MS,
            "note": f"median of {KILL_ROUNDS} rounds (each its own desk), max {worst:.1f} ms; rounds: "
            + ", ".join(f"{w:.1f}" for w in wires)
            + f" ms; Halt from another thread (Session.execute_sync) when {mid['in_flight']} submits had left -> "
            f"alpaca-py cancel_orders called in the broker's worker; in the median round the venue (in this "
            f"process, {KILL_LATENCY_MS} ms added before every trading request) handled DELETE /v2/orders at "
            f"{mid['at_venue']:.1f} ms and the command returned (HALTED durable) at {mid['returned']:.1f} ms; "
            f"state {mid['state']}",
        },
        {
            "name": name + f", worst of {KILL_ROUNDS} rounds",
            "value": ms(worst),
            "unit": "ms",
            "target": f"<= {KILL_WIRE_TARGET_MS:g}",
            "ok": worst <= KILL_WIRE_TARGET_MS,
            "note": f"{sum(w > KILL_WIRE_TARGET_MS for w in wires)} of {KILL_ROUNDS} rounds over "
            f"{KILL_WIRE_TARGET_MS:g} ms; in the worst round {slow['in_flight']} submits had left, the venue "
            f"handled DELETE /v2/orders at {slow['at_venue']:.1f} ms and the command returned at "
            f"{slow['returned']:.1f} ms",
        },
    ]


def _kill_once(tmp: Path) -> dict[str, Any]:
    """One round: the desk of bench_engine.py (journal + in-process venue, reconciled
    at start-up) moved to the open, so the batch may trade."""
    from engine.broker.base import SubmitRequest
    from engine.commands import Halt
    from engine.model import Side

    marks: dict[str, float] = {}
    started: list[float] = []

    desk = build_desk(KILL_ORDERS, tmp)

    def on_request(name: str) -> None:
        if name == "cancel_orders":
            marks.setdefault("client", time.perf_counter())  # alpaca-py builds and sends the DELETE now
        elif name == "submit_order":
            started.append(time.perf_counter())

    desk.eng.broker.observe_requests(on_request)
    try:
        venue, eng = desk.venue, desk.eng
        vserver = venue.server
        venue_cancel_all = vserver.exchange.cancel_all

        def timed_venue_cancel_all():
            marks.setdefault("venue", time.perf_counter())  # the venue handles DELETE /v2/orders
            return venue_cancel_all()

        vserver.exchange.cancel_all = timed_venue_cancel_all
        venue.clock_to("next_open")
        venue.set_clock(frozen=True)
        on_loop(desk.session, eng.sync.refresh_clock())
        if not eng.clock.market_open():
            raise RuntimeError("the engine does not see the market open after the venue's clock moved")
        venue.set_faults(latency_ms=KILL_LATENCY_MS, scope="trading")
        quotes = {s: vserver.exchange.model.markets[s].quote for s in list(eng.symbols)[:53]}

        async def send_batch() -> None:
            # the broker's submit path (worker pool, limiter, alpaca-py) with 53 new orders: the
            # signal path would make none here, every symbol being covered by the desk's working buys
            for i, (sym, q) in enumerate(quotes.items()):
                req = SubmitRequest(
                    client_order_id=f"kill-batch-{i}", symbol=sym, side=Side.BUY, qty=Decimal(1), limit_price=q.bp
                )
                eng.spawn(eng.broker.submit(req), "submit")

        asyncio.run_coroutine_threadsafe(send_batch(), desk.session._loop)  # noqa: SLF001
        wait_for(lambda: len(started) >= 40, timeout=30, what="40 submits of the batch on the wire")
        in_flight = len(started)
        t0 = time.perf_counter()
        result = desk.session.execute_sync(Halt(cause="benchmark"), timeout=30)
        t_result = time.perf_counter()
        wait_for(lambda: "venue" in marks, timeout=30, what="the venue's cancel-all")
        state = eng.state.value
    finally:
        desk.close()
    if not result.ok:
        raise RuntimeError(f"Halt refused: {result.message}")
    return {
        "wire": (marks["client"] - t0) * 1000,
        "at_venue": (marks["venue"] - t0) * 1000,
        "returned": (t_result - t0) * 1000,
        "in_flight": in_flight,
        "state": state,
    }


def run() -> list[dict]:
    return run_parts(
        "execdesk-bench-latency-",
        [
            (bench_latencies, "53-signal batches at 0/10/25/50 ms latency", f"<= {P99_25_TARGET_MS:g} at 25 ms"),
            (bench_kill_on_wire, "kill switch with a batch on the wire", f"<= {KILL_WIRE_TARGET_MS:g}"),
        ],
    )


if __name__ == "__main__":
    print_rows(run(), width=110)
