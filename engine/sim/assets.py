"""The tradable universe, read from config/universe.toml (shared data, no engine import)."""

from __future__ import annotations

import tomllib
import uuid
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property
from pathlib import Path

_ASSET_NS = uuid.UUID("6f1c2a4e-5b7d-4c1e-9a3f-0d2e8b7c6a51")

DEFAULT_UNIVERSE = Path(__file__).resolve().parents[2] / "config" / "universe.toml"


@dataclass(frozen=True)
class Asset:
    symbol: str
    name: str
    exchange: str
    price: Decimal
    volatility: float
    shortable: bool
    easy_to_borrow: bool
    fractionable: bool
    sector: str = ""
    tradable: bool = True  # changed by the drill API (POST /sim/v1/assets)
    status: str = "active"

    @cached_property
    def id(self) -> str:
        return str(uuid.uuid5(_ASSET_NS, self.symbol))

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "class": "us_equity",
            "exchange": self.exchange,
            "symbol": self.symbol,
            "name": self.name,
            "status": self.status,
            "tradable": self.tradable,
            "marginable": True,
            "maintenance_margin_requirement": 30,
            "margin_requirement_long": "30",
            "margin_requirement_short": "30",
            "shortable": self.shortable,
            "easy_to_borrow": self.easy_to_borrow,
            "borrow_status": "easy_to_borrow" if self.easy_to_borrow else "hard_to_borrow",
            "fractionable": self.fractionable,
            "attributes": ["fractional_eh_enabled"] if self.fractionable else [],
        }


_EXCHANGES = {"AMEX", "ARCA", "BATS", "NYSE", "NASDAQ", "NYSEARCA", "OTC"}


def load_universe(path: str | Path | None = None) -> dict[str, Asset]:
    """Read the universe file; raises ValueError with the offending symbol on bad data."""
    p = Path(path) if path else DEFAULT_UNIVERSE
    if not p.is_absolute() and not p.exists() and (DEFAULT_UNIVERSE.parents[1] / p).exists():
        p = DEFAULT_UNIVERSE.parents[1] / p  # relative to the repository, whatever the cwd
    with open(p, "rb") as fh:
        data = tomllib.load(fh)
    symbols = data.get("symbols")
    if not isinstance(symbols, dict) or not symbols:
        raise ValueError(f"{p}: no [symbols.*] tables")
    out: dict[str, Asset] = {}
    for sym, row in symbols.items():
        try:
            exchange = str(row.get("exchange", "NYSE"))
            if exchange not in _EXCHANGES:
                raise ValueError(f"unknown exchange {exchange!r}")
            price = Decimal(str(row["price"]))
            if price <= 0:
                raise ValueError("price must be > 0")
            out[sym] = Asset(
                symbol=sym,
                name=str(row.get("name", sym)),
                exchange=exchange,
                price=price,
                volatility=float(row.get("volatility", 0.3)),
                shortable=bool(row.get("shortable", True)),
                easy_to_borrow=bool(row.get("easy_to_borrow", True)),
                fractionable=bool(row.get("fractionable", True)),
                sector=str(row.get("sector", "")),
            )
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            raise ValueError(f"{p}: symbol {sym}: {exc}") from exc
    return out


def generic_asset(symbol: str, price: Decimal) -> Asset:
    """An asset for a symbol that appears only in a replay CSV."""
    return Asset(
        symbol=symbol,
        name=symbol,
        exchange="NYSE",
        price=price,
        volatility=0.3,
        shortable=True,
        easy_to_borrow=True,
        fractionable=True,
    )
