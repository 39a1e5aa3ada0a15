"""Gradual rollout end to end: a symbol in mode "off" is never traded — whether the
configuration says so or an operator's run-time SetOverride does — and a run-time
override is journaled and survives a restart (a new Session on the same journal),
still in the snapshot and still in force. Also: run-time caps, size multiplier and
side restrictions, and the unfilled-order policy at the next bar. The venue is
checked through alpaca-py."""

from __future__ import annotations

from decimal import Decimal

from engine.commands import SetOverride
from engine.model import TradingState

SETTINGS = {"rollout": {"default_mode": "auto", "overrides": {"MSFT": {"mode": "off"}}}}


def denied_symbols(report: dict, reason: str) -> set[str]:
    return {d["symbol"] for d in report["denials"] if d["reason"] == reason}


def test_mode_off_from_the_configuration_and_at_run_time_is_never_traded(make_pipe):
    pipe = make_pipe(**SETTINGS)
    assert pipe.snapshot.overrides["MSFT"].mode == "off"

    pipe.send({"AAPL": 0.5, "MSFT": -0.6, "JPM": 0.3})
    pipe.wait_settled()
    assert pipe.eyes.symbols_ordered() == {"AAPL", "JPM"}, "auto symbols go, MSFT (off) does not"
    assert "MSFT" not in pipe.eyes.positions()

    result = pipe.execute(SetOverride("JPM", mode="off"))
    assert result.ok, result.message
    pipe.wait(lambda: "JPM" in pipe.snapshot.overrides, what="the override in the snapshot")
    assert pipe.snapshot.overrides["JPM"].mode == "off"
    jpm_orders = [o.client_order_id for o in pipe.eyes.orders() if o.symbol == "JPM"]

    pipe.send({"AAPL": 0.8, "MSFT": 0.9, "JPM": -0.7})  # each a change worth an order
    pipe.wait_settled()
    venue = pipe.eyes.orders()
    assert [o.client_order_id for o in venue if o.symbol == "JPM"] == jpm_orders, "no new JPM order once off"
    assert not [o for o in venue if o.symbol == "MSFT"]
    assert len([o for o in venue if o.symbol == "AAPL"]) == 2, "the bar was traded for the others"
    assert pipe.snapshot.trading_state is TradingState.ACTIVE

    report = pipe.report()
    assert denied_symbols(report, "SYMBOL_MODE_OFF") == {"MSFT", "JPM"}
    assert report["summary"]["denied"] == 3  # MSFT twice, JPM once


def test_a_run_time_override_survives_a_restart(make_pipe, tmp_path):
    pipe = make_pipe(**SETTINGS)
    assert pipe.execute(SetOverride("AAPL", mode="off")).ok
    assert pipe.execute(SetOverride("KO", mode="approve", size_multiplier=0.5)).ok
    assert pipe.execute(SetOverride("JPM", mode="off")).ok
    assert pipe.execute(SetOverride("JPM", clear=True)).ok  # a cleared override stays cleared
    pipe.send({"AAPL": 0.5, "JPM": 0.3})
    pipe.wait_settled()
    assert pipe.eyes.symbols_ordered() == {"JPM"}
    pipe.stop()

    # a new session (and a new venue) on the same journal and signal file
    again = make_pipe(**SETTINGS)
    again.continue_after(pipe)
    overrides = again.snapshot.overrides
    assert set(overrides) == {"MSFT", "AAPL", "KO"}
    assert overrides["AAPL"].mode == "off" and overrides["MSFT"].mode == "off"
    assert overrides["KO"].mode == "approve" and overrides["KO"].size_multiplier == 0.5

    # the lines of the first run are not traded again; the new bar is, except AAPL
    again.send({"AAPL": 0.9, "JPM": 0.6, "KO": 0.8})
    again.wait(lambda: len(again.snapshot.intents) == 1, what="the KO intent to wait for approval")
    again.wait_settled()
    assert again.eyes.symbols_ordered() == {"JPM"}, "AAPL stays off after the restart; KO waits"
    [ko] = again.snapshot.intents.values()
    assert ko.symbol == "KO"
    assert "AAPL" not in again.eyes.positions()
    skipped = [e for e in again.snapshot.events if "already processed before the restart" in e.text]
    assert skipped, "the first run's bar is recognised, not traded twice"


def test_run_time_caps_multiplier_and_side_shape_what_reaches_the_venue(make_pipe):
    pipe = make_pipe(rollout={"default_mode": "auto"})
    for cmd in (
        SetOverride("AAPL", max_position_usd=Decimal(2000)),
        SetOverride("JPM", max_position_pct=0.02),
        SetOverride("KO", size_multiplier=0.5),
        SetOverride("MSFT", side="long_only"),
    ):
        assert pipe.execute(cmd).ok, cmd
    pipe.send({"AAPL": 1.0, "JPM": 1.0, "KO": 1.0, "XOM": 1.0, "MSFT": -0.8})
    pipe.wait_settled()

    held = {s: Decimal(p.market_value) for s, p in pipe.eyes.positions().items()}
    equity = pipe.snapshot.equity
    full = Decimal("0.1") * equity  # max_position_size at signal 1.0
    assert "MSFT" not in held, "long_only: no short"
    assert 0 < held["AAPL"] <= 2000
    assert 0 < held["JPM"] <= Decimal("0.02") * equity + 300  # one share of slack
    assert full / 2 - 100 <= held["KO"] <= full / 2 + 100  # half the size
    assert full - 200 <= held["XOM"] <= full
    assert "MSFT" not in pipe.eyes.symbols_ordered(), "long_only: a short signal sends nothing"


def test_unfilled_orders_are_cancelled_at_the_next_bar(make_pipe):
    """order_management.unfilled_policy = "cancel" (the default): what the previous
    bar left working is cancelled at the venue when the next batch arrives."""
    pipe = make_pipe(auto_approve=True, sim={"partial_fill_prob": 1.0})
    pipe.send({"AAPL": 0.5, "JPM": 0.3})
    first = pipe.wait(
        lambda: len(pipe.eyes.open_orders()) == 2 and pipe.eyes.open_orders(), what="two orders working at the venue"
    )
    pipe.send({"KO": 0.4})
    pipe.wait(
        lambda: {o.symbol for o in pipe.eyes.open_orders()} <= {"KO"}, what="the first bar's orders to be cancelled"
    )
    venue = pipe.eyes.orders_by_client_id()
    assert {venue[o.client_order_id].status.value for o in first} == {"canceled"}
    causes = pipe.report()["summary"]["cancel_requests_by_cause"]
    assert causes == {"unfilled at the next bar": 2}
