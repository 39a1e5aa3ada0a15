"""Market data on every plan: which symbols' quotes stream and which are polled.

The stream carries quotes for as many symbols as the plan allows
(market_data.stream_symbol_limit; 30 on Alpaca's free IEX plan, learned lower
from a 405) — symbols with positions first, then those with working orders,
then the universe's order — and minute bars for all of them (bars do not count
against the limit). Every other symbol is kept fresh from REST: one
latest-quotes request for all of them every market_data.poll_interval (wall
seconds, so 60 / poll_interval requests a minute). While the data stream is
down, refused, given up (409) or quiet, every symbol is polled.

The watchdog: a data stream connected but silent for
market_data.stream_silence_timeout while the market is open is reconnected (the
broker's back-off, which waits out a connection hold after a 406). Stream error
messages are said in the event log with what the engine did about them.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from engine.broker.base import BrokerUnavailable, Channel, StreamError, StreamSubscribed, VenueQuote
from engine.config import IEX_STREAM_SYMBOL_LIMIT
from engine.snapshot import MarketDataStatus

if TYPE_CHECKING:
    from engine.core.engine import Engine


@dataclass(frozen=True, slots=True)
class QuotesPolled:
    """The answer of one latest-quotes poll (error set when the venue could not answer)."""

    asked: tuple[str, ...]
    quotes: tuple[VenueQuote, ...]
    error: str = ""


def learned_limit(asked: int, limit: int | None) -> int:
    """The stream limit to assume after a 405 for a subscription of `asked` symbols:
    the free plan's 30 when more were asked, else half of what was asked."""
    top = asked if limit is None else min(asked, limit)
    if top > IEX_STREAM_SYMBOL_LIMIT:
        return IEX_STREAM_SYMBOL_LIMIT
    return max(1, top // 2)


class MarketData:
    def __init__(self, engine: Engine):
        self.e = engine
        md = engine.settings.market_data
        self.poll_interval = md.poll_interval
        self.silence_timeout = md.stream_silence_timeout
        self.limit: int | None = md.stream_limit(engine.settings.broker.feed)
        self.limit_learned = False
        self.requested: tuple[str, ...] = self.initial()  # quotes asked of the stream
        self.streamed: frozenset[str] = frozenset()  # quotes the venue confirmed
        self.announced: frozenset[str] = frozenset()  # the last confirmed set said in the event log
        self.stream_ended = ""  # the venue refused the feed for good (409)
        self.polling = False
        self.poll_times: deque[float] = deque()  # monotonic times of the polls of the last minute
        self.last_poll: datetime | None = None
        self.last_poll_error = ""
        self.last_error = ""
        self.watchdog_restarts = 0

    # ------------------------------------------------------------ choosing

    def tracked(self) -> list[str]:
        """Every symbol the engine keeps a price for: the universe, then positions outside it."""
        e = self.e
        return list(dict.fromkeys([*e.symbols, *e.portfolio.positions]))

    def initial(self) -> tuple[str, ...]:
        """What the broker streams at start (before positions are known): the universe's order."""
        symbols = tuple(self.e.symbols)
        return symbols if self.limit is None else symbols[: self.limit]

    def desired(self) -> tuple[str, ...]:
        """The symbols whose quotes should stream: positions (largest first), working
        orders, then those streaming already (no churn), then the universe's order."""
        e = self.e
        positions = sorted(e.portfolio.positions.values(), key=lambda p: -abs(p.qty * p.avg_entry_price))
        must = [p.symbol for p in positions] + [o.symbol for o in e.open_orders()]
        order = list(dict.fromkeys([*must, *self.requested, *e.symbols]))
        return tuple(order) if self.limit is None else tuple(order[: self.limit])

    def quiet(self) -> bool:
        """The stream cannot be trusted for fresh quotes now: not up, given up, or
        silent for two poll intervals while the market is open."""
        e = self.e
        if self.stream_ended or e.connectivity.market_data != "up":
            return True
        silence = e.broker.stream_silence(Channel.MARKET_DATA)
        return silence is None or (e.clock.market_open() and silence > 2 * self.poll_interval)

    def polled(self) -> list[str]:
        tracked = self.tracked()
        if self.quiet():
            return tracked
        return [s for s in tracked if s not in self.streamed]

    # ------------------------------------------------------------ the timer

    def on_timer(self) -> None:
        e = self.e
        if not e.started or e.stopping:
            return
        self.reprioritise()
        self.watchdog()
        self.poll()

    def reprioritise(self) -> None:
        e = self.e
        if self.stream_ended:
            return
        want = self.desired()
        if set(want) == set(self.requested):
            return
        self.requested = want
        e.spawn(e.broker.stream_quotes(want), "stream-quotes")

    def watchdog(self) -> None:
        e = self.e
        if e.clock.speed == 0 or not e.clock.market_open():
            return  # a frozen venue clock moves no prices: silence is expected
        if not self.streamed or e.connectivity.market_data != "up":
            return
        silence = e.broker.stream_silence(Channel.MARKET_DATA)
        if silence is None or silence < self.silence_timeout:
            return
        reason = f"silent for {silence:.0f} s while the market is open"
        if e.broker.restart_stream(Channel.MARKET_DATA, reason):
            self.watchdog_restarts += 1
            e.note(
                "error",
                None,
                f"market data: no data for {silence:.0f} s while the market is open: reconnecting "
                f"(every symbol polled over REST meanwhile)",
            )

    def poll(self) -> None:
        if self.polling:
            return
        symbols = tuple(self.polled())
        if not symbols:
            return
        self.polling = True
        now = time.monotonic()
        self.poll_times.append(now)
        while self.poll_times and self.poll_times[0] < now - 60:
            self.poll_times.popleft()
        self.e.spawn(self._poll(symbols), "poll-quotes")

    async def _poll(self, symbols: tuple[str, ...]) -> None:
        e = self.e
        try:
            quotes = await e.broker.latest_quotes(symbols)
        except BrokerUnavailable as exc:
            e.post(QuotesPolled(symbols, (), str(exc)))
            return
        except BaseException:
            self.polling = False
            raise
        e.post(QuotesPolled(symbols, tuple(quotes.values())))

    def on_polled(self, item: QuotesPolled) -> None:
        e = self.e
        self.polling = False
        if item.error:
            if not self.last_poll_error:
                e.note("error", None, f"market data: quotes poll failed ({item.error}); asking again next time")
            self.last_poll_error = item.error
            return
        if self.last_poll_error:
            e.note("info", None, "market data: quotes poll answered again")
        self.last_poll_error = ""
        self.last_poll = e.clock.now()
        books = e.portfolio.books
        for quote in item.quotes:
            held = books.get(quote.symbol)
            if held is not None and held.quote_ts is not None and held.quote_ts >= quote.ts:
                continue  # the stream (or a poll) already brought this one or a newer one
            e.intents.on_quote(quote)

    # ------------------------------------------------------------ the venue's words

    def on_subscribed(self, item: StreamSubscribed) -> None:
        """The venue's confirmation of the quotes that stream. Said in the event log
        once it is the subscription asked for (a change is unsubscribe, then
        subscribe: the venue confirms each), naming what moved since the last one."""
        e = self.e
        streamed = frozenset(item.quotes)
        self.streamed = streamed
        if streamed != frozenset(self.requested) or streamed == self.announced:
            return
        before, self.announced = self.announced, streamed
        tracked = self.tracked()
        polled = len(tracked) - len(streamed & set(tracked))
        if not polled and self.limit is None:
            return  # everything streams, as configured: nothing to say
        text = (
            f"market data: quotes of {len(streamed)} symbol(s) stream, {polled} polled over REST "
            f"(one request every {self.poll_interval:g} s = {60 / self.poll_interval:.0f}/min)"
        )
        if before:
            added, dropped = sorted(streamed - before), sorted(before - streamed)
            text += f"; now streamed: {', '.join(added) or '-'}; now polled: {', '.join(dropped) or '-'}"
        e.note("info", None, text)

    def on_stream_error(self, item: StreamError) -> None:
        e = self.e
        what = "trade stream" if item.channel is Channel.TRADE_STREAM else "market data stream"
        action = item.action
        if item.channel is Channel.MARKET_DATA:
            if item.code == 405:
                asked = len(self.requested)
                self.limit = learned_limit(asked, self.limit)
                self.limit_learned = True
                self.requested = ()  # the venue kept what it had: ask again, within the limit
                self.reprioritise()
                polled = max(0, len(self.tracked()) - self.limit)
                action = (
                    f"the venue kept its old subscription; the engine now streams the quotes of "
                    f"{self.limit} symbol(s) and polls the other {polled} over REST"
                )
            elif item.code == 409:
                self.stream_ended = item.message
                action = f"{action}; every symbol is polled over REST (check broker.feed and the plan)"
            elif item.code == 406:
                action = f"{action}; every symbol is polled over REST meanwhile"
        text = f"{what} error {item.code or '?'} {item.message!r}: {action}"
        self.last_error = text
        e.note("error", None, text)

    # ------------------------------------------------------------ the snapshot

    def status(self) -> MarketDataStatus:
        e = self.e
        now = e.clock.now()
        books = e.portfolio.books
        tracked = self.tracked()
        ages = [
            (now - b.quote_ts).total_seconds()
            for s in tracked
            if (b := books.get(s)) is not None and b.quote_ts is not None
        ]
        polled = self.polled()
        polled_set = set(polled)
        return MarketDataStatus(
            streamed=tuple(s for s in tracked if s in self.streamed and s not in polled_set),
            polled=tuple(polled),
            stream_limit=self.limit,
            limit_learned=self.limit_learned,
            poll_interval=self.poll_interval,
            poll_requests_per_minute=round(60 / self.poll_interval, 1),
            polls_last_minute=sum(1 for t in self.poll_times if t >= time.monotonic() - 60),
            last_poll=self.last_poll,
            oldest_quote_age=max(ages) if ages else None,
            without_quote=len(tracked) - len(ages),
            watchdog_restarts=self.watchdog_restarts,
            last_error=self.last_error,
        )
