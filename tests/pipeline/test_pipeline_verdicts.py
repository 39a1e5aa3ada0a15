"""The approval queue's verdict is the one an intent would get now: after the
operator sets a symbol to mode off or lowers its cap, or positions, prices or the
trading state change, the waiting intents' rows say the denial they would get at
approval, not the `ok` of the moment they were created. The verdict is shown, not
journaled: the intent is still waiting, and approving it denies it."""

from __future__ import annotations

from decimal import Decimal

from engine.commands import ApproveIntent, SetOverride


def row_of(pipe, symbol: str):
    return next((r for r in pipe.snapshot.intents.values() if r.symbol == symbol), None)


def test_waiting_intents_verdicts_follow_overrides(make_pipe):
    pipe = make_pipe()  # the shipped default: every intent waits for approval
    pipe.send({"AAPL": 0.5, "KO": 0.4, "JPM": 0.3})
    pipe.wait(lambda: {r.symbol for r in pipe.snapshot.intents.values()} == {"AAPL", "KO", "JPM"}, what="3 intents")
    assert {r.verdict for r in pipe.snapshot.intents.values()} == {"ok"}

    assert pipe.execute(SetOverride("AAPL", mode="off")).ok
    assert pipe.execute(SetOverride("KO", max_position_usd=Decimal(100))).ok
    pipe.wait(lambda: row_of(pipe, "AAPL").verdict == "SYMBOL_MODE_OFF", what="AAPL's verdict to say mode off")
    pipe.wait(lambda: row_of(pipe, "KO").verdict == "POSITION_EXCEEDS_MAX", what="KO's verdict to say its cap")
    assert "rollout mode is off" in row_of(pipe, "AAPL").verdict_detail
    assert row_of(pipe, "JPM").verdict == "ok", "an untouched symbol stays ok"

    # shown, not decided: the intent still waits, and approving it denies it with that reason
    ko = row_of(pipe, "KO")
    result = pipe.execute(ApproveIntent(ko.intent_id))
    assert not result.ok and "POSITION_EXCEEDS_MAX" in result.message

    # clearing the override makes AAPL's verdict ok again
    assert pipe.execute(SetOverride("AAPL", clear=True)).ok
    pipe.wait(lambda: row_of(pipe, "AAPL").verdict == "ok", what="AAPL's verdict back to ok")
