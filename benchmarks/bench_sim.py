"""Benchmarks of the local venue (engine/sim), run as a separate process the way
``execdesk sim`` runs it, with the rate limit off.

- order submissions per second through HTTP (POST /v2/orders, 16 connections)
- one cancel-all (DELETE /v2/orders) of 10,000 open orders
- trade_updates delivered per second to one stream client (the cancel-all burst)
- the standalone start, from spawning the process to its READY line

The client side is plain aiohttp (not alpaca-py's requests session) so that the
client is not the bottleneck being measured; the venue gets its own process and
therefore its own core on this 2-core machine.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp

from tests.support import VenueProcess

ROOT = Path(__file__).resolve().parents[1]
KEY, SECRET = "PKBENCH0001", "bench-secret-0123456789"
HEADERS = {"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET}
N_ORDERS = 10_000
CONCURRENCY = 16
# a Monday 09:30 New York: the market is open and the clock is frozen there
START = "2025-06-02T13:30:00Z"


async def _run(base: str) -> list[dict]:
    symbols = ["AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "JPM", "XOM", "JNJ", "PG"]
    received: list[float] = []
    canceled_at: list[float] = []
    stream_ready = asyncio.Event()

    async with aiohttp.ClientSession(headers=HEADERS, connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as http:
        ws_url = base.replace("http://", "ws://") + "/stream"

        async def stream() -> None:
            async with http.ws_connect(ws_url, max_msg_size=0) as ws:
                await ws.send_str(json.dumps({"action": "authenticate", "data": {"key_id": KEY, "secret_key": SECRET}}))
                await ws.receive()
                await ws.send_str(json.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}}))
                await ws.receive()
                stream_ready.set()
                async for msg in ws:
                    now = time.perf_counter()
                    received.append(now)
                    if b'"event":"canceled"' in msg.data:
                        canceled_at.append(now)
                        if len(canceled_at) >= N_ORDERS:
                            return

        stream_task = asyncio.create_task(stream())
        await asyncio.wait_for(stream_ready.wait(), 10)

        async def submit_range(worker: int) -> None:
            for i in range(worker, N_ORDERS, CONCURRENCY):
                body = {
                    "symbol": symbols[i % len(symbols)],
                    "qty": 1,
                    "side": "buy",
                    "type": "limit",
                    "limit_price": "1.00",
                    "time_in_force": "gtc",
                    "client_order_id": f"bench-{i}",
                }
                async with http.post(base + "/v2/orders", json=body) as r:
                    if r.status != 200:
                        raise RuntimeError(f"submit failed: {r.status} {await r.text()}")
                    await r.read()

        t0 = time.perf_counter()
        await asyncio.gather(*(submit_range(w) for w in range(CONCURRENCY)))
        submit_s = time.perf_counter() - t0

        t1 = time.perf_counter()
        async with http.delete(base + "/v2/orders") as r:
            body = await r.json()
        cancel_s = time.perf_counter() - t1
        if r.status != 207 or len(body) != N_ORDERS or any(x["status"] != 200 for x in body):
            raise RuntimeError("cancel-all did not cancel every order")

        await asyncio.wait_for(stream_task, 60)
        burst = canceled_at[-1] - canceled_at[0]
        stream_rate = (len(canceled_at) - 1) / burst if burst > 0 else float("inf")

    submit_rate = N_ORDERS / submit_s
    return [
        {
            "name": "order submissions via HTTP (16 connections, rate limit off)",
            "value": round(submit_rate),
            "unit": "orders/s",
            "target": ">= 1000",
            "ok": submit_rate >= 1000,
        },
        {
            "name": f"cancel-all of {N_ORDERS:,} open orders (one DELETE /v2/orders)",
            "value": round(cancel_s, 3),
            "unit": "s",
            "target": "< 1",
            "ok": cancel_s < 1,
        },
        {
            "name": "trade_updates delivered to one stream client",
            "value": round(stream_rate),
            "unit": "events/s",
            "target": ">= 10000",
            "ok": stream_rate >= 10000,
        },
    ]


def run() -> list[dict]:
    with VenueProcess(
        KEY, SECRET, "--rate-limit", "0", "--frozen", "--start-at", START, "--partial-fill-prob", "0", timeout=15
    ) as venue:
        startup = venue.startup_s
        rows = asyncio.run(_run(venue.url))
        rows.insert(
            0,
            {
                "name": "`python -m engine.sim` from spawn to READY",
                "value": round(startup, 2),
                "unit": "s",
                "target": "< 2",
                "ok": startup < 2,
            },
        )
        return rows


if __name__ == "__main__":
    for row in run():
        print(f"{row['name']}: {row['value']} {row['unit']} (target {row['target']})")
