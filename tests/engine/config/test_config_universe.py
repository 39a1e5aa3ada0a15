"""The universe file as engine code sees it: typed assets in file order, sectors, and
errors that name the file, the symbol and the key."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from engine.universe import Universe, UniverseError

REPO = Path(__file__).resolve().parents[3]

GOOD = {
    "name": "Example Corp.",
    "sector": "Energy",
    "exchange": "NYSE",
    "price": 10.25,
    "volatility": 0.3,
    "shortable": True,
    "easy_to_borrow": False,
    "fractionable": True,
}


def test_the_default_universe_has_53_typed_assets_in_file_order():
    u = Universe.load(REPO / "config" / "universe.toml")

    assert len(u) == 53
    assert u.symbols[:3] == ("AAPL", "MSFT", "NVDA")
    aapl = u.get("AAPL")
    assert aapl.name == "Apple Inc." and aapl.exchange == "NASDAQ"
    assert aapl.price == Decimal("228.5") and isinstance(aapl.price, Decimal)
    assert u.sector_of("AAPL") == "Information Technology"
    assert "Information Technology" in u.sectors
    assert len(set(u.sectors)) == len(u.sectors)
    assert sum(len(v) for v in u.by_sector.values()) == 53
    assert "AAPL" in u and "ZZZZ" not in u


def test_an_unknown_symbol_is_a_key_error_naming_it():
    u = Universe.from_mapping({"symbols": {"XOM": GOOD}}, source="u.toml")

    with pytest.raises(KeyError, match="ZZZZ is not in the universe"):
        u.get("ZZZZ")


def test_assets_are_immutable():
    u = Universe.from_mapping({"symbols": {"XOM": GOOD}})

    with pytest.raises(AttributeError):
        u.get("XOM").price = Decimal("1")  # type: ignore[misc]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"price": -1}, "u.toml: symbols.XOM.price must be > 0 (got -1)"),
        ({"price": "10"}, "u.toml: symbols.XOM.price must be a number of USD (got '10')"),
        ({"volatility": 0}, "u.toml: symbols.XOM.volatility must be > 0 and <= 5.0 (got 0)"),
        ({"shortable": "yes"}, "u.toml: symbols.XOM.shortable must be true or false (got 'yes')"),
        ({"exchange": "LSE"}, "u.toml: symbols.XOM.exchange must be one of"),
        ({"sector": ""}, "u.toml: symbols.XOM.sector must be a non-empty string (got '')"),
        ({"colour": "red"}, "u.toml: symbols.XOM.colour is not a known key"),
    ],
)
def test_bad_asset_data_names_file_symbol_and_key(change, message):
    with pytest.raises(UniverseError) as caught:
        Universe.from_mapping({"symbols": {"XOM": {**GOOD, **change}}}, source="u.toml")

    assert any(p.startswith(message) for p in caught.value.problems), caught.value.problems


def test_a_missing_key_and_a_bad_symbol_are_both_reported():
    entry = {k: v for k, v in GOOD.items() if k != "fractionable"}

    with pytest.raises(UniverseError) as caught:
        Universe.from_mapping({"symbols": {"XOM": entry, "brk b": GOOD}}, source="u.toml")

    assert "u.toml: symbols.XOM.fractionable is missing" in caught.value.problems
    assert any("symbols.brk b: symbol must be upper-case" in p for p in caught.value.problems)


def test_an_empty_or_broken_file_is_reported(tmp_path):
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    broken = tmp_path / "broken.toml"
    broken.write_text("[symbols.AAPL\n")

    with pytest.raises(UniverseError, match="no symbols"):
        Universe.load(empty)
    with pytest.raises(UniverseError, match="invalid TOML"):
        Universe.load(broken)
    with pytest.raises(UniverseError, match="universe file not found"):
        Universe.load(tmp_path / "missing.toml")
