"""``python -m engine.sim`` runs standalone: starts, prints its URLs and READY, serves
alpaca-py, and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, OrderStatus, TimeInForce
from alpaca.trading.requests import GetOrdersRequest, LimitOrderRequest, MarketOrderRequest

ROOT = Path(__file__).resolve().parents[3]


def spawn(*args: str, env: dict | None = None) -> tuple[subprocess.Popen, list[str]]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("APCA_")}
    full_env.update(env or {})
    full_env["PYTHONUNBUFFERED"] = "1"
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine.sim", "--port", "0", *args],
        cwd=ROOT,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    deadline = time.monotonic() + 30  # generous on a loaded machine; it starts in well under 2 s
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if line.startswith("READY "):
            return proc, lines
    proc.kill()
    raise AssertionError(f"no READY line: {lines} {proc.stderr.read() if proc.stderr else ''}")


def stop(proc: subprocess.Popen) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=20)
    return proc.returncode, out


def test_standalone_venue_serves_alpaca_py():
    key, secret = "PKCLITEST0001", "cli-secret-0123456789"
    proc, lines = spawn(
        "--seed",
        "7",
        "--frozen",
        "--start-at",
        "2025-06-02T13:30:00Z",
        "--partial-fill-prob",
        "0",
        env={"APCA_API_KEY_ID": key, "APCA_API_SECRET_KEY": secret},
    )
    try:
        text = "\n".join(lines)
        url = lines[-1].split()[1]
        assert url.startswith("http://127.0.0.1:")
        assert f"trading URL    {url}" in text and f"data URL       {url}" in text
        assert url.replace("http", "ws") + "/stream" in text and url.replace("http", "ws") + "/v2/iex" in text
        assert key in text and secret not in text  # the secret came from the environment: never printed
        c = TradingClient(key, secret, url_override=url)
        filled = c.submit_order(
            MarketOrderRequest(symbol="AAPL", qty=3, side=OrderSide.BUY, time_in_force=TimeInForce.DAY)
        )
        assert c.get_order_by_id(filled.id).status == OrderStatus.FILLED
        resting = c.submit_order(
            LimitOrderRequest(symbol="MSFT", qty=1, limit_price=1, side=OrderSide.BUY, time_in_force=TimeInForce.GTC)
        )
        assert [o.id for o in c.get_orders()] == [resting.id]
        assert len(c.get_orders(GetOrdersRequest(status="all"))) == 2
        c.cancel_order_by_id(resting.id)
        assert c.get_order_by_id(resting.id).status == OrderStatus.CANCELED
        assert c.get_open_position("AAPL").qty == "3"
    finally:
        code, out = stop(proc)
    assert code == 0 and "stopped" in out


def test_generated_keys_are_printed_and_work():
    proc, lines = spawn("--frozen")
    try:
        key = next(ln.split()[-1] for ln in lines if ln.strip().startswith("key id"))
        secret = next(ln.split()[2] for ln in lines if ln.strip().startswith("secret key"))
        url = lines[-1].split()[1]
        assert TradingClient(key, secret, url_override=url).get_account().status.value == "ACTIVE"
    finally:
        assert stop(proc)[0] == 0


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--bars-csv", "/nonexistent/bars.csv"], "No such file"),
        (["--speed", "0"], "must be > 0"),
        (["--partial-fill-prob", "2"], "between 0 and 1"),
    ],
)
def test_bad_arguments_fail_cleanly(args: list[str], needle: str):
    r = subprocess.run(
        [sys.executable, "-m", "engine.sim", "--port", "0", *args], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert r.returncode == 2
    assert needle in r.stderr and "Traceback" not in r.stderr
