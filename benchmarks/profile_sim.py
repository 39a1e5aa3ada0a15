"""Issue 15: where the venue's CPU goes while the engine sends 53-order batches.

The venue runs in its own process (as in bench_engine's own-process section and
bench_latency), started through this module's `serve` mode: `python -m engine.sim`'s
own code, plus a counting middleware (requests per method and route), the garbage
collector's passes and pauses, and on request a stack sampler or cProfile of the
venue's loop thread. The engine is this tree's, driven as in benchmarks.profile_cpu:
53-signal batches, alternately +0.5 on every symbol and 0.0 (flatten), each until its
orders are acked and filled, no injected latency unless --latency.

Per run it prints the venue's CPU per order (utime + stime of the venue process from
/proc over the measured batches / orders) beside the engine's (this process), the
requests it served by kind, the trade updates it emitted, the GC passes and the pauses
inside the batches, each POST's wall time and CPU inside the venue, the POSTs whose
body reached the venue apart from their headers (and the wait for it), and the
batches' arrival -> every order acked p50 / p99.

`--against DIR` measures before/after side by side in one run: DIR holds another
version of the repository (`git archive main | tar -x -C DIR`); its engine/sim is the
venue of the "before" rounds (the engine stays this tree's, so only the venue differs),
rounds alternate between the two, each with a fresh venue process and engine session.

Two client-side experiments alternate rounds the same way, venue and engine this tree's:
`--ab-switch S` (the engine process's sys.setswitchinterval, default against S) and
`--ab-one-write` (alpaca-py's POSTs with the body in the headers' send(), urllib3
patched in this process only: OneWrite).

Run: `python -m benchmarks.profile_sim [--batches N] [--sample | --cprofile FILE]`
or `python -m benchmarks.profile_sim --against DIR [--rounds R] [--batches N]`."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.sampler import StackSampler, folder_and_file

WARMUP = 4
OVERLAP = "(REST requests begun while another was in the venue's handlers)"
HERE = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------- inside the venue process


def serve(argv: list[str]) -> int:
    """`python -m benchmarks.profile_sim serve [--tree DIR] --stats PATH [--sample|--cprofile F] <sim args>`."""
    ap = argparse.ArgumentParser(prog="profile_sim serve")
    ap.add_argument("--tree", type=Path, default=HERE)
    ap.add_argument("--stats", type=Path, required=True)
    ap.add_argument("--sample", action="store_true")
    ap.add_argument("--cprofile", type=Path)
    mine, rest = ap.parse_known_args(argv)
    sys.path.insert(0, str(mine.tree))  # that tree's engine/sim
    import gc

    from aiohttp import web

    from engine.sim import command
    from engine.sim.server import SimServer

    counts: dict[str, int] = {}
    gc_passes = [0, 0, 0]
    gc_ms: list[float] = []
    gc_log: list[tuple[float, int, float]] = []  # (wall time at the end, generation, ms)
    gc_t0 = [0.0]
    # route -> (wall time at the end, wall ms in the venue, CPU ms of the venue's thread meanwhile)
    service: dict[str, list[tuple[float, float, float]]] = {}
    in_flight = [0]
    body_waits: list[float] = []  # ms a handler waited for a body that came apart from its headers

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            gc_t0[0] = time.perf_counter()
        else:
            gen = info["generation"]
            gc_passes[gen] += 1
            pause = (time.perf_counter() - gc_t0[0]) * 1000
            gc_ms.append(pause)
            gc_log.append((time.time(), gen, pause))

    gc.callbacks.append(on_gc)

    @web.middleware
    async def count(request: web.Request, handler: Any) -> web.StreamResponse:
        route = request.match_info.route.resource
        key = f"{request.method} {route.canonical if route is not None else request.path}"
        counts[key] = counts.get(key, 0) + 1
        if key.endswith(("/stream", "/v2/iex", "/v2/sip")):  # a stream: its handler lasts the connection
            return await handler(request)
        if in_flight[0]:
            counts[OVERLAP] = counts.get(OVERLAP, 0) + 1
        in_flight[0] += 1
        t0, c0 = time.perf_counter(), time.thread_time()
        try:
            if request.body_exists and not request.content.is_eof():
                # the body is not all here yet (the client sent it apart from the headers):
                # read it now (aiohttp keeps it for the handler) and note the wait
                await request.read()
                body_waits.append((time.perf_counter() - t0) * 1000)
            return await handler(request)
        finally:
            in_flight[0] -= 1
            wall, cpu = (time.perf_counter() - t0) * 1000, (time.thread_time() - c0) * 1000
            service.setdefault(key, []).append((time.time(), wall, cpu))

    made = SimServer._make_app  # noqa: SLF001

    def make_app(self: SimServer) -> web.Application:
        app = made(self)
        app.middlewares.insert(0, count)
        servers.append(self)
        return app

    servers: list[SimServer] = []
    SimServer._make_app = make_app  # type: ignore[method-assign]  # noqa: SLF001
    sampler = StackSampler(threading.get_ident(), name="sim-sampler", where=folder_and_file) if mine.sample else None
    prof = None
    if mine.cprofile:
        import cProfile

        prof = cProfile.Profile(time.thread_time)
    if sampler:
        sampler.start()
    if prof:
        prof.enable()
    try:
        return command.main(rest)
    finally:
        if prof:
            prof.disable()
            prof.dump_stats(str(mine.cprofile))
        if sampler:
            sampler.stop()
        out: dict[str, Any] = {
            "requests": counts,
            "gc_passes": gc_passes,
            "gc_ms": gc_ms,
            "gc_log": gc_log,
            "service": service,
            "body_waits": body_waits,
        }
        if servers:
            out["events_emitted"] = servers[0].exchange.events_emitted
        if sampler:
            out["samples"] = sampler.samples
            out["own"] = sampler.own
            out["inclusive"] = sampler.inclusive
        mine.stats.write_text(json.dumps(out))


# ---------------------------------------------------------------- the driver


def _proc_cpu(pid: int) -> float:
    """utime + stime of a process in seconds (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def drive(tree: Path, batches: int, latency: int = 0, sample: bool = False, cprofile: Path | None = None) -> dict:
    """One round: a fresh venue process (tree's engine/sim) and a fresh engine session."""
    from benchmarks.bench_latency import set_faults
    from benchmarks.pipeline_run import (
        START_AT,
        BatchProbe,
        bench_settings,
        on_loop,
        own_process_session,
        run_batch,
        start_venue_process,
    )

    with tempfile.TemporaryDirectory(prefix="execdesk-profile-sim-") as tmp:
        stats_path = Path(tmp) / "venue-stats.json"
        entry = ["benchmarks.profile_sim", "serve", "--tree", str(tree), "--stats", str(stats_path)]
        if sample:
            entry.append("--sample")
        if cprofile is not None:
            entry += ["--cprofile", str(cprofile)]
        proc = start_venue_process(START_AT, entry=tuple(entry))
        pid = proc.proc.pid
        session = None
        try:
            settings = bench_settings(order_reconciliation_interval=3600)
            session = own_process_session(settings, proc.url, Path(tmp) / "profile-sim.sqlite")
            if latency:
                set_faults(proc.url, latency_ms=latency, scope="trading")
            probe = BatchProbe(session.engine)
            on_loop(session, probe.attach())
            total_ms: list[float] = []
            windows: list[tuple[float, float]] = []  # wall time of each measured batch: arrival -> all acked
            engine_cpu: list[float] = []
            engine_cpu_batch: list[float] = []
            venue_cpu: list[float] = []
            orders = 0
            cpu0 = 0.0
            for k in range(WARMUP + batches):
                if k == WARMUP:
                    cpu0 = _proc_cpu(pid)
                c0 = _proc_cpu(pid)
                w0 = time.time()
                res, ecpu = run_batch(session, probe, k)
                c1 = _proc_cpu(pid)
                if k >= WARMUP:
                    total_ms.append(res["total_ms"])
                    windows.append((w0, w0 + res["total_ms"] / 1000))
                    engine_cpu.append(ecpu * 1000)
                    engine_cpu_batch.append(ecpu * 1000)
                    venue_cpu.append((c1 - c0) * 1000)
                    orders += res["n"]
            cpu1 = _proc_cpu(pid)
            on_loop(session, probe.detach())
        finally:
            if session is not None:
                session.stop()
            proc.stop()
        stats = json.loads(stats_path.read_text()) if stats_path.exists() else {}
    return {
        "tree": str(tree),
        "orders": orders,
        "venue_cpu_ms_per_order": (cpu1 - cpu0) * 1000 / max(orders, 1),
        "venue_cpu_ms_per_batch": venue_cpu,
        "engine_cpu_ms_per_order": sum(engine_cpu) / max(orders, 1),
        "engine_cpu_ms_per_batch": engine_cpu_batch,
        "total_ms": total_ms,
        "windows": windows,
        "stats": stats,
    }


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    k = max(0, min(len(s) - 1, round(q / 100 * len(s) + 0.5) - 1))
    return s[k]


def _corr(a: list[float], b: list[float]) -> float:
    if len(a) < 3 or statistics.pstdev(a) == 0 or statistics.pstdev(b) == 0:
        return float("nan")
    return statistics.correlation(a, b)


def describe(r: dict, top: int = 0) -> str:
    t = r["total_ms"]
    n = max(r["orders"], 1)
    st = r["stats"]
    lines = [
        f"venue CPU per order {r['venue_cpu_ms_per_order']:.3f} ms ({r['orders']} orders, "
        f"{len(t)} batches, median per batch {statistics.median(r['venue_cpu_ms_per_batch']):.0f} ms); "
        f"batch -> all acked p50 {statistics.median(t):.1f} ms, p99 {_pct(t, 99):.1f} ms, max {max(t):.1f} ms"
    ]
    req = st.get("requests", {})
    if req:
        lines.append(
            "requests (whole run, warm-up and start-up included; per measured order): "
            + ", ".join(f"{k} {v} ({v / n:.2f})" for k, v in sorted(req.items(), key=lambda kv: -kv[1]))
        )
    if "gc_passes" in st:
        g = st["gc_ms"]
        lines.append(
            f"GC passes gen0/1/2 {st['gc_passes']}; pause total {sum(g):.1f} ms, max {max(g, default=0):.2f} ms; "
            f"trade events emitted {st.get('events_emitted')}"
        )
    e = r["engine_cpu_ms_per_batch"]
    v = r["venue_cpu_ms_per_batch"]
    lines.append(
        f"engine CPU per order (this process) {r['engine_cpu_ms_per_order']:.3f} ms, per batch median "
        f"{statistics.median(e):.0f} ms; correlation of the batch time with the engine's CPU per batch "
        f"{_corr(t, e):.2f}, with the venue's {_corr(t, v):.2f}"
    )
    windows = r["windows"]

    def inside(at: float) -> int | None:
        for i, (a, b) in enumerate(windows):
            if a <= at <= b:
                return i
        return None

    got = [(w, c) for at, w, c in st.get("service", {}).get("POST /v2/orders", []) if inside(at) is not None]
    if got:
        posts, cpus = [w for w, _ in got], [c for _, c in got]
        off = [w - c for w, c in got]
        lines.append(
            f"venue time per POST /v2/orders inside the batches (middleware + handler): wall p50 "
            f"{statistics.median(posts):.3f} ms, p99 {_pct(posts, 99):.3f} ms, max {max(posts):.2f} ms; its CPU p50 "
            f"{statistics.median(cpus):.3f} ms, p99 {_pct(cpus, 99):.3f} ms, max {max(cpus):.2f} ms; wall - CPU "
            f"(off the core) p99 {_pct(off, 99):.2f} ms, {sum(1 for x in off if x > 1)} of {len(got)} POSTs over 1 ms"
        )
    waits = st.get("body_waits", [])
    bodies = sum(v for k, v in req.items() if k.startswith(("POST", "PATCH")))
    if waits:
        lines.append(
            f"requests whose body was not all there with the headers: {len(waits)} of {bodies} POST/PATCH; "
            f"the wait for the rest p50 {statistics.median(waits):.2f} ms, p99 {_pct(waits, 99):.2f} ms, "
            f"max {max(waits):.2f} ms"
        )
    gc_in = [0.0] * len(windows)
    for at, _gen, pause in st.get("gc_log", []):
        i = inside(at)
        if i is not None:
            gc_in[i] += pause
    slow = sorted(range(len(t)), key=lambda i: -t[i])[: max(1, len(t) // 20)]
    lines.append(
        f"venue GC pauses inside the batches: total {sum(gc_in):.1f} ms, worst batch {max(gc_in, default=0):.2f} ms; "
        "the slowest batches (ms, venue GC ms inside, venue CPU ms of the batch): "
        + ", ".join(f"{t[i]:.0f}/{gc_in[i]:.1f}/{v[i]:.0f}" for i in slow)
    )
    if top and st.get("samples"):
        s = st["samples"]
        for title, table in (("innermost frame", st["own"]), ("on the stack", st["inclusive"])):
            lines.append(f"-- {title} ({s} busy samples):")
            for name, c in sorted(table.items(), key=lambda kv: -kv[1])[:top]:
                lines.append(f"{100 * c / s:6.1f}%  {name}")
    return "\n".join(lines)


class OneWrite:
    """An experiment on the client side, in this (the engine's) process only: urllib3 2's
    HTTPConnection.request sends a request's header block and then its body in a second
    send(); while on, a bytes body is sent together with its headers in one send()
    (what http.client itself does when endheaders() is given the body)."""

    def __init__(self) -> None:
        from urllib3.connection import HTTPConnection

        self.cls = HTTPConnection
        self.saved = (HTTPConnection.request, HTTPConnection.send)

    def on(self) -> None:
        cls = self.cls
        request, send = self.saved

        def one_request(conn: Any, method: str, url: str, body: Any = None, *args: Any, **kw: Any) -> None:
            conn._one_write_hold = isinstance(body, bytes) and bool(body)  # noqa: SLF001
            try:
                request(conn, method, url, body, *args, **kw)
            finally:
                conn._one_write_hold = False  # noqa: SLF001
                held = getattr(conn, "_one_write_held", None)
                if held is not None:  # no body came after all
                    conn._one_write_held = None  # noqa: SLF001
                    send(conn, held)

        def one_send(conn: Any, data: Any) -> None:
            held = getattr(conn, "_one_write_held", None)
            if getattr(conn, "_one_write_hold", False) and held is None:
                conn._one_write_held = bytes(data)  # noqa: SLF001 - the header block: wait for the body
                return
            if held is not None:
                conn._one_write_held = None  # noqa: SLF001
                data = held + bytes(data)
            send(conn, data)

        cls.request = one_request  # type: ignore[method-assign,assignment]
        cls.send = one_send  # type: ignore[method-assign,assignment]

    def off(self) -> None:
        self.cls.request, self.cls.send = self.saved  # type: ignore[method-assign]


def compare_one_write(rounds: int, batches: int, latency: int) -> None:
    """This tree's venue and engine, rounds alternating alpaca-py's POSTs as urllib3 sends
    them (headers, then the body) and in one send() (OneWrite)."""
    patch = OneWrite()
    got: dict[str, list[dict]] = {"two sends": [], "one send": []}
    try:
        for i in range(rounds):
            order = ["two sends", "one send"] if i % 2 == 0 else ["one send", "two sends"]
            for label in order:
                if label == "one send":
                    patch.on()
                else:
                    patch.off()
                r = drive(HERE, batches, latency)
                got[label].append(r)
                print(f"round {i + 1} {label}: {describe(r).splitlines()[0]}", flush=True)
    finally:
        patch.off()
    for label, runs in got.items():
        _summary(label, runs)


def _summary(label: str, runs: list[dict]) -> None:
    t = [x for r in runs for x in r["total_ms"]]
    e = statistics.median(r["engine_cpu_ms_per_order"] for r in runs)
    v = statistics.median(r["venue_cpu_ms_per_order"] for r in runs)
    waits = [w for r in runs for w in r["stats"].get("body_waits", [])]
    posts = sum(r["stats"].get("requests", {}).get("POST /v2/orders", 0) for r in runs)
    print(
        f"{label}: {len(t)} batches of 53: p50 {statistics.median(t):.1f} ms, p99 {_pct(t, 99):.1f} ms, "
        f"max {max(t):.1f} ms; engine CPU per order {e:.3f} ms, venue {v:.3f} ms (medians of the rounds); "
        f"bodies apart from their headers {len(waits)} of {posts} POSTs"
        + (f", waited p50 {statistics.median(waits):.2f} ms" if waits else "")
    )


def compare_switch(interval: float, rounds: int, batches: int, latency: int) -> None:
    """This tree's venue and engine, rounds alternating between the interpreter's
    default thread switch interval in the engine's process and `interval`."""
    default = sys.getswitchinterval()
    got: dict[float, list[dict]] = {default: [], interval: []}
    try:
        for i in range(rounds):
            order = [default, interval] if i % 2 == 0 else [interval, default]
            for si in order:
                sys.setswitchinterval(si)
                r = drive(HERE, batches, latency)
                got[si].append(r)
                print(f"round {i + 1} switch interval {si * 1000:g} ms: {describe(r).splitlines()[0]}", flush=True)
    finally:
        sys.setswitchinterval(default)
    for si, runs in got.items():
        _summary(f"engine switch interval {si * 1000:g} ms", runs)


def compare(against: Path, rounds: int, batches: int, latency: int) -> None:
    got: dict[str, list[dict]] = {"before": [], "after": []}
    for i in range(rounds):
        order = [("before", against), ("after", HERE)]
        if i % 2:
            order.reverse()  # who goes first: alternate
        for label, tree in order:
            r = drive(tree, batches, latency)
            got[label].append(r)
            print(f"round {i + 1} {label}: {describe(r).splitlines()[0]}", flush=True)
    for label, tree in (("before", against), ("after", HERE)):
        runs = got[label]
        cpu = [r["venue_cpu_ms_per_order"] for r in runs]
        t = [x for r in runs for x in r["total_ms"]]
        print(
            f"{label:<6} {tree}: venue CPU per order, median of {rounds} rounds: {statistics.median(cpu):.3f} ms "
            f"(rounds {', '.join(f'{c:.3f}' for c in cpu)}); {len(t)} batches of 53: "
            f"p50 {statistics.median(t):.1f} ms, p99 {_pct(t, 99):.1f} ms, max {max(t):.1f} ms"
        )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        return serve(argv[1:])
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--latency", type=int, default=0, help="ms added to every trading request")
    ap.add_argument("--sample", action="store_true", help="sample the venue loop's stacks and print them")
    ap.add_argument("--cprofile", type=Path, help="cProfile the venue loop thread into this pstats file")
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--against", type=Path, help="another version of the repository: before/after side by side")
    ap.add_argument("--rounds", type=int, default=4, help="with --against / --ab-switch: rounds per side")
    ap.add_argument(
        "--ab-switch",
        type=float,
        metavar="SECONDS",
        help="rounds alternating the engine process's thread switch interval (sys.setswitchinterval): "
        "the default against this one",
    )
    ap.add_argument(
        "--ab-one-write",
        action="store_true",
        help="rounds alternating alpaca-py's POSTs in two send() calls (urllib3's way) and in one (OneWrite)",
    )
    args = ap.parse_args(argv)
    if args.ab_one_write:
        compare_one_write(args.rounds, args.batches, args.latency)
        return 0
    if args.ab_switch is not None:
        compare_switch(args.ab_switch, args.rounds, args.batches, args.latency)
        return 0
    if args.against is not None:
        compare(args.against.resolve(), args.rounds, args.batches, args.latency)
        return 0
    r = drive(HERE, args.batches, args.latency, args.sample, args.cprofile.resolve() if args.cprofile else None)
    print(describe(r, args.top if args.sample else 0))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
