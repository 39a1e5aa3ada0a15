"""The run loop the engine benchmarks share (bench_engine.py, bench_latency.py): the
benchmark configuration, the venue in its own process, sessions, the batch probe (an
EngineObserver: engine.core.observe), one batch through the real pipeline, raw
alpaca-py beside it, the desk of n resting orders, and the figures' helpers.

Everything here uses public engine surfaces only: Session(observers=...),
Engine.observe, Engine.submit_batch, AlpacaBroker.observe_requests, snapshots."""

from __future__ import annotations

import asyncio
import os
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from engine.config import Credentials, Settings, load_settings
from engine.core.observe import EngineObserver
from engine.model import RolloutMode
from tests.support import VenueProcess, wait_for_async

REPO = Path(__file__).resolve().parent.parent
#: Monday 2 March 2026, 10:00 New York: the regular session is open (venue clock frozen)
START_AT = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
#: Monday 2 March 2026, 07:00 New York: before the open, orders rest as "accepted"
BEFORE_OPEN = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
CREDS = Credentials(key_id="BENCHENGINEKEY01", secret_key="bench-engine-secret-0001")
SEED = 11
CASH = 10_000_000  # so buying power never binds over 100+ batches (reserves clear at account refresh)


def section(settings: Settings, name: str, **changes: Any) -> Settings:
    return settings.model_copy(update={name: getattr(settings, name).model_copy(update=changes)})


def bench_settings(**monitoring: float) -> Settings:
    """config/execution.toml with what these benchmarks need: every symbol may get an
    order in one bar, approval auto, limits wide enough that all 53 orders pass, no
    rate limit on either side (the 200/min of Alpaca would make a 53-order batch a
    16-second affair: that is a venue limit, not engine latency)."""
    s = load_settings(REPO / "config" / "execution.toml", env={})
    s = section(s, "session", universe_path=str(REPO / "config" / "universe.toml"))
    s = section(s, "order_management", max_orders_per_bar=100, unfilled_policy="keep")
    s = section(s, "rollout", default_mode=RolloutMode.AUTO)
    # 0.5 x 0.0003 x 10M = 1,500 USD per symbol; 53 of them, 80k gross
    s = section(s, "position_sizing", max_position_size=0.0003, max_total_exposure=4.0, below_threshold="flatten")
    s = section(
        s, "risk_management", max_sector_exposure=1.0, max_orders_per_second=1_000_000, max_orders_per_minute=1_000_000
    )
    s = section(s, "broker", rate_limit_per_minute=100_000)
    s = section(s, "sim", partial_fill_prob=0.0, rate_limit_per_minute=0, seed=SEED, starting_cash=Decimal(CASH))
    if monitoring:
        s = section(s, "monitoring", **monitoring)
    return s


def sim_overrides(start_at: datetime = START_AT) -> dict[str, Any]:
    return {
        "rate_limit_per_minute": None,
        "frozen_clock": True,
        "start_at": start_at,
        "partial_fill_prob": 0.0,
        "seed": SEED,
        "starting_cash": Decimal(CASH),
    }


class QuietSource:
    """A signal source that never yields: the benchmark puts batches on the inbox itself."""

    async def batches(self, market):  # noqa: ARG002
        await asyncio.Event().wait()
        if False:  # pragma: no cover - makes this an async generator
            yield None

    async def aclose(self) -> None:
        return None


def start_session(journal: Path, settings: Settings, start_at: datetime = START_AT):
    from engine.session import Session

    session = Session.from_settings(
        settings,
        journal_path=journal,
        sim_overrides=sim_overrides(start_at),
        auto_approve=True,
        signal_source=QuietSource(),
        credentials=CREDS,
        new_session=True,
    ).start()
    eng = session.engine
    if not eng.trading_ready:
        session.stop()
        raise RuntimeError(f"engine not ready to trade: {eng.not_ready_reason}")
    return session


def on_loop(session, coro, timeout: float = 120.0):
    """Run a coroutine inside the engine's own loop (the one task that owns state
    is on that loop too) and wait for its result."""
    return asyncio.run_coroutine_threadsafe(coro, session._loop).result(timeout)  # noqa: SLF001


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, round(q / 100 * len(s) + 0.5) - 1))
    return s[k]


def ms(x: float) -> float:
    return round(x, 2)


def error_row(name: str, target: str, exc: BaseException) -> dict:
    tb = traceback.format_exception_only(type(exc), exc)[-1].strip()
    return {"name": name, "value": "error", "unit": "", "target": target, "ok": False, "note": tb[:300]}


def run_parts(prefix: str, parts: list[tuple[Callable[[Path], list[dict]], str, str]]) -> list[dict]:
    """Run each (bench function, name, target) in one temporary directory; a part
    that fails is a row saying so (one failure must not hide the others)."""
    import tempfile

    results: list[dict] = []
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        for fn, name, target in parts:
            try:
                results += fn(Path(tmp))
            except Exception as exc:
                traceback.print_exc()
                results.append(error_row(name, target, exc))
    return results


def print_rows(rows: list[dict], width: int = 110) -> None:
    """The rows of a bench module run on its own (python -m benchmarks.bench_x)."""
    for row in rows:
        verdict = "" if row.get("ok") is None else ("ok" if row["ok"] else "MISSED")
        print(
            f"{row['name']:<{width}} {row['value']!s:>9} {row['unit']:<3} target {row['target']}  "
            f"{verdict}  {row.get('note', '')}"
        )


# ---------------------------------------------------------------- the ack probe


class BatchProbe(EngineObserver):
    """An observer of one engine (engine.core.observe): when a batch was handled, how
    many submits it made, when each answer was applied, and the moment the last one was."""

    def __init__(self, eng: Any) -> None:
        self.eng = eng
        self.acks: dict[str, float] = {}
        self.bad: list[str] = []
        self.handled_at = 0.0
        self.submits = -1
        self.done: asyncio.Future | None = None
        self._base = 0

    async def attach(self) -> None:
        """Start observing (run inside the engine's loop: on_loop(session, probe.attach()))."""
        self.eng.observe(self)

    async def detach(self) -> None:
        self.eng.unobserve(self)

    def arm(self) -> None:
        self.acks, self.bad, self.handled_at = {}, [], 0.0
        self.submits = -1
        self._base = self.eng.stats.submits
        self.done = asyncio.get_running_loop().create_future()

    def submit_answered(self, client_order_id: str, outcome: Any) -> None:
        if outcome.kind == "acked":
            self.acks[client_order_id] = time.perf_counter()
        else:
            self.bad.append(f"{client_order_id}: {outcome.kind} {outcome.message}")
        self._maybe_done()

    def batch_handled(self, batch: Any, submits: int) -> None:  # noqa: ARG002
        self.handled_at = time.perf_counter()
        self.submits = submits - self._base
        self._maybe_done()

    def _maybe_done(self) -> None:
        if self.submits >= 0 and len(self.acks) + len(self.bad) >= self.submits and self.done and not self.done.done():
            self.done.set_result(time.perf_counter() if self.submits == 0 else max(self.acks.values(), default=0.0))


async def _until(predicate: Callable[[], bool], timeout: float, what: str, step: float = 0.002) -> None:
    await wait_for_async(predicate, timeout=timeout, what=what, every=step)


async def engine_batch(eng, probe: BatchProbe, ts: datetime, signals: dict[str, float]) -> dict:
    """One batch through the engine: arrival on the inbox -> every order acknowledged;
    then (not timed) wait until every order of the batch is final (filled) so the next
    batch starts from a book without working orders."""
    from engine.signals import SignalBatch

    batch = SignalBatch(ts=ts, signals=signals)
    probe.arm()
    t0 = time.perf_counter()
    await eng.submit_batch(batch)
    t_acked = await asyncio.wait_for(probe.done, 30)
    if probe.bad:
        raise RuntimeError(f"{len(probe.bad)} submit(s) not acked, e.g. {probe.bad[0]}")
    cids = list(probe.acks)
    await _until(lambda: all(eng.book.get(c).status.is_final for c in cids), 30, "the batch's fills")
    orders = [eng.book.get(c) for c in cids]
    return {
        "total_ms": (t_acked - t0) * 1000,
        "handled_ms": (probe.handled_at - t0) * 1000,
        "first_ack_ms": (min(probe.acks.values()) - t0) * 1000 if probe.acks else 0.0,
        "n": probe.submits,
        "orders": [(o.symbol, o.side.value, o.qty, o.limit_price) for o in orders],
        "filled": sum(1 for o in orders if o.status.value == "filled"),
    }


# ---------------------------------------------------------------- venues and raw alpaca-py


def start_venue_process(start_at: datetime = START_AT, entry: tuple[str, ...] = ("engine.sim",)) -> VenueProcess:
    """The venue in its own process (python -m engine.sim, or the module `entry`
    names with its arguments: profile_sim.py's serve), frozen clock, no rate limit:
    its CPU is not ours, as with Alpaca."""
    return VenueProcess(
        CREDS.key_id,
        CREDS.secret_key,
        "--rate-limit",
        "0",
        "--frozen",
        "--start-at",
        start_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "--partial-fill-prob",
        "0",
        "--seed",
        str(SEED),
        "--starting-cash",
        str(CASH),
        "--universe",
        str(REPO / "config" / "universe.toml"),
        timeout=30,
        entry=entry,
    )


def limit_request(spec: tuple, client_order_id: str) -> Any:
    """alpaca-py's LimitOrderRequest for spec (symbol, side, qty, limit), day order:
    what the raw alpaca-py baselines send."""
    from alpaca.trading.enums import OrderSide, TimeInForce
    from alpaca.trading.requests import LimitOrderRequest

    symbol, side, qty, limit = spec
    return LimitOrderRequest(
        symbol=symbol,
        qty=float(qty),
        side=OrderSide(side),
        time_in_force=TimeInForce.DAY,
        limit_price=float(limit),
        client_order_id=client_order_id,
    )


class RawClient:
    """Plain alpaca-py against its own copy of the venue (same options, nobody on
    its trade stream): the round trip without the engine."""

    def __init__(self, workers: int, own_process: bool):
        from alpaca.trading.client import TradingClient

        self.venue = self.proc = None
        if own_process:
            self.proc = start_venue_process()
            url = self.proc.url
        else:
            from engine.sim import SimVenue

            opts = sim_overrides()
            opts.pop("rate_limit_per_minute")
            self.venue = SimVenue(
                key_id=CREDS.key_id,
                secret_key=CREDS.secret_key,
                port=0,
                universe_path=str(REPO / "config" / "universe.toml"),
                rate_limit_per_minute=None,
                **opts,
            ).start(thread_name="execdesk-sim-raw")  # not counted as the engine's venue in cpu_note
            url = self.venue.trading_url
        self.parsed = TradingClient(CREDS.key_id, CREDS.secret_key, paper=True, url_override=url)
        self.raw = TradingClient(CREDS.key_id, CREDS.secret_key, paper=True, url_override=url, raw_data=True)
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="raw-alpaca")
        self.n = 0

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        if self.venue is not None:
            self.venue.stop()
        if self.proc is not None:
            self.proc.stop()

    def _request(self, spec, tag: str):
        self.n += 1
        return limit_request(spec, f"raw-{tag}-{self.n}")

    def sequential(self, specs, client=None) -> float:
        client = client or self.parsed
        t0 = time.perf_counter()
        for spec in specs:
            client.submit_order(self._request(spec, "seq"))  # building the request is part of a submit
        return (time.perf_counter() - t0) * 1000

    def concurrent(self, specs, client=None) -> float:
        client = client or self.parsed
        t0 = time.perf_counter()
        futures = [self.pool.submit(lambda s=spec: client.submit_order(self._request(s, "conc"))) for spec in specs]
        for f in futures:
            f.result()
        return (time.perf_counter() - t0) * 1000


# ---------------------------------------------------------------- 1 + 3: batches and per-order overhead


def load_average() -> str:
    try:
        return " / ".join(f"{x:.1f}" for x in os.getloadavg()) + f" on {os.cpu_count()} cores"
    except OSError:
        return "n/a"


class StartTimes(EngineObserver):
    """Engine.start's phases into `timings`: "replay" (journal open, replay, rebuild) and
    "reconcile:startup"."""

    def __init__(self, timings: dict[str, float]) -> None:
        self.timings = timings

    def start_phase(self, name: str, seconds: float) -> None:
        self.timings["replay" if name == "journal" else f"{name}:startup"] = seconds


@dataclass
class Desk:
    """A venue holding n resting orders that the journal says this engine created
    (a restart after a crash, mid-session), and the engine started on them."""

    n: int
    venue: Any
    session: Any
    timings: dict[str, float]
    setup_s: float

    @property
    def eng(self):
        return self.session.engine

    def close(self) -> None:
        try:
            self.session.stop()
        finally:
            self.venue.stop()


def build_desk(n: int, tmp: Path) -> Desk:
    """n buy limits (1 share, at half the price, rotating over the 53 symbols) at a
    venue whose clock runs (speed 1) before the open, so they rest as "accepted"
    and each has its own submission time; the same n orders in a journal (intent,
    durable sent, acked), whose session did not end cleanly; then the engine is
    started on both and reconciles."""
    from engine import events as ev
    from engine.core import config_hash
    from engine.journal import Journal
    from engine.model import Order, OrderStatus, Side
    from engine.orders import make_client_order_id
    from engine.session import Session
    from engine.sim import SimVenue

    t_setup = time.perf_counter()
    venue = SimVenue(
        key_id=CREDS.key_id,
        secret_key=CREDS.secret_key,
        seed=SEED,
        speed=1.0,
        port=0,
        universe_path=str(REPO / "config" / "universe.toml"),
        partial_fill_prob=0.0,
        starting_cash=Decimal(CASH),
        rate_limit_per_minute=None,
        start_at=BEFORE_OPEN,
    ).start()
    try:
        url = venue.trading_url
        settings = bench_settings(order_reconciliation_interval=3600, position_update_interval=3600)
        settings = section(settings, "broker", kind="alpaca", trading_url=url, data_url=url)
        settings = section(settings, "risk_management", max_quote_age=100_000)
        path = tmp / f"desk-{n}.sqlite"
        journal = Journal(path)
        sid = journal.open_session(config_hash(settings), BEFORE_OPEN.date()).session_id
        server = venue.server
        symbols = list(server.exchange.assets)[:53]
        prices = {s: server.exchange.model.markets[s].quote for s in symbols}
        specs = []
        for i in range(n):
            sym = symbols[i % len(symbols)]
            limit = (prices[sym].bp / 2).quantize(Decimal("0.01"))
            cid = make_client_order_id(sid, i // 100, sym, i % 100)
            specs.append((cid, sym, limit))
        bodies = [
            {
                "symbol": sym,
                "side": "buy",
                "type": "limit",
                "time_in_force": "day",
                "qty": "1",
                "limit_price": str(limit),
                "client_order_id": cid,
            }
            for cid, sym, limit in specs
        ]

        def submit_all() -> list[dict]:
            # the venue's own loop, no HTTP: sync() first so each order has its own time
            out = []
            for body in bodies:
                server.sync()
                out.append(server.exchange.submit(body))
            return out

        placed = venue._call(submit_all, timeout=300)  # noqa: SLF001 - the venue's drill fast path
        events: list = []
        bar_ts = BEFORE_OPEN - timedelta(minutes=1)
        for i, ((cid, sym, limit), v) in enumerate(zip(specs, placed, strict=False)):
            if v["status"] != "accepted":
                raise RuntimeError(f"venue order {cid} is {v['status']}, expected accepted")
            at = datetime.fromisoformat(v["submitted_at"].replace("Z", "+00:00"))
            order = Order(
                client_order_id=cid,
                symbol=sym,
                side=Side.BUY,
                qty=Decimal(1),
                limit_price=limit,
                bar_ts=bar_ts + timedelta(seconds=i // 100),
                signal=0.5,
                decision_price=limit * 2,
                reason="signal",
                created_at=at,
            )
            events += [
                ev.IntentCreated(order=order, batch_seq=i // 100),
                ev.SubmitSent(client_order_id=cid, at=at),
                ev.SubmitAcked(client_order_id=cid, venue_order_id=v["id"], status=OrderStatus.ACCEPTED),
            ]
            if i % 100 == 99 or i == n - 1:
                events.append(ev.BatchProcessed(bar_ts=order.bar_ts, batch_seq=i // 100, intents=i % 100 + 1))
        for k in range(0, len(events), 3000):
            journal.append_many(events[k : k + 3000])
        journal.close()  # not sealed: the engine continues this session, as after a crash

        timings: dict[str, float] = {}

        setup_s = time.perf_counter() - t_setup
        t = time.perf_counter()
        session = Session.from_settings(
            settings,
            journal_path=path,
            auto_approve=True,
            signal_source=QuietSource(),
            credentials=CREDS,
            observers=[StartTimes(timings)],
        ).start()
        timings["start"] = time.perf_counter() - t
    except BaseException:
        venue.stop()
        raise
    desk = Desk(n, venue, session, timings, setup_s)
    eng = desk.eng
    mine = sum(1 for o in eng.book.iter_open() if not o.external)
    if not eng.trading_ready or mine != n or eng.external:
        desk.close()
        raise RuntimeError(
            f"desk of {n}: ready={eng.trading_ready} ({eng.not_ready_reason}), "
            f"{mine} open orders of the engine, {len(eng.external)} external"
        )
    return desk


def thread_cpu() -> dict[str, float]:
    """CPU seconds per thread of this process, by thread name (Linux /proc; {} elsewhere)."""
    import os
    import threading

    out: dict[str, float] = {}
    try:
        tick = os.sysconf("SC_CLK_TCK")
        for t in threading.enumerate():
            fields = Path(f"/proc/self/task/{t.native_id}/stat").read_text().rsplit(")", 1)[1].split()
            name = "broker-rest" if t.name.startswith("broker-rest") else t.name
            out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    except (OSError, ValueError, IndexError, AttributeError):
        return {}
    return out


def thread_cpu_exact(name: str = "execdesk-engine") -> float | None:
    """CPU seconds so far of this process's thread called `name` (the engine's loop by
    default), to the nanosecond (Linux /proc/.../schedstat; None elsewhere)."""
    import threading

    for t in threading.enumerate():
        if t.name == name:
            try:
                return int(Path(f"/proc/self/task/{t.native_id}/schedstat").read_text().split()[0]) / 1e9
            except (OSError, ValueError, IndexError):
                return None
    return None


def cpu_note(a: dict[str, float], b: dict[str, float], per: float = 1.0, unit: str = "ms") -> str:
    names = {
        "execdesk-engine": "engine",
        "execdesk-sim": "venue",
        "broker-rest": "alpaca-py workers",
        "broker-trade_stream": "trade stream",
        "broker-market_data": "data stream",
    }
    parts = []
    for key, label in names.items():
        if key in a and key in b:
            parts.append(f"{label} {(b[key] - a[key]) * 1000 / per:.0f}")
    return (", ".join(parts) + f" {unit}") if parts else "n/a"


# ---------------------------------------------------------------- the run loop


def own_process_session(settings: Settings, url: str, journal: Path, observers: tuple = ()):
    """A started Session on the venue process at `url` (as on Alpaca: broker.kind alpaca,
    its URLs; quotes never too old on the frozen clock)."""
    from engine.session import Session

    settings = section(settings, "broker", kind="alpaca", trading_url=url, data_url=url)
    settings = section(settings, "risk_management", max_quote_age=100_000)
    session = Session.from_settings(
        settings,
        journal_path=journal,
        auto_approve=True,
        signal_source=QuietSource(),
        credentials=CREDS,
        new_session=True,
        observers=observers,
    ).start()
    if not session.engine.trading_ready:
        session.stop()
        raise RuntimeError(f"engine not ready to trade: {session.engine.not_ready_reason}")
    return session


def run_batch(session, probe: BatchProbe, k: int) -> tuple[dict, float]:
    """The k-th batch of a run: +0.5 on every symbol when k is even (53 buys), 0.0 with
    below_threshold=flatten when odd (53 sells closing them), stamped a second apart.
    Returns engine_batch's figures and this process's CPU seconds meanwhile."""
    eng = session.engine
    signal = 0.5 if k % 2 == 0 else 0.0
    c0 = time.process_time()
    res = on_loop(
        session, engine_batch(eng, probe, START_AT + timedelta(seconds=k + 1), dict.fromkeys(eng.symbols, signal))
    )
    return res, time.process_time() - c0


# ---------------------------------------------------------------- alpaca-py's own share of the CPU


def broker_like_client(url: str, pool: int) -> Any:
    """alpaca-py's TradingClient configured as AlpacaBroker configures its own (raw_data,
    no retry, the environment read once and the lean session of
    engine.broker.alpaca.lean_session, an HTTP pool of `pool` connections), without the
    engine's own code on the path (its rate-limit adapter and header hook)."""
    from alpaca.trading.client import TradingClient
    from requests.adapters import HTTPAdapter

    from engine.broker.alpaca import lean_session, rest_session

    client = TradingClient(CREDS.key_id, CREDS.secret_key, paper=True, raw_data=True, url_override=url)
    client._retry = 0  # noqa: SLF001 - as the broker does
    client._retry_codes = []  # noqa: SLF001
    session = rest_session(client)
    if session is not None:
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max(pool, 1), max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        lean_session(session, url)
    return client


class AlpacaShare:
    """alpaca-py's own CPU for the calls the engine makes, against a venue process of
    its own: submit_order with the broker's settings, in one thread and in a burst at
    the broker's concurrency, the CPU of the calling thread per call (time.thread_time:
    time.process_time would count the other threads of the process too, among them the
    stream below receiving these very orders' updates; building alpaca-py's
    LimitOrderRequest is included: alpaca-py's code too); and a plain alpaca-py
    TradingStream (raw_data, the broker's keepalive) in a thread of its own whose
    handler only counts: its thread's CPU per update is
    websockets + JSON + alpaca-py's dispatch. `orders_sent` counts every order sent to
    that venue (by whoever), for the updates per order."""

    def __init__(self, url: str, pool: int) -> None:
        import itertools
        import threading

        from alpaca.trading.stream import TradingStream

        from engine.broker.alpaca import _ws_url
        from engine.broker.streams import ws_params

        self.client = broker_like_client(url, pool)
        self.ids = itertools.count(1)
        self.updates = 0
        self.orders_sent = 0
        self._stream = TradingStream(
            CREDS.key_id,
            CREDS.secret_key,
            paper=True,
            raw_data=True,
            url_override=_ws_url(url) + "/stream",
            websocket_params=ws_params(bench_settings().market_data.stream_keepalive),
        )
        self._stream.subscribe_trade_updates(self._on_update)
        self._thread = threading.Thread(target=self._stream.run, name="raw-trade-stream", daemon=True)
        self._pools: dict[int, ThreadPoolExecutor] = {}

    async def _on_update(self, msg: Any) -> None:
        self.updates += 1

    def start(self, probe_spec: tuple) -> None:
        """Start the stream and wait until it delivers (one order of probe_spec)."""
        self._thread.start()
        deadline = time.monotonic() + 30
        while self.updates == 0:
            if time.monotonic() > deadline:
                raise RuntimeError("alpaca-py's trade stream delivered nothing in 30 s")
            self.submit_cpu([probe_spec])
            time.sleep(0.2)

    def settle(self, quiet: float = 0.02, limit: float = 1.0) -> None:
        """Wait until the stream has been quiet for `quiet` s (at most `limit` s): the
        updates of orders just sent are handled before the engine's next batch, so the
        stream thread's CPU does not land in that batch's process_time."""
        deadline = time.monotonic() + limit
        seen = self.updates
        while time.monotonic() < deadline:
            time.sleep(quiet)
            if self.updates == seen:
                return
            seen = self.updates

    def stream_cpu(self) -> float:
        """CPU seconds of the stream's thread so far."""
        return thread_cpu().get("raw-trade-stream", 0.0)

    def _one(self, spec) -> float:
        """One submit_order of spec (symbol, side, qty, limit): the CPU seconds of this thread."""
        c0 = time.thread_time()  # the request model's building counted, as in the broker
        self.client.submit_order(limit_request(spec, f"raw-cpu-{next(self.ids)}"))
        return time.thread_time() - c0

    def submit_cpu(self, specs) -> list[float]:
        """specs sent one after the other in this thread: CPU seconds per call."""
        self.orders_sent += len(specs)
        return [self._one(spec) for spec in specs]

    def burst_cpu(self, specs, threads: int) -> list[float]:
        """specs sent all at once by `threads` threads (the broker's concurrency): CPU
        seconds of each call's own thread."""
        pool = self._pools.get(threads)
        if pool is None:
            pool = self._pools[threads] = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="raw-share")
        self.orders_sent += len(specs)
        return list(pool.map(self._one, specs))

    def close(self) -> None:
        for pool in self._pools.values():
            pool.shutdown(wait=True)
        try:
            self._stream.stop()
        except Exception:  # noqa: BLE001 - a benchmark's teardown
            pass
        if self._thread.ident is not None:  # started: a run that aborted before start() has none to join
            self._thread.join(timeout=5)
