"""``python -m engine.sim`` / ``execdesk sim``: run the venue standalone until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import signal
import sys
from decimal import Decimal, InvalidOperation

from .exchange import DEFAULT_MARGIN_MULTIPLIER
from .fmt import parse_time
from .plan import DEFAULT_CONNECTION_HOLD_SECONDS, DEFAULT_PLAN, PLANS

# Exit status, the same values as engine/exitcodes.py (the sim may not import the engine).
EXIT_OK = 0
EXIT_USAGE = 2


def _decimal(text: str) -> Decimal:
    try:
        d = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not d.is_finite() or d <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {text!r}")
    return d


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"must be > 0: {text!r}")
    return v


def _non_negative_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= v < float("inf"):
        raise argparse.ArgumentTypeError(f"must be >= 0: {text!r}")
    return v


def _probability(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1: {text!r}")
    return v


def _time(text: str):
    try:
        return parse_time(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 time: {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (default: any free port)")
    parser.add_argument("--seed", type=int, default=42, help="seed of prices, fills and faults (default 42)")
    parser.add_argument(
        "--speed", type=_positive_float, default=1.0, help="venue seconds per real second (default 1.0)"
    )
    parser.add_argument(
        "--bars-csv",
        metavar="PATH",
        default=None,
        help="replay minute bars (timestamp,symbol,open,high,low,close,volume)",
    )
    parser.add_argument("--universe", metavar="PATH", default=None, help="universe file (default config/universe.toml)")
    parser.add_argument(
        "--start-at",
        type=_time,
        default=None,
        metavar="TIME",
        help="venue start time, RFC 3339 (default: the most recent regular-session open)",
    )
    parser.add_argument("--frozen", action="store_true", help="the venue clock moves only through the drill API")
    parser.add_argument(
        "--partial-fill-prob",
        type=_probability,
        default=0.10,
        help="share of eligible fills that are partial (default 0.10)",
    )
    parser.add_argument(
        "--margin-multiplier",
        type=_decimal,
        default=DEFAULT_MARGIN_MULTIPLIER,
        help="1 (cash), 2 (Reg T) or 4 (default, as a new Alpaca paper account)",
    )
    parser.add_argument("--starting-cash", type=_decimal, default=Decimal(100000))
    parser.add_argument(
        "--rate-limit", type=int, default=200, metavar="N", help="requests per minute per key; 0 = off (default 200)"
    )
    parser.add_argument(
        "--plan",
        choices=PLANS,
        default=DEFAULT_PLAN,
        help=f"market data plan: free (IEX, 30 stream symbols) or unlimited (SIP) (default {DEFAULT_PLAN})",
    )
    parser.add_argument(
        "--connection-hold",
        type=_non_negative_float,
        default=DEFAULT_CONNECTION_HOLD_SECONDS,
        metavar="SECONDS",
        help="how long a stream connection cut without a close holds its slot"
        f" (default {DEFAULT_CONNECTION_HOLD_SECONDS:g})",
    )
    parser.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])


async def _serve(args: argparse.Namespace, key_id: str, secret_key: str, show_secret: bool) -> int:
    from .server import SimServer

    server = SimServer(
        key_id=key_id,
        secret_key=secret_key,
        seed=args.seed,
        speed=args.speed,
        universe_path=args.universe,
        bars_csv=args.bars_csv,
        partial_fill_prob=args.partial_fill_prob,
        margin_multiplier=args.margin_multiplier,
        starting_cash=args.starting_cash,
        rate_limit_per_minute=args.rate_limit or None,
        start_at=args.start_at,
        frozen_clock=args.frozen,
        plan=args.plan,
        connection_hold_seconds=args.connection_hold,
    )
    port = await server.start(args.port)
    base = f"http://127.0.0.1:{port}"
    out = sys.stdout
    out.write("execdesk sim: local Alpaca-compatible paper venue (127.0.0.1 only)\n")
    out.write(f"  trading URL    {base}\n")
    out.write(f"  data URL       {base}\n")
    out.write(f"  trade stream   ws://127.0.0.1:{port}/stream\n")
    out.write(f"  data stream    ws://127.0.0.1:{port}/v2/iex   (plan {args.plan})\n")
    out.write(f"  drill API      {base}/sim/v1/\n")
    out.write(f"  key id         {key_id}\n")
    if show_secret:
        out.write(f"  secret key     {secret_key}   (generated for this run)\n")
    out.write(
        f"  venue clock    {server.exchange.t.isoformat()} speed {args.speed}{' (frozen)' if args.frozen else ''}\n"
    )
    out.write(f"READY {base}\n")
    out.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - non-Unix
            signal.signal(sig, lambda *_: loop.call_soon_threadsafe(stop.set))
    await stop.wait()
    await server.stop()
    out.write("execdesk sim: stopped\n")
    out.flush()
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    """Run with parsed arguments (for ``execdesk sim``)."""
    logging.basicConfig(level=getattr(logging, args.log_level), format="%(asctime)s %(name)s %(message)s")
    key_id = os.environ.get("APCA_API_KEY_ID") or ""
    secret_key = os.environ.get("APCA_API_SECRET_KEY") or ""
    show_secret = False
    if not key_id or not secret_key:
        key_id = "SIM" + secrets.token_hex(8).upper()
        secret_key = secrets.token_urlsafe(30)
        show_secret = True
    try:
        return asyncio.run(_serve(args, key_id, secret_key, show_secret))
    except (OSError, ValueError) as exc:
        print(f"execdesk sim: {exc}", file=sys.stderr)
        return EXIT_USAGE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="execdesk sim", description="Local Alpaca-compatible paper venue (REST, streams, drills)."
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run(args)
