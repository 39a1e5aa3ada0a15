"""Typed configuration of execdesk: config/execution.toml plus EXECDESK_SECTION__KEY
environment overrides, validated once, with errors that name the file and the key."""

from __future__ import annotations

import difflib
import logging
import os
import re
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from engine.errors import ExecdeskError
from engine.model import RolloutMode, SideRestriction, TradingState
from engine.universe import Universe, UniverseError

# The repository root (holds config/): relative *input* paths that do not exist in the
# working directory are looked up here, so `execdesk` works from any directory.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_PATH = Path("config/execution.toml")
ENV_PREFIX = "EXECDESK_"
SECRET_ENV = ("APCA_API_KEY_ID", "APCA_API_SECRET_KEY")
# Key names that look like credentials: refused anywhere in the file or in EXECDESK_*.
_SECRET_KEY_NAMES = {
    "api_key",
    "api_key_id",
    "key_id",
    "secret",
    "secret_key",
    "api_secret",
    "apca_api_key_id",
    "apca_api_secret_key",
    "password",
    "passphrase",
    "token",
    "oauth_token",
    "access_token",
    "refresh_token",
    "private_key",
    "credentials",
}
_SECRET_KEY_SUFFIXES = ("_secret", "_secret_key", "_token", "_password", "_api_key", "_key_id")
# Alpaca's trading hosts: a trading_url on the live one is live trading, whatever the mode says.
ALPACA_LIVE_TRADING_HOST = "api.alpaca.markets"
ALPACA_PAPER_TRADING_HOST = "paper-api.alpaca.markets"
# Tables whose keys are symbols: an environment override keeps the symbol upper-case.
_SYMBOL_KEYED = {("rollout", "overrides")}


# -- value types that read the same from TOML, the environment and Python code -------------


def _is_strict(info: ValidationInfo) -> bool:
    return bool((info.context or {}).get("strict"))


def _to_decimal(value: Any, info: ValidationInfo) -> Any:
    """TOML numbers become exact Decimals (via their text, never via binary float).
    In Python code a numeric string is accepted too; in a file it is a wrong type."""
    if value is None or isinstance(value, Decimal):
        return value
    if isinstance(value, bool):
        raise ValueError("must be a number")
    if isinstance(value, (int, float)):
        return Decimal(str(value))
    if isinstance(value, str) and not _is_strict(info):
        return value  # pydantic's own Decimal parsing takes it from here
    raise ValueError("must be a number")


def _choice(enum: type[Enum], allowed: tuple[Enum, ...] | None = None) -> Callable[[Any], Any]:
    members = tuple(allowed or enum)

    def convert(value: Any) -> Any:
        if value is None:
            return value
        for m in members:
            if value is m or value == m.value:
                return m
        names = [repr(m.value) for m in members]
        listed = ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]
        raise ValueError(f"must be one of {listed}")

    return convert


Dec = Annotated[Decimal, BeforeValidator(_to_decimal)]

# Upper bounds of the keys that have no natural one: far beyond any sensible value,
# and small enough that every duration fits a timedelta and every amount a float.
DAY = 86400  # seconds
WEEK = 7 * DAY
MAX_USD = Decimal("1000000000000")  # one trillion
MAX_SHARES = Decimal("1000000000")


def _symbol_list(value: list[str]) -> list[str]:
    """A list of symbols: each one a non-empty word."""
    for sym in value:
        if not sym.strip():
            raise ValueError(f"names an empty symbol (got {value!r})")
    return value


SymbolList = Annotated[list[str], AfterValidator(_symbol_list)]
RolloutModeField = Annotated[RolloutMode, BeforeValidator(_choice(RolloutMode))]
SideRestrictionField = Annotated[SideRestriction, BeforeValidator(_choice(SideRestriction))]
TripState = Annotated[
    Literal[TradingState.REDUCING, TradingState.HALTED],
    BeforeValidator(_choice(TradingState, (TradingState.REDUCING, TradingState.HALTED))),
]


# -- the sections ---------------------------------------------------------------------------


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False, validate_assignment=True, allow_inf_nan=False)


class ExecutionSection(_Section):
    enabled: bool = True
    mode: Literal["paper", "live"] = "paper"


class PositionSizingSection(_Section):
    max_position_size: float = Field(0.1, gt=0, le=1)
    max_total_exposure: float = Field(0.8, gt=0, le=4)
    min_trade_size: Dec = Field(Decimal("100"), ge=0, le=MAX_USD)
    signal_threshold: float = Field(0.1, ge=0, lt=1)
    below_threshold: Literal["hold", "flatten"] = "hold"
    fractional: bool = False


class RiskManagementSection(_Section):
    max_daily_loss: float = Field(0.02, gt=0, le=1)
    max_position_risk: float = Field(0.05, gt=0, le=1)
    max_sector_exposure: float = Field(0.3, gt=0, le=1)
    stop_loss_pct: float = Field(0.05, gt=0, lt=1)
    max_order_notional: Dec = Field(Decimal("50000"), gt=0, le=MAX_USD)
    max_order_qty: Dec = Field(Decimal("10000"), gt=0, le=MAX_SHARES)
    price_collar_pct: float = Field(0.05, gt=0, le=1)
    max_quote_age: float = Field(30, gt=0, le=DAY)
    max_orders_per_second: int = Field(20, ge=1, le=10000)
    max_orders_per_minute: int = Field(180, ge=1, le=600000)
    restricted_symbols: SymbolList = Field(default_factory=list)
    daily_loss_confirmations: int = Field(3, ge=1, le=100)
    trip_state: TripState = TradingState.HALTED
    venue_outage_trip: float = Field(60, gt=0, le=DAY)
    max_error_rate: float = Field(0.5, gt=0, le=1)
    error_window: int = Field(20, ge=1, le=100000)
    stop_loss_skips_approval: bool = True
    max_quote_spread_bps: float = Field(300, gt=0, le=10000)
    exit_price_collar_pct: float = Field(0.03, gt=0, le=0.5)


class OrderManagementSection(_Section):
    default_order_type: Literal["limit", "market"] = "limit"
    limit_price_offset: float = Field(0.001, ge=0, lt=0.1)
    time_in_force: Literal["day", "gtc", "ioc", "fok"] = "day"
    max_orders_per_bar: int = Field(10, ge=1, le=10000)
    unfilled_policy: Literal["cancel", "keep"] = "cancel"
    submit_timeout: float = Field(10, gt=0, le=120)
    in_flight_query_after: float = Field(15, gt=0, le=DAY)


class MonitoringSection(_Section):
    order_reconciliation_interval: float = Field(30, gt=0, le=DAY)
    position_update_interval: float = Field(60, gt=0, le=DAY)
    risk_check_interval: float = Field(10, gt=0, le=DAY)
    stop_check_interval: float = Field(2, gt=0, le=DAY)


class BrokerSection(_Section):
    kind: Literal["sim", "alpaca"] = "sim"
    trading_url: str = ""
    data_url: str = ""
    feed: Literal["iex", "sip"] = "iex"
    rate_limit_per_minute: int = Field(190, ge=1, le=100000)
    workers: int = Field(53, ge=1, le=64)  # submits and queries on the wire at once
    request_timeout: float = Field(10, gt=0, le=120)

    @model_validator(mode="after")
    def _urls_are_http(self) -> BrokerSection:
        for name in ("trading_url", "data_url"):
            url = getattr(self, name)
            if url and not re.match(r"^https?://[^\s/]+", url):
                raise ValueError(
                    f"broker.{name} must be an http:// or https:// URL, or empty for Alpaca's own"
                    f" (got {redact_urls(url)!r})"
                )
        return self


# Alpaca's free (IEX) plan streams at most this many symbols (trades and quotes).
IEX_STREAM_SYMBOL_LIMIT = 30


class MarketDataSection(_Section):
    # symbols whose quotes stream; 0 = by feed: 30 for iex (the free plan), no limit for sip
    stream_symbol_limit: int = Field(0, ge=0, le=100000)
    # wall seconds between REST polls of the latest quotes of every symbol not streamed
    poll_interval: float = Field(2.0, ge=0.5, le=300)
    # a connected stream silent this long (market open, symbols subscribed) is reconnected
    stream_silence_timeout: float = Field(30.0, gt=0, le=3600)
    # seconds the venue holds a connection that dropped uncleanly (Alpaca: about 90)
    connection_hold: float = Field(90.0, ge=0, le=600)
    # wall seconds between order reads (fills from REST) while the trade stream is down
    fills_poll_interval: float = Field(5.0, ge=1, le=300)
    # the trade stream is silent when an update it owes (an order acked by REST in
    # market hours, a cancel asked) has not come this long (wall s): reconnected
    trade_update_timeout: float = Field(10.0, ge=1, le=600)
    # a stream socket must answer a websocket ping within this long (wall s), else it
    # is half-dead: closed and reconnected (a ping every third of it)
    stream_keepalive: float = Field(30.0, ge=3, le=600)

    def stream_limit(self, feed: str) -> int | None:
        """How many symbols' quotes may stream (None: no limit)."""
        if self.stream_symbol_limit:
            return self.stream_symbol_limit
        return IEX_STREAM_SYMBOL_LIMIT if feed == "iex" else None

    @property
    def poll_requests_per_minute(self) -> float:
        return 60.0 / self.poll_interval


class SimSection(_Section):
    seed: int = Field(42, ge=0, le=2**63 - 1)
    speed: float = Field(1.0, gt=0, le=10000)
    partial_fill_prob: float = Field(0.1, ge=0, le=1)
    bars_csv: str = ""
    margin_multiplier: float = Field(2.0, ge=1, le=4)
    starting_cash: Dec = Field(Decimal("100000"), gt=0, le=MAX_USD)
    rate_limit_per_minute: int = Field(200, ge=0, le=100000)
    # the venue's market-data plan; keep equal to engine/sim/plan.py DEFAULT_PLAN
    plan: Literal["free", "unlimited"] = "free"

    @model_validator(mode="after")
    def _whole_multiplier(self) -> SimSection:
        if self.margin_multiplier not in (1, 2, 3, 4):
            raise ValueError(f"sim.margin_multiplier must be 1, 2, 3 or 4 (got {self.margin_multiplier!r})")
        return self


class SignalsSection(_Section):
    kind: Literal["demo", "jsonl", "csv", "callable"] = "demo"
    path: str = ""
    callable: str = ""
    max_age: float = Field(120, gt=0, le=WEEK)

    @model_validator(mode="after")
    def _source_named(self) -> SignalsSection:
        if self.kind in ("jsonl", "csv") and not self.path:
            raise ValueError(f'signals.path is required when signals.kind = "{self.kind}"')
        if self.kind == "csv" and self.path == "-":
            raise ValueError('signals.path "-" (stdin) is only for signals.kind = "jsonl"')
        if self.kind == "callable" and ":" not in self.callable:
            raise ValueError(
                'signals.callable must be "package.module:function" when signals.kind = "callable"'
                f" (got {self.callable!r})"
            )
        return self


class SymbolOverride(_Section):
    mode: RolloutModeField | None = None
    max_position_usd: Dec | None = Field(None, gt=0, le=MAX_USD)
    max_position_pct: float | None = Field(None, gt=0, le=1)
    size_multiplier: float | None = Field(None, ge=0, le=10)
    side: SideRestrictionField | None = None


class RolloutSection(_Section):
    default_mode: RolloutModeField = RolloutMode.APPROVE
    allowlist: SymbolList = Field(default_factory=list)
    approval_timeout: float = Field(60, gt=0, le=DAY)
    overrides: dict[str, SymbolOverride] = Field(default_factory=dict)


class SessionSection(_Section):
    bar_interval: float = Field(60, gt=0, le=DAY)
    journal_path: str = "var/journal.sqlite"
    universe_path: str = "config/universe.toml"
    # the trading day (`execdesk run --day`, or schedule = "day"): docs/configuration.md
    schedule: Literal["none", "day"] = "none"
    preflight_minutes: float = Field(10, ge=0, le=600)  # the session starts this long before the open
    close_minutes_before: float = Field(5, ge=0, le=120)  # the close routine starts this long before the close
    at_close: Literal["hold", "flatten"] = "hold"  # positions overnight
    after_close: Literal["next_day", "stop"] = "next_day"
    reports_dir: str = "reports"  # the day's execution report: <reports_dir>/YYYY-MM-DD.md

    @model_validator(mode="after")
    def _journal_is_a_file(self) -> SessionSection:
        problem = journal_path_problem(self.journal_path)
        if problem:
            raise ValueError(f"session.journal_path {problem} (got {self.journal_path!r})")
        return self


#: Every key binding of the console by binding id, with its default key. What
#: `[console] keymap` may remap (the console's key table, console/keys.py, has the same
#: ids: tests/console guards that); kept here so check-config validates a keymap
#: without importing the console.
CONSOLE_BINDINGS: dict[str, str] = {
    "kill_switch": "ctrl+k",
    "approve": "a",
    "reject": "r",
    "approve_all": "A",
    "reject_all": "R",
    "cancel_order": "c",
    "override": "o",
    "flatten": "F",
    "resume": "U",
    "filter": "slash",
    "rollout": "v",
    "fills": "f",
    "help": "question_mark",
    "quit": "q",
    "stop_session": "S",
}
#: bindings a keymap may move but never remove
CONSOLE_REQUIRED_BINDINGS = ("quit", "kill_switch")
#: keys the console's screens and dialogs use themselves
CONSOLE_RESERVED_KEYS = ("tab", "shift+tab", "escape", "enter", "ctrl+p", "ctrl+s", "up", "down")
#: key names for the punctuation Textual spells out
_KEY_NAMES = {
    "?": "question_mark",
    "/": "slash",
    "\\": "backslash",
    "@": "at",
    "!": "exclamation_mark",
    "#": "number_sign",
    "$": "dollar_sign",
    "%": "percent_sign",
    "&": "ampersand",
    "*": "asterisk",
    "+": "plus",
    "-": "minus",
    ".": "full_stop",
    ",": "comma",
    ":": "colon",
    ";": "semicolon",
    "=": "equals_sign",
    "<": "less_than_sign",
    ">": "greater_than_sign",
    "[": "left_square_bracket",
    "]": "right_square_bracket",
    "^": "circumflex_accent",
    "_": "underscore",
    "~": "tilde",
    "|": "vertical_line",
    "{": "left_curly_bracket",
    "}": "right_curly_bracket",
    " ": "space",
}


def _key_name(key: str) -> str:
    """One key as Textual names it: '?' -> 'question_mark', 'Ctrl+K' -> 'ctrl+k' (a
    single letter keeps its case: 'A' is shift+a)."""
    key = key.strip()
    if len(key) == 1:
        return _KEY_NAMES.get(key, key)
    return key.lower()


def keymap_problems(keymap: Mapping[str, str]) -> list[str]:
    """What is wrong with a `[console] keymap`, one line each, naming the key: an
    unknown binding id, a binding left without a key when it must have one, two
    bindings on one key, a key the console's screens use themselves."""
    problems: list[str] = []
    for binding_id in keymap:
        if binding_id not in CONSOLE_BINDINGS:
            guess = difflib.get_close_matches(binding_id, list(CONSOLE_BINDINGS), n=1)
            hint = f" (did you mean {guess[0]}?)" if guess else ""
            known = ", ".join(CONSOLE_BINDINGS)
            problems.append(f"console.keymap.{binding_id} is not a binding id{hint}; known: {known}")
    owners: dict[str, list[str]] = {}
    for binding_id, default in CONSOLE_BINDINGS.items():
        keys = [_key_name(k) for k in keymap.get(binding_id, default).split(",") if k.strip()]
        if not keys:
            if binding_id in CONSOLE_REQUIRED_BINDINGS:
                problems.append(f"console.keymap.{binding_id} has no key: the console must keep one for {binding_id}")
            continue
        for key in keys:
            if key in CONSOLE_RESERVED_KEYS and binding_id in keymap:
                problems.append(
                    f"console.keymap.{binding_id}: key {key!r} is used by the console itself (reserved: "
                    + ", ".join(CONSOLE_RESERVED_KEYS)
                    + ")"
                )
            owners.setdefault(key, []).append(binding_id)
    for key, ids in owners.items():
        if len(ids) > 1:
            problems.append(f"console.keymap: key {key!r} is bound to {' and '.join(ids)}: one key, one action")
    return problems


def journal_path_problem(path: str | os.PathLike[str]) -> str:
    """Why a path cannot be a journal ("" when it can): the journal is a file, so
    neither an empty path nor a directory (which would otherwise be opened, and its
    mode changed, as if it were one)."""
    text = os.fspath(path)
    if not text.strip():
        return "is empty: name the journal's file, e.g. var/journal.sqlite"
    if text.endswith(("/", os.sep)) or Path(text).is_dir():
        return "is a directory: name the journal's file inside it, e.g. <directory>/journal.sqlite"
    return ""


class ConsoleSection(_Section):
    max_fps: float = Field(10, gt=0, le=60)
    keymap: dict[str, str] = Field(default_factory=dict)
    new_row_guard_ms: int = Field(700, ge=0, le=10_000)
    # which zone the console writes venue-clock times in: "venue" (New York, ET), "utc" or "local"
    timezone: Literal["venue", "utc", "local"] = "venue"


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
    market_data: MarketDataSection = Field(default_factory=MarketDataSection)

    # Where it came from (not TOML keys).
    source_path: str | None = Field(default=None, exclude=True)
    env_overrides: tuple[str, ...] = Field(default=(), exclude=True)

    @property
    def is_live(self) -> bool:
        """Live trading: execution.mode = "live", or an Alpaca endpoint whose trading
        URL is Alpaca's live one (live is live however it is reached)."""
        return self.execution.mode == "live" or self.live_endpoint

    @property
    def live_endpoint(self) -> bool:
        """broker.trading_url names Alpaca's live trading host (api.alpaca.markets)."""
        return self.broker.kind == "alpaca" and is_live_trading_url(self.broker.trading_url)

    @model_validator(mode="after")
    def _quote_polls_fit_the_request_budget(self) -> Settings:
        rate, budget = self.market_data.poll_requests_per_minute, self.broker.rate_limit_per_minute
        if rate > budget / 2:
            raise ValueError(
                f"market_data.poll_interval = {self.market_data.poll_interval:g} s makes {rate:.0f} requests a minute, "
                f"more than half of broker.rate_limit_per_minute ({budget}): leave room for trading"
            )
        return self

    def universe_file(self) -> Path:
        """session.universe_path, resolved (working directory first, then the project)."""
        return resolve_input_path(self.session.universe_path)

    def load_universe(self) -> Universe:
        """The universe this configuration names. Raises UniverseError on bad data."""
        return Universe.load(self.universe_file())


def resolve_input_path(path: str | os.PathLike[str]) -> Path:
    """A file the configuration reads: absolute as given; relative to the working
    directory when it exists there, else relative to the project root."""
    p = Path(path)
    if p.is_absolute() or p.exists():
        return p
    in_project = PROJECT_ROOT / p
    return in_project if in_project.exists() else p


# -- credentials ----------------------------------------------------------------------------


class Credentials(BaseModel):
    """API keys, from the environment only. repr never shows the secret."""

    model_config = ConfigDict(frozen=True)
    key_id: str
    secret_key: str = Field(repr=False)

    @property
    def masked_key_id(self) -> str:
        return mask(self.key_id)


def url_host(url: str) -> str:
    """The host of a URL, lower-case, without a trailing dot ("" when there is none)."""
    try:
        host = urlsplit(url.strip()).hostname or ""
    except ValueError:
        return ""
    return host.rstrip(".").lower()


def is_live_trading_url(url: str) -> bool:
    return url_host(url) == ALPACA_LIVE_TRADING_HOST


# user:password@ (or token@) in a URL's authority, and secret-looking query values
_URL_USERINFO = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://)([^/\s?#@]*)@")
_URL_SECRET_QUERY = re.compile(
    r"([?&](?:key|secret|token|apikey|api_key|key_id|secret_key|password|passphrase|access_token|auth)=)[^&\s#]*",
    re.IGNORECASE,
)


def url_has_credentials(text: str) -> bool:
    """True when text holds a URL with credentials in it (user:password@host, or a
    query value such as ?token=...)."""
    return bool(_URL_USERINFO.search(text) or ("://" in text and _URL_SECRET_QUERY.search(text)))


def redact_urls(text: str) -> str:
    """text with the credentials of every URL in it replaced by ***
    (ws://KEY:SECRET@host -> ws://***@host; ?token=... -> ?token=***)."""
    if "://" not in text and "=" not in text:
        return text
    return _URL_SECRET_QUERY.sub(r"\1***", _URL_USERINFO.sub(r"\1***@", text))


class RedactUrlCredentials(logging.Filter):
    """A logging filter that redacts the credentials of URLs in a record's message
    (alpaca-py's streams log "connected to <url>" with whatever the URL holds)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken record is the handler's problem, not ours
            return True
        redacted = redact_urls(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


# The loggers that print URLs: alpaca-py's two streams and REST client, websockets.
URL_LOGGERS = (
    "alpaca.trading.stream",
    "alpaca.data.live.websocket",
    "alpaca.common.rest",
    "websockets.client",
    "engine.broker.streams",
    "engine.broker.alpaca",
    "execdesk",
)
_REDACTION = RedactUrlCredentials()


def install_url_redaction(handlers: tuple[logging.Handler, ...] = ()) -> None:
    """Redact URL credentials in what the loggers that print URLs log (a logger's
    filter sees only records logged on that logger, so each is named), and in
    everything `handlers` write. Safe to call more than once."""
    for name in URL_LOGGERS:
        logger = logging.getLogger(name)
        if _REDACTION not in logger.filters:
            logger.addFilter(_REDACTION)
    for handler in handlers:
        if _REDACTION not in handler.filters:
            handler.addFilter(_REDACTION)


def mask(secret: str) -> str:
    """Enough of a key id to tell two apart, never enough to use: 'PK…****'."""
    if not secret:
        return ""
    return secret[:2] + "…" + "*" * 4 if len(secret) > 6 else "****"


def credentials_from_env(env: Mapping[str, str] | None = None) -> Credentials | None:
    env = os.environ if env is None else env
    key, secret = env.get(SECRET_ENV[0], ""), env.get(SECRET_ENV[1], "")
    if key and secret:
        return Credentials(key_id=key, secret_key=secret)
    return None


# -- errors ---------------------------------------------------------------------------------


class ConfigError(ExecdeskError):
    """Every problem found in a configuration, each naming the file and the key."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


_BOUNDS = (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="))

_TYPE_WORDS = {
    "float_type": "a number",
    "float_parsing": "a number",
    "decimal_type": "a number",
    "decimal_parsing": "a number",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string (in double quotes)",
    "list_type": 'a list, e.g. ["AAPL", "MSFT"]',
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
    "finite_number": "a finite number",
}


def _unwrap(annotation: Any) -> Any:
    """Strip Annotated[...] and Optional[...] down to the value type."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def _field_at(loc: tuple[Any, ...]) -> Any:
    """The pydantic FieldInfo at a key path of Settings (None when there is none)."""
    current: Any = Settings
    field = None
    skip_key = False
    for part in loc:
        if skip_key:  # a dict key (e.g. a symbol under rollout.overrides)
            skip_key = False
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(str(part))
        if field is None:
            return None
        current = _unwrap(field.annotation)
        if typing.get_origin(current) is dict:
            value_type = _unwrap(typing.get_args(current)[1])
            if isinstance(value_type, type) and issubclass(value_type, BaseModel):
                current, skip_key = value_type, True
    return field


def _range_of(loc: tuple[Any, ...]) -> str:
    """The full allowed range of a numeric field (both bounds), for messages."""
    field = _field_at(loc)
    if field is None:
        return ""
    bounds = []
    for meta in field.metadata:
        for name, sym in _BOUNDS:
            value = getattr(meta, name, None)
            if value is not None:
                bounds.append(f"{sym} {value}")
    return " and ".join(bounds)


def _known_keys(loc: tuple[Any, ...]) -> list[str]:
    """The keys allowed beside the unknown one at loc (for a 'did you mean')."""
    parent = loc[:-1]
    if not parent:
        return list(Settings.model_fields)
    field = _field_at(parent)
    if field is None:
        return []
    model = _unwrap(field.annotation)
    if typing.get_origin(model) is dict:
        model = _unwrap(typing.get_args(model)[1])
    if isinstance(model, type) and issubclass(model, BaseModel):
        return [k for k, f in model.model_fields.items() if not f.exclude]
    return []


def _is_table(loc: tuple[Any, ...]) -> bool:
    """True when loc names a whole section (or Settings itself), not a single key."""
    if not loc:
        return True
    field = _field_at(loc)
    t = _unwrap(field.annotation) if field is not None else None
    return isinstance(t, type) and issubclass(t, BaseModel)


def _describe(err: Mapping[str, Any]) -> str:
    """What the value at err['loc'] must be, in words."""
    loc = tuple(err["loc"])
    kind = err.get("type", "")
    full_range = _range_of(loc)
    if kind.startswith(("greater_than", "less_than")):
        if full_range:
            return f"must be {full_range}"
        ctx = err.get("ctx") or {}
        return "must be " + " and ".join(f"{s} {ctx[n]}" for n, s in _BOUNDS if n in ctx)
    if kind in _TYPE_WORDS:
        what = f"must be {_TYPE_WORDS[kind]}"
        return f"{what} {full_range}" if full_range else what
    if kind == "literal_error":
        expected = (err.get("ctx") or {}).get("expected", "")
        return f"must be one of {expected}"
    if kind == "missing":
        return "is required"
    msg = str(err.get("msg", "is invalid"))
    return msg.removeprefix("Value error, ")


def _format_errors(source: str, exc: ValidationError, env_sources: Mapping[tuple[str, ...], str]) -> list[str]:
    problems = []
    for err in exc.errors():
        loc = tuple(str(p) for p in err["loc"])
        key = ".".join(loc) or "(top level)"
        where = _where(source, loc, env_sources)
        kind = err.get("type", "")
        if kind == "extra_forbidden":
            known = _known_keys(loc)
            hint = [k for k in known if k.startswith(loc[-1])] or difflib.get_close_matches(loc[-1], known, n=1)
            did_you_mean = f" (did you mean {hint[0]}?)" if hint else ""
            problems.append(f"{where}: {key} is not a known key{did_you_mean}")
        elif kind == "value_error" and _is_table(loc):
            # A rule across keys of one section: its message names the keys itself.
            problems.append(f"{where}: {_describe(err)}")
        else:
            problems.append(f"{where}: {key} {_describe(err)} (got {err.get('input')!r})")
    return [redact_urls(p) for p in problems]


def _where(source: str, loc: tuple[str, ...], env_sources: Mapping[tuple[str, ...], str]) -> str:
    """The file, or the environment variable, a value at loc came from."""
    best = None
    for path, var in env_sources.items():
        n = min(len(path), len(loc))
        if path[:n] == loc[:n] and (best is None or len(path) > len(best[0])):
            best = (path, var)
    return f"{best[1]} (environment)" if best else source


def _is_secret_name(name: str) -> bool:
    name = name.lower()
    return name in _SECRET_KEY_NAMES or name.endswith(_SECRET_KEY_SUFFIXES)


def _find_secrets(data: Any, prefix: str = "") -> list[str]:
    found = []
    if isinstance(data, dict):
        for k, v in data.items():
            path = f"{prefix}.{k}" if prefix else str(k)
            if _is_secret_name(str(k)):
                found.append(path)
            else:
                found.extend(_find_secrets(v, path))
    return found


def _find_secret_values(data: Any, secrets: list[tuple[str, str]], prefix: str = "") -> list[str]:
    """Keys whose value contains the actual API key or secret from the environment."""
    found = []
    if isinstance(data, dict):
        for k, v in data.items():
            found.extend(_find_secret_values(v, secrets, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(data, list):
        for v in data:
            found.extend(_find_secret_values(v, secrets, prefix))
    elif isinstance(data, str):
        found.extend(f"{prefix} contains the value of {var}" for var, s in secrets if s in data)
    return found


def _find_url_credentials(data: Any, prefix: str = "") -> list[str]:
    """Keys whose value is (or holds) a URL with credentials in it (user:password@host)."""
    found = []
    if isinstance(data, dict):
        for k, v in data.items():
            found.extend(_find_url_credentials(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(data, list):
        for v in data:
            found.extend(_find_url_credentials(v, prefix))
    elif isinstance(data, str) and url_has_credentials(data):
        found.append(prefix)
    return found


_URL_SECRET_WORDS = "is a URL with credentials in it (user:password@host, or a ?token=... query)"

_SECRET_HINT = (
    "API keys come only from the environment (APCA_API_KEY_ID / APCA_API_SECRET_KEY), "
    "never from a file: remove it from the file and export it in the environment instead"
)


# -- environment overrides ------------------------------------------------------------------


def _takes_text(loc: tuple[str, ...]) -> bool:
    """True when the key at loc holds a string (or a choice of strings): the environment
    value is then taken verbatim rather than parsed as a TOML value."""
    field = _field_at(loc)
    if field is None:
        return False
    t = _unwrap(field.annotation)
    if t is str:
        return True
    if typing.get_origin(t) is Literal:
        return all(isinstance(a, str) for a in typing.get_args(t))
    return isinstance(t, type) and issubclass(t, Enum) and issubclass(t, str)


def _takes_list(loc: tuple[str, ...]) -> bool:
    field = _field_at(loc)
    return field is not None and typing.get_origin(_unwrap(field.annotation)) is list


def _list_words(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]


def _parse_env_value(loc: tuple[str, ...], raw: str) -> Any:
    if _takes_text(loc):
        return raw
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    if _takes_list(loc) and not isinstance(value, list):
        # Lists may also be written as AAPL,MSFT in the environment.
        value = _list_words(raw)
    return value


def _env_key_path(name: str) -> tuple[str, ...] | None:
    """EXECDESK_ROLLOUT__OVERRIDES__AAPL__MODE -> ("rollout", "overrides", "AAPL", "mode")."""
    if not name.startswith(ENV_PREFIX) or "__" not in name:
        return None
    parts = name[len(ENV_PREFIX) :].split("__")
    path: list[str] = []
    for part in parts:
        path.append(part.upper() if tuple(path[-2:]) in _SYMBOL_KEYED else part.lower())
    return tuple(path)


def _looks_like_single_underscore_override(name: str, sections: tuple[str, ...]) -> bool:
    """EXECDESK_RISK_MANAGEMENT_MAX_DAILY_LOSS: a real key with one underscore too few
    (silently ignoring it would leave the operator believing the limit changed)."""
    if not name.startswith(ENV_PREFIX):
        return False
    rest = name[len(ENV_PREFIX) :].lower()
    for section in sections:
        if rest.startswith(section + "_"):
            key = rest[len(section) + 1 :]
            if key in _known_keys((section, key)):
                return True
    return False


def _env_overrides(
    env: Mapping[str, str],
) -> tuple[dict[str, Any], dict[tuple[str, ...], str], list[str]]:
    """EXECDESK_SECTION__KEY=value -> ({"section": {"key": value}}, {path: var}, problems).
    Values are parsed as TOML values (numbers, booleans, arrays) unless the key holds text."""
    out: dict[str, Any] = {}
    sources: dict[tuple[str, ...], str] = {}
    problems: list[str] = []
    sections = tuple(k for k, f in Settings.model_fields.items() if not f.exclude)
    for name in sorted(env):
        raw = env[name]
        path = _env_key_path(name)
        if path is None:
            if _looks_like_single_underscore_override(name, sections):
                problems.append(
                    f"{name} (environment): not a configuration override: write "
                    f"{ENV_PREFIX}<SECTION>__<KEY> with two underscores between section and key"
                )
            continue
        if not all(path):
            problems.append(f"{name} (environment): empty section or key name")
            continue
        if any(_is_secret_name(p) for p in path) or url_has_credentials(raw):
            what = _URL_SECRET_WORDS if url_has_credentials(raw) else "looks like a credential"
            problems.append(
                f"{name} (environment): {'.'.join(path)} {what}: API keys come "
                "only from APCA_API_KEY_ID / APCA_API_SECRET_KEY, never from EXECDESK_* overrides"
            )
            continue
        if _takes_list(path) and not raw.strip().startswith("[") and not _list_words(raw):
            problems.append(
                f"{name} (environment): {'.'.join(path)} names no symbol (got {raw!r}): write symbols "
                "separated by commas (AAPL,MSFT), or [] for an empty list"
            )
            continue
        node = out
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[path[-1]] = _parse_env_value(path, raw)
        sources[path] = name
    return out, sources, problems


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(merged.get(k), dict):
            merged[k] = _merge(merged[k], v)
        else:
            merged[k] = v
    return merged


# -- loading --------------------------------------------------------------------------------


def _read_toml(cfg_path: Path, source: str) -> dict[str, Any]:
    if not cfg_path.exists():
        raise ConfigError([f"{source}: configuration file not found"])
    if cfg_path.is_dir():
        raise ConfigError([f"{source}: is a directory, expected a TOML file"])
    try:
        text = cfg_path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{source}: not UTF-8 text ({exc.reason} at byte {exc.start})"]) from None
    except OSError as exc:
        raise ConfigError([f"{source}: cannot read: {exc.strerror}"]) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{source}: {_toml_error(str(exc), text)}"]) from None


def _toml_error(message: str, text: str) -> str:
    """tomllib's message, always with a line number (it says 'end of document' instead
    when the file ends in the middle of a value)."""
    m = re.search(r"\(at line (\d+), column (\d+)\)", message)
    if m:
        return f"invalid TOML at line {m[1]}, column {m[2]}: {message[: m.start()].strip()}"
    m = re.search(r"\(at end of document\)", message)
    if m:
        lines = text.split("\n")
        return (
            f"invalid TOML at line {len(lines)}, column {len(lines[-1]) + 1} (end of file): "
            f"{message[: m.start()].strip()}"
        )
    return f"invalid TOML: {message}"


def _check_symbols(settings: Settings, source: str, env_sources: Mapping[tuple[str, ...], str]) -> list[str]:
    """Symbols named in [rollout] must be in the universe named by session.universe_path."""
    where = _where(source, ("session", "universe_path"), env_sources)
    try:
        universe = settings.load_universe()
    except UniverseError as exc:
        if len(exc.problems) == 1 and exc.problems[0].endswith("universe file not found"):
            return [
                f"{where}: session.universe_path names a file that does not exist "
                f"(got {settings.session.universe_path!r})"
            ]
        return exc.problems

    def unknown(key: str, loc: tuple[str, ...], symbol: str) -> str:
        guess = universe.closest(symbol)
        hint = f" (did you mean {guess}?)" if guess and guess != symbol else ""
        return (
            f"{_where(source, loc, env_sources)}: {key}: {symbol!r} is not in the universe "
            f"({settings.session.universe_path}){hint}"
        )

    problems = [
        unknown("rollout.allowlist", ("rollout", "allowlist"), sym)
        for sym in settings.rollout.allowlist
        if sym not in universe
    ]
    problems += [
        unknown(f"rollout.overrides.{sym}", ("rollout", "overrides", sym), sym)
        for sym in settings.rollout.overrides
        if sym not in universe
    ]
    return problems


def load_settings(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    live_confirmed: bool = False,
    for_trading: bool = True,
) -> Settings:
    """Load and validate the configuration. Raises ConfigError listing every problem.

    path None means config/execution.toml (in the working directory, else in the
    project). env defaults to os.environ. live_confirmed is the command line's --live.
    for_trading False (the kill switch, status, report: commands that place no new
    order) skips the rules of live trading, so that they never need --live."""
    env = os.environ if env is None else env
    cfg_path = Path(path) if path is not None else resolve_input_path(DEFAULT_CONFIG_PATH)
    source = str(cfg_path)
    data = _read_toml(cfg_path, source)

    problems = [f"{source}: {key} looks like a credential: {_SECRET_HINT}" for key in _find_secrets(data)]
    problems += [f"{source}: {key} {_URL_SECRET_WORDS}: {_SECRET_HINT}" for key in _find_url_credentials(data)]
    real_secrets = [(var, env[var]) for var in SECRET_ENV if len(env.get(var, "")) >= 8]
    problems += [f"{source}: {found}: {_SECRET_HINT}" for found in _find_secret_values(data, real_secrets)]
    overrides, env_sources, env_problems = _env_overrides(env)
    problems += env_problems
    if problems:
        raise ConfigError(problems)

    if overrides:
        data = _merge(data, overrides)
    try:
        settings = Settings.model_validate(data, strict=True, context={"strict": True})
    except ValidationError as exc:
        raise ConfigError(_format_errors(source, exc, env_sources)) from None

    problems = _check_symbols(settings, source, env_sources)
    where = _where(source, ("console", "keymap"), env_sources)
    problems += [f"{where}: {problem}" for problem in keymap_problems(settings.console.keymap)]
    if problems:
        raise ConfigError(problems)

    if for_trading:
        problems = _live_problems(settings, source, env_sources, live_confirmed)
        if problems:
            raise ConfigError(problems)
    settings.source_path = source
    settings.env_overrides = tuple(sorted(env_sources.values()))
    return settings


def _live_problems(
    settings: Settings, source: str, env_sources: Mapping[tuple[str, ...], str], live_confirmed: bool
) -> list[str]:
    """The rules of live trading: live is live however it is reached (mode, or a
    trading_url on Alpaca's live host), needs both execution.mode = "live" and --live,
    and never sends an order without a human decision for everything at once."""
    problems = []
    if settings.live_endpoint and settings.execution.mode != "live":
        where = _where(source, ("broker", "trading_url"), env_sources)
        problems.append(
            f"{where}: broker.trading_url {redact_urls(settings.broker.trading_url)!r} is Alpaca's live "
            f'trading endpoint: live trading needs execution.mode = "live" and --live on the command line '
            f"(paper trading is at https://{ALPACA_PAPER_TRADING_HOST})"
        )
    elif settings.is_live and not live_confirmed:
        where = _where(source, ("execution", "mode"), env_sources)
        problems.append(
            f'{where}: execution.mode = "live" needs --live on the command line as well '
            "(paper is the default; live trading is an explicit opt-in)"
        )
    if settings.is_live and settings.rollout.default_mode is RolloutMode.AUTO:
        where = _where(source, ("rollout", "default_mode"), env_sources)
        problems.append(
            f'{where}: rollout.default_mode = "auto" is refused in live mode, like --auto-approve: '
            'use "approve", and set mode = "auto" per symbol under [rollout.overrides.<SYMBOL>] '
            "for the symbols you have rolled out"
        )
    return problems


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _redacted(value: Any) -> Any:
    """Every string in value with its URL credentials redacted."""
    if isinstance(value, str):
        return redact_urls(value)
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value


def effective_view(
    settings: Settings, env: Mapping[str, str] | None = None, *, json_safe: bool = True
) -> dict[str, Any]:
    """The effective configuration as plain data, with credentials masked.

    json_safe=True (the default) gives JSON types (Decimals as strings); False keeps
    Decimals as Decimal (enums become their values either way)."""
    view = _redacted(settings.model_dump(mode="json") if json_safe else _plain(settings.model_dump()))
    creds = credentials_from_env(env)
    view["credentials"] = {
        "APCA_API_KEY_ID": creds.masked_key_id if creds else "(not set)",
        "APCA_API_SECRET_KEY": "********" if creds else "(not set)",
    }
    return view
