"""The fault tests' rig: a real Session (the Engine in its thread, engine/sim in
process, AlpacaBroker on alpaca-py between them) fed by a JSONL signal file, and
the one comparison every scenario ends with — the journal against the venue.

Nothing here mocks alpaca-py or the engine. The only instrument is a counter on
the broker's HTTP adapter (every POST /v2/orders it lets out, per
client_order_id), so "never resent" is measured on the wire, not inferred.

The comparison (`compare`) is shared with the crash drills in tests/drills: it
reads the journal only (read-only, as `execdesk report` does) and the venue only
through alpaca-py's TradingClient.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, QueryOrderStatus, TimeInForce
from alpaca.trading.requests import GetOrdersRequest, LimitOrderRequest

from engine import events as ev
from engine.config import Credentials, Settings
from engine.journal import Journal
from engine.report import build_report
from tests.support import UNIVERSE, merged, settings_from, wait_for

KEY = "PKFAULTDRILL0001"
SECRET = "fault-drill-secret-0123456789"
CREDENTIALS = Credentials(key_id=KEY, secret_key=SECRET)
#: Monday 2 March 2026, 10:00 New York: six hours of regular session ahead
START_AT = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
#: a few liquid names from the universe, so start-up asks the venue about few assets
SYMBOLS = ["AAPL", "MSFT", "JPM", "XOM", "KO", "PFE", "INTC", "T"]

FINAL = frozenset({"filled", "canceled", "expired", "replaced", "rejected", "done_for_day"})


# ---- configuration ---------------------------------------------------------------------


def base_config(journal: Path, signals: Path) -> dict[str, dict[str, Any]]:
    """A fault-test configuration: every order goes out at once (auto rollout),
    short timeouts and a reconciliation every 1.5 s so faults resolve quickly, no
    automatic trips on error rate or outage (the faults are the point), and no
    client-side throttle below the venue's own limit."""
    return {
        "execution": {"enabled": True, "mode": "paper"},
        "position_sizing": {"max_position_size": 0.05, "max_total_exposure": 0.8, "min_trade_size": 100},
        "risk_management": {
            "max_daily_loss": 0.5,
            "max_sector_exposure": 0.5,
            "stop_loss_pct": 0.5,
            "max_position_risk": 1.0,
            "max_error_rate": 1.0,
            "venue_outage_trip": 600,
            "max_quote_age": 120,
            "max_orders_per_second": 100,
            "max_orders_per_minute": 1000,
        },
        "order_management": {"in_flight_query_after": 3, "submit_timeout": 5, "unfilled_policy": "cancel"},
        "monitoring": {"order_reconciliation_interval": 1.5, "position_update_interval": 2, "risk_check_interval": 2},
        "broker": {"kind": "sim", "request_timeout": 1.0, "rate_limit_per_minute": 100000, "workers": 4},
        "sim": {"seed": 11, "partial_fill_prob": 0.0, "rate_limit_per_minute": 0},
        "signals": {"kind": "jsonl", "path": str(signals), "max_age": 120},
        "rollout": {"default_mode": "auto", "allowlist": list(SYMBOLS)},
        "session": {"journal_path": str(journal), "universe_path": str(UNIVERSE)},
    }


def settings_for(tmp_path: Path, changes: Mapping[str, Mapping[str, Any]] | None = None) -> Settings:
    journal, signals = tmp_path / "journal.sqlite", tmp_path / "signals.jsonl"
    signals.touch()
    return settings_from(tmp_path / "execution.toml", merged(base_config(journal, signals), changes))


# ---- signals --------------------------------------------------------------------------------------


class SignalFile:
    """The JSONL file the engine follows; each line one batch stamped at venue time."""

    def __init__(self, path: Path, now: Callable[[], datetime]):
        self.path = path
        self._now = now
        self.last: datetime | None = None

    def send(self, signals: Mapping[str, float]) -> datetime:
        ts = self._now().astimezone(UTC).replace(microsecond=0)
        if self.last is not None and ts <= self.last:
            ts = self.last + timedelta(seconds=1)
        self.last = ts
        line = json.dumps({"ts": ts.strftime("%Y-%m-%dT%H:%M:%SZ"), "signals": dict(signals)})
        with self.path.open("a") as f:
            f.write(line + "\n")
            f.flush()
        return ts


# ---- the wire: POSTs per client_order_id -------------------------------------------------------------


class PostCounter:
    """Counts every POST /v2/orders the broker's HTTP session lets out, per
    client_order_id, answered or not (alpaca-py's own retries would pass here too)."""

    def __init__(self) -> None:
        self.by_cid: Counter[str] = Counter()
        self._lock = threading.Lock()

    def install(self, broker: Any) -> PostCounter:
        adapter = broker._trading._session.get_adapter(broker.urls.trading)
        send = adapter.send

        def counting_send(request: Any, **kwargs: Any) -> Any:
            if request.method == "POST" and request.path_url.split("?")[0] == "/v2/orders":
                try:
                    cid = json.loads(request.body or b"{}").get("client_order_id")
                except ValueError:
                    cid = None
                with self._lock:
                    self.by_cid[str(cid)] += 1
            return send(request, **kwargs)

        adapter.send = counting_send  # type: ignore[method-assign]
        return self

    def resent(self) -> dict[str, int]:
        with self._lock:
            return {cid: n for cid, n in self.by_cid.items() if n > 1}


# ---- the in-process rig --------------------------------------------------------------------------------


class Rig:
    """A started Session on the built-in venue, its signal file, alpaca-py for
    looking at the venue, and the POST counter."""

    def __init__(
        self,
        tmp_path: Path,
        changes: Mapping[str, Mapping[str, Any]] | None = None,
        sim: Mapping[str, Any] | None = None,
    ):
        from engine.session import Session

        self.tmp_path = tmp_path
        self.settings = settings_for(tmp_path, changes)
        self.journal_path = tmp_path / "journal.sqlite"
        sim_overrides = {"start_at": START_AT}
        sim_overrides.update(sim or {})
        self.session = Session.from_settings(
            self.settings,
            journal_path=self.journal_path,
            sim_overrides=sim_overrides,
            auto_approve=True,
            credentials=CREDENTIALS,
        )
        self.session.start()
        self.venue = self.session.venue
        self.engine = self.session.engine
        self.posts = PostCounter().install(self.engine.broker)
        self.signals = SignalFile(Path(self.settings.signals.path), self.venue.now)
        self.trading = TradingClient(KEY, SECRET, paper=True, raw_data=True, url_override=self.venue.trading_url)
        wait_for(lambda: self.snapshot.trading_ready, what="start-up reconciliation")
        wait_for(lambda: self.snapshot.connectivity.trade_stream == "up", what="the trade stream")
        wait_for(lambda: len(self.engine.market_view().quotes()) >= len(SYMBOLS), what="quotes for every symbol")

    @property
    def snapshot(self):
        return self.session.snapshot

    def bar(self, signals: Mapping[str, float], *, timeout: float = 30.0) -> datetime:
        """One batch through the signal file; returns once the engine processed it."""
        ts = self.signals.send(signals)
        wait_for(lambda: self.snapshot.last_bar_ts == ts, timeout=timeout, what=f"the engine to process bar {ts}")
        return ts

    def faults(self, **faults: Any) -> dict:
        return self.venue.set_faults(**faults)

    def clear_faults(self) -> dict:
        return self.venue.set_faults(reset=True, rate_limit_per_minute=None)

    def journal_events(self) -> list[Any]:
        return journal_events(self.journal_path)

    def settle(self, *, timeout: float = 60.0, every: float = 0.5) -> Comparison:
        return settle(
            self.journal_path, self.trading, timeout=timeout, engine=self.engine, posts=self.posts, every=every
        )

    def stop(self) -> None:
        self.session.stop()


# ---- journal and venue views -----------------------------------------------------------------------------


def journal_events(path: Path) -> list[Any]:
    """Every journal event, in order, read-only (safe while the engine writes)."""
    j = Journal(path, readonly=True)
    try:
        return [e.event for e in j.replay()]
    finally:
        j.close()


def venue_orders(trading: TradingClient) -> list[dict]:
    rows = trading.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, limit=500, direction="asc"))
    assert len(rows) < 500, "more venue orders than one page: page the comparison"
    return list(rows)


def venue_positions(trading: TradingClient) -> dict[str, Decimal]:
    return {p["symbol"]: Decimal(p["qty"]) for p in trading.get_all_positions() if Decimal(p["qty"]) != 0}


@dataclass
class Comparison:
    problems: list[str] = field(default_factory=list)
    venue_orders: list[dict] = field(default_factory=list)
    journal_orders: dict[str, dict] = field(default_factory=dict)
    fills: list[dict] = field(default_factory=list)
    events: list[Any] = field(default_factory=list)
    positions: dict[str, Decimal] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def count(self, kind: type) -> int:
        return sum(1 for e in self.events if isinstance(e, kind))

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    def __str__(self) -> str:
        return "\n  ".join(["journal and venue disagree:", *self.problems[:40]])


def compare(
    journal_path: Path, trading: TradingClient, *, engine: Any = None, posts: PostCounter | None = None
) -> Comparison:
    """The journal against the venue. Every check here can fail:

    - every client_order_id at most once at the venue, and each venue order maps to
      exactly one order of the journal (none unaccounted for, none external);
    - no intent submitted twice: one sent signal order per (bar, symbol), and on the
      wire (posts) one POST per client_order_id;
    - per order: the venue's status, filled qty and average price are the journal's,
      and the journal's fills (unique execution ids) add up to the venue's filled qty;
    - every order the journal sent is at the venue, or the journal says it never got
      there (rejected) — nothing left submitting / unknown;
    - positions: the journal's fills add up to the venue's positions (and so does the
      running engine's portfolio, when given).
    """
    c = Comparison()
    p = c.problems
    c.events = journal_events(journal_path)
    report = build_report(journal_path, "all").to_dict()
    c.journal_orders = {o["client_order_id"]: o for o in report["orders"]}
    c.fills = report["fills"]
    c.venue_orders = venue_orders(trading)
    c.positions = venue_positions(trading)

    # sent: by this journal's SubmitSent, or found at the venue and adopted (OrderRecovered)
    sent = {e.client_order_id for e in c.events if isinstance(e, ev.SubmitSent | ev.OrderRecovered)}
    by_cid = Counter(o["client_order_id"] for o in c.venue_orders)
    for cid, n in by_cid.items():
        if n > 1:
            p.append(f"{cid}: {n} orders at the venue")
    if posts is not None:
        # the one resend allowed: after a 429 (the venue did nothing) and a lookup
        # that found nothing, journaled as "sending again after 429"
        allowed = Counter(
            e.client_order_id
            for e in c.events
            if isinstance(e, ev.SubmitUnknown) and e.cause.startswith("sending again after 429")
        )
        for cid, n in posts.resent().items():
            if n > 1 + allowed[cid]:
                p.append(f"{cid}: POSTed {n} times")

    # no intent twice: one sent order per bar and symbol (signal orders)
    per_bar: dict[tuple, list[str]] = defaultdict(list)
    for o in c.journal_orders.values():
        if o["client_order_id"] in sent and o["reason"] == "signal":
            per_bar[(o["bar_ts"], o["symbol"])].append(o["client_order_id"])
    for key, cids in per_bar.items():
        if len(cids) > 1:
            p.append(f"bar {key[0]} {key[1]}: intent submitted {len(cids)} times: {cids}")

    fills_by_cid: dict[str, Decimal] = defaultdict(Decimal)
    exec_ids = Counter(f["execution_id"] for f in c.fills)
    for eid, n in exec_ids.items():
        if n > 1:
            p.append(f"fill {eid} counted {n} times")
    for f in c.fills:
        fills_by_cid[f["client_order_id"]] += Decimal(f["qty"])

    at_venue: set[str] = set()
    for v in c.venue_orders:
        cid = v["client_order_id"]
        at_venue.add(cid)
        j = c.journal_orders.get(cid)
        if j is None:
            p.append(f"venue order {cid} ({v['symbol']} {v['side']} {v['qty']}, {v['status']}) is not in the journal")
            continue
        if j["external"]:
            p.append(f"venue order {cid} is marked external in the journal")
        if cid not in sent:
            p.append(f"venue order {cid} is at the venue but the journal never sent it")
        if j["venue_order_id"] != v["id"]:
            p.append(f"{cid}: venue id {v['id']} vs journal {j['venue_order_id']}")
        if j["status"] != v["status"]:
            p.append(f"{cid}: venue status {v['status']} vs journal {j['status']}")
        vq, jq = Decimal(v["filled_qty"] or 0), Decimal(j["filled_qty"] or 0)
        if vq != jq:
            p.append(f"{cid}: venue filled {vq} vs journal {jq}")
        if fills_by_cid.get(cid, Decimal(0)) != vq:
            p.append(f"{cid}: journal fills add up to {fills_by_cid.get(cid, Decimal(0))}, venue filled {vq}")
        if vq > 0:
            va, ja = Decimal(v["filled_avg_price"]), Decimal(j["filled_avg_price"] or 0)
            if abs(va - ja) > Decimal("0.0001") * va:
                p.append(f"{cid}: venue avg price {va} vs journal {ja}")
    for cid in sent - at_venue:
        j = c.journal_orders.get(cid)
        status = j["status"] if j else "?"
        if status not in ("rejected", "vanished"):
            p.append(
                f"journal order {cid} was sent, is not at the venue, and is {status} "
                "(not settled as rejected or vanished)"
            )
        if fills_by_cid.get(cid):
            p.append(f"journal order {cid} has fills but no venue order")

    journal_pos: dict[str, Decimal] = defaultdict(Decimal)
    for f in c.fills:
        journal_pos[f["symbol"]] += Decimal(f["qty"]) * (1 if f["side"] == "buy" else -1)
    journal_pos = {s: q for s, q in journal_pos.items() if q != 0}
    if journal_pos != c.positions:
        p.append(f"positions: journal fills say {dict(journal_pos)}, venue has {c.positions}")
    if engine is not None:
        mine = {s: pos.qty for s, pos in engine.portfolio.positions.items() if pos.qty != 0}
        if mine != c.positions:
            p.append(f"positions: the engine holds {mine}, venue has {c.positions}")
    return c


def settle(
    journal_path: Path,
    trading: TradingClient,
    *,
    timeout: float = 60.0,
    engine: Any = None,
    posts: PostCounter | None = None,
    every: float = 0.5,
) -> Comparison:
    """Compare until journal and venue agree (the engine reconciles meanwhile) or
    the deadline passes; the last comparison is returned either way. Only
    convergence is asserted, never how fast it came."""
    deadline = time.monotonic() + timeout
    while True:
        c = compare(journal_path, trading, engine=engine, posts=posts)
        if c.ok or time.monotonic() > deadline:
            return c
        time.sleep(every)


def sent_cids(events: Iterable[Any]) -> list[str]:
    return [e.client_order_id for e in events if isinstance(e, ev.SubmitSent)]


def long_with_an_external_sell(rig: Rig, symbol: str, client_order_id: str) -> tuple[Decimal, Decimal]:
    """A long position, and someone else's sell for about half of it far above the
    market: it rests and holds those shares. Returns (position, held)."""
    rig.bar({symbol: 0.9})
    wait_for(lambda: venue_positions(rig.trading).get(symbol, Decimal(0)) > 1, what="a long position")
    held = venue_positions(rig.trading)[symbol]
    wait_for(lambda: rig.engine.portfolio.books[symbol].qty == held, what="the engine to hold the position")
    ask = rig.engine.portfolio.books[symbol].ask
    outside = (held / 2).to_integral_value()
    TradingClient(KEY, SECRET, paper=True, url_override=rig.venue.trading_url).submit_order(
        LimitOrderRequest(
            symbol=symbol,
            qty=float(outside),
            side=OrderSide.SELL,
            time_in_force=TimeInForce.DAY,
            limit_price=float((ask * 2).quantize(Decimal("0.01"))),
            client_order_id=client_order_id,
        )
    )
    wait_for(
        lambda: any(o.client_order_id == client_order_id for o in rig.engine.external.values()),
        what="the engine to see the external order",
    )
    return held, outside
