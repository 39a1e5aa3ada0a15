"""Control of a running session from other processes: a Unix socket next to the
journal (mode 0600), one JSON request per line, one JSON answer per line.

Requests: {"cmd": "status"} | {"cmd": "halt"} | {"cmd": "resume"} | {"cmd": "flatten"}.
`execdesk status|halt|resume|flatten` are the clients."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from engine.commands import Command, CommandResult, Flatten, Halt, Resume
from engine.errors import ExecdeskError
from engine.snapshot import EngineSnapshot

MAX_REQUEST = 4096


class ControlError(ExecdeskError):
    """The session cannot be reached or answered badly."""


def socket_path_for(journal_path: str | os.PathLike[str]) -> Path:
    p = Path(journal_path)
    return p.with_name(p.name + ".sock")


def status_of(snap: EngineSnapshot) -> dict[str, Any]:
    """The status a control client sees: plain JSON, Decimals as strings."""
    return {
        "session_id": snap.session_id,
        "trading_state": snap.trading_state.value,
        "state_cause": snap.state_cause,
        "trading_ready": snap.trading_ready,
        "not_ready_reason": snap.not_ready_reason,
        "mode": snap.mode,
        "venue": snap.venue,
        "equity": str(snap.equity),
        "day_pl": str(snap.day_pl),
        "daily_loss_limit": str(snap.daily_loss_limit),
        "open_orders": snap.open_order_count,
        "external_orders": snap.external_order_count,
        "positions": len(snap.positions),
        "awaiting_approval": len(snap.intents),
        "bars_processed": snap.bars_processed,
        "last_bar": snap.last_bar_ts.isoformat() if snap.last_bar_ts else None,
        "venue_time": snap.venue_time.isoformat() if snap.venue_time else None,
        "market_open": snap.market_open,
        "connectivity": {
            "rest": snap.connectivity.rest,
            "trade_stream": snap.connectivity.trade_stream,
            "market_data": snap.connectivity.market_data,
            "reconciling": snap.connectivity.reconciling,
            "rate_limited": snap.connectivity.rate_limited,
            "journal_ok": snap.connectivity.journal_ok,
        },
        # every symbol's override in force (configured or set at run time); Decimals as strings
        "overrides": {
            sym: {
                "mode": o.mode,
                "max_position_usd": str(o.max_position_usd) if o.max_position_usd is not None else None,
                "max_position_pct": o.max_position_pct,
                "size_multiplier": o.size_multiplier,
                "side": o.side,
                "changed_at": o.changed_at.isoformat() if o.changed_at else None,
            }
            for sym, o in snap.overrides.items()
        },
        "kill_switch": {
            "phase": snap.kill_switch.phase,
            "cancels_requested": snap.kill_switch.cancels_requested,
            "cancels_confirmed": snap.kill_switch.cancels_confirmed,
        },
    }


_COMMANDS: dict[str, Callable[[], Command]] = {
    "halt": lambda: Halt(cause="operator (control socket)"),
    "resume": lambda: Resume(cause="operator (control socket)"),
    "flatten": lambda: Flatten(cause="operator (control socket)"),
}


class ControlServer:
    """Serves the control socket inside the Engine's event loop."""

    def __init__(
        self,
        path: Path,
        snapshot: Callable[[], EngineSnapshot],
        execute: Callable[[Command], Awaitable[CommandResult]],
    ):
        self.path = path
        self._snapshot = snapshot
        self._execute = execute
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        if self.path.exists():
            if _alive(self.path):
                raise ControlError(f"another session is running on {self.path}")
            self.path.unlink()
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), timeout=5)
            answer = await self._answer(line)
        except (TimeoutError, ConnectionError):
            answer = {"ok": False, "error": "no request"}
        try:
            writer.write(json.dumps(answer, default=_json_default).encode() + b"\n")
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def _answer(self, line: bytes) -> dict[str, Any]:
        if len(line) > MAX_REQUEST:
            return {"ok": False, "error": "request too large"}
        try:
            req = json.loads(line.decode("utf-8"))
            cmd = req["cmd"]
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            return {"ok": False, "error": 'expected one JSON line like {"cmd": "status"}'}
        if cmd == "status":
            return {"ok": True, "status": status_of(self._snapshot())}
        make = _COMMANDS.get(cmd)
        if make is None:
            return {"ok": False, "error": f"unknown command {cmd!r} (status, halt, resume, flatten)"}
        result = await self._execute(make())
        snap = self._snapshot()
        return {"ok": result.ok, "message": result.message, "status": status_of(snap)}


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


def _alive(path: Path) -> bool:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(1)
    try:
        s.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        s.close()


def request(path: Path, cmd: str, timeout: float = 15.0) -> dict[str, Any]:
    """Send one command to a running session; raise ControlError if none answers."""
    if not path.exists():
        raise ControlError(f"no session is running (no control socket at {path})")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        try:
            s.connect(str(path))
        except OSError as exc:
            raise ControlError(f"no session is running at {path} ({exc.strerror or exc})") from None
        s.sendall(json.dumps({"cmd": cmd}).encode() + b"\n")
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            if chunk.endswith(b"\n"):
                break
    except TimeoutError:
        raise ControlError(f"the session at {path} did not answer within {timeout:.0f} s") from None
    finally:
        s.close()
    try:
        return json.loads(b"".join(chunks).decode("utf-8"))
    except ValueError:
        raise ControlError(f"the session at {path} answered something that is not JSON") from None
