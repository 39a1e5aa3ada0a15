"""The session protocol (version 1): what travels over a session's control socket.
Newline-delimited JSON, one object a line, at most MAX_LINE bytes a line.

Client -> session, each request an object with "cmd" and an optional "id" (echoed
in its answer):

    {"cmd": "hello", "version": 1, "client": "console"}   -> {"type": "hello", "version": 1,
                                                             "client_id": ..., "session_id": ..., "pid": ...}
    {"cmd": "status"}                                      -> {"ok": true, "status": {...}}
    {"cmd": "subscribe"}                                   -> {"type": "snapshot", "snapshot": {...}}
                                                              then {"type": "changes", ...} as it changes
    {"cmd": "pending"}                                     -> {"ok": true, "intents": [...]}
    {"cmd": "halt" | "resume" | "flatten" | "approve_all" | "reject_all" | "stop"}
    {"cmd": "approve" | "reject", "intent_id": ID}
    {"cmd": "cancel", "client_order_id": ID}
    {"cmd": "override", "symbol": S, "mode": ..., "max_position_usd": "N", "max_position_pct": x,
     "size_multiplier": x, "side": ..., "clear": false}
        -> {"ok": bool, "message": str, "count": int, "status": {...}}   (a CommandResult)
    {"cmd": "history", "key": ID or SYMBOL}                -> the same, with "rows": [[journal ts, what, facts]]
        and, for a symbol, "chart": {"symbol", "prices": [[ts, "close"]], "marks": [[ts, "entry"|"exit",
        "price"]], "stop": "price" | null}
    {"cmd": "submit_batch", "ts": ISO, "kind": "score" | "weight", "values": {symbol: "decimal string"}}
        (a value the sender gave as text travels as {"text": "..."} and is refused NOT_A_NUMBER)
        -> {"ok": true, "ts": ISO, "kind": ..., "values": {symbol: str}, "no_order": {symbol: [reason, detail]},
            "orders": [order, ...]}   once the Engine has taken the batch (a Desk.attach batch)
        or {"ok": false, "error": "batch refused, no order sent: ...", "problems": [{reason, detail, symbol, line}]}
    {"cmd": "batch", "ts": ISO}                            -> {"ok": true, "ts": ISO, "orders": [order, ...]}
        (an order: client_order_id, symbol, side, qty, limit_price, status, filled_qty,
         filled_avg_price, denial, detail — engine.desk.OrderResult, Decimals as strings)

A bad request (bad JSON, no or a non-string "cmd", a line over MAX_LINE, an
unknown command) gets {"ok": false, "error": "..."}; the connection stays open
(a line too long is answered, then the connection is closed: its end is unknown).

Session -> subscriber: first the whole EngineSnapshot (every dataclass as an
object, Decimals as strings, datetimes in ISO 8601, enums by value, the event log
as its bounded catch-up of recent rows), then "changes": the top-level fields
that changed, for each keyed table (intents, orders, positions, overrides) the
rows upserted and the keys removed, and the new event rows. `decode_snapshot`
and `apply_changes` rebuild the same EngineSnapshot type on the client. When the
session ends it says {"type": "bye", "reason": ...} before closing."""

from __future__ import annotations

import dataclasses
import enum
import numbers
import types
import typing
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from functools import cache
from types import MappingProxyType
from typing import Any

from engine.commands import (
    ApproveAll,
    ApproveIntent,
    CancelOrder,
    CommandResult,
    Flatten,
    Halt,
    PriceChart,
    QueryHistory,
    RejectAll,
    RejectIntent,
    Resume,
    SessionCommand,
    SetOverride,
    StopSession,
)
from engine.errors import ExecdeskError
from engine.signals.types import SignalKind
from engine.snapshot import EngineSnapshot, EventRow, IntentRow

VERSION = 1
#: the longest line either side accepts, in bytes (a whole snapshot of 10,000 orders
#: is sent as one line by the session: the limit is for requests)
MAX_LINE = 64 * 1024
#: keyed tables of the snapshot: sent as per-row changes
TABLES = ("intents", "orders", "positions", "overrides")


class ProtocolError(ExecdeskError):
    """A request or message that does not follow the session protocol."""


# ------------------------------------------------------------------ values


def encode_value(value: Any) -> Any:
    """A snapshot value as JSON data: dataclasses as objects, Decimal as str,
    datetime as ISO 8601, enums by value, mappings as objects, tuples as lists."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode_value(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): encode_value(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [encode_value(v) for v in value]
    raise ProtocolError(f"cannot encode {type(value).__name__}")


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def decode_value(tp: Any, data: Any) -> Any:
    """JSON data back into the type `tp` (the inverse of encode_value)."""
    if data is None:
        return None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        return decode_value(options[0], data) if len(options) == 1 else data
    if origin in (tuple,):
        args = typing.get_args(tp)
        item = args[0] if args else Any
        return tuple(decode_value(item, v) for v in data)
    if origin in (Mapping, dict) or tp is Mapping:
        args = typing.get_args(tp)
        item = args[1] if len(args) == 2 else Any
        return MappingProxyType({k: decode_value(item, v) for k, v in data.items()})
    if tp is Decimal:
        return Decimal(data)
    if tp is datetime:
        return datetime.fromisoformat(data)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp(data)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints = _hints(tp)
        kwargs = {f.name: decode_value(hints[f.name], data[f.name]) for f in dataclasses.fields(tp) if f.name in data}
        return tp(**kwargs)
    if tp is float and isinstance(data, int):
        return float(data)
    return data


_ROW_TYPES: dict[str, Any] = {}


def _row_type(table: str) -> Any:
    if not _ROW_TYPES:
        hints = _hints(EngineSnapshot)
        for name in TABLES:
            _ROW_TYPES[name] = typing.get_args(hints[name])[1]
    return _ROW_TYPES[table]


# ------------------------------------------------------------------ snapshots


def encode_snapshot(snap: EngineSnapshot) -> dict[str, Any]:
    return encode_value(snap)


def decode_snapshot(data: Mapping[str, Any]) -> EngineSnapshot:
    snap = decode_value(EngineSnapshot, dict(data))
    assert isinstance(snap, EngineSnapshot)
    return snap


def snapshot_changes(old: EngineSnapshot, new: EngineSnapshot) -> dict[str, Any]:
    """What changed from `old` to `new`, as data: only changed fields, only changed
    rows (the Engine reuses unchanged row objects, so identity finds them), only the
    event rows after the last one `old` had."""
    fields: dict[str, Any] = {}
    tables: dict[str, Any] = {}
    for f in dataclasses.fields(EngineSnapshot):
        name = f.name
        a, b = getattr(old, name), getattr(new, name)
        if a is b:
            continue
        if name in TABLES:
            upsert = {k: encode_value(row) for k, row in b.items() if a.get(k) is not row}
            remove = [k for k in a if k not in b]
            if upsert or remove:
                tables[name] = {"upsert": upsert, "remove": remove}
        elif name == "events":
            last = a[-1].seq if a else -1
            fields["events_new"] = [encode_value(e) for e in b if e.seq > last]
            fields["events_keep"] = len(b)
        elif a != b:
            fields[name] = encode_value(b)
    return {"fields": fields, "tables": tables}


def apply_changes(snap: EngineSnapshot, changes: Mapping[str, Any]) -> EngineSnapshot:
    """The snapshot after `changes` (from snapshot_changes) — the same type, rows
    not mentioned kept as they were (so identity still says what changed)."""
    hints = _hints(EngineSnapshot)
    update: dict[str, Any] = {}
    fields = dict(changes.get("fields", {}))
    if "events_new" in fields:
        new_rows = tuple(decode_value(EventRow, e) for e in fields.pop("events_new"))
        keep = int(fields.pop("events_keep", len(snap.events) + len(new_rows)))
        merged = snap.events + new_rows
        update["events"] = merged[-keep:] if keep else ()
    for name, value in fields.items():
        if name in hints:
            update[name] = decode_value(hints[name], value)
    for name, change in changes.get("tables", {}).items():
        if name not in TABLES:
            continue
        rows = dict(getattr(snap, name))
        for key in change.get("remove", ()):
            rows.pop(key, None)
        row_type = _row_type(name)
        for key, row in change.get("upsert", {}).items():
            rows[key] = decode_value(row_type, row)
        update[name] = MappingProxyType(rows)
    return dataclasses.replace(snap, **update)


def intent_of(row: IntentRow) -> dict[str, Any]:
    return encode_value(row)


# ------------------------------------------------------------------ commands

#: request words that are commands to the session (everything else is a query)
COMMAND_WORDS = (
    "halt",
    "resume",
    "flatten",
    "approve",
    "reject",
    "approve_all",
    "reject_all",
    "cancel",
    "override",
    "stop",
    "history",  # a query (QueryHistory): answered with rows, not journaled, open to observers
)


def _text(req: Mapping[str, Any], key: str) -> str:
    value = req.get(key)
    if not isinstance(value, str) or not value:
        raise ProtocolError(f'"{key}" must be a non-empty string')
    return value


def _optional(req: Mapping[str, Any], key: str, kind: type) -> Any:
    value = req.get(key)
    if value is None:
        return None
    if kind is Decimal:
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise ProtocolError(f'"{key}" must be a decimal number as a string')
        try:
            return Decimal(str(value))
        except ArithmeticError:
            raise ProtocolError(f'"{key}" is not a number: {value!r}') from None
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ProtocolError(f'"{key}" must be a number')
        return float(value)
    if not isinstance(value, kind):
        raise ProtocolError(f'"{key}" must be a {kind.__name__}')
    return value


def command_from_request(req: Mapping[str, Any], who: str) -> SessionCommand:
    """The engine Command a request asks for; `who` (client id and user) is written
    into the cause of the commands that carry one."""
    cmd = req.get("cmd")
    if cmd == "halt":
        return Halt(cause=f"operator ({who})")
    if cmd == "resume":
        return Resume(cause=f"operator ({who})")
    if cmd == "flatten":
        return Flatten(cause=f"operator ({who})")
    if cmd == "approve":
        return ApproveIntent(_text(req, "intent_id"))
    if cmd == "reject":
        return RejectIntent(_text(req, "intent_id"))
    if cmd == "approve_all":
        return ApproveAll()
    if cmd == "reject_all":
        return RejectAll()
    if cmd == "cancel":
        return CancelOrder(_text(req, "client_order_id"))
    if cmd == "stop":
        return StopSession(cause=f"operator ({who})")
    if cmd == "history":
        return QueryHistory(_text(req, "key"))
    if cmd == "override":
        return SetOverride(
            symbol=_text(req, "symbol").upper(),
            mode=_optional(req, "mode", str),
            max_position_usd=_optional(req, "max_position_usd", Decimal),
            max_position_pct=_optional(req, "max_position_pct", float),
            size_multiplier=_optional(req, "size_multiplier", float),
            side=_optional(req, "side", str),
            clear=bool(req.get("clear", False)),
        )
    raise ProtocolError(f"unknown command {cmd!r}")


def request_for(command: SessionCommand) -> dict[str, Any]:
    """The request line that asks the session for `command` (the inverse of
    command_from_request; the cause is the session's to write)."""
    if isinstance(command, Halt):
        return {"cmd": "halt"}
    if isinstance(command, Resume):
        return {"cmd": "resume"}
    if isinstance(command, Flatten):
        return {"cmd": "flatten"}
    if isinstance(command, ApproveIntent):
        return {"cmd": "approve", "intent_id": command.intent_id}
    if isinstance(command, RejectIntent):
        return {"cmd": "reject", "intent_id": command.intent_id}
    if isinstance(command, ApproveAll):
        return {"cmd": "approve_all"}
    if isinstance(command, RejectAll):
        return {"cmd": "reject_all"}
    if isinstance(command, CancelOrder):
        return {"cmd": "cancel", "client_order_id": command.client_order_id}
    if isinstance(command, StopSession):
        return {"cmd": "stop"}
    if isinstance(command, QueryHistory):
        return {"cmd": "history", "key": command.key}
    if isinstance(command, SetOverride):
        return {
            "cmd": "override",
            "symbol": command.symbol,
            "mode": command.mode,
            "max_position_usd": None if command.max_position_usd is None else str(command.max_position_usd),
            "max_position_pct": command.max_position_pct,
            "size_multiplier": command.size_multiplier,
            "side": command.side,
            "clear": command.clear,
        }
    raise ProtocolError(f"no request for {type(command).__name__}")


def encode_chart(chart: PriceChart) -> dict[str, Any]:
    """A history's price chart on the wire: times ISO 8601, prices decimal strings."""
    return {
        "symbol": chart.symbol,
        "prices": [[ts.isoformat(), str(price)] for ts, price in chart.prices],
        "marks": [[ts.isoformat(), kind, str(price)] for ts, kind, price in chart.marks],
        "stop": None if chart.stop is None else str(chart.stop),
    }


def decode_chart(data: Mapping[str, Any]) -> PriceChart:
    stop = data.get("stop")
    return PriceChart(
        symbol=str(data.get("symbol", "")),
        prices=tuple((datetime.fromisoformat(ts), Decimal(p)) for ts, p in data.get("prices", ()) or ()),
        marks=tuple((datetime.fromisoformat(ts), str(k), Decimal(p)) for ts, k, p in data.get("marks", ()) or ()),
        stop=None if stop is None else Decimal(stop),
    )


def result_of(answer: Mapping[str, Any]) -> CommandResult:
    """A command's answer back into the CommandResult the session gave."""
    message = answer.get("message")
    if message is None:
        message = answer.get("error", "")
    rows = tuple((str(t), str(k), str(x)) for t, k, x in answer.get("rows", ()) or ())
    chart = answer.get("chart")
    return CommandResult(
        bool(answer.get("ok")),
        str(message),
        int(answer.get("count", 0) or 0),
        rows,
        chart=decode_chart(chart) if isinstance(chart, Mapping) else None,
    )


# ------------------------------------------------------------------ batches

#: a batch handed to the session (Desk.attach), and the query of a batch's orders
BATCH_WORDS = ("submit_batch", "batch")


#: a text value the sender gave, on the wire: {"text": "0.5"} (a number travels as a
#: bare decimal string, so text must be marked to stay text)
TEXT_VALUE = "text"


def _wire_value(value: Any) -> Any:
    """A batch value on the wire: a number as a decimal string (floats by repr, so
    NaN and infinities travel too), a text value marked as text ({"text": ...}, so
    that "0.5" stays a string, refused NOT_A_NUMBER as in process), anything else
    as it is (the session refuses it NOT_A_NUMBER in the same words as in process)."""
    if isinstance(value, str):
        return {TEXT_VALUE: value}
    if isinstance(value, bool) or value is None or isinstance(value, (list, dict)):
        return value
    if isinstance(value, (Decimal, int)):
        return str(value)
    if isinstance(value, numbers.Real):
        return repr(float(value))
    return repr(value)


def batch_request(ts: datetime | str, kind: SignalKind, values: Mapping[Any, Any] | Any) -> dict[str, Any]:
    """The submit_batch request for one batch of scores or target weights."""
    wire = {k: _wire_value(v) for k, v in values.items()} if isinstance(values, Mapping) else values
    return {
        "cmd": "submit_batch",
        "ts": ts.isoformat() if isinstance(ts, datetime) else ts,
        "kind": SignalKind(kind).value,
        "values": wire,
    }


def _batch_value(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1 and isinstance(value.get(TEXT_VALUE), str):
        return value[TEXT_VALUE]  # the sender's text: judged as text (NOT_A_NUMBER), never read as a number
    if not isinstance(value, str):
        return value
    try:
        number = Decimal(value.strip())
    except ArithmeticError:
        return value  # text: refused NOT_A_NUMBER by the judge
    try:
        return float(number)
    except (ValueError, OverflowError):
        return number


def batch_from_request(req: Mapping[str, Any]) -> tuple[Any, SignalKind, Any]:
    """(ts, kind, values) of a submit_batch request, for PushSource.push to judge:
    decimal strings become numbers, {"text": ...} the sender's text; the rest is
    judged as sent."""
    kind = req.get("kind", SignalKind.SCORE.value)
    if kind not in [k.value for k in SignalKind]:
        raise ProtocolError(f'"kind" must be "score" or "weight", not {kind!r}')
    values = req.get("values")
    if isinstance(values, Mapping):
        values = {k: _batch_value(v) for k, v in values.items()}
    return req.get("ts"), SignalKind(kind), values


def batch_ts(req: Mapping[str, Any]) -> datetime:
    """The ts of a batch query, an aware datetime."""
    raw = _text(req, "ts")
    try:
        ts = datetime.fromisoformat(raw)
    except ValueError:
        raise ProtocolError(f'"ts" is not an ISO 8601 timestamp: {raw!r}') from None
    if ts.tzinfo is None:
        raise ProtocolError('"ts" has no timezone')
    return ts
