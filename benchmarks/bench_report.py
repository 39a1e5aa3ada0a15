"""Benchmarks of the headless report and status at scale (issue 15 §4).

1. `execdesk report` on a 10,000-order journal (tests/engine/report/big_journal.py:
   10,000 orders in batches of 53 plus an earlier session, ~44,000 events), the whole
   command as an operator runs it (a new Python process: start, imports, reading,
   rendering the text report to a pipe), median of several runs: from the journal's
   events (no report cache: the first report of a journal, or one a session is still
   writing), from the report cache's kept rendering (every later report of the same
   journal, and the first one after `execdesk run` or the trading day's close), in
   another format than the one kept (rendered from the cache's data), and on a journal
   that a session is still writing: 53 and 530 orders (one and ten batches, with their
   fills) journaled since the last report, which the report cache's fold continues
   (engine/report/fold.py).
2. `execdesk status` while a 53-order batch is on the wire: a Desk session on the
   built-in venue with 25 ms added to every trading request; the control socket's
   status answer, asked again and again while the batch's submits are answered, and
   the whole `execdesk status` command in the same burst.

Run alone: `python -m benchmarks --only report`. Against another version of the code,
side by side: `python -m benchmarks.bench_report --against DIR` (DIR: an export of it,
e.g. `git archive main | tar -x -C DIR`), the whole command of both, runs interleaved so
that both see the same machine, and whether their outputs are the same."""

from __future__ import annotations

import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
REPORT_RUNS = 7
REPORT_TARGET_S = 0.3
BURST_LATENCY_MS = 25
STATUS_TARGET_MS = 50.0


def _median_run(argv: list[str], runs: int, before: Any = None) -> tuple[float, list[float], float]:
    """Median wall time of whole runs of a command, the runs' wall times, and the
    median CPU time (user + system) of the process: less sensitive to a busy machine."""
    times, cpus = [], []
    for _ in range(runs):
        if before is not None:
            before()
        used = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        done = subprocess.run(argv, cwd=REPO, capture_output=True, timeout=120)
        times.append(time.perf_counter() - t)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - used.ru_utime + after.ru_stime - used.ru_stime)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.decode()[-500:]}")
    return statistics.median(times), times, statistics.median(cpus)


def bench_report(tmp: Path) -> list[dict]:
    from engine.report.cache import cache_path
    from tests.engine.report.big_journal import write_big_journal

    journal = write_big_journal(tmp / "big.sqlite")
    argv = [sys.executable, "-m", "console.cli", "report", "--journal", str(journal)]
    cache = cache_path(journal)

    def no_cache() -> None:
        cache.unlink(missing_ok=True)

    def text_only() -> None:  # a cache with the data and the text rendering, no Markdown
        no_cache()
        subprocess.run(argv, cwd=REPO, capture_output=True, timeout=120, check=True)

    cold, cold_runs, cold_cpu = _median_run(argv, max(3, REPORT_RUNS // 2), before=no_cache)
    md, md_runs, md_cpu = _median_run([*argv, "--format", "md"], 3, before=text_only)
    _median_run(argv, 1)  # leaves the cache
    warm, warm_runs, warm_cpu = _median_run(argv, REPORT_RUNS)
    how = f"`{' '.join(['python', '-m', 'console.cli', *argv[3:5]])} J` (= execdesk report), stdout to a pipe"
    live = [_live_row(tmp, journal, batches) for batches in LIVE_BATCHES]
    return [
        {
            "name": "execdesk report, 10,000-order journal, from the report cache (whole command)",
            "value": round(warm, 3),
            "unit": "s",
            "target": f"<= {REPORT_TARGET_S:g}",
            "ok": warm <= REPORT_TARGET_S,
            "note": f"median of {len(warm_runs)}, min {min(warm_runs):.3f} s, max {max(warm_runs):.3f} s, "
            f"CPU {warm_cpu:.3f} s; the text rendering the cache kept, printed under a fresh head; {how}",
        },
        {
            "name": "execdesk report --format md, 10,000-order journal, from the report cache's data (no md kept)",
            "value": round(md, 3),
            "unit": "s",
            "target": "(reported)",
            "note": f"median of {len(md_runs)}, min {min(md_runs):.3f} s, CPU {md_cpu:.3f} s; a cache left by a "
            "text report before each run: its data read back (marshal) and rendered as Markdown, the rendering kept",
        },
        {
            "name": "execdesk report, 10,000-order journal, from its events (no cache: first report, live journal)",
            "value": round(cold, 3),
            "unit": "s",
            "target": f"<= {REPORT_TARGET_S:g}",
            "ok": cold <= REPORT_TARGET_S,
            "note": f"median of {len(cold_runs)}, min {min(cold_runs):.3f} s, CPU {cold_cpu:.3f} s; the cache "
            "deleted before each run: ~44,000 rows decoded with stdlib json, the light order fold, the figures "
            "built and rendered, the cache written (no pydantic import)",
        },
        *live,
    ]


#: batches of 53 orders journaled between two reports of a live journal
LIVE_BATCHES = (1, 10)
LIVE_RUNS = 5


def _live_row(tmp: Path, source: Path, batches: int) -> dict:
    """`execdesk report` of a copy of the big journal that grows as a session writes it:
    before each run, the copy up to a batch's start and a report of it (its fold kept:
    no cache before it, so the fold kept is that report's), then `batches` more batches'
    rows (each batch: 53 intents, their decisions, submits, acks, fills, cancels); the run
    reports the journal as it is then. The runs' journals end 1-6 times that many batches
    before the big journal's end."""
    from engine.report.cache import cache_path
    from tests.engine.report.big_journal import JournalCopy

    dest = tmp / f"live-{batches}.sqlite"
    copy = JournalCopy(source, dest)
    starts = copy.batch_starts()
    argv = [sys.executable, "-m", "console.cli", "report", "--journal", str(dest)]
    bases = iter([starts[-(LIVE_RUNS + 1 - i) * batches - 1] for i in range(LIVE_RUNS)])
    rows: list[int] = []

    def grow() -> None:
        base = next(bases)
        copy.grow_to(base)
        cache_path(dest).unlink(missing_ok=True)
        subprocess.run(argv, cwd=REPO, capture_output=True, timeout=120, check=True)
        rows.append(copy.grow_to(starts[starts.index(base) + batches]))

    wall, walls, cpu = _median_run(argv, LIVE_RUNS, before=grow)
    orders = batches * 53
    return {
        "name": f"execdesk report, live 10,000-order journal, {orders} new orders since the last report",
        "value": round(wall, 3),
        "unit": "s",
        "target": "(reported)",
        "note": f"median of {len(walls)}, min {min(walls):.3f} s, max {max(walls):.3f} s, CPU {cpu:.3f} s; "
        f"{min(rows)}-{max(rows)} rows journaled since the last report: the report cache's fold continued with "
        "them (decoded and folded alone), the figures and the text rendering made from the fold, the cache "
        "written (its fold, at this journal state)",
    }


def bench_status_in_burst(tmp: Path) -> list[dict]:
    from engine import Desk
    from engine.control import request
    from engine.lock import socket_path_for
    from tests.pipeline.pipekit import CREDENTIALS, SEED, START_AT
    from tests.support import shipped_settings

    journal = tmp / "burst.sqlite"
    settings = shipped_settings(broker={"rate_limit_per_minute": 100000})
    desk = Desk.open(
        settings,
        journal=journal,
        auto_approve=True,
        credentials=CREDENTIALS,
        sim={
            "frozen_clock": True,
            "seed": SEED,
            "start_at": START_AT,
            "partial_fill_prob": 0.0,
            "rate_limit_per_minute": None,
        },
    )
    try:
        sock = socket_path_for(journal)
        idle = []
        for _ in range(20):
            t = time.perf_counter()
            request(sock, "status")
            idle.append((time.perf_counter() - t) * 1000)
        assert desk.venue is not None
        desk.venue.set_faults(latency_ms=BURST_LATENCY_MS, scope="trading")
        from engine.universe import Universe

        symbols = [a.symbol for a in Universe.load(REPO / settings.session.universe_path).assets][:53]
        ts = desk.snapshot.venue_time
        assert ts is not None

        def on_the_wire() -> int:
            return sum(1 for o in desk.snapshot.orders.values() if o.venue_order_id is None)

        result: list[Any] = []
        burst = threading.Thread(target=lambda: result.append(desk.submit_signals(ts, dict.fromkeys(symbols, 0.6))))
        during: list[float] = []
        command = [sys.executable, "-m", "console.cli", "status", "--journal", str(journal)]
        t_start = time.perf_counter()
        burst.start()
        proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        command_ms, in_flight_at_answer = None, 0
        while time.perf_counter() - t_start < 20:
            t = time.perf_counter()
            request(sock, "status")
            during.append((time.perf_counter() - t) * 1000)
            if command_ms is None and proc.poll() is not None:
                command_ms = (time.perf_counter() - t_start) * 1000
                in_flight_at_answer = on_the_wire()
            if not burst.is_alive() and on_the_wire() == 0 and command_ms is not None:
                break
            time.sleep(0.005)  # an operator's pace, not a loop that takes the engine's CPU
        burst_ms = (time.perf_counter() - t_start) * 1000
        burst.join(60)
        proc.communicate(timeout=60)
        if proc.returncode != 0:
            raise RuntimeError(f"execdesk status exited {proc.returncode}")
        batch = result[0] if result else None
        sent = len(batch.client_order_ids) if batch is not None else 0
    finally:
        desk.close()
    p50, worst = statistics.median(during), max(during)
    return [
        {
            "name": f"status over the control socket while a 53-order batch is on the wire at {BURST_LATENCY_MS} ms",
            "value": round(p50, 2),
            "unit": "ms",
            "target": f"<= {STATUS_TARGET_MS:g} (max)",
            "ok": worst <= STATUS_TARGET_MS,
            "note": f"p50 of {len(during)} requests, one after another, from the batch's arrival until all "
            f"{sent} of its orders were answered ({burst_ms:.0f} ms), max {worst:.1f} ms; idle p50 "
            f"{statistics.median(idle):.2f} ms",
        },
        {
            "name": "execdesk status (whole command) started with the batch",
            "value": round(command_ms or 0.0, 1),
            "unit": "ms",
            "target": "(reported)",
            "note": f"a new Python process asking the session's socket; {in_flight_at_answer} of the batch's "
            "submits still unanswered when it ended (process start dominates)",
        },
    ]


def run() -> list[dict]:
    results: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="execdesk-bench-report-") as tmp:
        for fn, name, target in (
            (bench_report, "execdesk report, 10,000 orders", f"<= {REPORT_TARGET_S:g}"),
            (bench_status_in_burst, "status during a burst", f"<= {STATUS_TARGET_MS:g}"),
        ):
            try:
                results += fn(Path(tmp))
            except Exception as exc:  # one failure must not hide the others
                traceback.print_exc()
                results.append(
                    {"name": name, "value": "error", "unit": "", "target": target, "ok": False, "note": str(exc)}
                )
    return results


def compare(against: Path, runs: int = REPORT_RUNS) -> list[str]:
    """The whole `execdesk report` of the code at `against` (before) and of this tree
    (after) on the same generated 10,000-order journal (one copy each): first report
    (cache deleted before each run), from the cache, and on a live journal (53 orders
    journaled since the tree's last report of its own copy), the runs interleaved; medians."""
    import os

    from tests.engine.report.big_journal import write_big_journal

    trees = {"before": against.resolve(), "after": REPO}
    lines, outputs = [], {}
    with tempfile.TemporaryDirectory(prefix="execdesk-bench-report-") as tmp:
        master = write_big_journal(Path(tmp) / "big.sqlite")
        journals = {name: Path(tmp) / f"{name}.sqlite" for name in trees}
        for path in journals.values():
            path.write_bytes(master.read_bytes())

        def one(name: str, first: bool) -> tuple[float, float]:
            path = journals[name]
            if first:
                path.with_name(path.name + ".report-cache").unlink(missing_ok=True)
            env = dict(os.environ, PYTHONPATH=str(trees[name]))
            used = resource.getrusage(resource.RUSAGE_CHILDREN)
            t = time.perf_counter()
            argv = [sys.executable, "-m", "console.cli", "report", "--journal", str(path)]
            done = subprocess.run(argv, cwd=trees[name], env=env, capture_output=True, timeout=120)
            wall = time.perf_counter() - t
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if done.returncode != 0:
                raise RuntimeError(f"{name}: exited {done.returncode}: {done.stderr.decode()[-500:]}")
            lines_out = done.stdout.split(b"\n")
            outputs[(name, first)] = b"\n".join(lines_out[:1] + lines_out[2:])  # line 2: journal and time
            return wall, after.ru_utime - used.ru_utime + after.ru_stime - used.ru_stime

        for first in (True, False):
            if not first:
                for name in trees:
                    one(name, False)  # leaves the cache
            got: dict[str, list[tuple[float, float]]] = {name: [] for name in trees}
            for i in range(runs):
                for name in list(trees)[:: 1 if i % 2 == 0 else -1]:
                    got[name].append(one(name, first))
            for name, samples in got.items():
                walls, cpus = [w for w, _ in samples], [c for _, c in samples]
                lines.append(
                    f"{name:<6} {'first report' if first else 'from cache  '}: "
                    f"median {statistics.median(walls):.3f} s, "
                    f"min {min(walls):.3f}, max {max(walls):.3f}, CPU median {statistics.median(cpus):.3f} s "
                    f"({len(samples)} runs)"
                )
        lines += _compare_live(trees, master, Path(tmp), runs)
    same = len(set(outputs.values())) == 1
    lines.append(f"outputs the same (but the line naming the journal and the time): {same}")
    lines.append(f"load average {os.getloadavg()[0]:.1f}")
    return lines


def _compare_live(trees: dict[str, Path], master: Path, tmp: Path, runs: int) -> list[str]:
    """Each tree's whole `execdesk report` of its own copy of the big journal, grown by
    one batch (53 orders) since the tree's last report of it (each tree's own cache);
    the trees interleaved, and whether both printed the same."""
    import os

    from tests.engine.report.big_journal import JournalCopy

    copies = {name: JournalCopy(master, tmp / f"live-{name}.sqlite") for name in trees}
    starts = copies["after"].batch_starts()
    first = len(starts) - runs - 2
    lines, printed = [], {}
    walls: dict[str, list[float]] = {name: [] for name in trees}

    def report(name: str) -> tuple[float, bytes]:
        env = dict(os.environ, PYTHONPATH=str(trees[name]))
        argv = [sys.executable, "-m", "console.cli", "report", "--journal", str(copies[name].dest)]
        t = time.perf_counter()
        done = subprocess.run(argv, cwd=trees[name], env=env, capture_output=True, timeout=120)
        wall = time.perf_counter() - t
        if done.returncode != 0:
            raise RuntimeError(f"{name}: exited {done.returncode}: {done.stderr.decode()[-500:]}")
        out = done.stdout.split(b"\n")
        return wall, b"\n".join(out[:1] + out[2:])

    for name, copy in copies.items():
        copy.grow_to(starts[first])
        report(name)  # its last report before the runs (its cache)
    for i in range(runs):
        for name in list(trees)[:: 1 if i % 2 == 0 else -1]:
            copies[name].grow_to(starts[first + i + 1])
            wall, out = report(name)
            walls[name].append(wall)
            printed.setdefault(i, set()).add(out)
    for name, samples in walls.items():
        lines.append(
            f"{name:<6} live, +53 orders: median {statistics.median(samples):.3f} s, min {min(samples):.3f}, "
            f"max {max(samples):.3f} ({len(samples)} runs)"
        )
    lines.append(f"live: both printed the same each time: {all(len(v) == 1 for v in printed.values())}")
    return lines


if __name__ == "__main__":
    if "--against" in sys.argv:
        for line in compare(Path(sys.argv[sys.argv.index("--against") + 1])):
            print(line)
        raise SystemExit(0)
    for row in run():
        print(f"{row['name']:<100} {row['value']!s:>9} {row['unit']:<3} target {row['target']}  {row.get('note', '')}")
