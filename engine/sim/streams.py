"""The venue's WebSocket streams: ``trade_updates`` (JSON, ``/stream``) and the msgpack
market data stream (``/v2/iex``, also ``/v2/sip``), with their per-connection queues."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections import deque
from typing import Any

import msgpack
from aiohttp import WSMsgType, web

from .errors import CODE_UNAVAILABLE
from .exchange import Exchange
from .faults import Faults
from .market_data_api import TAPE
from .plan import FEEDS, ConnectionSlots, feed_allowed, within_symbol_limit
from .prices import PriceModel
from .wire import MAX_BODY, compact_json, error_response

log = logging.getLogger("engine.sim")

TRADE_STREAM_PATH = "/stream"
DATA_STREAM_PATHS = ("/v2/iex", "/v2/sip", "/v2/test")
TRADE_SLOT = "trade_updates"
DATA_CHANNELS = (
    "trades",
    "quotes",
    "bars",
    "updatedBars",
    "dailyBars",
    "statuses",
    "lulds",
    "corrections",
    "cancelErrors",
)


class _Event:
    """A trade update, serialized once however many clients receive it."""

    __slots__ = ("data", "due", "payload")

    def __init__(self, payload: dict, due: float = 0.0) -> None:
        self.payload = payload
        self.data: bytes | None = None
        self.due = due  # monotonic time before which it is not sent (the trade_stream_delay_ms fault)

    def bytes(self) -> bytes:
        if self.data is None:
            self.data = compact_json({"stream": "trade_updates", "data": self.payload}).encode()
        return self.data


class StreamClient:
    """One stream connection: its queue of outgoing items and the task that writes them."""

    def __init__(self, ws: web.WebSocketResponse, slot: str) -> None:
        self.ws = ws
        self.slot = slot  # its stream in ConnectionSlots
        self.queue: deque = deque()
        self.wake = asyncio.Event()
        self.task: asyncio.Task | None = None
        self.closed = False
        self.cut = False  # dropped by the drill without a close: its slot is held
        self.deaf = False  # a ping went unanswered (muted, pings ignored): a half-dead socket
        self.transport: Any = None

    def push(self, item: Any) -> None:
        self.queue.append(item)
        self.wake.set()


class DataClient(StreamClient):
    """A market data connection: its feed and its subscriptions per channel."""

    def __init__(self, ws: web.WebSocketResponse, feed: str) -> None:
        super().__init__(ws, "data:" + feed)
        self.feed = feed
        self.subs: dict[str, set[str]] = {c: set() for c in DATA_CHANNELS}


class StreamRoutes:
    """The stream handlers and writers (a part of SimServer)."""

    key_id: str
    secret_key: str
    exchange: Exchange
    model: PriceModel
    faults: Faults
    fault_rng: random.Random
    internal_errors: int
    plan: str
    slots: ConnectionSlots
    trade_clients: set[StreamClient]
    trade_sockets: set[StreamClient]
    data_clients: set[DataClient]
    data_sockets: set[DataClient]

    def add_stream_routes(self, r: web.UrlDispatcher) -> None:
        r.add_get(TRADE_STREAM_PATH, self.trade_stream)
        for p in DATA_STREAM_PATHS:
            r.add_get(p, self.data_stream)

    # ------------------------------------------------------------------ trade_updates
    def _update_listener(self) -> None:
        """Order events are built only while someone listens (they are not replayed)."""
        listening = self._on_trade_event in self.exchange.listeners
        if self.trade_clients and not listening:
            self.exchange.listeners.append(self._on_trade_event)
        elif not self.trade_clients and listening:
            self.exchange.listeners.remove(self._on_trade_event)

    def _on_trade_event(self, payload: dict) -> None:
        if not self.trade_clients or self.faults.trade_stream_muted:
            return  # muted: the update is lost, as on a silent socket (no replay)
        delay = self.faults.trade_stream_delay_ms
        ev = _Event(payload, time.monotonic() + delay / 1000.0 if delay else 0.0)
        dup = self.faults.stream_duplicate
        for c in self.trade_clients:
            c.push(ev)
            if dup and self.fault_rng.random() < dup:
                c.push(ev)

    async def trade_stream(self, request: web.Request) -> web.StreamResponse:
        if self.faults.trade_stream_down:
            return error_response(503, CODE_UNAVAILABLE, "trade stream unavailable (injected)")
        ws = web.WebSocketResponse(autoping=False, max_msg_size=MAX_BODY)
        await ws.prepare(request)
        client = StreamClient(ws, TRADE_SLOT)
        client.transport = request.transport
        self.trade_sockets.add(client)
        authed = False
        try:
            async for msg in ws:
                if await self._pinged(client, msg, self.faults.trade_stream_muted):
                    continue
                if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    continue
                try:
                    data = json.loads(msg.data)
                    if not isinstance(data, dict):
                        raise ValueError
                except (ValueError, UnicodeDecodeError, RecursionError):
                    await self._ws_json(ws, {"stream": "error", "data": {"error_message": "invalid syntax"}})
                    continue
                action = data.get("action")
                raw_inner = data.get("data")
                inner: dict[str, Any] = raw_inner if isinstance(raw_inner, dict) else {}
                if action in ("authenticate", "auth"):
                    key = inner.get("key_id", data.get("key"))
                    secret = inner.get("secret_key", data.get("secret"))
                    if key == self.key_id and secret == self.secret_key:
                        if not self.slots.acquire(TRADE_SLOT, client):
                            await self._ws_json(
                                ws,
                                {
                                    "stream": "authorization",
                                    "data": {
                                        "status": "unauthorized",
                                        "action": "authenticate",
                                        "error_code": 406,
                                        "error_message": "connection limit exceeded",
                                    },
                                },
                            )
                            await ws.close()
                            break
                        authed = True
                        await self._ws_json(
                            ws, {"stream": "authorization", "data": {"status": "authorized", "action": "authenticate"}}
                        )
                    else:
                        await self._ws_json(
                            ws,
                            {"stream": "authorization", "data": {"status": "unauthorized", "action": "authenticate"}},
                        )
                        await ws.close()
                        break
                elif action == "listen":
                    if not authed:
                        await self._ws_json(
                            ws, {"stream": "authorization", "data": {"status": "unauthorized", "action": "listen"}}
                        )
                        await ws.close()
                        break
                    streams = inner.get("streams")
                    if not isinstance(streams, list):
                        await self._ws_json(
                            ws, {"stream": "error", "data": {"error_message": "invalid listen request"}}
                        )
                        continue
                    listening = [s for s in streams if s == "trade_updates"]
                    if listening and client not in self.trade_clients:
                        self.trade_clients.add(client)
                        client.task = asyncio.get_running_loop().create_task(self._trade_writer(client))
                    elif not listening and client in self.trade_clients:
                        self.trade_clients.discard(client)
                    self._update_listener()
                    await self._ws_json(ws, {"stream": "listening", "data": {"streams": listening}})
                else:
                    await self._ws_json(ws, {"stream": "error", "data": {"error_message": "unknown action"}})
        finally:
            self.slots.release(TRADE_SLOT, client, hold=client.cut or client.deaf)
            self.trade_sockets.discard(client)
            self.trade_clients.discard(client)
            self._update_listener()
            client.closed = True
            client.wake.set()
            if client.task:
                client.task.cancel()
        return ws

    async def _pinged(self, client: StreamClient, msg: Any, muted: bool) -> bool:
        """A websocket ping or pong (the handlers answer pings themselves): True when
        `msg` was one. A muted stream with pings ignored leaves the ping unanswered, as
        a half-dead connection does; Alpaca then holds the slot (as after a cut)."""
        if msg.type is WSMsgType.PING:
            if muted and not self.faults.muted_answer_pings:
                client.deaf = True
            else:
                client.deaf = False
                await client.ws.pong(msg.data)
            return True
        return msg.type is WSMsgType.PONG

    async def _ws_json(self, ws: web.WebSocketResponse, obj: dict) -> None:
        await ws.send_bytes(json.dumps(obj).encode())

    async def _trade_writer(self, c: StreamClient) -> None:
        ws = c.ws
        try:
            while not c.closed:
                await c.wake.wait()
                c.wake.clear()
                batch = list(c.queue)
                c.queue.clear()
                reorder = self.faults.stream_reorder
                if reorder and len(batch) > 1:
                    i = 0
                    while i < len(batch) - 1:
                        if self.fault_rng.random() < reorder:
                            batch[i], batch[i + 1] = batch[i + 1], batch[i]
                            i += 2
                        else:
                            i += 1
                for ev in batch:
                    if ev.due:
                        wait = ev.due - time.monotonic()
                        if wait > 0:
                            await asyncio.sleep(wait)
                    if ws.closed:
                        return
                    await ws.send_bytes(ev.bytes())
        except (ConnectionError, asyncio.CancelledError):
            pass
        except Exception:
            self.internal_errors += 1
            log.exception("trade stream writer failed")

    async def _close_client(self, c: StreamClient, code: int = 1011) -> None:
        c.closed = True
        c.wake.set()
        if c.cut:
            # a network cut: no close frame; the slot stays held (released with hold=True)
            if c.transport is not None:
                c.transport.abort()
            return
        try:
            await c.ws.close(code=code, message=b"dropped by the venue")
        except Exception:
            pass

    # ------------------------------------------------------------------ data stream
    async def data_stream(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=False, max_msg_size=1 << 20)
        await ws.prepare(request)
        client = DataClient(ws, FEEDS.get(request.path, "iex"))
        client.transport = request.transport
        self.data_sockets.add(client)
        authed = False
        await ws.send_bytes(msgpack.packb([{"T": "success", "msg": "connected"}]))
        try:
            async for msg in ws:
                if await self._pinged(client, msg, self.faults.data_stream_muted):
                    continue
                if msg.type == WSMsgType.BINARY:
                    try:
                        data = msgpack.unpackb(msg.data)
                    except Exception:
                        data = None
                elif msg.type == WSMsgType.TEXT:
                    try:
                        data = json.loads(msg.data)
                    except (ValueError, RecursionError):
                        data = None
                else:
                    continue
                if not isinstance(data, dict):
                    await ws.send_bytes(msgpack.packb([{"T": "error", "code": 400, "msg": "invalid syntax"}]))
                    continue
                action = data.get("action")
                if action == "auth":
                    if data.get("key") == self.key_id and data.get("secret") == self.secret_key:
                        refusal = None
                        if not feed_allowed(self.plan, client.feed):
                            refusal = {"T": "error", "code": 409, "msg": "insufficient subscription"}
                        elif not self.slots.acquire(client.slot, client):
                            refusal = {"T": "error", "code": 406, "msg": "connection limit exceeded"}
                        if refusal is not None:
                            await ws.send_bytes(msgpack.packb([refusal]))
                            await ws.close()
                            break
                        authed = True
                        await ws.send_bytes(msgpack.packb([{"T": "success", "msg": "authenticated"}]))
                    else:
                        await ws.send_bytes(msgpack.packb([{"T": "error", "code": 402, "msg": "auth failed"}]))
                        await ws.close()
                        break
                elif action in ("subscribe", "unsubscribe"):
                    if not authed:
                        await ws.send_bytes(msgpack.packb([{"T": "error", "code": 401, "msg": "not authenticated"}]))
                        continue
                    subs = {ch: set(v) for ch, v in client.subs.items()}
                    for ch in DATA_CHANNELS:
                        syms = data.get(ch)
                        if not isinstance(syms, list):
                            continue
                        syms = {str(s).upper() for s in syms}
                        if action == "subscribe":
                            subs[ch] |= syms
                        else:
                            subs[ch] -= syms
                    if not within_symbol_limit(self.plan, subs):
                        # Alpaca: the subscription stays as it was, the socket stays open
                        await ws.send_bytes(
                            msgpack.packb([{"T": "error", "code": 405, "msg": "symbol limit exceeded"}])
                        )
                        continue
                    client.subs = subs
                    if any(client.subs.values()):
                        self.data_clients.add(client)
                        if client.task is None:
                            client.task = asyncio.get_running_loop().create_task(self._data_writer(client))
                    ack: dict[str, Any] = {"T": "subscription"}
                    ack.update({ch: sorted(client.subs[ch]) for ch in DATA_CHANNELS})
                    await ws.send_bytes(msgpack.packb([ack]))
                else:
                    await ws.send_bytes(msgpack.packb([{"T": "error", "code": 400, "msg": "invalid syntax"}]))
        finally:
            self.slots.release(client.slot, client, hold=client.cut or client.deaf)
            self.data_sockets.discard(client)
            self.data_clients.discard(client)
            client.closed = True
            client.wake.set()
            if client.task:
                client.task.cancel()
        return ws

    def _on_market(self) -> None:
        quotes, trades, bars = self.model.drain()
        if not self.data_clients or not (quotes or trades or bars) or self.faults.data_stream_muted:
            return
        markets = self.model.markets
        q_msgs = {
            s: {
                "T": "q",
                "S": s,
                "bx": "V",
                "bp": float(q.bp),
                "bs": q.bs,
                "ax": "V",
                "ap": float(q.ap),
                "as": q.as_,
                "c": ["R"],
                "z": TAPE.get(markets[s].asset.exchange, "C"),
                "t": msgpack.Timestamp.from_unix_nano(q.t),
            }
            for s, q in quotes.items()
        }
        for c in self.data_clients:
            out: list[dict[str, Any]] = []
            sq, st, sb = c.subs["quotes"], c.subs["trades"], c.subs["bars"]
            if sq:
                out.extend(m for s, m in q_msgs.items() if s in sq or "*" in sq)
            if st:
                for s, (t_ns, p, size, i) in trades:
                    if s in st or "*" in st:
                        out.append(
                            {
                                "T": "t",
                                "S": s,
                                "i": i,
                                "x": "V",
                                "p": p,
                                "s": size,
                                "c": ["@"],
                                "z": TAPE.get(markets[s].asset.exchange, "C"),
                                "t": msgpack.Timestamp.from_unix_nano(t_ns),
                            }
                        )
            if sb:
                for s, b in bars:
                    if s in sb or "*" in sb:
                        out.append(
                            {
                                "T": "b",
                                "S": s,
                                "o": b.o,
                                "h": b.h,
                                "l": b.l,
                                "c": b.c,
                                "v": b.v,
                                "n": b.n,
                                "vw": b.vw,
                                "t": msgpack.Timestamp.from_unix_nano(b.t),
                            }
                        )
            if out:
                c.push(out)

    async def _data_writer(self, c: DataClient) -> None:
        ws = c.ws
        try:
            while not c.closed:
                await c.wake.wait()
                c.wake.clear()
                batches = list(c.queue)
                c.queue.clear()
                msgs = [m for b in batches for m in b]
                # keep frames well under the client's limits
                for i in range(0, len(msgs), 500):
                    if ws.closed:
                        return
                    await ws.send_bytes(msgpack.packb(msgs[i : i + 500]))
        except (ConnectionError, asyncio.CancelledError):
            pass
        except Exception:
            self.internal_errors += 1
            log.exception("data stream writer failed")
