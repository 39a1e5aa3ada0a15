"""Issue 15 §3: where the engine's CPU per order goes, in a short run.

The setup of bench_latency.py's first section (the real pipeline, the venue in its
own process, no injected latency): a few 53-signal batches, alternately +0.5 on
every symbol and 0.0 (flatten), each until its orders are acked and filled. Prints
the median CPU per order (time.process_time of this process / orders — the same
measure as bench_latency.py's "engine CPU per order") and the CPU per order of each
of this process's threads (engine loop, alpaca-py workers, trade stream, ...).

`--profile` also runs cProfile in every thread of the process (threading.setprofile
plus the threads already running) and prints the top functions by own time and by
cumulative time: what the breakdown in docs/architecture.md (issue 15 §3) comes from. The profiler
itself costs CPU; the per-order figure is the one of the run without it.

`--against DIR` measures before/after side by side in one run: DIR holds another
version of the repository (`git archive <commit> | tar -x -C DIR`); rounds of this
measurement alternate between DIR's engine and this one (each round a fresh process,
its own venue), and the medians of both are printed.

`--share` also measures alpaca-py's own CPU for the same orders, as bench_latency.py
does (pipeline_run.AlpacaShare, on a venue process of its own: submit_order with the
broker's settings in a burst at the broker's concurrency, and a plain TradingStream),
and prints the engine's own share = total - alpaca-py's; and, measured inside the
engine's own threads for the very calls and updates of the run (bench_latency.
InProcessShare), alpaca-py's share again and the engine's own beside it.

Run: `python -m benchmarks.profile_cpu [--batches N] [--latency MS] [--profile | --sample] [--share]`
or `python -m benchmarks.profile_cpu --against DIR [--rounds R] [--batches N]`."""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.bench_latency import set_faults
from benchmarks.pipeline_run import (
    BatchProbe,
    bench_settings,
    on_loop,
    own_process_session,
    run_batch,
    start_venue_process,
    thread_cpu,
)
from benchmarks.sampler import StackSampler

WARMUP = 4


def thread_cpu_ns() -> dict[str, float]:
    """CPU seconds per thread of this process by name, the workers summed, from
    /proc/.../schedstat (to the ns): pipeline_run.thread_cpu's clock ticks undercount
    the 54 short-running workers (0.73 against 0.88-0.97 ms per order in one run)."""
    out: dict[str, float] = {}
    try:
        for t in threading.enumerate():
            ns = int(Path(f"/proc/self/task/{t.native_id}/schedstat").read_text().split()[0])
            name = "broker-rest" if t.name.startswith("broker-rest") else t.name
            out[name] = out.get(name, 0.0) + ns / 1e9
    except (OSError, ValueError, IndexError, TypeError):
        return thread_cpu()
    return out


class AllThreads:
    """One cProfile.Profile per thread, merged at the end."""

    def __init__(self) -> None:
        self.profiles: list[cProfile.Profile] = []
        self.lock = threading.Lock()

    def _start_here(self) -> None:
        p = cProfile.Profile(time.thread_time)  # CPU of this thread, not wall time
        with self.lock:
            self.profiles.append(p)
        p.enable()

    def stats(self) -> pstats.Stats:
        for p in self.profiles:
            p.disable()
        out = io.StringIO()
        st = pstats.Stats(self.profiles[0], stream=out)
        for p in self.profiles[1:]:
            st.add(p)
        return st


def _enable_in_running_threads(session, prof: AllThreads) -> None:
    """cProfile in the engine's loop thread and in the broker's worker threads."""

    async def on_loop_thread() -> None:
        prof._start_here()  # noqa: SLF001

    on_loop(session, on_loop_thread())
    # new threads (alpaca-py workers started on demand, stream threads) pick it up here
    threading.setprofile(lambda *a: _bootstrap(prof))


def _bootstrap(prof: AllThreads) -> None:
    sys.setprofile(None)
    prof._start_here()  # noqa: SLF001


def run(batches: int, latency: int, profile: bool, sample: bool = False, share: bool = False) -> dict[str, Any]:
    settings = bench_settings(order_reconciliation_interval=3600)
    venue = start_venue_process()
    session = None
    alpaca = other = None  # --share: pipeline_run.AlpacaShare and its venue (imported here: --against
    # runs this file against older trees, whose pipeline_run may not have it)
    burst: list[float] = []
    inproc: Any = None  # --share: bench_latency.InProcessShare
    try:
        with tempfile.TemporaryDirectory(prefix="execdesk-profile-cpu-") as tmp:
            session = own_process_session(settings, venue.url, Path(tmp) / "cpu.sqlite")
            eng = session.engine
            set_faults(venue.url, latency_ms=latency, scope="trading")
            probe = BatchProbe(eng)
            on_loop(session, probe.attach())
            cpu: list[float] = []
            n_total = 0
            prof = AllThreads() if profile else None
            threads0: dict[str, float] = {}
            sampler = None
            marks = None
            if share:
                from benchmarks.bench_latency import InProcessShare

                inproc = InProcessShare(eng)
            for k in range(WARMUP + batches):
                if k == WARMUP:
                    threads0 = thread_cpu_ns()
                    if inproc is not None:
                        marks = inproc.mark()
                    if prof is not None:
                        _enable_in_running_threads(session, prof)
                    if sample:
                        sampler = StackSampler(session._thread.ident, name="cpu-sampler")  # noqa: SLF001
                        sampler.start()
                res, c = run_batch(session, probe, k)
                if k >= WARMUP:
                    cpu.append(c * 1000 / max(res["n"], 1))
                    n_total += res["n"]
                if share and k == 0:
                    from benchmarks.pipeline_run import AlpacaShare

                    other = start_venue_process()
                    set_faults(other.url, latency_ms=latency, scope="trading")
                    alpaca = AlpacaShare(other.url, eng.broker.in_flight)
                    alpaca.start(res["orders"][0])
                if alpaca is not None and k >= WARMUP - 2:  # a buy and a sell batch before the measured ones
                    if k == WARMUP:
                        stream0, updates0, sent0 = alpaca.stream_cpu(), alpaca.updates, alpaca.orders_sent
                    calls = alpaca.burst_cpu(res["orders"], eng.broker.in_flight)
                    if k >= WARMUP:
                        burst.append(sum(calls) * 1000 / max(len(calls), 1))
                    alpaca.settle()
            threads1 = thread_cpu_ns()
            inside: dict[str, float] = {}
            if inproc is not None and marks is not None:
                split = inproc.between(marks, inproc.mark())
                inside = {
                    k: v * 1000 / max(n_total, 1) for k, v in split.items() if k in ("submit", "stream", "handler")
                }
            if sampler is not None:
                sampler.stop()
            if prof is not None:
                threading.setprofile(None)  # type: ignore[arg-type]
            on_loop(session, probe.detach())
            per_thread = {
                name: (threads1[name] - threads0.get(name, 0.0)) * 1000 / max(n_total, 1)
                for name in threads1
                if threads1[name] - threads0.get(name, 0.0) > 0 and not name.startswith("raw-")  # --share's own
            }
            shares: dict[str, float] = {}
            if alpaca is not None:
                stream = (alpaca.stream_cpu() - stream0) * 1000 / max(alpaca.orders_sent - sent0, 1)
                shares = {
                    "alpaca_submit": statistics.median(burst),
                    "alpaca_stream": stream,
                    "updates_per_order": (alpaca.updates - updates0) / max(alpaca.orders_sent - sent0, 1),
                }
            return {
                "shares": shares,
                "inside": inside,
                "median": statistics.median(cpu),
                "p90": sorted(cpu)[int(len(cpu) * 0.9)] if cpu else 0.0,
                "orders": n_total,
                "threads": per_thread,
                "stats": prof.stats() if prof is not None else None,
                "sampler": sampler,
            }
    finally:
        if inproc is not None:
            inproc.close()
        if session is not None:
            session.stop()
        venue.stop()
        if alpaca is not None:
            alpaca.close()
        if other is not None:
            other.stop()


def _one_round(tree: Path, batches: int, latency: int) -> dict[str, Any]:
    """One measurement in a fresh process whose `engine` (and bench helpers) are tree's."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    cmd = [sys.executable, __file__, "--json", "--batches", str(batches), "--latency", str(latency)]
    out = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=480, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def compare(against: Path, rounds: int, batches: int, latency: int) -> None:
    here = Path(__file__).resolve().parent.parent
    got: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
    for i in range(rounds):
        order = [("before", against), ("after", here)]
        if i % 2:
            order.reverse()  # who goes first: alternate
        for label, tree in order:
            got[label].append(_one_round(tree, batches, latency))
    for label, tree in (("before", against), ("after", here)):
        runs = got[label]
        med = statistics.median(r["median"] for r in runs)
        names = sorted({k for r in runs for k in r["threads"]})
        threads = {n: statistics.median(r["threads"].get(n, 0.0) for r in runs) for n in names}
        each = ", ".join(f"{r['median']:.3f}" for r in runs)
        print(
            f"{label:<6} {tree}: engine CPU per order, median of {rounds} rounds x {batches} batches: {med:.3f} ms"
            f" (rounds: {each}); per thread (ms/order): "
            + ", ".join(f"{k} {v:.3f}" for k, v in threads.items() if v >= 0.005)
        )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--latency", type=int, default=0, help="ms added to every trading request")
    ap.add_argument("--profile", action="store_true", help="cProfile every thread and print the top functions")
    ap.add_argument("--top", type=int, default=45)
    ap.add_argument("--dump", help="with --profile: also write the merged pstats to this file")
    ap.add_argument("--sample", action="store_true", help="sample the engine loop thread's stacks and print them")
    ap.add_argument("--share", action="store_true", help="also measure alpaca-py's own share (bench_latency's split)")
    ap.add_argument("--against", type=Path, help="another version of the repository: before/after side by side")
    ap.add_argument("--rounds", type=int, default=4, help="with --against: rounds per version")
    ap.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.against is not None:
        compare(args.against.resolve(), args.rounds, args.batches, args.latency)
        return
    r = run(args.batches, args.latency, args.profile, args.sample, args.share)
    if args.json:
        print(json.dumps({"median": r["median"], "p90": r["p90"], "orders": r["orders"], "threads": r["threads"]}))
        return
    print(f"engine CPU per order: median {r['median']:.3f} ms, p90 {r['p90']:.3f} ms over {r['orders']} orders")
    print("per thread (ms/order): " + ", ".join(f"{k} {v:.3f}" for k, v in sorted(r["threads"].items())))
    sh = r["shares"]
    if sh:
        alpaca = sh["alpaca_submit"] + sh["alpaca_stream"]
        print(
            f"alpaca-py's own (another venue process, the same orders): submit_order in a burst "
            f"{sh['alpaca_submit']:.3f} + its trade stream {sh['alpaca_stream']:.3f} "
            f"({sh['updates_per_order']:.2f} updates per order) = {alpaca:.3f} ms per order; "
            f"engine's own = {r['median']:.3f} - {alpaca:.3f} = {r['median'] - alpaca:.3f} ms"
        )
    ins = r["inside"]
    if ins:
        alpaca = ins["submit"] + ins["stream"]
        print(
            f"alpaca-py's own inside the engine (its submit_order calls in the broker's workers {ins['submit']:.3f} "
            f"+ the trade stream thread less the broker's handler {ins['stream']:.3f}) = {alpaca:.3f} ms per order "
            f"(the broker's handler {ins['handler']:.3f}); engine's own = {r['median']:.3f} - {alpaca:.3f} = "
            f"{r['median'] - alpaca:.3f} ms (the run's median total less the run's mean share)"
        )
    if r["stats"] is not None:
        st = r["stats"]
        if args.dump:
            st.dump_stats(args.dump)
        out = io.StringIO()
        st.stream = out  # type: ignore[attr-defined]
        st.sort_stats("tottime").print_stats(args.top)
        st.sort_stats("cumulative").print_stats(args.top)
        print(out.getvalue())
    if r["sampler"] is not None:
        print(r["sampler"].report(args.top, "the engine's loop thread"))


if __name__ == "__main__":
    main()
