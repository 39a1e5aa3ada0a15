"""examples/minute_model.py end to end: trained on the built-in venue's own minute
history (alpaca-py's StockHistoricalDataClient), a score per symbol each bar, pushed
through the Desk for a few bars at venue speed."""

from __future__ import annotations

import pytest

pytest.importorskip("sklearn", reason="the examples extra (scikit-learn) is part of the test extras")

from engine import Verdict
from examples.minute_model import DEFAULT_SYMBOLS, HISTORY, MinuteModel, VenueBars, run, venue_clock
from tests.pipeline.pipekit import CREDENTIALS


def test_the_example_model_trains_on_venue_history_and_trades_a_few_bars(open_desk):
    desk = open_desk("example", auto_approve=True, sim={"frozen_clock": False, "speed": 60})
    bars = VenueBars(CREDENTIALS, desk.venue.data_url)
    now = desk.venue.now()
    history = bars.closes(DEFAULT_SYMBOLS, now - HISTORY, now)
    assert all(len(closes) > 300 for closes in history.values()), "the venue serves sessions of minute history"
    model = MinuteModel.train(history)

    results = run(desk, bars, model, DEFAULT_SYMBOLS, n_bars=3, next_bar=venue_clock(desk))

    assert len(results) == 3
    assert [r.ts for r in results] == sorted({r.ts for r in results}), "one batch per bar, in order"
    for result in results:
        assert set(result.values) == set(DEFAULT_SYMBOLS), "a score for every symbol each bar"
        assert all(-1 <= v <= 1 for v in result.values.values())
    verdicts = {r.verdict for result in results for r in result}
    assert verdicts & {Verdict.FILLED, Verdict.SENT}, f"the model's scores should trade: {verdicts}"
    assert desk.snapshot.bars_processed == 3
