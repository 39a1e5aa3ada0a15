"""The shipped defaults: config/execution.toml loads, carries the plan's values, and
check-config prints it back (secrets masked) as TOML that loads again."""

from __future__ import annotations

import json
import re
import tomllib
from decimal import Decimal
from pathlib import Path

from pydantic import BaseModel

from engine.config import (
    Settings,
    credentials_from_env,
    effective_view,
    load_settings,
    mask,
)
from engine.model import RolloutMode, TradingState

REPO = Path(__file__).resolve().parents[3]

SHIPPED = REPO / "config" / "execution.toml"


def test_the_shipped_file_carries_the_plans_defaults():
    s = load_settings(SHIPPED, env={})

    assert (s.execution.enabled, s.execution.mode) == (True, "paper")
    assert s.position_sizing.max_position_size == 0.1
    assert s.position_sizing.max_total_exposure == 0.8
    assert s.position_sizing.min_trade_size == Decimal("100")
    assert s.position_sizing.signal_threshold == 0.1
    assert s.risk_management.max_daily_loss == 0.02
    assert s.risk_management.max_position_risk == 0.05
    assert s.risk_management.max_sector_exposure == 0.3
    assert s.risk_management.stop_loss_pct == 0.05
    assert s.order_management.default_order_type == "limit"
    assert s.order_management.limit_price_offset == 0.001
    assert s.order_management.time_in_force == "day"
    assert s.order_management.max_orders_per_bar == 10
    assert s.monitoring.order_reconciliation_interval == 30
    assert s.monitoring.position_update_interval == 60
    assert s.monitoring.risk_check_interval == 10
    assert s.broker.kind == "sim" and s.broker.feed == "iex"
    assert s.signals.kind == "demo"
    assert s.rollout.default_mode is RolloutMode.APPROVE
    assert s.risk_management.trip_state is TradingState.HALTED
    assert s.source_path == str(SHIPPED)


def test_the_shipped_file_equals_the_code_defaults():
    """config/execution.toml and engine/config.py say the same thing."""
    from_file = load_settings(SHIPPED, env={}).model_dump()
    assert from_file == Settings().model_dump()


def _keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    out = []
    for name, field in model.model_fields.items():
        if field.exclude:
            continue
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out += _keys(ann, f"{prefix}{name}.")
        else:
            out.append(f"{prefix}{name}")
    return out


def test_every_key_is_in_the_shipped_file_and_in_the_reference():
    text = SHIPPED.read_text()
    docs = (REPO / "docs" / "configuration.md").read_text()
    overrides_doc = re.search(r"\[rollout\.overrides\.AAPL\](.*?)\n\n", text, re.S).group(1)
    for key in _keys(Settings):
        section, _, name = key.rpartition(".")
        if section == "rollout" and name == "overrides":
            continue
        assert re.search(rf"^\[{section}\]$", text, re.M), f"[{section}] missing from {SHIPPED}"
        assert re.search(rf"^{name} = ", text, re.M), f"{key} missing from {SHIPPED}"
        assert f"`{key}`" in docs, f"{key} missing from docs/configuration.md"
    from engine.config import SymbolOverride

    for name in SymbolOverride.model_fields:
        assert f"# {name} = " in overrides_doc, f"rollout.overrides.<SYMBOL>.{name} not shown in {SHIPPED}"
        assert f"`rollout.overrides.<SYMBOL>.{name}`" in docs


def test_an_empty_file_means_every_default(write_config):
    assert load_settings(write_config(""), env={}).model_dump() == Settings().model_dump()


def test_money_is_exact_decimal(write_config):
    s = load_settings(write_config("[risk_management]\nmax_order_notional = 12345.67\n"), env={})

    assert s.risk_management.max_order_notional == Decimal("12345.67")


def test_check_config_prints_the_effective_configuration_and_exits_0(cli):
    result = cli("check-config", SHIPPED)

    assert result.code == 0
    assert result.err == ""
    assert "[risk_management]\nmax_daily_loss = 0.02" in result.out
    assert 'mode = "paper"' in result.out
    assert "# trading mode: paper" in result.out
    assert result.out.rstrip().endswith("# configuration OK")


def test_check_config_output_loads_back_as_the_same_configuration(cli, write_config):
    path = write_config(
        """
        [rollout]
        allowlist = ["AAPL", "MSFT"]
        [rollout.overrides.AAPL]
        mode = "auto"
        max_position_usd = 5000.5
        [console]
        keymap = { approve = "y", kill_switch = "ctrl+x" }
        """
    )
    original = load_settings(path, env={})

    printed = cli("check-config", path).out
    again = load_settings(write_config(printed, name="printed.toml"), env={})

    assert again.model_dump() == original.model_dump()


def test_check_config_json_is_machine_readable(cli):
    result = cli("check-config", SHIPPED, "--format", "json")

    view = json.loads(result.out)
    assert result.code == 0
    assert view["risk_management"]["max_daily_loss"] == 0.02
    assert view["credentials"] == {"APCA_API_KEY_ID": "(not set)", "APCA_API_SECRET_KEY": "(not set)"}


def test_credentials_come_from_the_environment_and_are_masked_everywhere(cli, clean_env):
    clean_env.setenv("APCA_API_KEY_ID", "PKTESTKEY1234567890")
    clean_env.setenv("APCA_API_SECRET_KEY", "verysecretvalue0987654321")

    for fmt in ("toml", "json"):
        result = cli("check-config", SHIPPED, "--format", fmt)
        assert result.code == 0
        assert "verysecretvalue" not in result.out + result.err
        assert "PKTESTKEY1234567890" not in result.out + result.err
        assert mask("PKTESTKEY1234567890") in result.out

    creds = credentials_from_env()
    assert creds is not None and creds.secret_key == "verysecretvalue0987654321"
    assert "verysecretvalue" not in repr(creds)


def test_the_effective_view_has_masked_credentials_and_no_secret_fields():
    env = {"APCA_API_KEY_ID": "PKABCDEFGH", "APCA_API_SECRET_KEY": "sssssssssss"}
    view = effective_view(Settings(), env)

    assert view["credentials"] == {"APCA_API_KEY_ID": "PK…****", "APCA_API_SECRET_KEY": "********"}
    assert "sssssssssss" not in json.dumps(view)
    assert tomllib.loads(SHIPPED.read_text())  # the file itself is plain TOML


def test_code_can_still_build_settings_directly():
    """Other modules and tests build sections in Python: strings for enums and
    money are accepted there (strict types apply to files and the environment)."""
    s = Settings(rollout={"default_mode": "auto", "overrides": {"AAPL": {"mode": "off"}}})
    s.risk_management.max_order_notional = "2500"

    assert s.rollout.default_mode is RolloutMode.AUTO
    assert s.rollout.overrides["AAPL"].mode is RolloutMode.OFF
    assert s.risk_management.max_order_notional == Decimal("2500")


def test_the_reference_states_the_code_defaults():
    docs = (REPO / "docs" / "configuration.md").read_text()
    defaults = Settings().model_dump(mode="json")
    rows = re.findall(r"^\| `([a-z_]+)\.([a-z_]+)` \|.*\| `([^`]*)` \| [^|]* \|$", docs, re.M)
    documented = {f"{s}.{k}" for s, k, _ in rows}

    assert documented == {k for k in _keys(Settings) if k != "rollout.overrides"}
    for section, key, shown in rows:
        value = tomllib.loads(f"v = {shown}")["v"]
        expected = defaults[section][key]
        if isinstance(expected, str) and not isinstance(value, str):
            value = str(value)  # Decimals are strings in the JSON view
        assert value == expected, f"docs say {section}.{key} = {shown}, code says {expected!r}"
