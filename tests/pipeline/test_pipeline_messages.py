"""`execdesk run` says "journal sealed" only when sealing succeeded (issue 11, item 10).

A real write failure, as in the crash drills: RLIMIT_FSIZE = 0 on the running
process makes every write() to the journal fail (Python ignores SIGXFSZ). The
engine halts; the limit is lifted again (so the run's own output file can be
written) but a journal that failed stays failed; SIGTERM then stops the run, which
must say the journal is NOT sealed, exit 1, and leave the session unsealed in the
report."""

from __future__ import annotations

import json
import resource
import signal
from datetime import datetime

from tests.pipeline.pipekit import execdesk, iso, wait_status
from tests.pipeline.test_pipeline_cli import embedded_config


def bar(ts: datetime, signals: dict) -> bytes:
    return (json.dumps({"ts": iso(ts), "signals": signals}) + "\n").encode()


def test_a_journal_that_could_not_be_sealed_is_not_said_to_be(tmp_path, run_process):
    config, signals, journal = embedded_config(tmp_path, "partial_fill_prob = 0.0")
    proc = run_process("--config", str(config), "--signals", str(signals), "--journal", str(journal), "--auto-approve")
    status = wait_status(journal, lambda s: s["trading_ready"] and s["market_open"], what="the session", proc=proc)
    now = datetime.fromisoformat(status["venue_time"]).replace(microsecond=0)
    with signals.open("ab") as f:
        f.write(bar(now, {"AAPL": 0.5}))
    wait_status(journal, lambda s: s["positions"] == 1 and s["open_orders"] == 0, what="the AAPL fill", proc=proc)

    # the soft limit only: the hard one stays, so the soft one can be lifted again
    resource.prlimit(proc.proc.pid, resource.RLIMIT_FSIZE, (0, resource.RLIM_INFINITY))
    try:
        with signals.open("ab") as f:
            f.write(bar(now.replace(second=(now.second + 1) % 60), {"MSFT": 0.5}))
        status = wait_status(
            journal,
            lambda s: s["connectivity"]["journal_ok"] is False,
            what="the engine to find its journal unwritable",
            proc=proc,
        )
    finally:
        resource.prlimit(proc.proc.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    assert status["trading_state"] == "HALTED"
    assert not status["trading_ready"], "not ready to trade without a journal"

    proc.proc.send_signal(signal.SIGTERM)
    assert proc.wait() == 1, proc.describe()
    out = proc.stdout
    assert "stopped (SIGTERM): journal NOT sealed (" in out, proc.describe()
    assert "journal sealed" not in out, proc.describe()
    assert "Traceback" not in proc.stderr, proc.describe()

    report = json.loads(execdesk("report", "--journal", str(journal), "--format", "json").stdout)
    [session] = report["sessions"]
    assert session["sealed"] is False
