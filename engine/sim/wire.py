"""HTTP plumbing shared by the venue's routes: JSON answers and Alpaca-style error
bodies, query-string parsing, and reading a JSON request body."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from aiohttp import web

from .errors import bad_request, unprocessable
from .fmt import parse_time

MAX_BODY = 64 * 1024

#: json.dumps(obj, separators=(",", ":")) without building an encoder per call (the
#: same text; an encoder keeps no state between calls, so threads may share it)
compact_json = json.JSONEncoder(separators=(",", ":")).encode


def json_response(obj: Any, status: int = 200) -> web.Response:
    return web.Response(body=compact_json(obj).encode(), status=status, content_type="application/json")


def error_response(status: int, code: int, message: str, **extra: Any) -> web.Response:
    return json_response({"code": code, "message": message, **extra}, status=status)


def reject_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON constant {name}")


def query_bool(value: str | None, field: str) -> bool | None:
    if value is None or value == "":
        return None
    v = value.strip().lower()
    if v in ("true", "1"):
        return True
    if v in ("false", "0"):
        return False
    raise unprocessable(f"invalid {field}")


def query_time(value: str | None, field: str) -> datetime | None:
    if value is None or value == "":
        return None
    try:
        return parse_time(value)
    except (ValueError, OverflowError):
        raise unprocessable(f"invalid {field}") from None


async def json_body(request: web.Request) -> Any:
    """The request's JSON body (a 400 when empty or malformed; 413 past MAX_BODY)."""
    raw = await request.read()  # raises HTTPRequestEntityTooLarge past MAX_BODY
    if not raw.strip():
        raise bad_request("request body format is invalid")
    try:
        return json.loads(raw, parse_float=Decimal, parse_constant=reject_constant)
    except (ValueError, RecursionError, UnicodeDecodeError):
        raise bad_request("request body format is invalid") from None
