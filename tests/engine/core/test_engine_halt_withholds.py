"""Nothing is sent after a halt (issue 11, item 5): a submit journaled before the kill
switch but not yet on the wire — waiting for the broker's one worker behind a slow
venue — is withheld right before it would leave. It never reaches the venue (the
POST counter on the broker's HTTP adapter says so), and the journal says why
(SubmitRejected "not sent: trading HALTED ..."), so journal and venue still agree."""

from __future__ import annotations

from engine import events as ev
from engine.commands import Halt
from tests.engine.core.enginekit import SYMBOLS, sent_cids
from tests.support import wait_for


def test_submits_still_waiting_for_the_wire_when_halted_are_never_sent(make_rig):
    rig = make_rig({"broker": {"workers": 1, "request_timeout": 5.0}})
    rig.faults(latency_ms=400)  # each request holds the one worker for 0.4 s
    rig.bar(dict.fromkeys(SYMBOLS, 0.5))
    result = rig.session.execute_sync(Halt(cause="test"), timeout=30)
    assert result.ok, result.message

    c = rig.settle()
    assert c.ok, c
    events = rig.journal_events()
    sent = sent_cids(events)
    assert len(sent) == len(SYMBOLS), "the bar released one order per symbol"
    withheld = {
        e.client_order_id
        for e in events
        if isinstance(e, ev.SubmitRejected) and e.message.startswith("not sent: trading HALTED")
    }
    assert len(withheld) >= len(SYMBOLS) // 2, f"only {len(withheld)} of {len(SYMBOLS)} were still waiting"
    assert not withheld & set(rig.posts.by_cid), "a withheld submit reached the wire"
    assert set(rig.posts.by_cid) == set(sent) - withheld, "every other one was sent exactly once"
    assert all(n == 1 for n in rig.posts.by_cid.values())
    wait_for(lambda: rig.trading.get_orders() == [], what="nothing open at the venue after the kill switch")
    kill = wait_for(
        lambda: rig.snapshot.kill_switch.phase == "confirmed" and rig.snapshot.kill_switch,
        what="the kill switch to be confirmed",
    )
    assert kill.cancels_requested <= len(SYMBOLS) - len(withheld)
