"""The execution report over a realistic journal: every figure, every format,
the command line's errors."""

from __future__ import annotations

import argparse
import csv
import io
import json
import subprocess
import sys
from datetime import date
from decimal import Decimal

import pytest

from engine import events as ev
from engine.journal import Journal
from engine.report import (
    FILL_COLUMNS,
    ORDER_COLUMNS,
    ReportError,
    add_arguments,
    build_report,
    percentile,
    render,
    run,
)

D = Decimal
ORDER_KEYS = {
    "client_order_id",
    "symbol",
    "side",
    "qty",
    "status",
    "filled_qty",
    "filled_avg_price",
    "limit_price",
    "decision_price",
    "signal",
    "reason",
    "denial_reason",
    "external",
}


@pytest.fixture
def data(built):
    path, _ids = built
    return build_report(path).to_dict()


def by_id(rows, key="client_order_id"):
    return {r[key]: r for r in rows}


def args_for(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_arguments(p)
    return p.parse_args(list(argv))


# ---- what the report says ------------------------------------------------------------


def test_latest_session_by_default(built, data):
    _, ids = built
    assert data["session_id"] == ids["main"]
    [header] = data["sessions"]
    assert header["session_id"] == ids["main"]
    assert header["sealed"] is True and header["ended_how"] == "stopped"
    assert header["venue_date"] == "2026-03-05"
    assert [r["how"] for r in header["runs"]] == ["stopped"]
    assert "old-SPY" not in by_id(data["orders"])


def test_orders_table(data):
    orders = by_id(data["orders"])
    assert list(orders) == ["o1", "o2", "o3", "o4", "o5", "o6", "o7", "o8"]
    for o in orders.values():
        assert ORDER_KEYS <= set(o)
        assert not any(k.startswith("_") for k in o)
    o1 = orders["o1"]
    assert (o1["symbol"], o1["side"], o1["qty"], o1["status"]) == ("AAPL", "buy", "100", "filled")
    assert o1["filled_qty"] == "100" and D(o1["filled_avg_price"]) == D("100.08")
    assert o1["limit_price"] == "101.00" and o1["decision_price"] == "100.00"
    assert o1["signal"] == 0.42 and o1["reason"] == "signal" and o1["external"] is False
    assert o1["venue_order_id"] == "v-o1" and o1["fill_ids"] == ["x1", "x2"]
    assert D(o1["slippage_bps"]) == D("8")  # avg 100.08 vs 100.00
    assert orders["o2"]["status"] == "filled" and D(orders["o2"]["slippage_bps"]) == D("10")
    assert orders["o3"]["status"] == "denied" and orders["o3"]["denial_reason"] == "POSITION_EXCEEDS_MAX"
    assert "12,500" in orders["o3"]["detail"]
    assert orders["o4"]["status"] == "expired" and orders["o4"]["denial_reason"] == "APPROVAL_EXPIRED"
    assert orders["o5"]["status"] == "rejected" and orders["o5"]["denial_reason"] is None
    assert orders["o5"]["detail"] == "insufficient qty available for order"
    o6 = orders["o6"]
    assert (o6["status"], o6["filled_qty"], o6["filled_avg_price"]) == ("canceled", "4", "299.70")
    assert D(o6["slippage_bps"]) == D("-10")  # bought below the decision price: better
    assert orders["o8"]["denial_reason"] == "TRADING_HALTED" and orders["o8"]["filled_avg_price"] is None


def test_fills_deduplicated_with_slippage(data):
    fills = data["fills"]
    assert [f["execution_id"] for f in fills] == ["x1", "x2", "x3", "x4"]  # the repeated x2 once
    f = by_id(fills, "execution_id")
    assert (f["x1"]["client_order_id"], f["x1"]["symbol"], f["x1"]["side"], f["x1"]["qty"], f["x1"]["price"]) == (
        "o1",
        "AAPL",
        "buy",
        "40",
        "100.05",
    )
    assert f["x1"]["ts"] == "2026-03-05T14:30:01+00:00"
    # positive = worse: a buy above, a sell below the decision price
    assert [D(f[x]["slippage_bps"]) for x in ("x1", "x2", "x3", "x4")] == [D(5), D(10), D(10), D(-10)]
    assert [D(f[x]["slippage_cost"]) for x in ("x1", "x2", "x3", "x4")] == [D("2"), D("6"), D("4"), D("-1.2")]
    assert D(f["x3"]["realized_pl"]) == D("-4")  # sold the opening MSFT 10 @ 400 at 399.60
    assert sum(D(x["qty"]) for x in fills if x["client_order_id"] == "o1") == D("100")


def test_summary_fill_rate_and_slippage(data):
    s = data["summary"]
    assert s["orders"] == 8 and s["fills"] == 4 and s["batches"] == 2
    assert s["orders_by_status"] == {"canceled": 1, "denied": 3, "expired": 1, "filled": 2, "rejected": 1}
    fr = s["fill_rate"]
    assert (fr["orders_submitted"], fr["orders_filled"], fr["orders_with_fills"]) == (4, 2, 3)
    assert D(fr["orders_rate"]) == D("0.5")
    assert D(fr["submitted_qty"]) == D(150) and D(fr["filled_qty"]) == D(114)
    assert D(fr["qty_rate"]) == D("0.76")
    sl = s["slippage"]
    assert sl["fills"] == 4 and sl["fills_without_decision_price"] == 0
    assert D(sl["cost"]) == D("10.8")
    assert D(sl["weighted_bps"]) == D("7.1053")  # 10.8 / 15,200 * 10,000 = 7.10526...
    assert D(sl["mean_bps"]) == D("3.75")
    assert (D(sl["best_bps"]), D(sl["worst_bps"])) == (D(-10), D(10))
    assert s["approvals"] == {"requested": 2, "approved": 1, "rejected": 0, "expired": 1}
    assert s["denied"] == 4 and s["venue_rejected"] == 1 and s["dropped_signals"] == 4
    assert s["cancel_requests_by_cause"] == {"kill_switch": 1}


def test_pnl_realized_and_unrealized(data):
    pnl = data["summary"]["pnl"]
    assert pnl["method"] == "average cost"
    assert pnl["opening_positions_source"].startswith("positions snapshot")
    assert D(pnl["realized"]) == D("-4")
    # AAPL (100.20 - 100.08) * 100 + META (299.00 - 299.70) * 4
    assert D(pnl["unrealized"]) == D("12") + D("-2.8")
    assert pnl["unrealized_source"] == "positions_snapshot"
    pos = by_id(data["positions"], "symbol")
    assert set(pos) == {"AAPL", "META", "MSFT"}
    assert D(pos["AAPL"]["qty"]) == 100 and D(pos["AAPL"]["avg_entry_price"]) == D("100.08")
    assert pos["AAPL"]["mark_price"] == "100.20" and pos["AAPL"]["mark_source"] == "positions_snapshot"
    assert D(pos["MSFT"]["qty"]) == 0 and D(pos["MSFT"]["realized_pl"]) == D("-4")
    assert all(p["matches_broker"] for p in pos.values())
    acct = data["summary"]["account"]
    assert acct["equity"] == "100010" and D(acct["day_pl"]) == D("510")


def test_unrealized_marked_at_last_fill_without_a_later_snapshot(journal_path, monkeypatch):
    import engine.journal as jm
    from engine.model import Side
    from tests.engine.report.report_journal import T0, Clock, fill

    clock = Clock(T0)
    monkeypatch.setattr(jm, "_utcnow", clock)
    with Journal(journal_path) as j:
        j.open_session("c", date(2026, 3, 5))
        from tests.engine.report.report_journal import order

        j.append(ev.IntentCreated(order=order("a", "AAPL", Side.BUY, "10", "100"), batch_seq=0))
        j.append(ev.SubmitSent(client_order_id="a"))
        clock.at_ms(5)
        j.append(fill("a", "e1", "AAPL", Side.BUY, "5", "100", T0))
        clock.at_ms(9)
        j.append(fill("a", "e2", "AAPL", Side.BUY, "5", "102", T0))
    pnl = build_report(journal_path).to_dict()["summary"]["pnl"]
    assert pnl["opening_positions_source"].startswith("flat")
    assert pnl["unrealized_source"] == "last_fill"
    assert D(pnl["unrealized"]) == D("10")  # 10 @ avg 101 marked at 102
    assert D(pnl["realized"]) == 0


def test_denials_dropped_state_changes_kill_switch(data):
    assert data["denials_by_reason"] == {"POSITION_EXCEEDS_MAX": 2, "APPROVAL_EXPIRED": 1, "TRADING_HALTED": 1}
    assert data["dropped_by_reason"] == {"NAN": 2, "MALFORMED": 1, "UNKNOWN_SYMBOL": 1}
    garbage = next(d for d in data["dropped"] if d["code"] == "MALFORMED")
    assert garbage["line"].startswith("\x00")  # kept as journaled; escaped only in text/md
    assert [(c["previous"], c["state"]) for c in data["state_changes"]] == [(None, "ACTIVE"), ("ACTIVE", "HALTED")]
    assert data["state_changes"][1]["cause"].startswith("daily loss limit")
    ks = data["kill_switch"]
    assert [k["phase"] for k in ks] == ["requested", "sent", "confirmed"]
    assert [k["since_request_ms"] for k in ks] == [0.0, 20.0, 300.0]
    assert ks[2]["counts"] == {"canceled": 1}
    [rej] = data["venue_rejections"]
    assert (rej["client_order_id"], rej["http_status"]) == ("o5", 403)


def test_latencies(data):
    lat = data["latency_ms"]
    # the batch arrived with its first intent at t=1000; submits at 1010, 1020, 1040, 3010
    assert lat["signal_to_submit"] == {"count": 4, "p50": 20.0, "p90": 2010.0, "p99": 2010.0, "max": 2010.0}
    assert lat["signal_to_submit_auto"] == {"count": 3, "p50": 20.0, "p90": 40.0, "p99": 40.0, "max": 40.0}
    assert lat["approval_wait"] == {"count": 1, "p50": 2000.0, "p90": 2000.0, "p99": 2000.0, "max": 2000.0}
    assert lat["submit_to_ack"] == {"count": 3, "p50": 30.0, "p90": 30.0, "p99": 30.0, "max": 30.0}
    assert lat["submit_to_first_fill"] == {"count": 3, "p50": 90.0, "p90": 280.0, "p99": 280.0, "max": 280.0}
    o = by_id(data["orders"])
    assert (o["o1"]["signal_to_submit_ms"], o["o1"]["submit_to_ack_ms"], o["o1"]["submit_to_first_fill_ms"]) == (
        10.0,
        20.0,
        90.0,
    )
    assert o["o5"]["submit_to_ack_ms"] is None and o["o3"]["signal_to_submit_ms"] is None


def test_percentile_nearest_rank():
    assert percentile([], 50) is None
    assert percentile([7.0], 99) == 7.0
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 90), percentile(values, 99)) == (50.0, 90.0, 99.0)


def test_all_sessions(built):
    path, ids = built
    data = build_report(path, "all").to_dict()
    assert data["session_id"] == "all"
    assert [h["session_id"] for h in data["sessions"]] == [ids["old"], ids["main"]]
    assert next(iter(by_id(data["orders"]))) == "old-SPY"
    assert {o["session_id"] for o in data["orders"]} == {ids["old"], ids["main"]}
    assert [f["execution_id"] for f in data["fills"]] == ["x-old", "x1", "x2", "x3", "x4"]
    assert data["summary"]["fill_rate"]["orders_submitted"] == 5
    assert data["summary"]["pnl"]["realized_by_session"] == {ids["old"]: "0", ids["main"]: "-4"}


def test_one_named_session(built):
    path, ids = built
    data = build_report(path, ids["old"]).to_dict()
    assert data["session_id"] == ids["old"]
    [o] = data["orders"]
    assert (o["client_order_id"], o["status"], o["filled_avg_price"]) == ("old-SPY", "filled", "500.00")
    assert data["latency_ms"]["submit_to_ack"]["max"] == 40.0


def test_unsealed_session_says_so(journal_path):
    with Journal(journal_path) as j:
        j.open_session("c", date(2026, 3, 5))
    [h] = build_report(journal_path).to_dict()["sessions"]
    assert h["sealed"] is False and "not sealed" in h["ended_how"]


def test_report_reads_a_journal_that_is_being_written(journal_path):
    j = Journal(journal_path)
    j.open_session("c", date(2026, 3, 5))
    j.append(ev.SignalDropped(symbol="X", reason="UNKNOWN_SYMBOL: X"))
    try:
        assert build_report(journal_path).to_dict()["dropped_by_reason"] == {"UNKNOWN_SYMBOL": 1}
        assert build_report(j).to_dict()["dropped_by_reason"] == {"UNKNOWN_SYMBOL": 1}  # an open Journal
    finally:
        j.close()


# ---- formats -----------------------------------------------------------------------------------


def test_json_is_one_object_with_the_keys(built):
    path, _ = built
    out = render(build_report(path), "json")
    obj = json.loads(out)
    for key in (
        "session_id",
        "orders",
        "fills",
        "summary",
        "denials_by_reason",
        "dropped_by_reason",
        "state_changes",
        "kill_switch",
        "latency_ms",
    ):
        assert key in obj
    assert all(isinstance(o["qty"], str) and isinstance(o["filled_qty"], str) for o in obj["orders"])
    assert all(isinstance(f["price"], str) for f in obj["fills"])


def test_text_report(built):
    path, _ = built
    text = render(build_report(path), "text")
    for needle in (
        "execdesk execution report",
        "Summary",
        "Latency",
        "Orders (8)",
        "Fills (4)",
        "POSITION_EXCEEDS_MAX",
        "TRADING_HALTED",
        "MALFORMED",
        "HALTED",
        "confirmed",
        "o1",
        "x4",
        "7.11 bps",
        "50.00%",
        "76.00%",
        "positions_snapshot",
        "\\x00",
    ):
        assert needle in text, needle
    assert "\x00" not in text and "\x1b" not in text  # garbage escaped, no colour codes


def test_markdown_report(built):
    path, _ = built
    md = render(build_report(path), "md")
    assert md.startswith("# execdesk execution report")
    assert "## Orders (8)" in md and "## Fills (4)" in md and "## Kill switch" in md
    section = md.split("## Orders (8)")[1].split("\n## ")[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header, order_lines = lines[0], lines[2:]
    cells = header.count("|")
    assert len(order_lines) == 8 and all(line.count("|") - line.count("\\|") == cells for line in order_lines)
    assert "\\|garbage" in md  # a pipe in the input does not break the table


def test_csv_orders_and_fills(built):
    path, ids = built
    report = build_report(path)
    rows = list(csv.DictReader(io.StringIO(render(report, "csv"))))
    assert tuple(rows[0].keys()) == ORDER_COLUMNS
    assert [r["client_order_id"] for r in rows] == ["o1", "o2", "o3", "o4", "o5", "o6", "o7", "o8"]
    assert rows[0]["session_id"] == ids["main"] and rows[0]["external"] == "false"
    assert rows[2]["denial_reason"] == "POSITION_EXCEEDS_MAX"
    fills = list(csv.DictReader(io.StringIO(render(report, "csv", table="fills"))))
    assert tuple(fills[0].keys()) == FILL_COLUMNS
    assert [f["execution_id"] for f in fills] == ["x1", "x2", "x3", "x4"]
    assert fills[3]["slippage_bps"] == "-10"


def test_unknown_format_is_an_error(built):
    path, _ = built
    with pytest.raises(ValueError):
        render(build_report(path), "xml")


# ---- command line ---------------------------------------------------------------------------------


def test_run_prints_json(built, capsys):
    path, ids = built
    assert run(args_for("--journal", str(path), "--format", "json")) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["session_id"] == ids["main"] and err == ""


@pytest.mark.parametrize("fmt", ["text", "md", "csv", "json"])
def test_run_every_format(built, capsys, fmt):
    path, _ = built
    assert run(args_for("--journal", str(path), "--format", fmt, "--session", "all")) == 0
    assert "o1" in capsys.readouterr().out


def test_missing_journal_exit_2(tmp_path, capsys):
    missing = tmp_path / "nope.sqlite"
    assert run(args_for("--journal", str(missing))) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("error: ") and "no such file" in err and "Traceback" not in err
    assert not missing.exists()  # reading never creates a journal


@pytest.mark.parametrize("content", [b"this is not a database" * 100, b""])
def test_unreadable_journal_exit_2(tmp_path, capsys, content):
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(content)
    assert run(args_for("--journal", str(bad))) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err


def test_directory_and_unknown_session_exit_2(built, tmp_path, capsys):
    path, ids = built
    assert run(args_for("--journal", str(tmp_path))) == 2
    assert "directory" in capsys.readouterr().err
    assert run(args_for("--journal", str(path), "--session", "nope")) == 2
    err = capsys.readouterr().err
    assert "no session 'nope'" in err and ids["main"] in err
    with pytest.raises(ReportError):
        build_report(path, "nope")


def test_command_line_process_has_no_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "engine.report", "--journal", str(tmp_path / "missing.sqlite")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stdout == "" and "error:" in proc.stderr and "Traceback" not in proc.stderr


def test_positions_carry_into_a_session_without_a_snapshot(journal_path, monkeypatch):
    """Day 1 buys 10 @ 100 (no snapshot); day 2 sells them @ 103: realized 30 on day 2."""
    import engine.journal as jm
    from engine.model import Side
    from tests.engine.report.report_journal import T0, Clock, fill, order

    clock = Clock(T0)
    monkeypatch.setattr(jm, "_utcnow", clock)
    with Journal(journal_path) as j:
        day1 = j.open_session("c", date(2026, 3, 4)).session_id
        j.append(ev.IntentCreated(order=order("b", "AAPL", Side.BUY, "10", "100"), batch_seq=0))
        j.append(ev.SubmitSent(client_order_id="b"))
        j.append(
            fill(
                "b",
                "e1",
                "AAPL",
                Side.BUY,
                "10",
                "100",
                T0,
            )
        )
        j.seal("stopped")
        day2 = j.open_session("c", date(2026, 3, 5)).session_id
        j.append(ev.IntentCreated(order=order("s", "AAPL", Side.SELL, "10", "102"), batch_seq=0))
        j.append(ev.SubmitSent(client_order_id="s"))
        j.append(fill("s", "e2", "AAPL", Side.SELL, "10", "103", T0))
    pnl = build_report(journal_path).to_dict()["summary"]["pnl"]
    assert pnl["session_id"] == day2
    assert (
        pnl["opening_positions_source"] == f"carried from session {day1} (no positions snapshot before the first fill)"
    )
    assert D(pnl["realized"]) == D(30) and D(pnl["unrealized"]) == 0
    whole = build_report(journal_path, "all").to_dict()["summary"]["pnl"]
    assert whole["realized_by_session"] == {day1: "0", day2: "30"}
    assert build_report(journal_path, day1).to_dict()["summary"]["pnl"]["unrealized"] == "0"  # marked at 100


def test_journal_path_from_the_configuration(built, tmp_path, capsys):
    path, ids = built
    cfg = tmp_path / "execution.toml"
    cfg.write_text(f'[session]\njournal_path = "{path}"\n')
    args = args_for("--format", "json")
    args.config = str(cfg)
    assert run(args) == 0
    assert json.loads(capsys.readouterr().out)["session_id"] == ids["main"]
    cfg.write_text("[session]\njournal_path = 12\n")
    assert run(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no --journal given") and "journal_path" in err and "Traceback" not in err


def test_signal_batches_skipped_in_a_backlog_are_counted(journal_path):
    """Given two SignalsSkipped events (3 and 2 batches superseded in the inbox), the
    summary counts 5 skipped batches, in JSON and in the text and Markdown summaries."""
    import re

    from tests.engine.report.report_journal import B0, B1

    with Journal(journal_path) as j:
        j.open_session("c", date(2026, 3, 5))
        j.append(ev.SignalsSkipped(count=3, first_ts=B0, last_ts=B1))
        j.append(ev.SignalsSkipped(count=2, first_ts=B1, last_ts=B1))
    report = build_report(journal_path)
    assert report.to_dict()["summary"]["skipped_signal_batches"] == 5
    assert re.search(r"signal batches skipped \(backlog\) +5\n", render(report, "text"))
    assert "| signal batches skipped (backlog) | 5 |" in render(report, "md")
