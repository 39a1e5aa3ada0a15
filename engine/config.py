"""Typed configuration of execdesk: config/execution.toml plus EXECDESK_SECTION__KEY
environment overrides, validated once, with errors that name the file and the key."""

from __future__ import annotations

import os
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from engine.model import RolloutMode, SideRestriction, TradingState

DEFAULT_CONFIG_PATH = Path("config/execution.toml")
ENV_PREFIX = "EXECDESK_"
SECRET_ENV = ("APCA_API_KEY_ID", "APCA_API_SECRET_KEY")
# Key names that look like credentials: refused anywhere in the file.
_SECRET_KEY_NAMES = {
    "api_key", "api_key_id", "key_id", "secret", "secret_key", "api_secret",
    "apca_api_key_id", "apca_api_secret_key", "password", "token", "oauth_token",
}

Fraction = Field(gt=0, le=1)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False, validate_assignment=True)


class ExecutionSection(_Section):
    enabled: bool = True
    mode: Literal["paper", "live"] = "paper"


class PositionSizingSection(_Section):
    max_position_size: float = Field(0.1, gt=0, le=1)
    max_total_exposure: float = Field(0.8, gt=0, le=4)
    min_trade_size: Decimal = Field(Decimal("100"), ge=0)
    signal_threshold: float = Field(0.1, ge=0, lt=1)
    below_threshold: Literal["hold", "flatten"] = "hold"
    fractional: bool = False


class RiskManagementSection(_Section):
    max_daily_loss: float = Field(0.02, gt=0, le=1)
    max_position_risk: float = Field(0.05, gt=0, le=1)
    max_sector_exposure: float = Field(0.3, gt=0, le=1)
    stop_loss_pct: float = Field(0.05, gt=0, lt=1)
    max_order_notional: Decimal = Field(Decimal("50000"), gt=0)
    max_order_qty: Decimal = Field(Decimal("10000"), gt=0)
    price_collar_pct: float = Field(0.05, gt=0, le=1)
    max_quote_age: float = Field(30, gt=0)
    max_orders_per_second: int = Field(20, ge=1)
    max_orders_per_minute: int = Field(180, ge=1)
    restricted_symbols: list[str] = Field(default_factory=list)
    daily_loss_confirmations: int = Field(3, ge=1, le=100)
    trip_state: Literal[TradingState.REDUCING, TradingState.HALTED] = TradingState.HALTED
    venue_outage_trip: float = Field(60, gt=0)
    max_error_rate: float = Field(0.5, gt=0, le=1)
    error_window: int = Field(20, ge=1)
    stop_loss_skips_approval: bool = True


class OrderManagementSection(_Section):
    default_order_type: Literal["limit", "market"] = "limit"
    limit_price_offset: float = Field(0.001, ge=0, lt=0.1)
    time_in_force: Literal["day", "gtc", "ioc", "fok"] = "day"
    max_orders_per_bar: int = Field(10, ge=1, le=10000)
    unfilled_policy: Literal["cancel", "keep"] = "cancel"
    submit_timeout: float = Field(10, gt=0, le=120)
    in_flight_query_after: float = Field(15, gt=0)


class MonitoringSection(_Section):
    order_reconciliation_interval: float = Field(30, gt=0)
    position_update_interval: float = Field(60, gt=0)
    risk_check_interval: float = Field(10, gt=0)


class BrokerSection(_Section):
    kind: Literal["sim", "alpaca"] = "sim"
    trading_url: str = ""
    data_url: str = ""
    feed: Literal["iex", "sip"] = "iex"
    rate_limit_per_minute: int = Field(190, ge=1, le=100000)
    workers: int = Field(4, ge=1, le=64)
    request_timeout: float = Field(10, gt=0, le=120)


class SimSection(_Section):
    seed: int = 42
    speed: float = Field(1.0, gt=0, le=10000)
    partial_fill_prob: float = Field(0.1, ge=0, le=1)
    bars_csv: str = ""
    margin_multiplier: float = Field(2.0, ge=1, le=4)
    starting_cash: Decimal = Field(Decimal("100000"), gt=0)
    rate_limit_per_minute: int = Field(200, ge=0)


class SignalsSection(_Section):
    kind: Literal["demo", "jsonl", "csv", "callable"] = "demo"
    path: str = ""
    callable: str = ""
    max_age: float = Field(120, gt=0)

    @model_validator(mode="after")
    def _source_named(self) -> "SignalsSection":
        if self.kind in ("jsonl", "csv") and not self.path:
            raise ValueError(f'signals.path is required when signals.kind = "{self.kind}"')
        if self.kind == "csv" and self.path == "-":
            raise ValueError('signals.path "-" (stdin) is only for signals.kind = "jsonl"')
        if self.kind == "callable" and ":" not in self.callable:
            raise ValueError(
                'signals.callable must be "package.module:function" when signals.kind = "callable"'
            )
        return self


class SymbolOverride(_Section):
    mode: RolloutMode | None = None
    max_position_usd: Decimal | None = Field(None, gt=0)
    max_position_pct: float | None = Field(None, gt=0, le=1)
    size_multiplier: float | None = Field(None, ge=0, le=10)
    side: SideRestriction | None = None


class RolloutSection(_Section):
    default_mode: RolloutMode = RolloutMode.APPROVE
    allowlist: list[str] = Field(default_factory=list)
    approval_timeout: float = Field(60, gt=0)
    overrides: dict[str, SymbolOverride] = Field(default_factory=dict)


class SessionSection(_Section):
    bar_interval: float = Field(60, gt=0)
    journal_path: str = "var/journal.sqlite"
    universe_path: str = "config/universe.toml"


class ConsoleSection(_Section):
    max_fps: float = Field(10, gt=0, le=60)
    keymap: dict[str, str] = Field(default_factory=dict)


class Settings(_Section):
    execution: ExecutionSection = Field(default_factory=ExecutionSection)
    position_sizing: PositionSizingSection = Field(default_factory=PositionSizingSection)
    risk_management: RiskManagementSection = Field(default_factory=RiskManagementSection)
    order_management: OrderManagementSection = Field(default_factory=OrderManagementSection)
    monitoring: MonitoringSection = Field(default_factory=MonitoringSection)
    broker: BrokerSection = Field(default_factory=BrokerSection)
    sim: SimSection = Field(default_factory=SimSection)
    signals: SignalsSection = Field(default_factory=SignalsSection)
    rollout: RolloutSection = Field(default_factory=RolloutSection)
    session: SessionSection = Field(default_factory=SessionSection)
    console: ConsoleSection = Field(default_factory=ConsoleSection)

    # Where it came from (not a TOML key).
    source_path: str | None = Field(default=None, exclude=True)

    @property
    def is_live(self) -> bool:
        return self.execution.mode == "live"


class Credentials(BaseModel):
    """API keys, from the environment only. repr never shows the secret."""

    model_config = ConfigDict(frozen=True)
    key_id: str
    secret_key: str = Field(repr=False)

    @property
    def masked_key_id(self) -> str:
        return mask(self.key_id)


def mask(secret: str) -> str:
    if not secret:
        return ""
    return secret[:2] + "…" + "*" * 4 if len(secret) > 6 else "****"


def credentials_from_env(env: Mapping[str, str] | None = None) -> Credentials | None:
    env = os.environ if env is None else env
    key, secret = env.get(SECRET_ENV[0], ""), env.get(SECRET_ENV[1], "")
    if key and secret:
        return Credentials(key_id=key, secret_key=secret)
    return None


class ConfigError(Exception):
    """Every problem found in a configuration, each naming the file and the key."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


def _describe_constraint(err: dict[str, Any]) -> str:
    ctx = err.get("ctx") or {}
    kind = err.get("type", "")
    bounds = []
    for name, sym in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
        if name in ctx:
            bounds.append(f"{sym} {ctx[name]}")
    if bounds and kind in {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}:
        return "must be " + " and ".join(bounds)
    if kind == "extra_forbidden":
        return "is not a known key"
    if kind == "literal_error" and "expected" in ctx:
        return f"must be one of {ctx['expected']}"
    if kind == "enum" and "expected" in ctx:
        return f"must be one of {ctx['expected']}"
    return err.get("msg", "is invalid").replace("Value error, ", "")


def _range_of(model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    """The full allowed range of a numeric field (both bounds), for messages."""
    current: Any = model
    field = None
    for part in loc:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return ""
        field = current.model_fields.get(str(part))
        if field is None:
            return ""
        current = field.annotation
    if field is None:
        return ""
    bounds = []
    for meta in field.metadata:
        for name, sym in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            value = getattr(meta, name, None)
            if value is not None:
                bounds.append(f"{sym} {value}")
    return " and ".join(bounds)


def _format_errors(source: str, exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        key = ".".join(str(p) for p in loc) or "(top level)"
        found = err.get("input")
        full_range = _range_of(Settings, loc)
        if err.get("type", "").startswith(("greater", "less")) and full_range:
            what = f"must be {full_range}"
        else:
            what = _describe_constraint(err)
        if err.get("type") == "extra_forbidden":
            problems.append(f"{source}: {key} is not a known key")
        elif err.get("type") == "value_error" and not loc:
            problems.append(f"{source}: {what}")
        else:
            problems.append(f"{source}: {key} {what} (got {found!r})")
    return problems


def _find_secrets(data: Any, prefix: str = "") -> list[str]:
    found = []
    if isinstance(data, dict):
        for k, v in data.items():
            path = f"{prefix}.{k}" if prefix else str(k)
            if str(k).lower() in _SECRET_KEY_NAMES:
                found.append(path)
            else:
                found.extend(_find_secrets(v, path))
    return found


def _env_overrides(env: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """EXECDESK_SECTION__KEY=value -> {"section": {"key": value}}. Values are parsed
    as TOML values when they parse (numbers, booleans, arrays), else taken as strings."""
    out: dict[str, dict[str, Any]] = {}
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX):].lower().partition("__")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        node = out.setdefault(section, {})
        parts = key.split("__")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(merged.get(k), dict):
            merged[k] = _merge(merged[k], v)
        else:
            merged[k] = v
    return merged


def load_settings(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    live_confirmed: bool = False,
) -> Settings:
    """Load and validate the configuration. Raises ConfigError listing every problem."""
    env = os.environ if env is None else env
    cfg_path = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    source = str(cfg_path)
    if not cfg_path.exists():
        raise ConfigError([f"{source}: configuration file not found"])
    if cfg_path.is_dir():
        raise ConfigError([f"{source}: is a directory, expected a TOML file"])
    try:
        raw_bytes = cfg_path.read_bytes()
        data = tomllib.loads(raw_bytes.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{source}: not UTF-8 text ({exc.reason} at byte {exc.start})"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{source}: invalid TOML: {exc}"]) from None
    except OSError as exc:
        raise ConfigError([f"{source}: cannot read: {exc.strerror}"]) from None

    problems = [
        f"{source}: {key} looks like a credential: API keys come only from the environment "
        f"(APCA_API_KEY_ID / APCA_API_SECRET_KEY), never from a file"
        for key in _find_secrets(data)
    ]
    if problems:
        raise ConfigError(problems)

    overrides = _env_overrides(env)
    if overrides:
        data = _merge(data, overrides)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        label = source + (" (with EXECDESK_* overrides)" if overrides else "")
        raise ConfigError(_format_errors(label, exc)) from None

    if settings.is_live and not live_confirmed:
        raise ConfigError(
            [
                f'{source}: execution.mode = "live" needs --live on the command line as well '
                "(paper is the default; live trading is an explicit opt-in)"
            ]
        )
    settings.source_path = source
    return settings


def effective_view(settings: Settings, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The effective configuration as plain data, with credentials masked."""
    view = settings.model_dump(mode="json")
    creds = credentials_from_env(env)
    view["credentials"] = {
        "APCA_API_KEY_ID": creds.masked_key_id if creds else "(not set)",
        "APCA_API_SECRET_KEY": "********" if creds else "(not set)",
    }
    return view
