"""The trade stream's watchdog. Alpaca's trade_updates stream says nothing while
nothing happens to orders, so silence alone is no fault. Two things are:

- a half-dead socket (no answer to websocket pings): the broker's keepalive closes
  it within market_data.stream_keepalive and reconnects (engine.broker.streams);
- silence while an update is owed: an order the venue acknowledged over REST during
  regular hours that the stream has not mentioned, or a cancel the venue was asked
  for with no update on that order since, for market_data.trade_update_timeout
  while the stream says it is connected and has sent nothing at all.

Then the stream is closed and reconnected with the streams' one back-off (which
waits out a connection hold after a 406); while it is down, and after it is back
until it has brought an update again, fills are read from the venue's orders over
REST (the reconciliation's read), so the journal ends as if it had never dropped.
Only expectations that arose on the current connection count: one lost before it
is the reconnect's reconciliation's to repair, not a reason to reconnect again."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from engine.broker.base import Channel

if TYPE_CHECKING:
    from engine.core.engine import Engine


class TradeStreamWatch:
    def __init__(self, engine: Engine):
        self.e = engine
        md = engine.settings.market_data
        self.timeout = md.trade_update_timeout
        self.cancels: dict[str, float] = {}  # client_order_id -> wall time its cancel was asked
        self.restarts = 0
        self.restarted_at: float | None = None  # wall time of the last restart
        self.scanned_at = 0.0  # monotonic time of the last look at the open orders
        self.reading: asyncio.Task | None = None  # fills from REST until the stream speaks again

    def cancel_asked(self, client_order_id: str) -> None:
        """A cancel is on its way: the stream owes an update on that order."""
        self.cancels[client_order_id] = time.time()
        if len(self.cancels) > 10_000:  # forget those already final
            book = self.e.book
            self.cancels = {
                c: t for c, t in self.cancels.items() if (o := book.get(c)) is not None and not o.status.is_final
            }

    def owed(self, now: float, up_since: float) -> list[tuple[str, str, float]]:
        """The updates the stream owes now: (client_order_id, what, seconds overdue
        since), oldest first; only those arisen on the current connection and at
        least `timeout` old."""
        e, broker = self.e, self.e.broker
        out: list[tuple[str, str, float]] = []
        market_open = e.clock.market_open()
        for cid in list(self.cancels):
            order = e.book.get(cid)
            if order is None or order.status.is_final:
                del self.cancels[cid]
        for o in e.open_orders():
            if not o.venue_order_id or o.status.is_local:
                continue
            heard = broker.trade_update_heard(o.venue_order_id)
            asked = self.cancels.get(o.client_order_id)
            if asked is not None and asked >= up_since and (heard is None or heard < asked):
                if now - asked >= self.timeout:
                    out.append((o.client_order_id, "its cancel", now - asked))
                continue
            # the ack: during regular hours Alpaca routes the order and says "new" at
            # once (outside them an order waits, accepted, for the open)
            acked = o.acked_at.timestamp() if o.acked_at is not None else None
            if market_open and acked is not None and acked >= up_since and heard is None:
                if now - acked >= self.timeout:
                    out.append((o.client_order_id, "its acknowledgement", now - acked))
        out.sort(key=lambda x: -x[2])
        return out

    def check(self) -> None:
        """Every second: reconnect a connected trade stream that has sent nothing for
        trade_update_timeout while it owes an update (noticed within 1.5 timeouts)."""
        e = self.e
        if not e.started or e.stopping or not e.trading_ready or e.connectivity.trade_stream != "up":
            return
        broker = e.broker
        silence = broker.stream_silence(Channel.TRADE_STREAM)
        up_since = broker.stream_up_since(Channel.TRADE_STREAM)
        if silence is None or up_since is None or silence < self.timeout:
            return
        # a quiet stream is the normal case on Alpaca: the open orders (there may be
        # thousands) are looked at every half timeout, not every second
        if time.monotonic() - self.scanned_at < self.timeout / 2:
            return
        self.scanned_at = time.monotonic()
        owed = self.owed(time.time(), up_since)
        if not owed:
            return
        cid, what, _ = owed[0]
        reason = f"silent {silence:.0f} s while it owes {len(owed)} order update(s)"
        if not broker.restart_stream(Channel.TRADE_STREAM, reason):
            return
        self.restarts += 1
        self.restarted_at = time.time()
        e.note(
            "error",
            None,
            f"trade stream silent {silence:.0f} s; reconnecting: no update on {len(owed)} order(s) "
            f"(e.g. {what} of {cid}); fills are read from REST until it speaks again",
        )
        if self.reading is None or self.reading.done():
            self.reading = e.spawn(self._fills_until_heard(), "fills-until-heard")

    async def _fills_until_heard(self) -> None:
        """After a restart for silence: while the stream is up again but has brought no
        update since, read fills from the venue's orders every fills_poll_interval
        (while it is down, VenueSync's own read does it), until it speaks or no order
        of ours is working."""
        e = self.e
        interval = e.settings.market_data.fills_poll_interval
        while not e.stopping:
            await asyncio.sleep(interval)
            since = self.restarted_at or 0.0
            heard = e.broker.trade_update_heard()
            if heard is not None and heard > since:
                return
            if e.connectivity.trade_stream == "up" and e.trading_ready:
                await e.sync.reconcile("trade stream silent")
                if not e.open_orders():
                    return
