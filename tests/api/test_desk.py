"""The Desk API end to end: batches pushed through engine.Desk reach the same Engine
path as a signal file (Session -> AlpacaBroker -> alpaca-py -> engine/sim), and the
BatchResult says per symbol what became of each."""

from __future__ import annotations

import json
import math
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from engine import Desk, SignalInputError, Verdict
from engine.desk import BatchResult
from tests.pipeline.pipekit import START_AT, Pipe, iso
from tests.support import wait_for

TS = START_AT - timedelta(seconds=30)  # within signals.max_age of the frozen venue clock
SCORES = {"AAPL": 0.5, "MSFT": -0.4, "XOM": 0.3, "JPM": 0.05}


def orders_of(result: BatchResult) -> set[tuple[str, str, Decimal, Decimal | None]]:
    return {(o.symbol, o.side, o.qty, o.limit_price) for r in result for o in r.orders}


def orders_from_pipe(pipe: Pipe) -> set[tuple[str, str, Decimal, Decimal | None]]:
    engine = pipe.session.engine
    assert engine is not None
    return {(o.symbol, o.side.value, o.qty, o.limit_price) for o in engine.book.orders.values() if o.bar_ts == TS}


def pipe_with_line(tmp_path: Path, make_pipe, line: dict) -> Pipe:
    path = tmp_path / "batch.jsonl"
    path.write_text(json.dumps(line) + "\n")
    pipe = make_pipe(signals_path=path, auto_approve=True, journal=tmp_path / "file.sqlite")
    pipe.wait(lambda: pipe.snapshot.bars_processed == 1, what="the file's batch to be processed")
    return pipe


@pytest.fixture
def make_pipe(tmp_path: Path):
    started: list[Pipe] = []

    def make(**kw) -> Pipe:
        pipe = Pipe(tmp_path, **kw)
        started.append(pipe)
        return pipe

    yield make
    for pipe in started:
        pipe.stop()


def test_a_batch_of_scores_gives_the_same_orders_as_the_same_batch_from_a_jsonl_file(open_desk, make_pipe, tmp_path):
    desk = open_desk("api", auto_approve=True)
    result = desk.submit_signals(TS, SCORES)
    pipe = pipe_with_line(tmp_path, make_pipe, {"ts": iso(TS), "signals": SCORES})

    from_api, from_file = orders_of(result), orders_from_pipe(pipe)
    assert from_api, "the scores should have made orders"
    assert from_api == from_file, f"API orders {from_api} != file orders {from_file}"
    assert result["JPM"].verdict is Verdict.NO_ORDER  # 0.05 is below signal_threshold: held
    assert result["JPM"].reason == "BELOW_THRESHOLD" and "signal_threshold" in (result["JPM"].detail or "")
    assert all(cid.startswith("xd-") for cid in result.client_order_ids)


def test_a_batch_of_target_weights_sizes_each_symbol_at_its_fraction_of_equity(open_desk, make_pipe, tmp_path):
    weights = {"AAPL": 0.04, "MSFT": -0.03, "XOM": 0.0}
    desk = open_desk("targets", auto_approve=True)
    equity = desk.snapshot.equity
    result = desk.submit_targets(TS, weights).wait(30)

    assert result.final and not result.timed_out
    aapl, msft = result["AAPL"].intent, result["MSFT"].intent
    assert aapl is not None and aapl.side == "buy" and aapl.limit_price is not None
    assert msft is not None and msft.side == "sell" and msft.limit_price is not None
    for intent, weight in ((aapl, Decimal("0.04")), (msft, Decimal("0.03"))):
        target = weight * equity
        assert intent.limit_price is not None
        value = intent.qty * intent.limit_price
        assert abs(value - target) <= intent.limit_price * 2, f"{intent.symbol}: {value} for a target of {target}"
    assert result["AAPL"].verdict is Verdict.FILLED and result["MSFT"].verdict is Verdict.FILLED
    # a weight of 0 on a flat symbol: nothing to do
    assert result["XOM"].verdict is Verdict.NO_ORDER and result["XOM"].reason == "NO_CHANGE"

    # the journal says what the batch's values were
    from engine import events as ev
    from engine.journal import Journal

    processed = [
        e.event for e in Journal(desk.journal_path, readonly=True).replay() if isinstance(e.event, ev.BatchProcessed)
    ]
    assert [(p.bar_ts, p.kind) for p in processed] == [(TS, "weight")]

    # the same weights from a JSONL "weights" line give the same orders
    pipe = pipe_with_line(tmp_path, make_pipe, {"ts": iso(TS), "weights": weights})
    assert orders_of(result) == orders_from_pipe(pipe)


def test_a_weight_sizes_as_the_score_of_weight_over_max_position_size(open_desk):
    by_weight = open_desk("w", auto_approve=True).submit_targets(TS, {"AAPL": 0.05, "MSFT": -0.02})
    by_score = open_desk("s", auto_approve=True).submit_signals(TS, {"AAPL": 0.5, "MSFT": -0.2})
    assert orders_of(by_weight) and orders_of(by_weight) == orders_of(by_score)


def test_denied_awaiting_approval_and_filled_symbols_are_reported_as_such(open_desk):
    desk = open_desk(
        "verdicts",
        rollout={"default_mode": "approve", "overrides": {"AAPL": {"mode": "auto"}, "MSFT": {"mode": "off"}}},
    )
    result = desk.submit_signals(TS, {"AAPL": 0.5, "MSFT": 0.5, "XOM": 0.5})

    assert result["MSFT"].verdict is Verdict.DENIED
    assert result["MSFT"].reason == "SYMBOL_MODE_OFF"
    assert result["XOM"].verdict is Verdict.AWAITING_APPROVAL
    assert result.wait(3).timed_out, "an order awaiting approval is not final"
    # AAPL fills meanwhile (the batch as a whole is not final: XOM waits)
    wait_for(lambda: result.refresh()["AAPL"].verdict is Verdict.FILLED, timeout=30, what="AAPL filled")
    assert result["AAPL"].intent is not None and result["AAPL"].intent.filled_qty == result["AAPL"].intent.qty

    (xom_id,) = result["XOM"].client_order_ids
    assert desk.approve(xom_id).ok
    result.wait(30)
    assert result.final and result["XOM"].verdict is Verdict.FILLED


def test_bad_input_is_refused_whole_naming_the_symbol_and_value_and_sends_nothing(open_desk):
    desk = open_desk("bad", auto_approve=True)
    with pytest.raises(SignalInputError) as refused:
        desk.submit_signals(TS, {"AAPL": 0.5, "MSFT": math.nan, "NOPE": 0.1})
    text = str(refused.value)
    assert "MSFT" in text and "NaN" in text and "'NOPE'" in text
    with pytest.raises(SignalInputError, match=r"AAPL: expected a weight .* found 1\.5"):
        desk.submit_targets(TS, {"AAPL": 1.5})
    with pytest.raises(SignalInputError, match="no timezone"):
        desk.submit_signals(TS.replace(tzinfo=None), {"AAPL": 0.5})
    # text is not a number (docs/signals.md), in process as over the socket (test_desk_attach.py)
    with pytest.raises(SignalInputError) as text_value:
        desk.submit_signals(TS, {"AAPL": "0.5", "MSFT": 0.25})
    assert [(p.reason, p.symbol) for p in text_value.value.problems] == [("NOT_A_NUMBER", "AAPL")]
    assert "AAPL: expected a number in [-1, 1], found text '0.5'" in str(text_value.value)
    assert desk.session.engine is not None and len(desk.session.engine.book) == 0
    # the refused batches moved no mark: the same bar is taken once it is right
    result = desk.submit_signals(TS, {"AAPL": 0.5})
    assert result["AAPL"].verdict in (Verdict.SENT, Verdict.FILLED)


def test_commands_events_and_close(open_desk):
    desk = open_desk("commands", auto_approve=True)
    desk.submit_signals(TS, {"AAPL": 0.5}).wait(30)
    wait_for(lambda: "AAPL" in desk.snapshot.positions, what="the AAPL position")
    kinds = {row.kind for row in desk.events()}
    assert "fill" in kinds
    assert desk.override("MSFT", mode="off").ok
    assert desk.halt().ok
    wait_for(lambda: desk.snapshot.trading_state.value == "HALTED", what="HALTED")
    assert desk.resume().ok
    assert desk.flatten().ok
    wait_for(lambda: not desk.snapshot.positions, what="the position to be flattened")
    desk.close()
    with pytest.raises(Exception, match="closed"):
        desk.submit_signals(TS + timedelta(seconds=1), {"AAPL": 0.1})


def test_the_context_manager_closes_and_seals_the_journal(tmp_path):
    from engine.journal import Journal
    from tests.api.conftest import SIM
    from tests.pipeline.pipekit import CREDENTIALS
    from tests.support import shipped_settings

    journal = tmp_path / "ctx.sqlite"
    with Desk.open(shipped_settings(), journal=journal, credentials=CREDENTIALS, sim=SIM) as desk:
        assert desk.snapshot.session_id
    assert desk.session.wait(0)
    sessions = Journal(journal).sessions()
    assert sessions and sessions[-1].ended_at is not None


def test_the_example_of_docs_api_md_runs(tmp_path, monkeypatch, capsys):
    """The first Python block of docs/api.md, as written (its journal in tmp_path)."""
    from tests.support import ROOT

    text = (ROOT / "docs" / "api.md").read_text()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    assert '"var/api-example.sqlite"' in code
    monkeypatch.chdir(ROOT)
    exec(compile(code.replace('"var/api-example.sqlite"', repr(str(tmp_path / "j.sqlite"))), "api.md", "exec"), {})
    out = capsys.readouterr().out
    assert "AAPL" in out and "MSFT" in out and "JPM" in out


def test_a_symbol_outside_the_allowlist_is_refused_as_for_a_signal_file(open_desk):
    desk = open_desk("allow", auto_approve=True, rollout={"allowlist": ["AAPL", "MSFT"]})
    with pytest.raises(SignalInputError, match=r"UNKNOWN_SYMBOL: .*'XOM'"):
        desk.submit_signals(TS, {"AAPL": 0.5, "XOM": 0.5})
    assert desk.submit_signals(TS, {"AAPL": 0.5})["AAPL"].verdict in (Verdict.SENT, Verdict.FILLED)
