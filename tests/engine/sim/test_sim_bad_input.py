"""Bad input gets Alpaca's status and a JSON error body, never a 500 or a traceback,
and never changes the venue's state."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.sim import SimVenue
from tests.engine.sim.simkit import Raw, prepare

ORDER = {"symbol": "AAPL", "qty": 1, "side": "buy", "type": "market", "time_in_force": "day"}


def order(**kw: Any) -> dict:
    out = dict(ORDER)
    for k, v in kw.items():
        if v is ...:
            out.pop(k, None)
        else:
            out[k] = v
    return out


def fingerprint(venue: SimVenue) -> dict:
    s = venue.state()
    v = dict(s["venue"])
    v.pop("time")
    return {"venue": v, "faults": s["faults"], "clock": s["clock"]}


def assert_refused(r, statuses: tuple[int, ...]) -> None:
    assert r.status_code in statuses, (r.status_code, r.text)
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert isinstance(body["code"], int) and len(str(body["code"])) == 8
    assert str(body["code"]).startswith(str(r.status_code))
    assert isinstance(body["message"], str) and body["message"]
    assert "Traceback" not in r.text


@pytest.fixture
def setup(venue: SimVenue, raw: Raw) -> dict:
    """An open order and a position to aim bad requests at."""
    prepare(venue)
    assert raw.post("/v2/orders", json=order(symbol="MSFT", qty=10)).status_code == 200
    o = raw.post(
        "/v2/orders",
        json=order(type="limit", limit_price="1.00", time_in_force="gtc", client_order_id="bad-input-open"),
    ).json()
    return {"order_id": o["id"]}


RAW_BODIES = [
    b"",
    b"{",
    b"[",
    b"null",
    b"[]",
    b'"order"',
    b"123",
    b'{"symbol":',
    b'{"qty": NaN}',
    b"\xff\xfe\x00garbage",
    b"[" * 30000,
    b'{"symbol": "AAPL",}',
]

BAD_ORDERS: list[tuple[dict, tuple[int, ...]]] = [
    (order(symbol=123), (422,)),
    (order(symbol=["AAPL"]), (422,)),
    (order(symbol=...), (422,)),
    (order(symbol=""), (422,)),
    (order(symbol="ZZZZ"), (422,)),
    (order(symbol="AAPL; DROP"), (422,)),
    (order(qty="abc"), (422,)),
    (order(qty=[1]), (422,)),
    (order(qty={}), (422,)),
    (order(qty=True), (422,)),
    (order(qty=0), (422,)),
    (order(qty=-1), (422,)),
    (order(qty="-5"), (422,)),
    (order(qty="0"), (422,)),
    (order(qty="1e-12"), (422,)),
    (order(qty="Infinity"), (422,)),
    (order(qty="1e999999"), (422,)),
    (order(qty="NaN"), (422,)),
    (order(qty=...), (422,)),
    (order(notional=100), (422,)),
    (order(qty=..., notional=0.5), (422,)),
    (order(qty=..., notional="1e400"), (422,)),
    (order(side="hold"), (422,)),
    (order(side=1), (422,)),
    (order(side=...), (422,)),
    (order(type="foo"), (422,)),
    (order(type=...), (422,)),
    (order(time_in_force="week"), (422,)),
    (order(time_in_force=None), (422,)),
    (order(type="limit"), (422,)),
    (order(type="limit", limit_price="x"), (422,)),
    (order(type="limit", limit_price=True), (422,)),
    (order(type="limit", limit_price=0), (422,)),
    (order(type="limit", limit_price=-3), (422,)),
    (order(type="limit", limit_price="10.001"), (422,)),
    (order(type="limit", limit_price="1e12"), (422,)),
    (order(type="stop"), (422,)),
    (order(type="stop_limit", stop_price=10), (422,)),
    (order(type="stop_limit", limit_price=10), (422,)),
    (order(type="trailing_stop"), (422,)),
    (order(type="trailing_stop", trail_price=1, trail_percent=1), (422,)),
    (order(type="trailing_stop", trail_percent=150), (422,)),
    (order(order_class="bracket"), (422,)),
    (order(order_class=7), (422,)),
    (order(qty=..., notional=50, type="limit", limit_price=1), (422,)),
    (order(extended_hours="maybe"), (422,)),
    (order(extended_hours=True), (422,)),
    (order(client_order_id=5), (422,)),
    (order(client_order_id="x" * 129), (422,)),
    (order(client_order_id="bad-input-open"), (422,)),  # duplicate
    (order(qty=1.5, time_in_force="gtc"), (422,)),
    (order(qty=10**6), (403,)),  # buying power
    (order(side="sell", qty=11, symbol="MSFT"), (403,)),  # more than held
    (order(side="sell", symbol="INTC"), (403,)),  # hard to borrow
]


def test_malformed_bodies(setup, venue: SimVenue, raw: Raw):
    before = fingerprint(venue)
    for body in RAW_BODIES:
        r = raw.post("/v2/orders", data=body, headers={"Content-Type": "application/json"})
        assert_refused(r, (400,))
    assert_refused(raw.post("/v2/orders", data=b"{" + b" " * 70000 + b"}"), (413,))
    assert fingerprint(venue) == before


@pytest.mark.parametrize("body,statuses", BAD_ORDERS, ids=[json.dumps(b)[:60] for b, _ in BAD_ORDERS])
def test_bad_orders(setup, venue: SimVenue, raw: Raw, body: dict, statuses: tuple[int, ...]):
    before = fingerprint(venue)
    assert_refused(raw.post("/v2/orders", json=body), statuses)
    assert fingerprint(venue) == before


def test_bad_requests_elsewhere(setup, venue: SimVenue, raw: Raw):
    oid = setup["order_id"]
    md = Raw(venue.data_url)
    cases = [
        (raw.get, "/v2/orders", {"params": {"status": "bogus"}}, (422,)),
        (raw.get, "/v2/orders", {"params": {"limit": "abc"}}, (422,)),
        (raw.get, "/v2/orders", {"params": {"limit": 0}}, (422,)),
        (raw.get, "/v2/orders", {"params": {"limit": 501}}, (422,)),
        (raw.get, "/v2/orders", {"params": {"direction": "sideways"}}, (422,)),
        (raw.get, "/v2/orders", {"params": {"after": "not-a-date"}}, (422,)),
        (raw.get, "/v2/orders", {"params": {"side": "hold"}}, (422,)),
        (raw.get, "/v2/orders", {"params": {"nested": "maybe"}}, (422,)),
        (raw.get, "/v2/orders/not-a-uuid", {}, (404,)),
        (raw.get, "/v2/orders:by_client_order_id", {}, (422,)),
        (raw.get, "/v2/orders:by_client_order_id", {"params": {"client_order_id": "nope"}}, (404,)),
        (raw.patch, f"/v2/orders/{oid}", {"data": b"{"}, (400,)),
        (raw.patch, f"/v2/orders/{oid}", {"json": {}}, (422,)),
        (raw.patch, f"/v2/orders/{oid}", {"json": {"qty": -1}}, (422,)),
        (raw.patch, f"/v2/orders/{oid}", {"json": {"limit_price": "x"}}, (422,)),
        (raw.patch, f"/v2/orders/{oid}", {"json": {"limit_price": 1.001}}, (422,)),
        (raw.patch, f"/v2/orders/{oid}", {"json": {"time_in_force": "week"}}, (422,)),
        (raw.patch, f"/v2/orders/{oid}", {"json": {"client_order_id": "bad-input-open"}}, (422,)),
        (raw.patch, f"/v2/orders/{oid}", {"json": {"trail": 1}}, (422,)),
        (raw.patch, "/v2/orders/4f1ef5b2-7d55-4c5e-8a8f-000000000000", {"json": {"qty": 1}}, (404,)),
        (raw.delete, "/v2/orders/4f1ef5b2-7d55-4c5e-8a8f-000000000000", {}, (404,)),
        (raw.get, "/v2/positions/ZZZZ", {}, (404,)),
        (raw.delete, "/v2/positions/ZZZZ", {}, (404,)),
        (raw.delete, "/v2/positions/MSFT", {"params": {"qty": "abc"}}, (422,)),
        (raw.delete, "/v2/positions/MSFT", {"params": {"qty": "0"}}, (422,)),
        (raw.delete, "/v2/positions/MSFT", {"params": {"qty": "11"}}, (403,)),
        (raw.delete, "/v2/positions/MSFT", {"params": {"percentage": "150"}}, (422,)),
        (raw.delete, "/v2/positions/MSFT", {"params": {"qty": "1", "percentage": "5"}}, (422,)),
        (raw.delete, "/v2/positions", {"params": {"cancel_orders": "maybe"}}, (422,)),
        (raw.get, "/v2/calendar", {"params": {"start": "yesterday"}}, (422,)),
        (raw.get, "/v2/assets/NOPE", {}, (404,)),
        (raw.patch, "/v2/account/configurations", {"data": b"{"}, (400,)),
        (raw.patch, "/v2/account/configurations", {"json": []}, (400,)),
        (raw.patch, "/v2/account/configurations", {"json": {"no_shorting": "yes"}}, (422,)),
        (raw.patch, "/v2/account/configurations", {"json": {"max_margin_multiplier": 9}}, (422,)),
        (raw.request, "/v2/orders", {"method": "PUT"}, (405,)),
        (raw.get, "/v2/nothing-here", {}, (404,)),
        (raw.get, "/v2/account/", {}, (404,)),  # no redirect on a trailing slash
        (md.get, "/v2/stocks/bars", {"params": {"timeframe": "1Min"}}, (400,)),
        (md.get, "/v2/stocks/bars", {"params": {"symbols": "AAPL", "timeframe": "7Fortnights"}}, (400,)),
        (md.get, "/v2/stocks/bars", {"params": {"symbols": "AAPL", "timeframe": "1Min", "limit": 0}}, (400,)),
        (md.get, "/v2/stocks/quotes", {"params": {"symbols": "AAPL", "start": "soon"}}, (422,)),
        (md.get, "/v2/stocks/trades", {"params": {"symbols": "AAPL", "page_token": "!!"}}, (400,)),
        (md.get, "/v2/stocks/trades", {"params": {"symbols": "AAPL", "sort": "random"}}, (400,)),
        (md.get, "/v2/stocks/quotes/latest", {"params": {"symbols": "a b c"}}, (400,)),
        (raw.post, "/sim/v1/faults", {"json": {"http_500": 2}}, (422,)),
        (raw.post, "/sim/v1/faults", {"json": {"http_500": 0.5, "no_such_fault": 1}}, (422,)),
        (raw.post, "/sim/v1/faults", {"json": {"latency_ms": "slow"}}, (422,)),
        (raw.post, "/sim/v1/faults", {"json": {"rate_limit_per_minute": 0}}, (422,)),
        (raw.post, "/sim/v1/faults", {"data": b"nope"}, (400,)),
        (raw.post, "/sim/v1/prices/shock", {"json": {"symbols": ["ZZZ"], "pct": -5}}, (422,)),
        (raw.post, "/sim/v1/prices/shock", {"json": {"symbols": None, "pct": "x"}}, (422,)),
        (raw.post, "/sim/v1/prices/shock", {"json": {"symbols": "AAPL", "pct": 1}}, (422,)),
        (raw.post, "/sim/v1/prices/set", {"json": {"symbol": "AAPL", "price": -1}}, (422,)),
        (raw.post, "/sim/v1/prices/set", {"json": {"symbol": "AAPL", "bid": 10, "ask": 9}}, (422,)),
        (raw.post, "/sim/v1/clock", {"json": {"advance_seconds": -5}}, (422,)),
        (raw.post, "/sim/v1/clock", {"json": {"to": "yesterday"}}, (422,)),
        (raw.post, "/sim/v1/clock", {"json": {"to": "2000-01-01T00:00:00Z"}}, (422,)),
        (raw.post, "/sim/v1/clock", {"json": {"speed": 0}}, (422,)),
        (raw.post, "/sim/v1/clock", {"json": {"frozen": "no"}}, (422,)),
        (raw.post, "/sim/v1/clock", {"json": {"warp": 9}}, (422,)),
    ]
    for fn, path, kw, statuses in cases:
        before = fingerprint(venue)
        method = kw.pop("method", None)
        r = fn(method, path, **kw) if method else fn(path, **kw)
        assert_refused(r, statuses)
        assert fingerprint(venue) == before, path
    open_order = raw.get(f"/v2/orders/{oid}").json()
    assert open_order["status"] == "new" and open_order["limit_price"] == "1"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
fields = st.fixed_dictionaries(
    {},
    optional={
        "symbol": st.sampled_from(["AAPL", "aapl", "ZZZZ", "", 5]) | json_values,
        "qty": st.sampled_from([1, "2", 0, -1, "1.5", 1e30, "abc"]) | json_values,
        "notional": st.sampled_from([10, "25.5", 0]) | json_values,
        "side": st.sampled_from(["buy", "sell", "BUY"]) | json_values,
        "type": st.sampled_from(["market", "limit", "stop", "stop_limit", "trailing_stop"]) | json_values,
        "time_in_force": st.sampled_from(["day", "gtc", "ioc", "fok", "opg", "cls"]) | json_values,
        "limit_price": st.sampled_from([1, "0.5", "10.005", -1]) | json_values,
        "stop_price": st.sampled_from([1, "0.5", 9999]) | json_values,
        "trail_percent": json_values,
        "trail_price": json_values,
        "extended_hours": json_values,
        "client_order_id": json_values,
        "order_class": json_values,
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=fields | json_values)
def test_fuzzed_order_bodies_never_500(venue: SimVenue, raw: Raw, body: Any):
    r = raw.post("/v2/orders", json=body)
    assert r.status_code in (200, 400, 403, 422), (body, r.status_code, r.text)
    assert "Traceback" not in r.text
    if r.status_code != 200:
        assert_refused(r, (r.status_code,))
