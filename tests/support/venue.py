"""The local venue (engine/sim) in a process of its own: started with
`python -m engine.sim`, ready once it prints its READY line, stopped with SIGTERM
(SIGKILL if it hangs). Used by tests that need the venue's CPU apart from the
engine's (crash drills) and by the benchmarks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[2]


def venue_env(key_id: str, secret_key: str) -> dict[str, str]:
    """The environment of a child process: ours without EXECDESK_* overrides, the
    venue's keys in APCA_*, unbuffered output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXECDESK_")}
    env.update(APCA_API_KEY_ID=key_id, APCA_API_SECRET_KEY=secret_key, PYTHONUNBUFFERED="1")
    return env


class VenueProcess:
    """`python -m engine.sim --port 0 ...` in its own process; `url` is the base URL
    from its READY line. Options are the command's own (`--frozen`, `--seed 5`,
    ...): `VenueProcess(KEY, SECRET, "--frozen", "--seed", "5")`; `entry` is the
    module run with -m and its leading arguments (("engine.cli", "sim") for the
    `execdesk sim` command)."""

    def __init__(
        self,
        key_id: str,
        secret_key: str,
        *args: str,
        log: Path | None = None,
        timeout: float = 60.0,
        entry: tuple[str, ...] = ("engine.sim",),
    ) -> None:
        self.key_id, self.secret_key = key_id, secret_key
        self.log_path = log
        self._log: IO[str] | None = log.open("w") if log is not None else None
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", *entry, "--port", "0", *args],
            cwd=ROOT,
            env=venue_env(key_id, secret_key),
            stdout=subprocess.PIPE,
            stderr=self._log if self._log is not None else subprocess.DEVNULL,
            text=True,
        )
        self.url = self._await_ready(timeout)
        #: seconds from spawning the process to its READY line
        self.startup_s = time.perf_counter() - t0

    def _await_ready(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith("READY "):
                return line.split()[1].strip()
            if not line and self.proc.poll() is not None:
                break
        self.stop()
        raise RuntimeError(f"the venue process did not start (exit {self.proc.returncode}): {self.log_tail()}")

    def log_tail(self, n: int = 2000) -> str:
        if self.log_path is None:
            return "(no log kept)"
        try:
            return self.log_path.read_text()[-n:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> VenueProcess:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
