"""The callable source: `package.module:function` called every bar with the latest
bars and quotes. A failing or junk-returning model drops its bar, never the engine;
a callable that does not import is a clear startup error."""

from __future__ import annotations

import asyncio
from datetime import UTC, timedelta

import pytest

from engine.config import Settings
from engine.signals import CALLABLE_BARS, CallableSource, SignalSourceError, load_callable, open_source
from tests.engine.signals import signal_models
from tests.engine.signals.signal_fakes import NOW, UNIVERSE, FakeMarket, drain, random_walk, reasons, take

BAR_TIMES = [NOW + timedelta(minutes=i) for i in range(3)]


def market() -> FakeMarket:
    return FakeMarket(series=random_walk(sorted(UNIVERSE), 90, start=NOW - timedelta(minutes=87)), bar_times=BAR_TIMES)


def callable_source(spec: str):
    settings = Settings.model_validate({"signals": {"kind": "callable", "callable": spec}})
    return open_source(settings, known_symbols=UNIVERSE)


async def test_a_good_callable_gives_one_batch_per_bar():
    source = callable_source("tests.engine.signals.signal_models:momentum")
    signal_models.CALLS.clear()
    m = market()
    batches = await take(source, m, 3)
    assert [b.ts for b in batches] == BAR_TIMES
    assert all(not b.dropped and not b.rejected for b in batches)
    assert all(len(b.signals) == len(UNIVERSE) for b in batches)
    assert all(-1 <= v <= 1 for b in batches for v in b.signals.values())
    assert signal_models.CALLS == [(len(UNIVERSE), len(UNIVERSE))] * 3
    assert batches[0].origin == "callable:tests.engine.signals.signal_models:momentum"
    await source.aclose()


async def test_the_callable_sees_the_last_bars_oldest_first():
    seen = {}

    def spy(bars, quotes):
        seen.update(bars)
        return {}

    m = market()
    source = CallableSource(spy, known_symbols=UNIVERSE, max_age=120)
    await take(source, m, 1)
    aapl = seen["AAPL"]
    assert len(aapl) == CALLABLE_BARS
    assert [b.ts for b in aapl] == sorted(b.ts for b in aapl)
    assert aapl[-1].ts == NOW == m.last_bar


async def test_an_async_callable_is_awaited():
    [batch] = await take(callable_source("tests.engine.signals.signal_models:async_constant"), market(), 1)
    assert batch.signals == {"AAPL": 0.5}


@pytest.mark.parametrize(
    "spec,reason,detail",
    [
        ("tests.engine.signals.signal_models:raising", "CALLABLE_ERROR", "raised ZeroDivisionError: model blew up"),
        ("tests.engine.signals.signal_models:exiting", "CALLABLE_ERROR", "raised SystemExit: 3"),
        (
            "tests.engine.signals.signal_models:returns_none",
            "BAD_RETURN",
            "returned null (NoneType), expected a mapping",
        ),
        ("tests.engine.signals.signal_models:returns_list", "BAD_RETURN", "returned an array of 1 item (list)"),
        ("tests.engine.signals.signal_models:returns_broken_mapping", "BAD_RETURN", "cannot be read: RuntimeError"),
    ],
)
async def test_a_failing_callable_drops_its_bar_and_the_next_bar_is_called_again(spec, reason, detail):
    batches = await take(callable_source(spec), market(), 3)
    for b in batches:
        assert reasons(b) == [reason] and b.rejected and not b.signals
        assert detail in b.dropped[0].detail, b.dropped[0].detail
    assert [b.ts for b in batches] == BAR_TIMES


async def test_junk_values_are_dropped_one_by_one_and_the_rest_proceeds():
    [batch] = await take(callable_source("tests.engine.signals.signal_models:returns_junk_values"), market(), 1)
    assert batch.signals == {"TSLA": 0.25}
    assert reasons(batch) == sorted(
        ["NAN", "NOT_A_NUMBER", "NOT_A_NUMBER", "OUT_OF_RANGE", "UNKNOWN_SYMBOL", "UNKNOWN_SYMBOL"]
    )
    assert any("7 (int)" in d.detail for d in batch.dropped)


async def test_a_callable_that_never_returns_does_not_block_aclose():
    source = callable_source("tests.engine.signals.signal_models:sleeps_forever")
    task = asyncio.ensure_future(drain(source.batches(market())))
    await asyncio.sleep(0.05)
    await source.aclose()
    assert await asyncio.wait_for(task, 1) == []


async def test_a_slow_callable_result_is_judged_by_max_age():
    m = market()

    def slow(bars, quotes):
        m.clock += timedelta(seconds=500)  # the venue moved on while the model thought
        return {"AAPL": 0.1}

    [batch] = await take(CallableSource(slow, known_symbols=UNIVERSE, max_age=120), m, 1)
    assert reasons(batch) == ["STALE_BATCH"]


@pytest.mark.parametrize(
    "spec,message",
    [
        ("no_such_package.models:signal", "cannot import module 'no_such_package.models': ModuleNotFoundError"),
        (
            "tests.engine.signals.signal_models:nope",
            "module 'tests.engine.signals.signal_models' has no attribute 'nope'",
        ),
        ("tests.engine.signals.signal_models:not_a_function", "'not_a_function' is a int, not a function"),
        ("tests.engine.signals.signal_models:", 'expected "package.module:function"'),
    ],
)
def test_a_callable_that_does_not_import_is_a_clear_startup_error(spec, message):
    with pytest.raises(SignalSourceError) as err:
        load_callable(spec)
    assert message in str(err.value)
    assert spec in str(err.value) and err.value.path == spec


def test_open_source_raises_the_import_error_at_startup():
    settings = Settings.model_validate({"signals": {"kind": "callable", "callable": "no_such_package.models:signal"}})
    with pytest.raises(SignalSourceError, match=r"no_such_package\.models:signal"):
        open_source(settings, known_symbols=UNIVERSE)


def test_a_module_that_fails_while_importing_is_a_startup_error(tmp_path, monkeypatch):
    (tmp_path / "broken_model.py").write_text("raise RuntimeError('needs a GPU')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(SignalSourceError, match="cannot import module 'broken_model': RuntimeError: needs a GPU"):
        load_callable("broken_model:signal")


def test_the_quote_a_model_sees_is_the_engines_one_quote_and_cannot_be_changed():
    import dataclasses
    from datetime import datetime
    from decimal import Decimal

    from engine.portfolio import Quote as PortfolioQuote
    from engine.signals import Quote

    assert Quote is PortfolioQuote, "engine.signals.Quote must be the portfolio's Quote, not a second type"
    quote = Quote(bid=Decimal("99.99"), ask=Decimal("100.01"), ts=datetime(2026, 11, 25, 14, 39, tzinfo=UTC))
    assert quote.mid == Decimal("100.00") and quote.usable
    with pytest.raises(dataclasses.FrozenInstanceError):
        quote.bid = Decimal("1")  # type: ignore[misc]
