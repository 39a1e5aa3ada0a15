"""A real local venue (engine/sim) in-thread and an AlpacaBroker pointed at it.
Drills go through the venue's HTTP drill API (/sim/v1/...), the wire an operator uses."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
import requests

from engine.broker.alpaca import AlpacaBroker
from engine.config import Credentials, Settings
from engine.sim import SimVenue
from tests.support import wait_for_async, with_sections

KEY = "PKBROKERTEST01"
SECRET = "sEcReT-broker-test-0123456789"
HEADERS = {"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET}


class Venue:
    """The local venue (engine.sim.SimVenue) on a free port, driven through its
    HTTP drill API."""

    def __init__(self, **kw: Any) -> None:
        self._impl = SimVenue(key_id=KEY, secret_key=SECRET, port=0, **kw)
        self._impl.start()
        self.trading_url = self._impl.trading_url
        self.data_url = self._impl.data_url
        self.trading_stream_url = self._impl.trading_stream_url
        self.data_stream_url = self._impl.data_stream_url

    def stop(self) -> None:
        self._impl.stop()

    # drill API over HTTP

    def _post(self, path: str, body: dict) -> Any:
        r = requests.post(self.trading_url + path, json=body, headers=HEADERS, timeout=10)
        r.raise_for_status()
        return r.json()

    def set_faults(self, **faults: Any) -> dict:
        return self._post("/sim/v1/faults", faults)

    def reset_faults(self) -> dict:
        return self._post("/sim/v1/faults", {"reset": True})

    def drop_trade_stream(self) -> Any:
        return self._post("/sim/v1/streams/drop", {"trade": True, "data": False})

    def drop_data_stream(self) -> Any:
        return self._post("/sim/v1/streams/drop", {"trade": False, "data": True})

    def state(self) -> dict:
        r = requests.get(self.trading_url + "/sim/v1/state", headers=HEADERS, timeout=10)
        r.raise_for_status()
        return r.json()

    def orders_with_client_id(self, client_order_id: str) -> list[dict]:
        """Every venue order carrying this client_order_id (by direct REST, not the broker)."""
        r = requests.get(
            self.trading_url + "/v2/orders",
            params={"status": "all", "limit": 500, "direction": "desc"},
            headers=HEADERS,
            timeout=10,
        )
        r.raise_for_status()
        return [o for o in r.json() if o["client_order_id"] == client_order_id]


class Events:
    """The broker's emit callback: thread-safe, with async waiting."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._lock = threading.Lock()

    def __call__(self, event: Any) -> None:
        with self._lock:
            self.items.append(event)

    def snapshot(self) -> list[Any]:
        with self._lock:
            return list(self.items)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.snapshot() if isinstance(e, kind)]

    async def wait_for(self, predicate: Callable[[Any], bool], timeout: float = 15.0, after: int = 0) -> Any:
        """The first event from index `after` on that matches, once one has come."""

        def match() -> Any:
            return next((e for e in self.snapshot()[after:] if predicate(e)), None)

        try:
            return await wait_for_async(match, timeout=timeout, what="a matching event")
        except AssertionError:
            shown = "\n  ".join(repr(e) for e in self.snapshot()[-20:])
            raise AssertionError(f"no matching event within {timeout} s; last events:\n  {shown}") from None


def broker_settings(**broker: Any) -> Settings:
    """The code's defaults, no client-side throttle, short timeouts, then the test's changes."""
    return with_sections(
        Settings(), broker={"rate_limit_per_minute": 100000, "request_timeout": 2.0, "workers": 4, **broker}
    )


def make_broker(venue: Venue, settings: Settings | None = None, secret: str = SECRET) -> AlpacaBroker:
    return AlpacaBroker(
        settings or broker_settings(),
        Credentials(key_id=KEY, secret_key=secret),
        trading_url=venue.trading_url,
        data_url=venue.data_url,
        trading_stream_url=venue.trading_stream_url,
        data_stream_url=venue.data_stream_url,
    )


@pytest.fixture(scope="module")
def venue():
    v = Venue(seed=7, rate_limit_per_minute=None)
    yield v
    v.stop()


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
async def broker(venue: Venue, events: Events):
    venue.reset_faults()
    b = make_broker(venue)
    b._emit_fn = events  # REST events without starting the streams
    yield b
    await b.stop()
    venue.reset_faults()


def count_posts(broker: AlpacaBroker) -> list[int]:
    """Count every POST /v2/orders the broker's HTTP session tries to send (answered
    or not), alpaca-py's own retries included: they all go through this adapter."""
    sent = [0]
    adapter = broker._trading._session.get_adapter(broker.urls.trading)
    send = adapter.send

    def counting_send(request: Any, **kwargs: Any) -> Any:
        if request.method == "POST" and request.path_url.startswith("/v2/orders"):
            sent[0] += 1
        return send(request, **kwargs)

    adapter.send = counting_send  # type: ignore[method-assign]
    return sent
