"""A small model in the team's style, driving the Desk API end to end.

Data pipeline -> features -> model -> one score per symbol each bar -> `Desk`:

- bars: the venue's minute bars through alpaca-py's StockHistoricalDataClient (the
  built-in venue serves two sessions of history before its start, like a real feed);
- features per symbol and bar: returns over 1, 5 and 15 minutes, the 15-minute
  volatility, and the distance of the close from its 20-minute mean in volatilities;
- model: a scikit-learn ridge regression of the next 5-minute return, trained on the
  venue's own history at start-up;
- score: tanh(prediction / the spread of the training predictions), in [-1, 1].

Run it against the built-in venue (installs with `pip install -e ".[examples]"`):

    python -m examples.minute_model --bars 5

It is a demonstration of the plumbing, not a strategy."""

from __future__ import annotations

import argparse
import math
import secrets
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from sklearn.linear_model import Ridge

from engine import Desk
from engine.config import Credentials, credentials_from_env
from engine.desk import BatchResult

HORIZON = 5  # minutes ahead the model predicts
LOOKBACK = 21  # minute bars one feature row needs (20-minute mean + 1)
HISTORY = timedelta(days=4)  # how far back training reads (covers a weekend)
DEFAULT_SYMBOLS = ("AAPL", "MSFT", "NVDA", "AMZN", "JPM", "XOM", "JNJ", "PG")


def features(closes: Sequence[float]) -> list[float] | None:
    """The feature row at the last close of `closes` (None with fewer than LOOKBACK)."""
    if len(closes) < LOOKBACK:
        return None
    c = np.asarray(closes[-LOOKBACK:], dtype=float)
    rets = np.diff(np.log(c))
    vol = float(rets[-15:].std()) or 1e-9
    mean20 = float(c[-20:].mean())
    return [
        float(rets[-1]),
        float(np.log(c[-1] / c[-6])),
        float(np.log(c[-1] / c[-16])),
        vol,
        (float(c[-1]) - mean20) / (mean20 * vol),
    ]


@dataclass
class MinuteModel:
    """Ridge regression of the next HORIZON-minute log return on `features`."""

    model: Ridge
    scale: float  # the spread of the training predictions: a score of tanh(1) at one spread

    @classmethod
    def train(cls, history: Mapping[str, Sequence[float]]) -> MinuteModel:
        rows, targets = [], []
        for closes in history.values():
            for end in range(LOOKBACK, len(closes) - HORIZON):
                row = features(closes[:end])
                if row is not None:
                    rows.append(row)
                    targets.append(math.log(closes[end - 1 + HORIZON] / closes[end - 1]))
        if len(rows) < 50:
            raise ValueError(f"too little history to train on: {len(rows)} rows")
        x, y = np.asarray(rows), np.asarray(targets)
        model = Ridge(alpha=1e-3).fit(x, y)
        spread = float(np.std(model.predict(x))) or 1e-9
        return cls(model, spread)

    def scores(self, recent: Mapping[str, Sequence[float]]) -> dict[str, float]:
        """One score per symbol with enough bars, in [-1, 1]."""
        out: dict[str, float] = {}
        for symbol, closes in sorted(recent.items()):
            row = features(closes)
            if row is None:
                continue
            predicted = float(self.model.predict(np.asarray([row]))[0])
            out[symbol] = round(math.tanh(predicted / self.scale), 4) + 0.0
        return out


class VenueBars:
    """Minute closes from the venue through alpaca-py's StockHistoricalDataClient: the
    history once (`load`), then each bar only the minutes since (`refresh`)."""

    def __init__(self, credentials: Credentials, data_url: str | None):
        from alpaca.data.historical import StockHistoricalDataClient

        self.client = StockHistoricalDataClient(credentials.key_id, credentials.secret_key, url_override=data_url)
        self.history: dict[str, list[float]] = {}
        self._last: dict[str, datetime] = {}

    def closes(self, symbols: Sequence[str], start: datetime, end: datetime) -> dict[str, list[float]]:
        """The minute closes of [start, end), kept as the history `refresh` extends."""
        from alpaca.data.requests import StockBarsRequest
        from alpaca.data.timeframe import TimeFrame

        request = StockBarsRequest(symbol_or_symbols=list(symbols), timeframe=TimeFrame.Minute, start=start, end=end)
        bars = self.client.get_stock_bars(request).data  # type: ignore[union-attr]
        out: dict[str, list[float]] = {}
        for symbol in symbols:
            rows = [b for b in bars.get(symbol, []) if b.timestamp > self._last.get(symbol, start - timedelta(1))]
            out[symbol] = [float(b.close) for b in rows]
            self.history.setdefault(symbol, []).extend(out[symbol])
            if rows:
                self._last[symbol] = rows[-1].timestamp
        return out

    def refresh(self, symbols: Sequence[str], end: datetime) -> dict[str, list[float]]:
        """The history with the minutes up to `end` added (its last LOOKBACK closes per symbol)."""
        start = min(self._last.values(), default=end - timedelta(hours=1))
        self.closes(symbols, start, end)
        return {s: self.history.get(s, [])[-LOOKBACK:] for s in symbols}


def run(
    desk: Desk,
    bars: VenueBars,
    model: MinuteModel,
    symbols: Sequence[str],
    *,
    n_bars: int,
    next_bar: Callable[[], datetime],
    wait: float = 30.0,
) -> list[BatchResult]:
    """Each bar: the latest minute closes, a score per symbol, one batch to the desk;
    returns the batches' results once their orders are final (or `wait` passed)."""
    results = []
    for _ in range(n_bars):
        ts = next_bar()
        result = desk.submit_signals(ts, model.scores(bars.refresh(symbols, ts)))
        results.append(result.wait(wait))
        line = ", ".join(f"{r.symbol} {r.value:+.2f} {r.verdict.value}" for r in result)
        print(f"{ts:%H:%M} {line}", flush=True)
    return results


def venue_clock(desk: Desk) -> Callable[[], datetime]:
    """The next minute close of the venue clock, waiting for it (the venue runs at its speed)."""
    from alpaca.trading.client import TradingClient

    creds = desk.session.credentials
    assert creds is not None
    clock = TradingClient(
        creds.key_id, creds.secret_key, paper=True, url_override=desk.venue.trading_url if desk.venue else None
    )

    def next_bar() -> datetime:
        now = clock.get_clock().timestamp  # type: ignore[union-attr]
        target = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
        while (now := clock.get_clock().timestamp) < target:  # type: ignore[union-attr]
            time.sleep(0.2)
        return target

    return next_bar


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="execution.toml (default: config/execution.toml)")
    parser.add_argument("--journal", default="var/example.sqlite")
    parser.add_argument("--bars", type=int, default=5)
    parser.add_argument("--symbols", default=",".join(DEFAULT_SYMBOLS))
    args = parser.parse_args(argv)
    symbols = [s.strip() for s in args.symbols.split(",") if s.strip()]
    credentials = credentials_from_env() or Credentials(
        key_id="PKEXAMPLE" + secrets.token_hex(4).upper(), secret_key=secrets.token_urlsafe(24)
    )
    with Desk.open(args.config, journal=args.journal, credentials=credentials, auto_approve=True) as desk:
        bars = VenueBars(credentials, desk.venue.data_url if desk.venue else None)
        now = desk.snapshot.venue_time or datetime.now().astimezone()
        model = MinuteModel.train(bars.closes(symbols, now - HISTORY, now))
        run(desk, bars, model, symbols, n_bars=args.bars, next_bar=venue_clock(desk))
    return 0


if __name__ == "__main__":
    sys.exit(main())
