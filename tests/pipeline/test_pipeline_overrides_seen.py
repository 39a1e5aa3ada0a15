"""Run-time overrides are visible outside the console: in the status a control
client reads (`execdesk status --json`: every override in force, with the venue
time of its last change) and in the execution report (every change, in order)."""

from __future__ import annotations

from decimal import Decimal

from engine.commands import SetOverride
from engine.control import status_of
from engine.report import build_report, render


def test_overrides_in_the_status_and_in_the_report(make_pipe):
    pipe = make_pipe(rollout={"overrides": {"MSFT": {"mode": "off"}}})
    assert pipe.execute(SetOverride("AAPL", mode="auto", max_position_usd=Decimal(2500))).ok
    assert pipe.execute(SetOverride("KO", size_multiplier=0.5)).ok
    assert pipe.execute(SetOverride("KO", clear=True)).ok
    pipe.wait(lambda: "AAPL" in pipe.snapshot.overrides and "KO" not in pipe.snapshot.overrides, what="overrides")

    status = status_of(pipe.snapshot)["overrides"]
    assert set(status) == {"MSFT", "AAPL"}
    assert status["AAPL"]["mode"] == "auto" and status["AAPL"]["max_position_usd"] == "2500"
    assert status["AAPL"]["changed_at"] is not None, "a run-time change says when"
    assert status["MSFT"] == {
        "mode": "off",
        "max_position_usd": None,
        "max_position_pct": None,
        "size_multiplier": None,
        "side": None,
        "changed_at": None,
    }

    changes = pipe.report()["overrides"]
    assert [(c["symbol"], c["cleared"]) for c in changes] == [("AAPL", False), ("KO", False), ("KO", True)]
    assert changes[0]["mode"] == "auto" and changes[1]["size_multiplier"] == 0.5
    text = render(build_report(pipe.journal_path), "text")
    assert "Run-time overrides" in text and "size_multiplier=0.5" in text
