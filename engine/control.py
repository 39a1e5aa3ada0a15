"""The session's control socket: the server inside the session (ControlServer) and
its clients — `request` (one question, one answer: `execdesk status`, `approve`,
`stop`, ...) and SessionClient (an attached console: subscribed to snapshots,
sending commands, re-attaching when the session comes back). What is said on the
socket is engine/session_protocol.py.

The socket is 0600 in a directory only this user can enter (engine/lock.py); a
peer of another uid is refused (SO_PEERCRED). There is no network listener: to
watch from another machine, attach over SSH (docs/operator-guide.md)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import pwd
import socket
import stat
import struct
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from engine import session_protocol as sp
from engine.backoff import Backoff
from engine.commands import CommandResult, Halt, QueryHistory, SessionCommand
from engine.control_client import ControlError, request
from engine.errors import ExecdeskError
from engine.events import OperatorCommand
from engine.lock import ensure_runtime_dir, socket_path_for
from engine.signals import SignalInputError
from engine.snapshot import EngineSnapshot, EventRow

__all__ = ["ControlError", "ControlServer", "Link", "SessionClient", "request", "socket_path_for", "status_of"]

log = logging.getLogger("execdesk.control")

MAX_REQUEST = sp.MAX_LINE
#: how often the server looks for a new snapshot to send to subscribers (seconds; a
#: look is one reference comparison, the engine publishes at most 2 x console.max_fps)
BROADCAST_INTERVAL = 0.02
#: a subscriber that has this much unsent output is too slow: it is dropped (it re-attaches)
MAX_BACKLOG = 64 * 1024 * 1024


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
        "market_data": {
            "streamed": list(snap.market_data.streamed),
            "polled": list(snap.market_data.polled),
            "stream_limit": snap.market_data.stream_limit,
            "limit_learned": snap.market_data.limit_learned,
            "poll_interval": snap.market_data.poll_interval,
            "poll_requests_per_minute": snap.market_data.poll_requests_per_minute,
            "polls_last_minute": snap.market_data.polls_last_minute,
            "last_poll": snap.market_data.last_poll.isoformat() if snap.market_data.last_poll else None,
            "oldest_quote_age": snap.market_data.oldest_quote_age,
            "without_quote": snap.market_data.without_quote,
            "watchdog_restarts": snap.market_data.watchdog_restarts,
            "last_error": snap.market_data.last_error,
        },
    }


def _line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, default=_json_default, separators=(",", ":")).encode() + b"\n"


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of a Unix socket."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return pid, uid, gid


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


# ================================================================== the server


@dataclass
class _Client:
    client_id: str
    user: str
    pid: int | None
    writer: asyncio.StreamWriter
    name: str = "client"
    read_only: bool = False
    subscribed: bool = False

    @property
    def who(self) -> str:
        return f"{self.name} {self.client_id}, user {self.user}"


def _answers(path: Path, timeout: float = 0.5) -> bool:
    """Whether a process accepts connections on the unix socket at path (a socket
    file left by a session that died refuses them)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(timeout)
    try:
        probe.connect(str(path))
    except OSError:
        return False
    else:
        return True
    finally:
        probe.close()


class ControlServer:
    """Serves the session protocol inside the session's event loop.

    execute runs a command as the session does in process (the same CommandResult);
    journal_command writes the OperatorCommand event before a command runs;
    `batches` (the session's engine.desk.BatchService, set once the Engine runs)
    takes submit_batch requests and answers batch queries."""

    def __init__(
        self,
        path: Path,
        snapshot: Callable[[], EngineSnapshot],
        execute: Callable[[SessionCommand], Awaitable[CommandResult]],
        *,
        journal_command: Callable[[OperatorCommand], None] | None = None,
    ):
        self.path = path
        self._snapshot = snapshot
        self._execute = execute
        self._journal_command = journal_command
        self.batches: Any = None
        self._server: asyncio.AbstractServer | None = None
        self._clients: dict[str, _Client] = {}
        self._ids = itertools.count(1)
        self._base: EngineSnapshot | None = None
        self._broadcaster: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()
        self._inode: int | None = None  # of the socket this server bound

    @property
    def clients(self) -> list[dict[str, Any]]:
        return [
            {"client_id": c.client_id, "name": c.name, "user": c.user, "pid": c.pid, "read_only": c.read_only}
            for c in self._clients.values()
        ]

    async def start(self) -> None:
        """Bind the socket (0600, in the private runtime directory). A socket left
        by a session that died is replaced; one that a live session still answers on
        is not: that session serves a journal at this path that has since been moved
        or deleted under it (the lock moved with it), and taking its socket would leave
        it running out of every console's reach. Anything else in the way is an error,
        never deleted."""
        ensure_runtime_dir(self.path.parent)
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            pass
        else:
            if not stat.S_ISSOCK(st.st_mode):
                raise ControlError(
                    f"{self.path} exists and is not a socket: remove it yourself if it is not needed "
                    "(the session does not delete it)"
                )
            if _answers(self.path):
                raise ControlError(
                    "another session still answers on it (the journal it has open at this path was "
                    "moved or deleted while it ran); stop that session first: `execdesk stop` with "
                    "the same --journal reaches it"
                )
            self.path.unlink()
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=str(self.path), limit=MAX_REQUEST + 1)
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        self._inode = os.lstat(self.path).st_ino
        self._broadcaster = asyncio.get_running_loop().create_task(self._broadcast(), name="control-broadcast")

    async def stop(self, reason: str = "the session stopped") -> None:
        """Say goodbye to every client (with the reason), close, remove the socket."""
        if self._broadcaster is not None:
            self._broadcaster.cancel()
            await asyncio.gather(self._broadcaster, return_exceptions=True)
            self._broadcaster = None
        if self._server is not None:
            self._server.close()
        bye = _line({"type": "bye", "reason": reason})
        for client in list(self._clients.values()):
            with contextlib.suppress(Exception):
                client.writer.write(bye)
                await asyncio.wait_for(client.writer.drain(), timeout=1)
            client.writer.close()
        self._clients.clear()
        for task in list(self._tasks):
            task.cancel()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), timeout=2)
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            if self._inode is None or os.lstat(self.path).st_ino == self._inode:
                self.path.unlink()  # ours: never another session's socket bound at this path since

    # ------------------------------------------------------------- snapshots out

    async def _broadcast(self) -> None:
        """One diff per new snapshot, encoded once, written to every subscriber:
        a second console costs the engine one more write, not one more encoding."""
        while True:
            await asyncio.sleep(BROADCAST_INTERVAL)
            snap = self._snapshot()
            base = self._base
            if base is None or snap is base:
                self._base = snap
                continue
            subscribers = [c for c in self._clients.values() if c.subscribed]
            if subscribers:
                changes = sp.snapshot_changes(base, snap)
                data = _line({"type": "changes", **changes})
                for client in subscribers:
                    self._send(client, data)
            self._base = snap

    def _send(self, client: _Client, data: bytes) -> None:
        transport = client.writer.transport
        if transport.is_closing():
            return
        if transport.get_write_buffer_size() > MAX_BACKLOG:
            log.warning("client %s is too slow to read its snapshots: dropped", client.who)
            transport.abort()
            return
        client.writer.write(data)

    # ------------------------------------------------------------- one connection

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        try:
            pid, uid, _gid = peer_credentials(sock)
        except OSError:
            pid, uid = 0, -1
        if uid != os.getuid():
            writer.write(_line({"ok": False, "error": "refused: this session serves only the user who runs it"}))
            with contextlib.suppress(Exception):
                await writer.drain()
            writer.close()
            log.warning("refused a control client of uid %s (pid %s)", uid, pid)
            return
        client = _Client(f"c{next(self._ids)}", _user_name(uid), pid or None, writer)
        self._clients[client.client_id] = client
        try:
            while True:
                try:
                    line = await reader.readline()
                except ValueError:  # longer than the limit: answered, then closed (its end is unknown)
                    writer.write(_line({"ok": False, "error": f"request longer than {MAX_REQUEST} bytes"}))
                    await writer.drain()
                    break
                if not line:
                    break
                if not line.strip():
                    continue
                await self._on_line(client, line)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._clients.pop(client.client_id, None)
            with contextlib.suppress(Exception):
                writer.close()

    async def _on_line(self, client: _Client, line: bytes) -> None:
        try:
            req = json.loads(line.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            self._send(client, _line({"ok": False, "error": 'expected one JSON object a line, like {"cmd": "status"}'}))
            return
        if not isinstance(req, dict) or not isinstance(req.get("cmd"), str):
            answer: dict[str, Any] = {"ok": False, "error": 'expected an object with a string "cmd"'}
            if isinstance(req, dict) and "id" in req:
                answer["id"] = req["id"]
            self._send(client, _line(answer))
            return
        if req["cmd"] in (*sp.COMMAND_WORDS, "submit_batch"):
            # each command in a task of its own: a slow one (flatten, a batch being
            # taken) never holds back the next line of the same client (the kill switch)
            work = self._submit_batch if req["cmd"] == "submit_batch" else self._command
            task = asyncio.get_running_loop().create_task(work(client, req))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        self._send(client, _line(self._query(client, req)))

    def _query(self, client: _Client, req: dict[str, Any]) -> dict[str, Any]:
        cmd = req["cmd"]
        answer: dict[str, Any]
        if cmd == "hello":
            name = req.get("client")
            if isinstance(name, str) and name:
                client.name = name[:40]
            client.read_only = bool(req.get("read_only", False))
            snap = self._snapshot()
            answer = {
                "type": "hello",
                "ok": True,
                "version": sp.VERSION,
                "client_id": client.client_id,
                "user": client.user,
                "session_id": snap.session_id,
                "pid": os.getpid(),
            }
            if req.get("version") not in (None, sp.VERSION):
                answer = {
                    "ok": False,
                    "error": f"protocol version {req.get('version')!r} not served (this is {sp.VERSION})",
                }
        elif cmd == "status":
            answer = {"ok": True, "status": status_of(self._snapshot()), "clients": self.clients}
        elif cmd == "subscribe":
            base = self._base = self._base or self._snapshot()
            client.subscribed = True
            answer = {"type": "snapshot", "ok": True, "snapshot": sp.encode_snapshot(base)}
        elif cmd == "pending":
            snap = self._snapshot()
            answer = {"ok": True, "intents": [sp.intent_of(row) for row in snap.intents.values()]}
        elif cmd == "batch":
            try:
                ts = sp.batch_ts(req)
            except sp.ProtocolError as exc:
                answer = {"ok": False, "error": str(exc)}
            else:
                if self.batches is None:
                    answer = {"ok": False, "error": "this session takes no batches yet (not trading)"}
                else:
                    orders = self.batches.orders(ts)
                    answer = {"ok": True, "ts": ts.isoformat(), "orders": [sp.encode_value(o) for o in orders]}
        else:
            words = ", ".join(("hello", "status", "subscribe", "pending", *sp.COMMAND_WORDS, *sp.BATCH_WORDS))
            answer = {"ok": False, "error": f"unknown command {cmd!r} ({words})"}
        if "id" in req:
            answer["id"] = req["id"]
        return answer

    async def _command(self, client: _Client, req: dict[str, Any]) -> None:
        answer: dict[str, Any]
        try:
            command = sp.command_from_request(req, client.who)
        except sp.ProtocolError as exc:
            answer = {"ok": False, "error": str(exc)}
        else:
            if client.read_only and not isinstance(command, (Halt, QueryHistory)):
                answer = {"ok": False, "message": "a read-only console sends nothing but the kill switch"}
            else:
                if self._journal_command is not None and not isinstance(command, QueryHistory):
                    detail = {k: str(v) for k, v in req.items() if k not in ("cmd", "id") and v is not None}
                    self._journal_command(
                        OperatorCommand(
                            command=req["cmd"],
                            client_id=f"{client.name} {client.client_id}",
                            user=client.user,
                            pid=client.pid,
                            detail=detail,
                        )
                    )
                try:
                    result = await self._execute(command)
                except Exception as exc:  # answered, never a silent close
                    log.exception("control command %s failed", req["cmd"])
                    result = CommandResult(False, f"internal error: {exc!r}")
                answer = {
                    "ok": result.ok,
                    "message": result.message,
                    "count": result.count,
                    "status": status_of(self._snapshot()),
                }
                if result.rows:
                    answer["rows"] = [list(row) for row in result.rows]
                if result.chart is not None:
                    answer["chart"] = sp.encode_chart(result.chart)
        if "id" in req:
            answer["id"] = req["id"]
        with contextlib.suppress(Exception):
            self._send(client, _line(answer))
            await client.writer.drain()

    async def _submit_batch(self, client: _Client, req: dict[str, Any]) -> None:
        """A batch from an attached Desk: journaled with the client's id, then through
        the session's BatchService (a PushSource, the inbox, every check); answered once
        the Engine has taken it, or refused as in process (SignalInputError's words)."""
        answer: dict[str, Any]
        try:
            ts, kind, values = sp.batch_from_request(req)
        except sp.ProtocolError as exc:
            answer = {"ok": False, "error": str(exc)}
        else:
            if client.read_only:
                answer = {"ok": False, "error": "a read-only client may not submit batches"}
            elif self.batches is None:
                answer = {"ok": False, "error": "this session takes no batches yet (not trading)"}
            else:
                if self._journal_command is not None:
                    detail = {"ts": str(req.get("ts")), "kind": kind.value}
                    detail["values"] = json.dumps(req.get("values"), default=str, separators=(",", ":"))
                    self._journal_command(
                        OperatorCommand(
                            command="submit_batch",
                            client_id=f"{client.name} {client.client_id}",
                            user=client.user,
                            pid=client.pid,
                            detail=detail,
                        )
                    )
                try:
                    batch, taken, no_order, orders = await self.batches.submit(ts, values, kind)
                except SignalInputError as exc:
                    answer = {"ok": False, "error": str(exc), "problems": [sp.encode_value(p) for p in exc.problems]}
                except ExecdeskError as exc:
                    answer = {"ok": False, "error": str(exc)}
                except Exception as exc:  # answered, never a silent close
                    log.exception("submit_batch failed")
                    answer = {"ok": False, "error": f"internal error: {exc!r}"}
                else:
                    answer = {
                        "ok": True,
                        "ts": batch.ts.isoformat(),
                        "kind": kind.value,
                        "values": {s: str(v) for s, v in taken.items()},
                        "no_order": {s: list(why) for s, why in no_order.items()},
                        "orders": [sp.encode_value(o) for o in orders],
                    }
        if "id" in req:
            answer["id"] = req["id"]
        with contextlib.suppress(Exception):
            self._send(client, _line(answer))
            await client.writer.drain()


# ================================================================== one-shot client


# ================================================================== attached client


@dataclass(frozen=True)
class Link:
    """How a front end is attached to its session: "up" (live), "connecting"
    (never attached yet) or "gone" (the session went away; the last snapshot is
    kept and stale)."""

    state: str = "up"
    detail: str = ""
    since: float = 0.0

    @property
    def up(self) -> bool:
        return self.state == "up"


#: re-attaching: first try at once, then up to every 2 s
REATTACH = Backoff(initial=0.2, factor=2.0, cap=2.0, jitter=0.25)


class SessionClient:
    """An EngineHandle over the session socket, for consoles: the latest snapshot
    (kept, marked stale, while the session is away), commands answered with the
    session's CommandResult, re-attaching by itself. Runs its own thread and loop;
    every call is safe from any thread or loop.

    read_only: an observer. It sends nothing but the kill switch (refused here, and
    the session refuses it too). on_event: called (from the client's thread) with each
    event row that arrives after attaching."""

    def __init__(
        self,
        path: Path,
        *,
        name: str = "console",
        read_only: bool = False,
        reattach: bool = True,
        on_event: Callable[[EventRow], None] | None = None,
    ):
        self.path = path
        self.on_event = on_event
        self.name = name
        self.read_only = read_only
        self.reattach = reattach
        self._snapshot = EngineSnapshot()
        self._link = Link("connecting", f"attaching to {path}", time.monotonic())
        self.client_id = ""
        self.session_pid: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[int, asyncio.Future] = {}
        self._ids = itertools.count(1)
        self._closing = False
        self._attached = threading.Event()
        self.attach_count = 0

    # -- EngineHandle

    @property
    def snapshot(self) -> EngineSnapshot:
        return self._snapshot

    @property
    def link(self) -> Link:
        return self._link

    async def execute(self, command: SessionCommand) -> CommandResult:
        return await asyncio.wrap_future(self._call(command))

    def execute_sync(self, command: SessionCommand, timeout: float = 10.0) -> CommandResult:
        return self._call(command).result(timeout)

    def stop(self) -> None:
        """Detach (the session keeps running)."""
        self.close()

    # -- life

    def start(self, timeout: float | None = None) -> SessionClient:
        """Start attaching; with timeout, wait that long for the first snapshot and
        raise ControlError if it did not come."""
        self._thread = threading.Thread(target=self._thread_main, name="execdesk-attach", daemon=True)
        self._thread.start()
        if timeout is not None and not self._attached.wait(timeout):
            detail = self._link.detail
            self.close()
            raise ControlError(f"could not attach to the session at {self.path}: {detail}")
        return self

    def wait_attached(self, timeout: float) -> bool:
        return self._attached.wait(timeout)

    def close(self) -> None:
        self._closing = True
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._close_writer)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)

    def _close_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()

    def _thread_main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._run())
        finally:
            loop.close()

    async def _run(self) -> None:
        delays = REATTACH.delays()
        while not self._closing:
            try:
                await self._attach_once()
                delays = REATTACH.delays()  # it was up: start the back-off afresh
            except (OSError, ValueError, ControlError, asyncio.IncompleteReadError) as exc:
                if self._link.state != "gone" or not self._link.detail:
                    self._set_link("gone" if self.attach_count else "connecting", _why(exc, self.path))
            self._fail_pending("the session went away before answering")
            if self._closing or not self.reattach:
                break
            await asyncio.sleep(next(delays))
            if not self._closing and self._link.state == "gone" and "re-attaching" not in self._link.detail:
                self._set_link("gone", self._link.detail + " — re-attaching when it is back")

    async def _attach_once(self) -> None:
        reader, writer = await asyncio.open_unix_connection(str(self.path), limit=1 << 30)
        self._writer = writer
        try:
            writer.write(
                _line({"cmd": "hello", "version": sp.VERSION, "client": self.name, "read_only": self.read_only})
            )
            writer.write(_line({"cmd": "subscribe"}))
            await writer.drain()
            while not self._closing:
                line = await reader.readline()
                if not line:
                    if self._link.up and not self._closing:
                        self._set_link("gone", "the session closed the connection (stopped or crashed)")
                    raise ControlError("the session closed the connection")
                self._on_message(json.loads(line))
        finally:
            self._writer = None
            writer.close()

    def _on_message(self, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        if "id" in msg and isinstance(msg["id"], int):
            fut = self._pending.pop(msg["id"], None)
            if fut is not None and not fut.done():
                fut.set_result(msg)
            return
        if kind == "hello":
            if not msg.get("ok", True):
                raise ControlError(str(msg.get("error")))
            self.client_id = str(msg.get("client_id", ""))
            self.session_pid = msg.get("pid")
        elif kind == "snapshot":
            self._snapshot = sp.decode_snapshot(msg["snapshot"])
            self.attach_count += 1
            self._set_link("up", f"attached to session {self._snapshot.session_id} (pid {self.session_pid})")
            self._attached.set()
        elif kind == "changes":
            before = self._snapshot
            self._snapshot = sp.apply_changes(before, msg)
            if self.on_event is not None and self._snapshot.events is not before.events:
                last = before.events[-1].seq if before.events else -1
                for row in self._snapshot.events:
                    if row.seq > last:
                        self.on_event(row)
        elif kind == "bye":
            self._set_link("gone", f"the session ended: {msg.get('reason', 'stopped')}")
        elif msg.get("ok") is False and "error" in msg:
            raise ControlError(str(msg["error"]))

    def _set_link(self, state: str, detail: str) -> None:
        self._link = Link(state, detail, time.monotonic())

    def _fail_pending(self, why: str) -> None:
        for fut in self._pending.values():
            if not fut.done():
                fut.set_result({"ok": False, "message": why})
        self._pending.clear()

    def _call(self, command: SessionCommand) -> Future:
        loop = self._loop
        if self.read_only and not isinstance(command, (Halt, QueryHistory)):
            f: Future = Future()
            f.set_result(CommandResult(False, "a read-only console sends nothing but the kill switch"))
            return f
        if loop is None or loop.is_closed():
            f = Future()
            f.set_result(CommandResult(False, "not attached to a session"))
            return f
        return asyncio.run_coroutine_threadsafe(self._request(command), loop)

    async def _request(self, command: SessionCommand) -> CommandResult:
        return sp.result_of(await self._ask(sp.request_for(command)))

    def ask(self, req: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
        """Send any request (a batch, a query) and return the session's answer; an
        answer {"ok": false, "message": ...} when not attached."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return {"ok": False, "message": "not attached to a session"}
        try:
            return asyncio.run_coroutine_threadsafe(self._ask(req), loop).result(timeout)
        except TimeoutError:
            return {"ok": False, "message": f"the session did not answer within {timeout:.0f} s"}

    async def _ask(self, req: dict[str, Any]) -> dict[str, Any]:
        writer = self._writer
        if writer is None or not self._link.up:
            return {"ok": False, "message": f"not sent: not attached ({self._link.detail})"}
        rid = next(self._ids)
        fut = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        writer.write(_line({**req, "id": rid}))
        await writer.drain()
        answer: dict[str, Any] = await fut
        return answer


def _why(exc: BaseException, path: Path) -> str:
    if isinstance(exc, FileNotFoundError):
        return f"no session is running (no control socket at {path})"
    if isinstance(exc, ConnectionRefusedError):
        return f"no session is running at {path}"
    return str(exc) or type(exc).__name__
