"""Crash drills with real processes: the venue is `execdesk sim` in one process,
the engine `execdesk run --auto-approve` in another, fed by a JSONL file the
drill appends to. The engine is killed with SIGKILL and restarted on the same
journal; the drill then compares the journal with the venue (enginekit.compare:
read-only journal, alpaca-py TradingClient for the venue)."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from alpaca.trading.client import TradingClient

from engine import events as ev
from engine.control import ControlError, request, socket_path_for
from engine.journal import JournalError
from tests.engine.core.enginekit import KEY, SECRET, SignalFile, base_config, journal_events
from tests.support import ROOT, VenueProcess, merged, venue_env, wait_for, write_config

HEADERS = {"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET}
START_AT = "2026-03-02T15:00:00Z"  # a Monday, 10:00 New York


def _env() -> dict[str, str]:
    return venue_env(KEY, SECRET)


class SimProcess:
    """`execdesk sim` in its own process (tests.support.VenueProcess); its drill API over HTTP."""

    def __init__(
        self, workdir: Path, *, seed: int = 5, partial_fill_prob: float = 0.2, port: int = 0, name: str = "sim"
    ):
        """port: a fixed one (a venue restarted where the engine expects it), else any free one."""
        self.log_path = workdir / f"{name}.log"
        self.process = VenueProcess(
            KEY,
            SECRET,
            "--seed",
            str(seed),
            "--rate-limit",
            "0",
            "--start-at",
            START_AT,
            "--partial-fill-prob",
            str(partial_fill_prob),
            *(("--port", str(port)) if port else ()),
            log=self.log_path,
            entry=("engine.cli", "sim"),
        )
        self.proc = self.process.proc
        self.url = self.process.url
        self.trading = TradingClient(KEY, SECRET, paper=True, raw_data=True, url_override=self.url)

    def faults(self, **faults: Any) -> dict:
        r = requests.post(self.url + "/sim/v1/faults", json=faults, headers=HEADERS, timeout=10)
        r.raise_for_status()
        return r.json()

    def clear_faults(self) -> dict:
        return self.faults(reset=True)

    def drill(self, path: str, body: dict | None = None) -> dict:
        """POST /sim/v1/<path> (shock, reset, ...) with a JSON body."""
        r = requests.post(f"{self.url}/sim/v1/{path}", json=body or {}, headers=HEADERS, timeout=10)
        r.raise_for_status()
        return r.json()

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1].split("/")[0])

    def state(self) -> dict:
        r = requests.get(self.url + "/sim/v1/state", headers=HEADERS, timeout=10)
        r.raise_for_status()
        return r.json()

    def now(self) -> datetime:
        """Venue time, from the drill API (no fault applies to it)."""
        return datetime.fromisoformat(self.state()["clock"]["timestamp"]).astimezone(UTC)

    def order_ids(self) -> set[str]:
        """Client order ids at the venue (through the drill-free REST: call with faults off)."""
        from tests.engine.core.enginekit import venue_orders

        return {o["client_order_id"] for o in venue_orders(self.trading)}

    def stop(self) -> None:
        self.process.stop()


def drill_config(workdir: Path, url: str, changes: Mapping[str, Mapping[str, Any]] | None = None) -> Path:
    """The engine's configuration against the external venue: broker.kind = "alpaca"
    at the venue's URL, keys from the environment."""
    journal, signals = workdir / "journal.sqlite", workdir / "signals.jsonl"
    signals.touch()
    cfg = merged(
        base_config(journal, signals),
        {
            "broker": {"kind": "alpaca", "trading_url": url, "data_url": url, "request_timeout": 3.0, "workers": 3},
            # few background requests, so that a submit finds a free worker at once
            "monitoring": {
                "order_reconciliation_interval": 20,
                "position_update_interval": 20,
                "risk_check_interval": 20,
            },
        },
    )
    cfg.pop("sim", None)
    return write_config(workdir / "execution.toml", merged(cfg, changes))


class EngineProcess:
    """`execdesk run --auto-approve` on one journal; started, killed, restarted."""

    def __init__(self, workdir: Path, config: Path):
        self.workdir = workdir
        self.config = config
        self.journal = workdir / "journal.sqlite"
        self.signals_path = workdir / "signals.jsonl"
        self.log_path = workdir / "engine.log"
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.kills = 0
        self._runs_before = 0

    def start(self, *, wait_ready: bool = True, preexec: Any = None) -> EngineProcess:
        assert self.proc is None or self.proc.poll() is not None
        self.starts += 1
        self._runs_before = self._runs()[0]
        with self.log_path.open("a") as log:
            log.write(f"\n===== start {self.starts} =====\n")
            log.flush()
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "engine.cli",
                    "run",
                    "-c",
                    str(self.config),
                    "--signals",
                    str(self.signals_path),
                    "--journal",
                    str(self.journal),
                    "--auto-approve",
                ],
                cwd=ROOT,
                env=_env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=preexec,
            )
        if wait_ready:
            self.wait_ready()
        return self

    def _runs(self) -> tuple[int, bool]:
        """(runs journaled so far, whether the last one's reconciliation said ready)."""
        if not self.journal.exists():
            return 0, False
        runs, ok = 0, False
        try:
            events = journal_events(self.journal)
        except JournalError:  # being created by the engine right now
            return 0, False
        for e in events:
            if isinstance(e, ev.SessionStarted):
                runs, ok = runs + 1, False
            elif isinstance(e, ev.ReconcileCompleted) and e.ok:
                ok = True
        return runs, ok

    def wait_ready(self, timeout: float = 60.0) -> None:
        """This run's start-up reconciliation is done and trading is ready."""

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"the engine exited ({self.proc.returncode}):\n{self.log_tail()}")
            runs, ok = self._runs()
            return runs > self._runs_before and ok

        wait_for(ready, timeout=timeout, every=0.1, what=f"engine start {self.starts} ready")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.kills += 1

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def status(self) -> dict:
        return request(socket_path_for(self.journal), "status")["status"]

    def try_status(self) -> dict | None:
        try:
            return self.status()
        except (ControlError, OSError, KeyError):
            return None

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text()[-n:]
        except OSError:
            return ""


def signal_file(engine: EngineProcess, sim: SimProcess) -> SignalFile:
    return SignalFile(engine.signals_path, sim.now)


def submits(journal: Path) -> list[str]:
    return [e.client_order_id for e in journal_events(journal) if isinstance(e, ev.SubmitSent)]


def wait_submits(journal: Path, n: int, timeout: float = 30.0) -> list[str]:
    """Poll the journal (read-only) until n SubmitSent in all; returns their ids."""
    return wait_for(
        lambda: (lambda s: s if len(s) >= n else None)(submits(journal)),
        timeout=timeout,
        every=0.01,
        what=f"{n} submits journaled",
    )


def story(events: list[Any], cid: str) -> list[str]:
    kinds = (ev.SubmitSent, ev.SubmitUnknown, ev.SubmitAcked, ev.SubmitRejected, ev.OrderStatusChanged)
    return [type(e).__name__ for e in events if isinstance(e, kinds) and e.client_order_id == cid]
