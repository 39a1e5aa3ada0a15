"""The pipeline tests' kit: a real Session (Engine -> AlpacaBroker -> alpaca-py ->
engine/sim) fed by a JSONL file the test appends to, and a second pair of eyes on
the venue through alpaca-py's own TradingClient. Nothing is mocked.

Waiting is always by polling with a generous deadline (the machine is shared and
slow at times); no test asserts on how long anything took."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from engine.config import Credentials, Settings
from engine.sim.venue import SimVenue
from tests.support import ROOT, UNIVERSE, shipped_settings, wait_for

UNIVERSE_PATH = UNIVERSE
CORPUS = ROOT / "tests" / "fixtures" / "signals"
#: Wednesday 25 November 2026, 09:40 New York: the regular session is open. The
#: signal corpus in tests/fixtures/signals is written for this venue time.
START_AT = datetime(2026, 11, 25, 14, 40, tzinfo=UTC)
SEED = 7
CREDENTIALS = Credentials(key_id="PKPIPELINETEST01", secret_key="pipeline-test-secret-0123456789")
DEADLINE = 45.0  # seconds; generous on purpose

_DROPPED_RE = re.compile(r": ([A-Z][A-Z_]+) — ")


# ----------------------------------------------------------------- settings


def pipeline_settings(signals_path: Path, **sections: Mapping[str, Any]) -> Settings:
    """The shipped configuration, JSONL signals from signals_path, the repository's
    universe by absolute path, then the test's own changes."""
    kind = "csv" if str(signals_path).endswith(".csv") else "jsonl"
    base: dict[str, Mapping[str, Any]] = {"signals": {"kind": kind, "path": str(signals_path)}}
    for name, fields in sections.items():
        base[name] = {**base.get(name, {}), **fields}
    return shipped_settings(**base)


# ----------------------------------------------------------------- waiting


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_ts(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def dropped_reasons_in_events(events: Iterable[Any]) -> Counter:
    """Drop reason codes of the snapshot's "dropped" event rows."""
    out: Counter = Counter()
    for row in events:
        if row.kind != "dropped":
            continue
        m = _DROPPED_RE.search(row.text)
        assert m, f"a dropped event without a reason code: {row.text!r}"
        out[m.group(1)] += 1
    return out


# ----------------------------------------------------------------- the venue, through alpaca-py


class VenueEyes:
    """What is at the venue, as alpaca-py sees it (independent of the engine)."""

    def __init__(self, trading_url: str, credentials: Credentials = CREDENTIALS):
        from alpaca.trading.client import TradingClient

        self.client = TradingClient(credentials.key_id, credentials.secret_key, paper=True, url_override=trading_url)

    def orders(self, status: str = "all") -> list:
        from alpaca.trading.enums import QueryOrderStatus
        from alpaca.trading.requests import GetOrdersRequest

        req = GetOrdersRequest(status=QueryOrderStatus(status), limit=500, nested=False)
        return list(self.client.get_orders(req))

    def open_orders(self) -> list:
        return self.orders("open")

    def orders_by_client_id(self) -> dict[str, Any]:
        return {o.client_order_id: o for o in self.orders("all")}

    def order(self, client_order_id: str):
        """The venue's order with this client_order_id, or None if it never got there."""
        from alpaca.common.exceptions import APIError

        try:
            return self.client.get_order_by_client_id(client_order_id)
        except APIError as exc:
            if getattr(exc, "status_code", None) == 404 or "not found" in str(exc).lower():
                return None
            raise

    def positions(self) -> dict[str, Any]:
        return {p.symbol: p for p in self.client.get_all_positions()}

    def symbols_ordered(self) -> set[str]:
        return {o.symbol for o in self.orders("all")}


# ----------------------------------------------------------------- a session fed by a JSONL file


class Pipe:
    """A started Session on the built-in venue (frozen clock at START_AT unless the
    test says otherwise) reading signals from a JSONL file in tmp_path."""

    def __init__(
        self,
        tmp_path: Path,
        settings: Settings | None = None,
        *,
        auto_approve: bool = False,
        journal: Path | None = None,
        signals_path: Path | None = None,
        sim: Mapping[str, Any] | None = None,
        **sections: Mapping[str, Any],
    ):
        from engine.session import Session

        self.tmp_path = tmp_path
        self.signals_path = signals_path or tmp_path / "signals.jsonl"
        if not self.signals_path.exists():
            self.signals_path.write_bytes(b"")
        self.settings = settings or pipeline_settings(self.signals_path, **sections)
        self.journal_path = journal or tmp_path / "journal.sqlite"
        # the test's own alpaca-py client shares the session's key: the venue's per-key
        # request limit is lifted so that the test's polling never starves the engine
        overrides = {
            "frozen_clock": True,
            "seed": SEED,
            "start_at": START_AT,
            "partial_fill_prob": 0.0,
            "rate_limit_per_minute": None,
        }
        overrides.update(sim or {})
        self.session = Session.from_settings(
            self.settings,
            journal_path=self.journal_path,
            sim_overrides=overrides,
            auto_approve=auto_approve,
            credentials=CREDENTIALS,
        )
        self.session.start()
        self.eyes = VenueEyes(self.session.venue.trading_url)
        self._last_ts: datetime | None = None
        self.stopped = False

    # --- looking
    @property
    def snapshot(self):
        return self.session.snapshot

    @property
    def venue(self):
        return self.session.venue

    def venue_now(self) -> datetime:
        return self.venue.now()

    def wait(self, predicate: Callable[[], Any], *, what: str, timeout: float = DEADLINE) -> Any:
        return wait_for(predicate, what=what, timeout=timeout)

    def report(self) -> dict[str, Any]:
        from engine.report import build_report

        return build_report(self.journal_path).to_dict()

    # --- feeding
    def next_ts(self) -> datetime:
        """Strictly after the previous batch and well within signals.max_age of the
        venue clock."""
        now = self.venue_now().replace(microsecond=0)
        floor = now - timedelta(seconds=60)
        ts = floor if self._last_ts is None or self._last_ts < floor else self._last_ts + timedelta(seconds=1)
        assert ts <= now + timedelta(seconds=60), "too many batches for one frozen minute"
        return ts

    def continue_after(self, earlier: Pipe) -> None:
        """The same signal file after a restart: new batches come after the earlier run's."""
        self._last_ts = earlier._last_ts

    def append(self, data: bytes) -> None:
        with self.signals_path.open("ab") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    def send(self, signals: Mapping[str, float], ts: datetime | None = None, *, wait: bool = True) -> datetime:
        """Append one batch line; with wait, return once the engine has processed it."""
        ts = ts or self.next_ts()
        before = self.snapshot.bars_processed
        self.append((json.dumps({"ts": iso(ts), "signals": dict(signals)}) + "\n").encode())
        self._last_ts = ts
        if wait:
            self.wait(
                lambda: self.snapshot.bars_processed > before and self.snapshot.last_bar_ts == ts,
                what=f"the engine to process the batch {iso(ts)}",
            )
        return ts

    def settled(self) -> bool:
        """No order in flight or working (full fills on a frozen venue end at once)."""
        snap = self.snapshot
        return snap.open_order_count == 0 and snap.trading_ready

    def wait_settled(self, what: str = "every order to be final") -> None:
        self.wait(self.settled, what=what)

    def execute(self, command):
        return self.session.execute_sync(command, timeout=30)

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            self.session.stop()


# ----------------------------------------------------------------- the command line


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EXECDESK_", "APCA_"))}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def _execdesk_argv() -> list[str]:
    """The installed `execdesk` script of this environment; `python -m engine` without it."""
    script = Path(sys.executable).with_name("execdesk")
    return [str(script)] if script.exists() else [sys.executable, "-m", "engine"]


EXECDESK = _execdesk_argv()


def execdesk(*argv: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`execdesk ...` as a process."""
    return subprocess.run(
        [*EXECDESK, *argv], capture_output=True, text=True, cwd=ROOT, env=env or cli_env(), timeout=timeout
    )


class RunProcess:
    """`execdesk run ...` in the background, its output in files (never a full pipe)."""

    def __init__(self, tmp_path: Path, *argv: str, env: dict[str, str] | None = None):
        self.out_path = tmp_path / "run.stdout"
        self.err_path = tmp_path / "run.stderr"
        self._out = self.out_path.open("wb")
        self._err = self.err_path.open("wb")
        self.proc = subprocess.Popen(
            [*EXECDESK, "run", *argv],
            cwd=ROOT,
            env=env or cli_env(),
            stdout=self._out,
            stderr=self._err,
            stdin=subprocess.DEVNULL,
        )

    @property
    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def describe(self) -> str:
        return f"--- stdout ---\n{self.stdout[-4000:]}\n--- stderr ---\n{self.stderr[-4000:]}"

    def wait(self, timeout: float = DEADLINE) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"execdesk run did not stop within {timeout:.0f} s\n{self.describe()}") from None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._out.close()
        self._err.close()


def status_now(journal: Path) -> dict[str, Any] | None:
    """The running session's status over its control socket (what `execdesk status
    --json` prints), or None while no session answers. Cheaper than a process per look."""
    from engine.control import ControlError, request, socket_path_for

    try:
        answer = request(socket_path_for(journal), "status", timeout=10)
    except ControlError:
        return None
    return answer.get("status")


def wait_status(
    journal: Path,
    predicate: Callable[[dict], bool],
    *,
    what: str,
    proc: RunProcess | None = None,
    timeout: float = DEADLINE,
) -> dict[str, Any]:
    def look():
        if proc is not None and proc.proc.poll() is not None:
            raise AssertionError(
                f"execdesk run exited with {proc.proc.returncode} while waiting for {what}\n{proc.describe()}"
            )
        status = status_now(journal)
        return status if status is not None and predicate(status) else None

    return wait_for(look, what=what, timeout=timeout, every=0.2)


@contextmanager
def own_venue(partial_fill_prob: float = 1.0, **options: Any) -> Iterator[SimVenue]:
    """A started venue of the test's own (this process, its own port) with the kit's
    keys, seed, universe and start time, a frozen clock and no rate limit: a session
    reaches it over HTTP like any Alpaca endpoint, the test looks at it through
    alpaca-py. `options` are SimVenue's own (they override the above)."""
    kw: dict[str, Any] = {
        "key_id": CREDENTIALS.key_id,
        "secret_key": CREDENTIALS.secret_key,
        "seed": SEED,
        "port": 0,
        "universe_path": str(UNIVERSE_PATH),
        "partial_fill_prob": partial_fill_prob,
        "start_at": START_AT,
        "frozen_clock": True,
        "rate_limit_per_minute": None,
    }
    kw.update(options)
    venue = SimVenue(**kw)
    venue.start()
    try:
        yield venue
    finally:
        venue.stop()
