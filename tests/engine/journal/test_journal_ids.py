"""Deterministic client_order_ids: same inputs, same id; at most 48 characters of
[A-Za-z0-9_-]; distinct inputs (and sessions) never share an id."""

from __future__ import annotations

import re
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.journal import _new_session_id
from engine.orders import CLIENT_ORDER_ID_MAX, make_client_order_id, session_short

SAFE = re.compile(r"^[A-Za-z0-9_-]+$")
SESSION = "20260305-k3j7x2mq"


def test_an_id_reads_as_session_bar_symbol_sequence():
    assert make_client_order_id(SESSION, 12, "AAPL", 0) == "xd-260305k3j7x2mq-12-AAPL-0"


def test_the_same_inputs_give_the_same_id_and_any_change_gives_another():
    base = make_client_order_id(SESSION, 7, "MSFT", 2)
    assert base == make_client_order_id(SESSION, 7, "MSFT", 2)
    others = {
        make_client_order_id("20260305-k3j7x2mr", 7, "MSFT", 2),
        make_client_order_id(SESSION, 8, "MSFT", 2),
        make_client_order_id(SESSION, 7, "MSFS", 2),
        make_client_order_id(SESSION, 7, "MSFT", 3),
    }
    assert base not in others and len(others) == 4


def test_symbols_with_punctuation_stay_distinct_and_safe():
    ids = {s: make_client_order_id(SESSION, 1, s, 0) for s in ["BRK.B", "BRK_B", "BRK-B", "BRKB", "BTC/USD"]}
    assert len(set(ids.values())) == len(ids)
    assert ids["BRK.B"] == "xd-260305k3j7x2mq-1-BRK_2EB-0"
    assert all(SAFE.match(i) for i in ids.values())


def test_a_worst_case_id_fits_in_48_characters():
    coid = make_client_order_id("some operator-chosen session name that is long", 999_999, "X" * 40, 9999)
    assert len(coid) <= CLIENT_ORDER_ID_MAX and SAFE.match(coid)
    with pytest.raises(ValueError, match="limit is 48"):
        make_client_order_id(SESSION, 10**20, "AAPL", 10**10)


def test_generated_sessions_give_distinct_shorts():
    sessions = {_new_session_id(date(2026, 3, 5)) for _ in range(2000)}
    assert len({session_short(s) for s in sessions}) == len(sessions)
    assert all(len(session_short(s)) == 14 for s in sessions)


def test_bad_inputs_are_refused():
    for args in [(SESSION, -1, "AAPL", 0), (SESSION, 0, "AAPL", -1), (SESSION, 0, "", 0), ("", 0, "AAPL", 0)]:
        with pytest.raises(ValueError):
            make_client_order_id(*args)


ids_inputs = st.tuples(
    st.sampled_from([SESSION, "20260306-aaaaaaaa", "custom-session", "h0"]),
    st.integers(0, 10**6),
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ.-/_", min_size=1, max_size=20),
    st.integers(0, 999),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(ids_inputs, min_size=2, max_size=20, unique=True))
def test_distinct_inputs_never_share_an_id(inputs):
    ids = [make_client_order_id(*i) for i in inputs]
    assert len(set(ids)) == len(ids)
    assert all(len(i) <= CLIENT_ORDER_ID_MAX and SAFE.match(i) for i in ids)
