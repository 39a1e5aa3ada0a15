"""Market data on every plan: which symbols' quotes stream and which are polled.

The stream carries quotes for as many symbols as the plan allows
(market_data.stream_symbol_limit; 30 on Alpaca's free IEX plan, learned lower
from a 405) — symbols with positions first, then those with working orders,
then the universe's order — and minute bars for all of them (bars do not count
against the limit). Every other symbol is kept fresh from REST: one
latest-quotes request for all of them every market_data.poll_interval. While the
data stream is down, refused, given up (409) or quiet, every symbol is polled.

One price reader: this module is the engine's only reader of latest quotes over
REST once it trades. The stop timer asks it for the held symbols whose quote is
stale (need_fresh: they join the next poll), Flatten asks it before pricing its
closing orders (read_now); every read counts against the one poll budget.

One clock: poll_interval is venue seconds, like max_quote_age (the freshness it
serves), so at a venue speed above 1 the polls come that much more often in wall
time, but never more often than half the REST budget allows, nor than every
MIN_POLL_GAP (poll_gap); on a slow or frozen venue clock they come every
poll_interval wall seconds.

The watchdog: a data stream connected but silent for
market_data.stream_silence_timeout while the market is open is reconnected (the
broker's back-off, which waits out a connection hold after a 406). Stream error
messages are said in the event log with what the engine did about them.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
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
    scheduled: bool = True  # the timer's poll (False: read_now, for Flatten)


#: The polls never come more often than this (wall seconds; poll_interval's least).
MIN_POLL_GAP = 0.5


def poll_gap(interval: float, speed: float, budget_per_minute: int) -> float:
    """Wall seconds between two polls for a poll_interval of `interval` venue seconds
    at venue `speed`: interval / speed, never longer than `interval` (a slow or frozen
    clock is polled as at speed 1) and never shorter than the polls' share of the
    REST budget allows (half of budget_per_minute, as config validation has it) nor
    than MIN_POLL_GAP."""
    floor = max(120.0 / budget_per_minute, MIN_POLL_GAP)
    wall = interval if speed <= 0 else min(interval / speed, interval)
    return max(wall, floor)


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
        self.wanted: frozenset[str] = frozenset()  # held symbols the stop timer needs fresh
        self.polled_at = 0.0  # monotonic time of the last poll
        self.poll_times: deque[float] = deque()  # monotonic times of the polls of the last minute
        self.last_poll: datetime | None = None
        self.last_poll_error = ""
        self.last_error = ""
        self.watchdog_restarts = 0
        self.cadence_said = False

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

    def poll_gap(self) -> float:
        """Wall seconds between polls at the venue's speed (the market_data timer)."""
        e = self.e
        return poll_gap(self.poll_interval, e.clock.speed, e.settings.broker.rate_limit_per_minute)

    def quiet(self) -> bool:
        """The stream cannot be trusted for fresh quotes now: not up, given up, or
        silent for two poll gaps (wall seconds) while the market is open. On a frozen
        venue clock silence is expected (no price moves), as for the watchdog."""
        e = self.e
        if self.stream_ended or e.connectivity.market_data != "up":
            return True
        if e.clock.speed == 0:
            return False
        silence = e.broker.stream_silence(Channel.MARKET_DATA)
        return silence is None or (e.clock.market_open() and silence > 2 * self.poll_gap())

    def polled(self) -> list[str]:
        """The symbols the next poll asks for: those not streamed (every one while the
        stream is quiet), and the held ones the stop timer needs fresh."""
        tracked = self.tracked()
        if self.quiet():
            return tracked
        return [s for s in tracked if s not in self.streamed or s in self.wanted]

    def need_fresh(self, symbols: Sequence[str]) -> None:
        """The stop timer's ask: these held symbols have no fresh quote. They join the
        polls until they have one (the stop timer asks again every tick); polled at
        once when a poll is due (none within the last poll gap)."""
        self.wanted = frozenset(symbols)
        if self.wanted and time.monotonic() - self.polled_at >= self.poll_gap():
            self.poll()

    # ------------------------------------------------------------ the timer

    def on_timer(self) -> None:
        e = self.e
        if not e.started or e.stopping:
            return
        if not self.cadence_said:
            self.cadence_said = True
            self.say_cadence()
        self.reprioritise()
        self.watchdog()
        self.poll()

    def say_cadence(self) -> None:
        """When the budget keeps the polls from the venue's pace (a fast venue clock),
        polled prices can grow older than max_quote_age between two polls: said once."""
        e = self.e
        gap, speed = self.poll_gap(), e.clock.speed
        oldest = gap * max(speed, 0.0)
        if speed > 1 and oldest > e.limits.max_quote_age:
            e.note(
                "error",
                None,
                f"market data: at venue speed {speed:g} a poll every {gap:.3g} s (the REST budget's pace) lets "
                f"polled prices grow {oldest:.0f} s old in venue time, beyond max_quote_age "
                f"{e.limits.max_quote_age:g} s: orders on polled symbols may be denied QUOTE_STALE",
            )

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
        """One latest-quotes request for every symbol polled now; never two at once,
        nor two within half a poll gap (the stop timer's ask can come between ticks)."""
        if self.polling:
            return
        symbols = tuple(self.polled())
        if not symbols or time.monotonic() - self.polled_at < self.poll_gap() / 2:
            return
        self.polling = True
        self._count_request()
        self.e.spawn(self._poll(symbols), "poll-quotes")

    def _count_request(self) -> None:
        now = time.monotonic()
        self.polled_at = now
        self.poll_times.append(now)
        while self.poll_times and self.poll_times[0] < now - 60:
            self.poll_times.popleft()

    async def _poll(self, symbols: tuple[str, ...]) -> None:
        try:
            await self._read(symbols, scheduled=True)
        except BaseException:
            self.polling = False
            raise

    async def read_now(self, symbols: Sequence[str]) -> None:
        """A read outside the timer's cadence (Flatten, before it prices its closing
        orders), counted in the same budget. Returns once the answer is on the inbox,
        ahead of whatever the caller posts next."""
        if symbols:
            self._count_request()
            await self._read(tuple(symbols), scheduled=False)

    async def _read(self, symbols: tuple[str, ...], scheduled: bool) -> None:
        """The one REST reader of latest quotes: its answer goes to the inbox."""
        e = self.e
        try:
            quotes = await e.broker.latest_quotes(symbols)
        except BrokerUnavailable as exc:
            e.post(QuotesPolled(symbols, (), str(exc), scheduled))
            return
        e.post(QuotesPolled(symbols, tuple(quotes.values()), scheduled=scheduled))

    def on_polled(self, item: QuotesPolled) -> None:
        e = self.e
        if item.scheduled:
            self.polling = False
        if item.error:
            if not self.last_poll_error:
                e.note(
                    "error",
                    None,
                    f"market data: quotes poll failed ({item.error}); asking again next time "
                    "(exits use the last trusted prices meanwhile)",
                )
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
        gap = self.poll_gap()
        text = (
            f"market data: quotes of {len(streamed)} symbol(s) stream, {polled} polled over REST "
            f"(one request every {gap:.3g} s = {60 / gap:.0f}/min)"
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
            poll_requests_per_minute=round(60 / self.poll_gap(), 1),
            polls_last_minute=sum(1 for t in self.poll_times if t >= time.monotonic() - 60),
            last_poll=self.last_poll,
            oldest_quote_age=max(ages) if ages else None,
            without_quote=len(tracked) - len(ages),
            watchdog_restarts=self.watchdog_restarts,
            last_error=self.last_error,
        )
