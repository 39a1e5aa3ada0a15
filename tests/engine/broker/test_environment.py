"""The broker reads the environment's HTTP settings (proxies, no_proxy, CA bundle) once,
when it is built, not on every request: requests' per-request scan of os.environ was
about a millisecond of CPU per order. Through alpaca-py against the local venue."""

from __future__ import annotations

from decimal import Decimal

import requests.sessions

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
