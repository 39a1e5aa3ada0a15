"""The preflight (`execdesk doctor`, and the first thing a session does) against
engine/sim through alpaca-py: it passes on the built-in venue, and with wrong keys,
a blocked account, a SIP feed on the free plan or a non-tradable symbol it names
the problem and exits non-zero (issue 12 item 5)."""

from __future__ import annotations

import json
import os
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from engine.cli import main
from engine.config import Credentials, load_settings
from engine.sim import SimVenue
from tests.support import UNIVERSE

KEYS = Credentials(key_id="PKDOCTORTEST0001", secret_key="doctor-test-secret-0123456789")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith(("EXECDESK_", "APCA_")):
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.fixture
def venue() -> Iterator[SimVenue]:
    """A venue of the test's own, reached like any Alpaca endpoint (broker.kind = "alpaca")."""
    v = SimVenue(
        key_id=KEYS.key_id,
        secret_key=KEYS.secret_key,
        port=0,
        universe_path=str(UNIVERSE),
        frozen_clock=True,
        rate_limit_per_minute=None,
    )
    v.start()
    try:
        yield v
    finally:
        v.stop()


def config(tmp_path: Path, text: str = "") -> Path:
    path = tmp_path / "execution.toml"
    body = f'[session]\nuniverse_path = "{UNIVERSE}"\njournal_path = "{tmp_path / "journal.sqlite"}"\n'
    path.write_text(body + textwrap.dedent(text))
    return path


def outside(venue: SimVenue, extra: str = "") -> str:
    return f'[broker]\nkind = "alpaca"\ntrading_url = "{venue.trading_url}"\ndata_url = "{venue.data_url}"\n{extra}'


def doctor(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["doctor", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def drill(venue: SimVenue, path: str, body: dict) -> dict:
    headers = {"APCA-API-KEY-ID": KEYS.key_id, "APCA-API-SECRET-KEY": KEYS.secret_key}
    answer = requests.post(f"{venue.trading_url}/sim/v1/{path}", json=body, headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_on_the_built_in_venue_the_preflight_passes(capsys, tmp_path):
    code, out, _ = doctor(capsys, "--config", str(config(tmp_path)))

    assert code == 0, out
    assert out.splitlines()[-1] == "preflight passed (0 warning(s))"
    for check in ("endpoint", "credentials", "account", "data_plan", "assets", "clock", "calendar"):
        assert f"ok       {check}: " in out, (check, out)
    assert "53 universe symbols, every one active and tradable" in out


def test_json_says_passed_and_lists_every_finding(capsys, tmp_path):
    code, out, _ = doctor(capsys, "--config", str(config(tmp_path)), "--json")

    report = json.loads(out)
    assert code == 0 and report["passed"] is True
    assert report["endpoint"] == "built-in venue" and report["blockers"] == []
    assert {f["check"] for f in report["findings"]} == {
        "endpoint",
        "credentials",
        "account",
        "data_plan",
        "assets",
        "clock",
        "calendar",
    }


def test_an_outside_venue_with_the_right_keys_passes(capsys, clean_env, tmp_path, venue):
    clean_env.setenv("APCA_API_KEY_ID", KEYS.key_id)
    clean_env.setenv("APCA_API_SECRET_KEY", KEYS.secret_key)

    code, out, _ = doctor(capsys, "--config", str(config(tmp_path, outside(venue))))

    assert code == 0, out
    assert "(other endpoint)" in out.splitlines()[0]


def test_wrong_keys_are_named_as_wrong_keys_and_exit_1(capsys, clean_env, tmp_path, venue):
    clean_env.setenv("APCA_API_KEY_ID", "PKWRONGWRONG0001")
    clean_env.setenv("APCA_API_SECRET_KEY", "not-the-secret-at-all-000")

    code, out, _ = doctor(capsys, "--config", str(config(tmp_path, outside(venue))), "--json")

    report = json.loads(out)
    assert code == 1 and report["passed"] is False
    [blocker] = report["blockers"]
    assert blocker.startswith("credentials: the API key or secret is wrong:"), blocker
    assert "HTTP 401" in blocker and "PK…****" in blocker
    assert "not-the-secret" not in out and "PKWRONGWRONG0001" not in out


def test_a_blocked_account_is_named_and_exits_1(capsys, clean_env, tmp_path, venue):
    clean_env.setenv("APCA_API_KEY_ID", KEYS.key_id)
    clean_env.setenv("APCA_API_SECRET_KEY", KEYS.secret_key)
    drill(venue, "account", {"account_blocked": True})

    code, out, _ = doctor(capsys, "--config", str(config(tmp_path, outside(venue))))

    assert code == 1
    assert "blocker  account: account PA" in out and "is blocked (account_blocked): it cannot trade" in out
    assert out.splitlines()[-1].startswith("preflight FAILED: 1 blocker(s)")


def test_blocked_trading_and_an_inactive_account_are_blockers_too(capsys, clean_env, tmp_path, venue):
    clean_env.setenv("APCA_API_KEY_ID", KEYS.key_id)
    clean_env.setenv("APCA_API_SECRET_KEY", KEYS.secret_key)
    drill(venue, "account", {"trading_blocked": True, "status": "APPROVAL_PENDING"})

    code, out, _ = doctor(capsys, "--config", str(config(tmp_path, outside(venue))), "--json")

    blockers = json.loads(out)["blockers"]
    assert code == 1
    assert any("is APPROVAL_PENDING: the venue takes orders only from ACTIVE accounts" in b for b in blockers)
    assert any("trading is blocked for account" in b for b in blockers)


def test_a_sip_feed_on_the_free_plan_is_named_and_exits_1(capsys, tmp_path):
    path = config(tmp_path, '[broker]\nfeed = "sip"\n[sim]\nplan = "free"\n')

    code, out, _ = doctor(capsys, "--config", str(path), "--json")

    report = json.loads(out)
    assert code == 1
    [blocker] = report["blockers"]
    assert blocker.startswith('data_plan: broker.feed = "sip" is not in this account\'s market-data plan')
    assert "HTTP 403" in blocker and 'set broker.feed = "iex"' in blocker


def test_the_free_plan_says_which_symbols_stream_and_which_are_polled(capsys, tmp_path):
    # not a warning: the engine streams what the plan allows and polls the rest
    code, out, _ = doctor(capsys, "--config", str(config(tmp_path, '[sim]\nplan = "free"\n')), "--json")

    report = json.loads(out)
    assert code == 0 and report["passed"] is True and report["warnings"] == []
    [plan] = [f for f in report["findings"] if f["check"] == "data_plan"]
    assert "30 of 53 streamed, 23 polled over REST every 2 s" in plan["message"]


def test_a_non_tradable_symbol_in_the_universe_is_named_and_exits_1(capsys, clean_env, tmp_path, venue):
    clean_env.setenv("APCA_API_KEY_ID", KEYS.key_id)
    clean_env.setenv("APCA_API_SECRET_KEY", KEYS.secret_key)
    drill(venue, "assets", {"symbol": "XOM", "tradable": False})

    code, out, _ = doctor(capsys, "--config", str(config(tmp_path, outside(venue))), "--json")

    report = json.loads(out)
    assert code == 1
    assert report["blockers"] == ["assets: not tradable at the venue (tradable = false or status not active): XOM"]


def test_a_non_tradable_symbol_outside_the_allowlist_is_only_a_warning(capsys, clean_env, tmp_path, venue):
    clean_env.setenv("APCA_API_KEY_ID", KEYS.key_id)
    clean_env.setenv("APCA_API_SECRET_KEY", KEYS.secret_key)
    drill(venue, "assets", {"symbol": "XOM", "status": "inactive"})
    path = config(tmp_path, outside(venue, '[rollout]\nallowlist = ["AAPL", "MSFT"]\n'))

    code, out, _ = doctor(capsys, "--config", str(path), "--json")

    report = json.loads(out)
    assert code == 0 and report["blockers"] == []
    assert any("(outside rollout.allowlist): XOM" in w for w in report["warnings"])


def test_the_venue_refuses_orders_for_a_non_tradable_asset_and_a_blocked_account(venue):
    """The drills make the venue as strict as Alpaca, not only its answers to the preflight."""
    from alpaca.common.exceptions import APIError
    from alpaca.trading.client import TradingClient
    from alpaca.trading.enums import OrderSide, TimeInForce
    from alpaca.trading.requests import MarketOrderRequest

    client = TradingClient(KEYS.key_id, KEYS.secret_key, paper=True, url_override=venue.trading_url)
    client._retry = 0
    order = MarketOrderRequest(symbol="XOM", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY)
    drill(venue, "assets", {"symbol": "XOM", "tradable": False})
    with pytest.raises(APIError) as refused:
        client.submit_order(order)
    assert refused.value.status_code == 422 and "not tradable" in str(refused.value)
    assert client.get_asset("XOM").tradable is False

    drill(venue, "account", {"account_blocked": True})
    with pytest.raises(APIError) as refused:
        client.submit_order(MarketOrderRequest(symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY))
    assert refused.value.status_code == 403
    assert client.get_account().account_blocked is True


def test_doctor_honours_the_rules_of_live_trading(capsys, tmp_path):
    path = config(tmp_path, '[execution]\nmode = "live"\n')

    code, _, err = doctor(capsys, "--config", str(path))

    assert code == 2 and 'execution.mode = "live" needs --live' in err


def test_the_preflight_reads_every_asset_in_one_listing(tmp_path, venue):
    """One GET /v2/assets, not a request per symbol."""
    from engine.doctor import run_preflight

    settings = load_settings(config(tmp_path, outside(venue)), env={})
    before = venue.state()["requests_served"]

    report = run_preflight(settings, KEYS, venue.trading_url, venue.data_url)

    assert report.passed, report.render()
    # account, latest quote (iex), latest quote (sip), assets, clock, calendar
    assert venue.state()["requests_served"] - before == 6
