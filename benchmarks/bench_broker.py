"""The broker's share of the engine overhead per order: a submit round trip through
plain alpaca-py next to the same round trip through AlpacaBroker.submit (rate
limiter, worker-pool hop, request model, outcome mapping, parsing), in one run,
interleaved, against the local venue in its own process with the rate limit off.

Run alone: `python -m benchmarks.bench_broker` (or through `make bench`)."""

from __future__ import annotations

import asyncio
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import LimitOrderRequest

from engine.broker.alpaca import AlpacaBroker
from engine.broker.base import SubmitRequest
from engine.config import Credentials, Settings
from tests.support import VenueProcess

KEY, SECRET = "PKBENCHBROKER1", "bench-broker-secret-0123456789"
ROUNDS = 400
WARMUP = 40
SYMBOLS = ["AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "JPM", "XOM", "JNJ", "PG"]
START = "2025-06-02T13:30:00Z"  # a Monday 09:30 New York, clock frozen: the market stays open


def _raw_request(i: int, tag: str) -> LimitOrderRequest:
    return LimitOrderRequest(
        symbol=SYMBOLS[i % len(SYMBOLS)],
        qty=1,
        side=OrderSide.BUY,
        time_in_force=TimeInForce.GTC,
        limit_price=1.00,
        client_order_id=f"bench-{tag}-{i}",
    )


def _broker_request(i: int) -> SubmitRequest:
    return SubmitRequest(
        f"bench-broker-{i}", SYMBOLS[i % len(SYMBOLS)], "buy", Decimal(1), "limit", "gtc", Decimal("1.00")
    )


async def _measure(base: str) -> dict[str, list[float]]:
    parsed = TradingClient(KEY, SECRET, url_override=base)  # alpaca-py as a user would call it
    raw = TradingClient(KEY, SECRET, url_override=base, raw_data=True)  # the broker's mode
    settings = Settings()
    settings.broker.rate_limit_per_minute = 100000  # the venue's limit is off too
    broker = AlpacaBroker(settings, Credentials(key_id=KEY, secret_key=SECRET), trading_url=base, data_url=base)
    pool = ThreadPoolExecutor(max_workers=settings.broker.workers)  # the same hop, without the broker
    loop = asyncio.get_running_loop()
    samples: dict[str, list[float]] = {"parsed": [], "raw": [], "hop": [], "broker": []}

    async def one(kind: str, i: int) -> None:
        if kind == "broker":
            t0 = time.perf_counter()
            outcome = await broker.submit(_broker_request(i))
            dt = time.perf_counter() - t0
            if outcome.kind != "acked":
                raise RuntimeError(f"broker submit not acked: {outcome}")
        elif kind == "hop":
            t0 = time.perf_counter()
            await loop.run_in_executor(pool, raw.submit_order, _raw_request(i, kind))
            dt = time.perf_counter() - t0
        else:
            client = parsed if kind == "parsed" else raw
            t0 = time.perf_counter()
            client.submit_order(_raw_request(i, kind))  # building the request is part of a submit
            dt = time.perf_counter() - t0
        if i >= WARMUP:
            samples[kind].append(dt)

    kinds = ["parsed", "raw", "hop", "broker"]
    try:
        for i in range(WARMUP + ROUNDS):
            shift = i % len(kinds)  # rotate who goes first, so no kind always follows another
            for kind in kinds[shift:] + kinds[:shift]:
                await one(kind, i)
    finally:
        await broker.stop()
        pool.shutdown()
    return samples


def _rows(samples: dict[str, list[float]]) -> list[dict]:
    med = {k: statistics.median(v) * 1000 for k, v in samples.items()}
    mean = {k: statistics.fmean(v) * 1000 for k, v in samples.items()}
    over_parsed = (med["broker"] - med["parsed"]) / med["parsed"] * 100
    over_raw = (med["broker"] - med["raw"]) / med["raw"] * 100
    hop_us = (med["hop"] - med["raw"]) * 1000
    logic_us = (med["broker"] - med["hop"]) * 1000
    n = len(samples["broker"])
    return [
        {
            "name": f"alpaca-py submit_order round trip (default models), median of {n}",
            "value": round(med["parsed"], 3),
            "unit": "ms",
            "target": "(baseline)",
            "note": f"mean {mean['parsed']:.3f} ms",
        },
        {
            "name": f"alpaca-py submit_order round trip (raw_data=True), median of {n}",
            "value": round(med["raw"], 3),
            "unit": "ms",
            "target": "(reported)",
            "note": f"mean {mean['raw']:.3f} ms",
        },
        {
            "name": f"AlpacaBroker.submit round trip, median of {n}",
            "value": round(med["broker"], 3),
            "unit": "ms",
            "target": "(reported)",
            "note": f"mean {mean['broker']:.3f} ms",
        },
        {
            "name": "AlpacaBroker.submit overhead vs alpaca-py submit_order (default models)",
            "value": round(over_parsed, 1),
            "unit": "%",
            "target": "< 10",
            "ok": over_parsed < 10,
        },
        {
            "name": "AlpacaBroker.submit overhead vs alpaca-py submit_order (raw_data=True)",
            "value": round(over_raw, 1),
            "unit": "%",
            "target": "(reported)",
        },
        {
            "name": "of which the worker-pool hop (run_in_executor around raw submit_order)",
            "value": round(hop_us, 1),
            "unit": "us",
            "target": "(reported)",
            "note": f"{hop_us / (med['parsed'] * 10):.1f} % of the baseline",
        },
        {
            "name": "of which the broker's own work (limiter, request, outcome, parsing, events)",
            "value": round(logic_us, 1),
            "unit": "us",
            "target": "(reported)",
            "note": f"{logic_us / (med['parsed'] * 10):.1f} % of the baseline",
        },
    ]


def run() -> list[dict]:
    with VenueProcess(
        KEY, SECRET, "--rate-limit", "0", "--frozen", "--start-at", START, "--partial-fill-prob", "0", timeout=15
    ) as venue:
        return _rows(asyncio.run(_measure(venue.url)))


if __name__ == "__main__":
    for row in run():
        print(f"{row['name']:<84} {row['value']:>9} {row['unit']:<3} target {row['target']}  {row.get('note', '')}")
