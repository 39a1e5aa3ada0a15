"""The broker reads the environment's HTTP settings (proxies, no_proxy, CA bundle) once,
when it is built, not on every request: requests' per-request scan of os.environ was
about a millisecond of CPU per order. Through alpaca-py against the local venue."""

from __future__ import annotations

import socket
from decimal import Decimal

import requests
import requests.sessions

from engine.broker.alpaca import rest_session
from engine.broker.base import SubmitOutcomeKind, SubmitRequest
from tests.engine.broker.conftest import make_broker


def _order(tag: str) -> SubmitRequest:
    return SubmitRequest(f"t-env-{tag}", "AAPL", "buy", Decimal(1), "limit", "day", Decimal("1.00"))


async def test_a_submit_does_not_read_the_environment_again(venue, monkeypatch):
    broker = make_broker(venue)
    reads: list[str] = []
    real = requests.sessions.get_environ_proxies

    def counting(url, no_proxy=None):
        reads.append(url)
        return real(url, no_proxy=no_proxy)

    monkeypatch.setattr(requests.sessions, "get_environ_proxies", counting)
    try:
        outcome = await broker.submit(_order("once"))
    finally:
        await broker.stop()
    assert outcome.kind is SubmitOutcomeKind.ACKED, outcome
    assert reads == []


async def test_proxies_and_no_proxy_of_the_environment_still_apply(venue, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("NO_PROXY", "")
    proxied = make_broker(venue)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    direct = make_broker(venue)
    try:
        assert proxied._trading._session.proxies.get("http") == "http://proxy.invalid:3128"
        outcome = await direct.submit(_order("direct"))
        assert outcome.kind is SubmitOutcomeKind.ACKED, outcome
    finally:
        await proxied.stop()
        await direct.stop()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_a_proxy_named_by_the_environment_carries_the_requests(venue, monkeypatch):
    """HTTPS_PROXY / HTTP_PROXY read once are still used for every request: a proxy that
    refuses connections makes the submit unknown (it never reaches the venue), while the
    same submit without a proxy is acked."""
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:1")
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("NO_PROXY", "")
    proxied = make_broker(venue)
    monkeypatch.delenv("HTTPS_PROXY")
    monkeypatch.delenv("HTTP_PROXY")
    direct = make_broker(venue)
    try:
        session = proxied._trading._session
        assert session.trust_env is False
        assert session.proxies["https"] == "http://127.0.0.1:1"
        lost = await proxied.submit(_order("via-proxy"))
        sent = await direct.submit(_order("no-proxy"))
        at_venue = await direct.lookup(_order("via-proxy").client_order_id)
    finally:
        await proxied.stop()
        await direct.stop()
    assert lost.kind is SubmitOutcomeKind.UNKNOWN, lost
    assert sent.kind is SubmitOutcomeKind.ACKED, sent
    assert at_venue is None  # it went to the proxy, not to the venue


def test_without_an_alpaca_py_session_the_client_is_left_as_built():
    """The broker reaches alpaca-py's requests.Session through a private attribute
    (RESTClient._session): a client without one is not configured rather than broken."""

    class NoSession:
        _base_url = "http://127.0.0.1:1"

    assert rest_session(NoSession()) is None
    client = NoSession()
    client._session = requests.Session()  # type: ignore[attr-defined]
    assert rest_session(client) is client._session  # type: ignore[attr-defined]
