"""An intent that nobody approved before the next bar expires at the venue time of
that bar: the journal, the report's JSON and its CSV say when (not the far-future
deadline used to expire everything, 9999-01-01)."""

from __future__ import annotations

import csv
import io
from datetime import datetime

from engine.report import build_report, render


def test_an_intent_expired_at_the_next_bar_has_the_real_final_time(make_pipe):
    pipe = make_pipe()  # every intent waits for approval
    pipe.send({"AAPL": 0.5})
    pipe.wait(lambda: len(pipe.snapshot.intents) == 1, what="the AAPL intent to wait")
    pipe.send({"KO": 0.4})  # the next bar expires what the previous one left waiting
    expired_at = pipe.venue_now()

    [order] = [o for o in pipe.report()["orders"] if o["symbol"] == "AAPL"]
    assert order["status"] == "expired"
    assert order["final_at"] is not None, "an expired intent has a final time"
    final = datetime.fromisoformat(order["final_at"])
    assert abs((final - expired_at).total_seconds()) < 120, f"final_at {final} is not the bar's venue time"

    rows = list(csv.DictReader(io.StringIO(render(build_report(pipe.journal_path), "csv"))))
    [aapl] = [r for r in rows if r["symbol"] == "AAPL"]
    assert not aapl["final_at"].startswith("9999"), aapl["final_at"]
