"""Helpers shared by the local venue tests (``from tests.engine.sim.simkit import ...``)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from engine.sim import SimVenue
from tests.support import wait_for

#: the venue tests' name for tests.support.wait_for
wait_until = wait_for

KEY = "PKSIMTEST0001"
SECRET = "sim-secret-0123456789"
HEADERS = {"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET}
# Monday 2025-06-02, 09:30 New York: a regular session with nothing special about it
START = datetime(2025, 6, 2, 13, 30, tzinfo=UTC)
OPENAPI = Path(__file__).parent / "openapi"


def make_venue(**kw: Any) -> SimVenue:
    opts: dict[str, Any] = {
        "key_id": KEY,
        "secret_key": SECRET,
        "seed": 42,
        "port": 0,
        "partial_fill_prob": 0.0,
        "rate_limit_per_minute": None,
        "start_at": START,
        "frozen_clock": True,
    }
    opts.update(kw)
    return SimVenue(**opts).start()


def prepare(venue: SimVenue) -> SimVenue:
    """No orders or positions, faults off, the market open with hours to go."""
    venue.set_faults(reset=True, rate_limit_per_minute=None)
    venue.set_partial_fill_prob(0.0)
    venue.reset()
    clock = venue.set_clock()
    now = datetime.fromisoformat(clock["timestamp"])
    close = datetime.fromisoformat(clock["next_close"])
    if not clock["is_open"] or (close - now).total_seconds() < 3 * 3600:
        venue.clock_to("next_open")
    return venue


class Raw:
    """Raw HTTP against the venue (to look at the JSON as it is on the wire)."""

    def __init__(self, base: str, headers: dict | None = None) -> None:
        self.base = base
        self.s = requests.Session()
        self.s.headers.update(HEADERS if headers is None else headers)

    def request(self, method: str, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("timeout", 10)
        return self.s.request(method, self.base + path, allow_redirects=False, **kw)

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        return self.request("POST", path, **kw)

    def patch(self, path: str, **kw: Any) -> requests.Response:
        return self.request("PATCH", path, **kw)

    def delete(self, path: str, **kw: Any) -> requests.Response:
        return self.request("DELETE", path, **kw)


class Collector:
    """Thread-safe list for stream handlers."""

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._lock = threading.Lock()

    async def handler(self, item: Any) -> None:
        """The coroutine function to hand to alpaca-py's subscribe_* methods."""
        with self._lock:
            self._items.append(item)

    @property
    def items(self) -> list[Any]:
        with self._lock:
            return list(self._items)


def load_openapi(name: str) -> dict:
    return json.loads((OPENAPI / name).read_text())


# ---------------------------------------------------------------- OpenAPI schemas
def _openapi_to_jsonschema(node: Any) -> Any:
    """OpenAPI 3.0 -> JSON Schema 2020-12: ``nullable: true`` becomes ``anyOf [..., null]``."""
    if isinstance(node, list):
        return [_openapi_to_jsonschema(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {
        k: _openapi_to_jsonschema(v)
        for k, v in node.items()
        if k not in ("nullable", "example", "examples", "x-examples")
    }
    if node.get("nullable") is True:
        return {"anyOf": [out, {"type": "null"}]}
    return out


_DOCS: dict[str, dict] = {}


def _rfc3339(value: object) -> bool:
    import re

    if not isinstance(value, str):
        return True
    return re.fullmatch(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})", value) is not None


def schema_validator(doc: str, schema: str | dict, relax: Callable[[dict], None] | None = None):
    """A validator for ``#/components/schemas/<schema>`` of ``doc`` (refs resolve in the document).

    ``relax`` may edit the converted components before use (documented where used).
    """
    import copy

    import jsonschema

    if doc not in _DOCS:
        _DOCS[doc] = _openapi_to_jsonschema(load_openapi(doc))
    components = copy.deepcopy(_DOCS[doc]["components"])
    if relax is not None:
        relax(components["schemas"])
    root = {"$ref": f"#/components/schemas/{schema}"} if isinstance(schema, str) else dict(schema)
    root["components"] = components
    checker = jsonschema.FormatChecker()
    checker.checks("date-time")(_rfc3339)
    return jsonschema.Draft202012Validator(root, format_checker=checker)


def assert_valid(validator: Any, instance: Any) -> None:
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.path))
    if errors:
        lines = [f"{list(e.path)}: {e.message}" for e in errors[:10]]
        raise AssertionError("schema violations:\n  " + "\n  ".join(lines))
