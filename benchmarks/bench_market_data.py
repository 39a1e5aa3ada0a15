"""Freshness of prices on Alpaca's free plan: a whole session (the shipped 53-symbol
universe) against the local venue in its own process, at real-time speed in the
regular session. Every quarter second the engine's snapshot says the oldest price
it holds for any symbol (venue time now minus that quote's time); p50/p99/max of
that, on the free plan (30 symbols streamed, 23 polled over REST with one request
per poll) against the unlimited plan streaming all 53 (no polls), and the REST
request rate the polls cost.

Run alone: `python -m benchmarks.bench_market_data` (or through `make bench`)."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from engine.config import Credentials
from engine.session import Session
from tests.support import VenueProcess, shipped_settings, wait_for

KEY, SECRET = "PKBENCHMDATA01", "bench-market-data-secret-0123456789"
START = "2025-06-03T14:00:00Z"  # a Tuesday 10:00 New York: the regular session is open
WARMUP = 5.0  # seconds after trading is ready
DURATION = 40.0  # seconds sampled per plan
EVERY = 0.25


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _measure(plan: str) -> dict[str, Any]:
    feed = "iex" if plan == "free" else "sip"
    args = ("--plan", plan, "--start-at", START, "--speed", "1", "--seed", "11")
    with VenueProcess(KEY, SECRET, *args, timeout=30) as venue, tempfile.TemporaryDirectory() as tmp:
        signals = Path(tmp) / "signals.jsonl"
        signals.write_text("")
        settings = shipped_settings(
            broker={"kind": "alpaca", "trading_url": venue.url, "data_url": venue.url, "feed": feed},
            signals={"kind": "jsonl", "path": str(signals)},
        )
        session = Session.from_settings(
            settings, journal_path=Path(tmp) / "journal.sqlite", credentials=Credentials(key_id=KEY, secret_key=SECRET)
        )
        session.start()
        try:
            wait_for(lambda: session.snapshot.trading_ready, what="trading ready", timeout=60)
            time.sleep(WARMUP)
            ages: list[float] = []
            polls_before = session.snapshot.market_data.polls_last_minute
            t0 = time.monotonic()
            polls = 0
            last = polls_before
            while time.monotonic() - t0 < DURATION:
                md = session.snapshot.market_data
                if md.oldest_quote_age is not None and md.without_quote == 0:
                    ages.append(md.oldest_quote_age)
                # polls_last_minute is a sliding count: its rises are the polls sent
                polls += max(0, md.polls_last_minute - last)
                last = md.polls_last_minute
                time.sleep(EVERY)
            elapsed = time.monotonic() - t0
            md = session.snapshot.market_data
            return {
                "ages": ages,
                "streamed": len(md.streamed),
                "polled": len(md.polled),
                "requests_per_minute": polls * 60.0 / elapsed,
            }
        finally:
            session.stop()


def run() -> list[dict]:
    rows: list[dict] = []
    for plan in ("free", "unlimited"):
        m = _measure(plan)
        ages = m["ages"]
        note = f"{m['streamed']} streamed, {m['polled']} polled; {len(ages)} samples over {DURATION:.0f} s"
        rows.append(
            {
                "name": f"oldest price held, p99 ({plan} plan, 53 symbols, regular hours)",
                "value": round(_p(ages, 0.99), 2),
                "unit": "s",
                "target": "<= 30 (max_quote_age)",
                "note": f"p50 {statistics.median(ages):.2f} s, max {max(ages):.2f} s; {note}",
            }
        )
        rows.append(
            {
                "name": f"REST quote polls ({plan} plan)",
                "value": round(m["requests_per_minute"], 1),
                "unit": "/min",
                "target": "<= 100 (half of Alpaca's 200/min)",
                "note": "one latest-quotes request per poll for every symbol not streamed",
            }
        )
    return rows


if __name__ == "__main__":
    for row in run():
        print(f"{row['name']:<70} {row['value']:>8} {row['unit']:<4} target {row['target']}  {row.get('note', '')}")
