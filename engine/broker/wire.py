"""Wire translation between alpaca-py and the engine: the venue's JSON (alpaca-py
with raw_data=True) into typed venue records, every closed set of words parsed
here once; engine requests into alpaca-py's request models; and alpaca-py's and
requests' exceptions into what they mean (a Failure, a submit or cancel outcome),
scrubbed of secrets."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any, TypeVar
from uuid import UUID

import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.enums import OrderSide as AlpacaOrderSide
from alpaca.trading.enums import TimeInForce as AlpacaTimeInForce
from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest

from engine.broker.base import (
    CancelOutcome,
    CancelOutcomeKind,
    SubmitOutcome,
    SubmitOutcomeKind,
    SubmitRequest,
    TradeEvent,
    TradeUpdate,
    VenueAccount,
    VenueAsset,
    VenueBar,
    VenueClock,
    VenueOrder,
    VenuePosition,
    VenueQuote,
)
from engine.model import OrderStatus, OrderType, Side, TimeInForce

_E = TypeVar("_E", bound=Enum)

_DUPLICATE_MARKERS = ("client_order_id must be unique", "client order id must be unique")


# ---- scalars --------------------------------------------------------------------


def _dec(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        # the venue's JSON has numbers as strings: no str() round for those
        return Decimal(value if type(value) is str else str(value))
    except InvalidOperation as exc:
        raise ValueError(f"not a number: {value!r}") from exc


def _ts(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if type(value) is str:  # the JSON case, first: RFC 3339 from the venue
        parsed = datetime.fromisoformat(value)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    to_datetime = getattr(value, "to_datetime", None)  # msgpack Timestamp
    if to_datetime is not None:
        return to_datetime()
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _word(value: Any) -> str:
    """Enum or string -> the wire word."""
    if value is None:
        return ""
    return str(getattr(value, "value", value))


#: enum class -> {wire word: member}: a dict lookup per word instead of Enum.__call__
_WORDS: dict[type, dict[str, Any]] = {}


def _enum(cls: type[_E], value: Any, what: str) -> _E:
    words = _WORDS.get(cls)
    if words is None:
        words = _WORDS[cls] = {str(m.value): m for m in cls}
    member = words.get(value) if type(value) is str else None
    if member is not None:
        return member
    word = _word(value)
    try:
        return cls(word)
    except ValueError:
        raise ValueError(f"unknown {what} {word!r}") from None


#: the statuses a venue may say; the engine's own words (created, unknown, ...) never come from one
_VENUE_STATUSES = {s.value: s for s in OrderStatus if not s.is_local}


def _status(value: Any) -> OrderStatus:
    status = _VENUE_STATUSES.get(value) if type(value) is str else None
    if status is not None:
        return status
    status = _enum(OrderStatus, value, "order status")
    if status.is_local:
        raise ValueError(f"unknown order status {status.value!r}")
    return status


# ---- venue JSON -> records ------------------------------------------------------------


def order_from_raw(d: Mapping[str, Any]) -> VenueOrder:
    created = _ts(d.get("created_at"))
    if created is None:
        raise ValueError("order without created_at")
    return VenueOrder(
        id=str(d["id"]),
        client_order_id=str(d.get("client_order_id") or ""),
        symbol=str(d.get("symbol") or ""),
        side=_enum(Side, d.get("side"), "order side"),
        qty=_dec(d.get("qty")),
        notional=_dec(d.get("notional")),
        filled_qty=_dec(d.get("filled_qty")) or Decimal(0),
        filled_avg_price=_dec(d.get("filled_avg_price")),
        status=_status(d["status"]),
        order_type=_enum(OrderType, d.get("order_type") or d.get("type"), "order type"),
        time_in_force=_enum(TimeInForce, d.get("time_in_force"), "time in force"),
        limit_price=_dec(d.get("limit_price")),
        stop_price=_dec(d.get("stop_price")),
        created_at=created,
        updated_at=_ts(d.get("updated_at")),
        submitted_at=_ts(d.get("submitted_at")),
        filled_at=_ts(d.get("filled_at")),
        replaced_by=str(d["replaced_by"]) if d.get("replaced_by") else None,
    )


def trade_update_from_raw(d: Mapping[str, Any]) -> TradeUpdate:
    timestamp = _ts(d.get("timestamp"))
    if timestamp is None:
        raise ValueError("trade update without timestamp")
    execution_id = d.get("execution_id")
    return TradeUpdate(
        event=_enum(TradeEvent, d.get("event"), "trade update event"),
        order=order_from_raw(d["order"]),
        timestamp=timestamp,
        execution_id=str(execution_id) if execution_id else None,
        price=_dec(d.get("price")),
        qty=_dec(d.get("qty")),
        position_qty=_dec(d.get("position_qty")),
    )


def position_from_raw(d: Mapping[str, Any]) -> VenuePosition:
    return VenuePosition(
        symbol=str(d["symbol"]),
        qty=_dec(d["qty"]) or Decimal(0),
        avg_entry_price=_dec(d.get("avg_entry_price")) or Decimal(0),
        current_price=_dec(d.get("current_price")),
        market_value=_dec(d.get("market_value")),
        lastday_price=_dec(d.get("lastday_price")),
    )


def account_from_raw(d: Mapping[str, Any]) -> VenueAccount:
    zero = Decimal(0)
    return VenueAccount(
        account_number=str(d.get("account_number") or ""),
        status=_word(d.get("status")),
        cash=_dec(d.get("cash")) or zero,
        equity=_dec(d.get("equity")) or zero,
        last_equity=_dec(d.get("last_equity")) or zero,
        buying_power=_dec(d.get("buying_power")) or zero,
        long_market_value=_dec(d.get("long_market_value")) or zero,
        short_market_value=_dec(d.get("short_market_value")) or zero,
        trading_blocked=bool(d.get("trading_blocked")),
        shorting_enabled=bool(d.get("shorting_enabled")),
    )


def clock_from_raw(d: Mapping[str, Any]) -> VenueClock:
    ts, nxt_open, nxt_close = _ts(d["timestamp"]), _ts(d["next_open"]), _ts(d["next_close"])
    if ts is None or nxt_open is None or nxt_close is None:
        raise ValueError("clock without timestamp, next_open or next_close")
    return VenueClock(timestamp=ts, is_open=bool(d["is_open"]), next_open=nxt_open, next_close=nxt_close)


def asset_from_raw(d: Mapping[str, Any]) -> VenueAsset:
    return VenueAsset(
        symbol=str(d["symbol"]),
        tradable=bool(d.get("tradable")),
        shortable=bool(d.get("shortable")),
        easy_to_borrow=bool(d.get("easy_to_borrow")),
        fractionable=bool(d.get("fractionable")),
        exchange=_word(d.get("exchange")),
        status=_word(d.get("status")),
    )


def quote_from_raw(symbol: str, d: Mapping[str, Any]) -> VenueQuote:
    ts = _ts(d.get("t"))
    if ts is None:
        raise ValueError("quote without t")
    return VenueQuote(symbol=symbol, bid=_dec(d.get("bp")) or Decimal(0), ask=_dec(d.get("ap")) or Decimal(0), ts=ts)


def bar_from_raw(symbol: str, d: Mapping[str, Any]) -> VenueBar:
    ts = _ts(d.get("t"))
    if ts is None:
        raise ValueError("bar without t")
    zero = Decimal(0)
    return VenueBar(
        symbol=symbol,
        ts=ts,
        open=_dec(d.get("o")) or zero,
        high=_dec(d.get("h")) or zero,
        low=_dec(d.get("l")) or zero,
        close=_dec(d.get("c")) or zero,
        volume=_dec(d.get("v")) or zero,
    )


# ---- engine requests -> alpaca-py request models ----------------------------------------


def check_request(r: SubmitRequest) -> None:
    """Raise the ValueError order_request raises by itself for r (not alpaca-py's
    model's own refusals), without building the model."""
    if r.order_type is OrderType.LIMIT:
        if r.limit_price is None:
            raise ValueError("a limit order needs limit_price")
    elif r.order_type is not OrderType.MARKET:
        raise ValueError(f"unsupported order type {r.order_type.value!r}")


def order_request(r: SubmitRequest) -> LimitOrderRequest | MarketOrderRequest:
    """alpaca-py's request model for r. Raises ValueError (nothing sent) when the
    request cannot be expressed."""
    common: dict[str, Any] = {
        "symbol": r.symbol,
        "qty": float(r.qty),
        "side": AlpacaOrderSide(Side(r.side).value),
        "time_in_force": AlpacaTimeInForce(TimeInForce(r.time_in_force).value),
        "client_order_id": r.client_order_id,
        "extended_hours": True if r.extended_hours else None,
    }
    if r.order_type is OrderType.LIMIT:
        if r.limit_price is None:
            raise ValueError("a limit order needs limit_price")
        return LimitOrderRequest(limit_price=float(r.limit_price), **common)
    if r.order_type is OrderType.MARKET:
        return MarketOrderRequest(**common)
    raise ValueError(f"unsupported order type {r.order_type.value!r}")


# ---- failures and what they mean ----------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    """What went wrong with one REST call, already scrubbed of secrets."""

    kind: str  # "http" (the venue answered an error) | "timeout" | "connection" | "unreadable" | "other"
    status: int | None = None
    code: int | None = None
    message: str = ""
    json_body: bool = False

    @property
    def unanswered(self) -> bool:
        """The venue could not answer (counts against REST health)."""
        if self.kind == "http":
            return self.status is None or self.status >= 500
        return self.kind in ("timeout", "connection")

    @property
    def detail(self) -> str:
        if self.kind == "http":
            code = f" {self.code}" if self.code is not None else ""
            return f"HTTP {self.status}{code}: {self.message}".strip()
        return f"{self.kind}: {self.message}"

    def is_http(self, status: int) -> bool:
        return self.kind == "http" and self.status == status


class Scrubber:
    """Masks every secret in a text and bounds its length (for details, logs, events)."""

    def __init__(self, secrets: Sequence[str]) -> None:
        self._secrets = [s for s in secrets if s]

    def __call__(self, text: Any, limit: int = 300) -> str:
        out = str(text)
        for secret in self._secrets:
            out = out.replace(secret, "****")
        out = " ".join(out.split())
        return out if len(out) <= limit else out[: limit - 1] + "…"


def failure_of(exc: BaseException, scrub: Scrubber) -> Failure:
    if isinstance(exc, APIError):
        status = exc.status_code
        text = str(getattr(exc, "_error", "") or "")
        try:
            body = json.loads(text)
        except (TypeError, ValueError):
            body = None
        if isinstance(body, dict) and ("code" in body or "message" in body):
            code = body.get("code")
            try:
                code = int(code) if code is not None else None
            except (TypeError, ValueError):
                code = None
            return Failure("http", status, code, scrub(body.get("message", "")), json_body=True)
        return Failure("http", status, None, scrub(text or f"HTTP {status}"))
    if isinstance(exc, requests.Timeout):
        return Failure("timeout", message=scrub(type(exc).__name__))
    if isinstance(exc, requests.ConnectionError):
        return Failure("connection", message=scrub(_root_cause(exc)))
    if isinstance(exc, (ValueError, KeyError, TypeError, AssertionError)):
        # a 2xx whose body could not be read, or a response the models refuse
        return Failure("unreadable", message=scrub(f"{type(exc).__name__}: {exc}"))
    return Failure("other", message=scrub(f"{type(exc).__name__}: {exc}"))


def _root_cause(exc: BaseException) -> str:
    inner: BaseException = exc
    while inner.__cause__ is not None or (inner.__context__ is not None and not inner.__suppress_context__):
        inner = inner.__cause__ or inner.__context__  # type: ignore[assignment]
    name = type(inner).__name__
    return name if inner is exc else f"{type(exc).__name__} ({name})"


def is_uuid(value: str) -> bool:
    try:
        UUID(str(value))
    except ValueError:
        return False
    return True


def _is_duplicate_client_order_id(f: Failure) -> bool:
    text = f.message.lower()
    return any(marker in text for marker in _DUPLICATE_MARKERS) or ("client_order_id" in text and "unique" in text)


def submit_outcome(f: Failure) -> SubmitOutcome:
    """A refused submit is `rejected` only when the venue clearly said no (a 4xx
    with an Alpaca error body, not 408/429, not a duplicate client_order_id, which
    means the first one may be there); anything else is `unknown`."""
    if (
        f.kind == "http"
        and f.status is not None
        and 400 <= f.status < 500
        and f.status not in (408, 429)
        and f.json_body
        and not _is_duplicate_client_order_id(f)
    ):
        return SubmitOutcome(SubmitOutcomeKind.REJECTED, http_status=f.status, code=f.code, message=f.message)
    return SubmitOutcome(SubmitOutcomeKind.UNKNOWN, http_status=f.status, code=f.code, message=f.detail)


def cancel_outcome(f: Failure) -> CancelOutcome:
    """404: not_found; 422: not_cancelable (final, or pending); anything else unknown."""
    if f.is_http(404):
        return CancelOutcome(CancelOutcomeKind.NOT_FOUND, f.message)
    if f.is_http(422):
        return CancelOutcome(CancelOutcomeKind.NOT_CANCELABLE, f.message)
    return CancelOutcome(CancelOutcomeKind.UNKNOWN, f.detail)
