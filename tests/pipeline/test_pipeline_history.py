"""The drill-down's source: QueryHistory answers the full history of an intent or
order (by client order id) and of a position (by symbol: its fills) from this
session's journal — through the Engine's command path, so the console gets it in
process and a client over a socket the same way."""

from __future__ import annotations

from engine.commands import ApproveIntent, QueryHistory


def test_the_history_of_an_order_and_of_a_position(make_pipe):
    pipe = make_pipe()
    pipe.send({"AAPL": 0.5, "KO": 0.4})
    pipe.wait(lambda: len(pipe.snapshot.intents) == 2, what="two intents waiting")
    ids = {r.symbol: r.intent_id for r in pipe.snapshot.intents.values()}

    waiting = pipe.execute(QueryHistory(ids["KO"]))
    assert waiting.ok, waiting.message
    assert [kind for _, kind, _ in waiting.rows] == ["intent", "checks", "verdict"]
    assert "signal +0.400" in waiting.rows[0][2] and "ok now" in waiting.rows[2][2]

    assert pipe.execute(ApproveIntent(ids["AAPL"])).ok
    pipe.wait(lambda: "AAPL" in pipe.snapshot.positions, what="the AAPL fill in the engine")
    pipe.wait_settled()
    done = pipe.execute(QueryHistory(ids["AAPL"]))
    kinds = [kind for _, kind, _ in done.rows]
    assert kinds[:4] == ["intent", "checks", "approved", "submit"], kinds
    # the venue's acknowledgement: the REST answer (ack) or, when the trade stream's
    # "new" overtook it, the status change it brought (venue)
    assert "fill" in kinds and ("ack" in kinds or "venue" in kinds), kinds
    fill = next(text for _, kind, text in done.rows if kind == "fill")
    assert "AAPL @" in fill and "slippage" in fill and "bps" in fill

    position = pipe.execute(QueryHistory("AAPL"))
    assert position.ok and [kind for _, kind, _ in position.rows] == ["intent", "fill"]
    assert not pipe.execute(QueryHistory("NOPE")).ok


def test_the_history_reaches_an_attached_client_over_the_socket_even_a_read_only_one(make_pipe):
    """The console attached over the session socket drills down the same way: the
    answer's rows cross the wire; an observer may ask (a query changes nothing)."""
    from engine.control import SessionClient, socket_path_for
    from engine.events import OperatorCommand

    pipe = make_pipe()
    pipe.send({"AAPL": 0.5})
    pipe.wait(lambda: len(pipe.snapshot.intents) == 1, what="one intent waiting")
    [intent_id] = [r.intent_id for r in pipe.snapshot.intents.values()]
    in_process = pipe.execute(QueryHistory(intent_id))
    symbol = pipe.execute(QueryHistory("AAPL"))  # a symbol's answer carries its price chart
    assert symbol.chart is not None and symbol.chart.prices, "the minute closes the engine holds"
    for read_only in (False, True):
        client = SessionClient(socket_path_for(pipe.journal_path), name="drill", read_only=read_only).start(timeout=30)
        try:
            answer = client.execute_sync(QueryHistory(intent_id), timeout=30)
            chart = client.execute_sync(QueryHistory("AAPL"), timeout=30).chart
        finally:
            client.close()
        assert answer.ok, answer.message
        assert answer.rows == in_process.rows
        assert chart == symbol.chart, "the chart crosses the wire unchanged (Decimals, times)"
    from engine.journal import Journal

    journaled = [e.event for e in Journal(pipe.journal_path, readonly=True).replay()]
    assert not [e for e in journaled if isinstance(e, OperatorCommand)], "a query is not journaled"
