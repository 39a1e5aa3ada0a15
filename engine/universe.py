"""The tradable universe (config/universe.toml): symbols with their sector, listing,
reference price and asset flags, loaded once into immutable, typed records.

The local venue (engine/sim) reads the same file with its own reader; engine code
uses this one."""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from engine.errors import ExecdeskError

# Primary listing exchanges as Alpaca names them on an asset.
EXCHANGES = ("AMEX", "ARCA", "BATS", "NYSE", "NASDAQ", "NYSEARCA", "OTC")
_SYMBOL_RE = re.compile(r"^[A-Z][A-Z0-9.\-]{0,11}$")
_MAX_VOLATILITY = 5.0  # 500% annualised: anything above is a typo


class UniverseError(ExecdeskError, ValueError):
    """Every problem found in a universe file, each naming the file, symbol and key."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Asset:
    symbol: str
    name: str
    sector: str
    exchange: str
    price: Decimal  # reference price in USD (the venue's price model starts here)
    volatility: float  # annualised, 0.25 = 25%
    shortable: bool
    easy_to_borrow: bool
    fractionable: bool


@dataclass(frozen=True)
class Universe:
    """An ordered, immutable set of assets. Build it with Universe.load(path)."""

    assets: tuple[Asset, ...]
    source: str = "<memory>"
    _by_symbol: dict[str, Asset] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_symbol", {a.symbol: a for a in self.assets})

    # -- loading -------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path) -> Universe:
        """Read and validate a universe file. Raises UniverseError naming every problem."""
        source = str(path)
        p = Path(path)
        if not p.exists():
            raise UniverseError([f"{source}: universe file not found"])
        if p.is_dir():
            raise UniverseError([f"{source}: is a directory, expected a TOML file"])
        try:
            data = tomllib.loads(p.read_bytes().decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise UniverseError([f"{source}: not UTF-8 text ({exc.reason} at byte {exc.start})"]) from None
        except tomllib.TOMLDecodeError as exc:
            raise UniverseError([f"{source}: invalid TOML: {exc}"]) from None
        except OSError as exc:
            raise UniverseError([f"{source}: cannot read: {exc.strerror}"]) from None
        return cls.from_mapping(data, source=source)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "<memory>") -> Universe:
        """Validate already-parsed TOML data ({"symbols": {SYM: {...}}})."""
        problems: list[str] = []
        extra = sorted(set(data) - {"symbols"})
        for key in extra:
            problems.append(f"{source}: {key} is not a known key (expected only [symbols.<SYMBOL>] tables)")
        symbols = data.get("symbols")
        if not isinstance(symbols, Mapping) or not symbols:
            problems.append(f"{source}: no symbols: expected at least one [symbols.<SYMBOL>] table")
            raise UniverseError(problems)
        assets = []
        for sym, entry in symbols.items():
            asset = _parse_asset(source, str(sym), entry, problems)
            if asset is not None:
                assets.append(asset)
        if problems:
            raise UniverseError(problems)
        return cls(assets=tuple(assets), source=source)

    # -- queries -------------------------------------------------------------------

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(a.symbol for a in self.assets)

    def get(self, symbol: str) -> Asset:
        """The asset for a symbol; KeyError naming the symbol and the file if unknown."""
        try:
            return self._by_symbol[symbol]
        except KeyError:
            raise KeyError(f"{symbol} is not in the universe ({self.source})") from None

    def sector_of(self, symbol: str) -> str:
        return self.get(symbol).sector

    @property
    def sectors(self) -> tuple[str, ...]:
        """Distinct sectors, in order of first appearance."""
        return tuple(dict.fromkeys(a.sector for a in self.assets))

    @property
    def by_sector(self) -> dict[str, tuple[str, ...]]:
        """Sector -> its symbols (in universe order)."""
        out: dict[str, list[str]] = {}
        for a in self.assets:
            out.setdefault(a.sector, []).append(a.symbol)
        return {k: tuple(v) for k, v in out.items()}

    def closest(self, symbol: str) -> str | None:
        """The known symbol a mistyped one most likely meant, for error messages."""
        import difflib

        upper = symbol.upper()
        if upper in self._by_symbol:
            return upper
        match = difflib.get_close_matches(upper, self.symbols, n=1, cutoff=0.6)
        return match[0] if match else None

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._by_symbol

    def __iter__(self) -> Iterator[Asset]:
        return iter(self.assets)

    def __len__(self) -> int:
        return len(self.assets)


_TEXT_KEYS = ("name", "sector", "exchange")
_FLAG_KEYS = ("shortable", "easy_to_borrow", "fractionable")
_KEYS = (*_TEXT_KEYS, "price", "volatility", *_FLAG_KEYS)


def _parse_asset(source: str, sym: str, entry: Any, problems: list[str]) -> Asset | None:
    where = f"{source}: symbols.{sym}"
    start = len(problems)
    if not _SYMBOL_RE.match(sym):
        problems.append(f"{where}: symbol must be upper-case letters, digits, '.' or '-' (got {sym!r})")
    if not isinstance(entry, Mapping):
        problems.append(f"{where} must be a table of {', '.join(_KEYS)} (got {entry!r})")
        return None
    for key in sorted(set(entry) - set(_KEYS)):
        problems.append(f"{where}.{key} is not a known key (known: {', '.join(_KEYS)})")
    for key in _KEYS:
        if key not in entry:
            problems.append(f"{where}.{key} is missing")

    for key in _TEXT_KEYS:
        value = entry.get(key)
        if key in entry and (not isinstance(value, str) or not value.strip()):
            problems.append(f"{where}.{key} must be a non-empty string (got {value!r})")
    exchange = entry.get("exchange")
    if isinstance(exchange, str) and exchange.strip() and exchange not in EXCHANGES:
        problems.append(f"{where}.exchange must be one of {', '.join(EXCHANGES)} (got {exchange!r})")

    price: Decimal | None = None
    raw_price = entry.get("price")
    if "price" in entry:
        if isinstance(raw_price, bool) or not isinstance(raw_price, (int, float)):
            problems.append(f"{where}.price must be a number of USD (got {raw_price!r})")
        else:
            try:
                price = Decimal(str(raw_price))
            except InvalidOperation:  # pragma: no cover - nan/inf strings
                price = None
            if price is None or not price.is_finite() or price <= 0:
                problems.append(f"{where}.price must be > 0 (got {raw_price!r})")

    raw_vol = entry.get("volatility")
    if "volatility" in entry:
        if isinstance(raw_vol, bool) or not isinstance(raw_vol, (int, float)):
            problems.append(f"{where}.volatility must be a number (got {raw_vol!r})")
        elif not (math.isfinite(raw_vol) and 0 < raw_vol <= _MAX_VOLATILITY):
            problems.append(f"{where}.volatility must be > 0 and <= {_MAX_VOLATILITY} (got {raw_vol!r})")

    for key in _FLAG_KEYS:
        if key in entry and not isinstance(entry[key], bool):
            problems.append(f"{where}.{key} must be true or false (got {entry[key]!r})")

    if len(problems) > start:
        return None
    return Asset(
        symbol=sym,
        name=entry["name"],
        sector=entry["sector"],
        exchange=entry["exchange"],
        price=price,  # type: ignore[arg-type]
        volatility=float(raw_vol),  # type: ignore[arg-type]  # checked to be a finite number above
        shortable=entry["shortable"],
        easy_to_borrow=entry["easy_to_borrow"],
        fractionable=entry["fractionable"],
    )
