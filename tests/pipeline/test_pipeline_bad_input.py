"""The bad-input corpus (tests/fixtures/signals/corpus.jsonl and corpus.csv) through
a real session: nothing bad trades, the engine keeps running (ACTIVE, and a good
batch after the corpus trades), and every dropped entry or line appears in the
snapshot's event log and in the report's dropped_by_reason.

The corpus is written for a venue clock at 2026-11-25T14:40:00Z (pipekit.START_AT).
The built-in venue lists every universe symbol as tradable, so XOM — untradable in
the signal unit tests' fake market — is a good entry here."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest

from engine.model import TradingState
from tests.pipeline.pipekit import CORPUS, dropped_reasons_in_events, parse_ts


def at(hms: str) -> datetime:
    return datetime.fromisoformat(f"2026-11-25T{hms}+00:00").astimezone(UTC)


JSONL = {
    "file": "corpus.jsonl",
    # bar ts -> the entries of that line that are good
    "good": {
        at("14:38:01"): {"AAPL": 0.42, "MSFT": -0.3},
        at("14:38:02"): {"MSFT": 0.1},
        at("14:38:03"): {"NVDA": 0.2},
        at("14:38:04"): {"TSLA": 0.3},
        at("14:38:05"): {"AMZN": 1.0, "GOOGL": -1.0, "META": 0.0},
        at("14:38:06"): {"MSFT": 0.4, "XOM": 0.3},
        at("14:38:07"): {"MSFT": 0.2},
        at("14:38:18"): {"AAPL": -0.25},
        at("14:38:26"): {"NVDA": 0.05},
    },
    "drops": Counter(
        STALE_BATCH=1,
        NAN=1,
        INFINITE=2,
        NOT_A_NUMBER=6,
        OUT_OF_RANGE=3,
        UNKNOWN_SYMBOL=2,
        DUPLICATE_SYMBOL=1,
        MALFORMED_LINE=5,
        BAD_TIMESTAMP=4,
        OUT_OF_ORDER=1,
        DUPLICATE_BATCH=1,
        FUTURE_TIMESTAMP=1,
        BINARY_GARBAGE=3,
        TRUNCATED_LINE=1,
    ),
    "later": (at("14:39:30"), b'{"ts": "2026-11-25T14:39:30Z", "signals": {"JPM": 0.5}}\n'),
}

CSV = {
    "file": "corpus.csv",
    "good": {
        at("14:38:05"): {"AAPL": 0.42, "MSFT": -0.3, "XOM": 0.1},
        at("14:38:30"): {"AAPL": 0.5, "MSFT": -0.5},
        at("14:39:00"): {"AAPL": 0.3},
    },
    "drops": Counter(
        MALFORMED_LINE=2,
        BAD_TIMESTAMP=1,
        BINARY_GARBAGE=1,
        NAN=1,
        INFINITE=1,
        NOT_A_NUMBER=4,
        OUT_OF_RANGE=2,
        UNKNOWN_SYMBOL=1,
        DUPLICATE_SYMBOL=1,
        OUT_OF_ORDER=1,
        DUPLICATE_BATCH=1,
        TRUNCATED_LINE=1,
    ),
    "later": (at("14:39:30"), b"2026-11-25T14:39:30Z,JPM,0.5\n"),
}


@pytest.mark.parametrize("case", [JSONL, CSV], ids=["jsonl", "csv"])
def test_the_corpus_through_a_session_trades_only_good_entries_and_reports_every_drop(make_pipe, tmp_path, case):
    raw = (CORPUS / case["file"]).read_bytes()
    cut = raw.rindex(b"\n") + 1
    head, tail = raw[:cut], raw[cut:]
    assert tail, "the corpus ends with a truncated line"
    path = tmp_path / case["file"]
    path.write_bytes(head)
    drops_before_close = case["drops"] - Counter(TRUNCATED_LINE=1)
    bars = len(case["good"])

    pipe = make_pipe(signals_path=path, auto_approve=True)
    pipe.wait(lambda: pipe.snapshot.bars_processed == bars, what=f"{bars} good batches to be processed")
    pipe.wait(
        lambda: dropped_reasons_in_events(pipe.snapshot.events) == drops_before_close,
        what="every drop of the corpus in the event log",
    )
    pipe.wait_settled()
    snap = pipe.snapshot
    assert snap.trading_state is TradingState.ACTIVE and snap.trading_ready
    assert not [e for e in snap.events if e.kind == "error"], [e.text for e in snap.events if e.kind == "error"]

    # the engine carries on: a good batch after the corpus trades
    later_ts, later_line = case["later"]
    pipe.append(later_line)
    pipe.wait(lambda: pipe.snapshot.bars_processed == bars + 1, what="the good batch after the corpus")
    pipe.wait_settled()
    pipe.wait(lambda: "JPM" in pipe.eyes.positions(), what="the good batch's JPM order to fill at the venue")
    assert pipe.snapshot.trading_state is TradingState.ACTIVE
    venue = pipe.eyes.orders_by_client_id()

    pipe.append(tail)  # the truncated last line: reported when the source closes
    pipe.stop()
    snap = pipe.snapshot
    assert dropped_reasons_in_events(snap.events) == case["drops"]

    report = pipe.report()
    assert report["dropped_by_reason"] == dict(case["drops"])
    assert report["summary"]["dropped_signals"] == sum(case["drops"].values())
    assert report["summary"]["batches"] == bars + 1

    # nothing bad trades: every intent is a good entry of its bar, with its value
    good = {**case["good"], later_ts: {"JPM": 0.5}}
    assert report["orders"], "the good entries traded"
    for order in report["orders"]:
        bar = parse_ts(order["bar_ts"])
        assert bar in good and order["symbol"] in good[bar], order
        assert order["signal"] == good[bar][order["symbol"]], order
    sent = {o["client_order_id"] for o in report["orders"] if o["venue_order_id"]}
    assert sent and set(venue) == sent, "the venue has exactly the orders of good entries"
