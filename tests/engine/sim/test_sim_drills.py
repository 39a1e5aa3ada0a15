"""The drill API (/sim/v1/...), venue faults and the rate limit."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import MarketOrderRequest

from engine.sim import SimVenue
from tests.engine.sim.simkit import Raw, prepare

ORDER = {"symbol": "AAPL", "qty": 1, "side": "buy", "type": "market", "time_in_force": "day"}


def test_state(fresh: SimVenue, raw: Raw):
    r = raw.get("/sim/v1/state")
    assert r.status_code == 200
    s = r.json()
    assert set(s) >= {"venue", "clock", "faults", "streams", "quotes"}
    assert s["clock"]["is_open"] is True and s["clock"]["frozen"] is True
    assert s["venue"]["orders_open"] == 0 and len(s["quotes"]) == 53
    assert fresh.state()["venue"]["cash"] == s["venue"]["cash"]
    assert raw.get("/sim/v1/state", headers={"APCA-API-SECRET-KEY": "x"}).status_code == 401


def test_injected_http_errors_have_no_effect(fresh: SimVenue, raw: Raw, trading: TradingClient):
    for fault, status in (("http_500", 500), ("http_503", 503), ("http_504", 504)):
        assert raw.post("/sim/v1/faults", json={"reset": True, fault: 1.0}).status_code == 200
        r = raw.post("/v2/orders", json={**ORDER, "client_order_id": f"fault-{status}"})
        assert r.status_code == status and r.json()["code"] == status * 100000 + 10000
        fresh.set_faults(reset=True, rate_limit_per_minute=None)
        assert (
            raw.get("/v2/orders:by_client_order_id", params={"client_order_id": f"fault-{status}"}).status_code == 404
        )
    fresh.set_faults(http_500=1.0)
    with pytest.raises(APIError) as exc:
        trading.get_account()
    assert exc.value.status_code == 500
    # the drill API itself is never faulted
    assert raw.get("/sim/v1/state").status_code == 200
    fresh.set_faults(http_500=1.0, scope="data")
    assert trading.get_account().status.value == "ACTIVE"
    assert Raw(fresh.data_url).get("/v2/stocks/quotes/latest", params={"symbols": "AAPL"}).status_code == 500


def test_added_latency(fresh: SimVenue, raw: Raw):
    fresh.set_faults(latency_ms=300)
    t0 = time.monotonic()
    assert raw.get("/v2/clock").status_code == 200
    assert time.monotonic() - t0 >= 0.29  # a lower bound only: sleeping is never shorter


def test_lost_response_after_the_effect(fresh: SimVenue, trading: TradingClient, raw: Raw):
    fresh.set_faults(lose_response=1.0)
    with pytest.raises(requests.exceptions.ConnectionError):
        trading.submit_order(
            MarketOrderRequest(
                symbol="AAPL", qty=2, side=OrderSide.BUY, time_in_force=TimeInForce.DAY, client_order_id="lost-1"
            )
        )
    fresh.set_faults(lose_response=0.0)
    o = trading.get_order_by_client_id("lost-1")  # the order went through
    assert o.filled_qty == "2"
    fresh.set_faults(lose_response=1.0, lose_response_mode="504")
    r = raw.post("/v2/orders", json={**ORDER, "client_order_id": "lost-2"})
    assert r.status_code == 504
    fresh.set_faults(lose_response=0.0)
    assert raw.get("/v2/orders:by_client_order_id", params={"client_order_id": "lost-2"}).status_code == 200
    # a blind re-send (what alpaca-py's 504 retry does) is refused as a duplicate
    r = raw.post("/v2/orders", json={**ORDER, "client_order_id": "lost-2"})
    assert r.status_code == 422 and "unique" in r.json()["message"]


def test_rate_limit_headers_and_429(venue: SimVenue):
    prepare(venue)
    venue.set_faults(rate_limit_per_minute=5)
    raw = Raw(venue.trading_url)
    seen = []
    for _ in range(12):  # at most one one-minute window boundary can fall inside this loop
        r = raw.get("/v2/clock")
        seen.append(r)
        assert r.headers["X-Ratelimit-Limit"] == "5"
        assert int(r.headers["X-Ratelimit-Reset"]) > time.time() - 1
    limited = [r for r in seen if r.status_code == 429]
    assert limited, [r.status_code for r in seen]
    assert limited[0].json() == {"code": 42910000, "message": "rate limit exceeded"}
    assert limited[0].headers["X-Ratelimit-Remaining"] == "0"
    ok = [int(r.headers["X-Ratelimit-Remaining"]) for r in seen[:4] if r.status_code == 200]
    assert ok == sorted(ok, reverse=True)
    # the data API has its own bucket; the drill API none
    assert Raw(venue.data_url).get("/v2/stocks/quotes/latest", params={"symbols": "AAPL"}).status_code == 200
    assert "X-Ratelimit-Limit" not in raw.get("/sim/v1/state").headers
    venue.set_faults(rate_limit_per_minute=None)
    assert "X-Ratelimit-Limit" not in raw.get("/v2/clock").headers


def test_a_shortened_rate_limit_window_resets_at_its_own_end(venue: SimVenue):
    prepare(venue)
    venue.set_faults(rate_limit_per_minute=2, rate_limit_window_seconds=2)
    raw = Raw(venue.trading_url)
    try:
        codes = []
        for _ in range(6):  # at most one window boundary falls inside: one side has 3 or more
            r = raw.get("/v2/clock")
            codes.append(r.status_code)
            reset = int(r.headers["X-Ratelimit-Reset"])
            assert reset % 2 == 0 and time.time() - 1 < reset <= time.time() + 2
        assert 429 in codes, codes
        time.sleep(max(0.0, reset - time.time()) + 0.05)
        assert raw.get("/v2/clock").status_code == 200  # a new window
        with pytest.raises(Exception, match="rate_limit_window_seconds"):
            venue.set_faults(rate_limit_window_seconds=0)
    finally:
        venue.set_faults(rate_limit_per_minute=None, rate_limit_window_seconds=60)


def test_price_shock_and_set(fresh: SimVenue, raw: Raw, trading: TradingClient):
    fresh.set_quote("AAPL", "200.00", "200.02")
    fresh.set_quote("MSFT", "400.00", "400.04")
    r = raw.post("/sim/v1/prices/shock", json={"symbols": ["AAPL"], "pct": -10})
    assert r.status_code == 200
    bid = Decimal(r.json()["quotes"]["AAPL"]["bp"])
    assert Decimal("179.5") <= bid <= Decimal("180.5")
    assert fresh.quote("MSFT") == (Decimal("400.00"), Decimal("400.04"))
    r = raw.post("/sim/v1/prices/shock", json={"symbols": None, "pct": 5})
    assert set(r.json()["quotes"]) == set(fresh.state()["quotes"])
    r = raw.post("/sim/v1/prices/set", json={"symbol": "AAPL", "bid": "150.10", "ask": "150.12"})
    assert r.json() == {"symbol": "AAPL", "bp": "150.1", "ap": "150.12"}
    r = raw.post("/sim/v1/prices/set", json={"symbol": "AAPL", "price": 99.5})
    assert Decimal(r.json()["bp"]) <= Decimal("99.5") <= Decimal(r.json()["ap"])
    # a shock through a resting limit fills it at once
    o = trading.submit_order(
        __import__("alpaca.trading.requests", fromlist=["x"]).LimitOrderRequest(
            symbol="MSFT", qty=1, limit_price=380, side=OrderSide.BUY, time_in_force=TimeInForce.DAY
        )
    )
    fresh.shock(["MSFT"], -10)
    assert trading.get_order_by_id(o.id).status.value == "filled"


def test_clock_control(venue: SimVenue, raw: Raw):
    prepare(venue)
    c0 = raw.get("/v2/clock").json()
    t0 = datetime.fromisoformat(c0["timestamp"])
    c1 = raw.post("/sim/v1/clock", json={"advance_seconds": 90}).json()
    assert datetime.fromisoformat(c1["timestamp"]) - t0 == timedelta(seconds=90)
    c2 = raw.post("/sim/v1/clock", json={"to": "next_close"}).json()
    assert c2["is_open"] is False and c2["timestamp"] == c0["next_close"]
    c3 = raw.post("/sim/v1/clock", json={"to": "next_open"}).json()
    assert c3["is_open"] is True and c3["timestamp"] == c2["next_open"]
    target = (datetime.fromisoformat(c3["timestamp"]) + timedelta(hours=1)).isoformat()
    c4 = raw.post("/sim/v1/clock", json={"to": target}).json()
    assert datetime.fromisoformat(c4["timestamp"]) == datetime.fromisoformat(target)
    # unfreeze at 1000x for a moment: venue time moves by itself
    raw.post("/sim/v1/clock", json={"frozen": False, "speed": 1000})
    try:
        t_a = datetime.fromisoformat(raw.get("/v2/clock").json()["timestamp"])
        time.sleep(0.3)
        t_b = datetime.fromisoformat(raw.get("/v2/clock").json()["timestamp"])
        assert t_b > t_a
    finally:
        c5 = raw.post("/sim/v1/clock", json={"frozen": True, "speed": 1}).json()
    assert c5["frozen"] is True and c5["speed"] == 1


def test_python_helpers_are_thread_safe(fresh: SimVenue):
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(20):
                fresh.shock(["KO"], 0.1)
                fresh.state()
                fresh.advance(0.25)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors


def test_reset(fresh: SimVenue, raw: Raw, trading: TradingClient):
    trading.submit_order(MarketOrderRequest(symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY))
    r = raw.post("/sim/v1/reset")
    assert r.status_code == 200 and r.json()["orders_total"] == 0 and r.json()["cash"] == "100000"
    assert trading.get_all_positions() == []
