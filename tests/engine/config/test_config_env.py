"""Given EXECDESK_<SECTION>__<KEY> variables, the file's values are overridden; a bad
override is reported under the variable's name."""

from __future__ import annotations

from decimal import Decimal

import pytest

from engine.config import ConfigError, load_settings
from engine.model import RolloutMode, TradingState


def test_an_override_replaces_the_file_value(write_config):
    path = write_config("[risk_management]\nmax_daily_loss = 0.02\n")

    settings = load_settings(path, env={"EXECDESK_RISK_MANAGEMENT__MAX_DAILY_LOSS": "0.01"})

    assert settings.risk_management.max_daily_loss == 0.01
    assert settings.env_overrides == ("EXECDESK_RISK_MANAGEMENT__MAX_DAILY_LOSS",)


@pytest.mark.parametrize(
    "var, raw, read",
    [
        ("EXECDESK_EXECUTION__ENABLED", "false", lambda s: s.execution.enabled is False),
        ("EXECDESK_ORDER_MANAGEMENT__MAX_ORDERS_PER_BAR", "25", lambda s: s.order_management.max_orders_per_bar == 25),
        (
            "EXECDESK_RISK_MANAGEMENT__MAX_ORDER_NOTIONAL",
            "12500.50",
            lambda s: s.risk_management.max_order_notional == Decimal("12500.50"),
        ),
        (
            "EXECDESK_BROKER__TRADING_URL",
            "http://127.0.0.1:8765",
            lambda s: s.broker.trading_url == "http://127.0.0.1:8765",
        ),
        # Text keys take the value verbatim, even when it would parse as a number.
        ("EXECDESK_SESSION__JOURNAL_PATH", "2024", lambda s: s.session.journal_path == "2024"),
        ("EXECDESK_ROLLOUT__DEFAULT_MODE", "auto", lambda s: s.rollout.default_mode is RolloutMode.AUTO),
        (
            "EXECDESK_RISK_MANAGEMENT__TRIP_STATE",
            "REDUCING",
            lambda s: s.risk_management.trip_state is TradingState.REDUCING,
        ),
        # Lists as TOML arrays or comma-separated.
        ("EXECDESK_ROLLOUT__ALLOWLIST", '["AAPL", "MSFT"]', lambda s: s.rollout.allowlist == ["AAPL", "MSFT"]),
        ("EXECDESK_ROLLOUT__ALLOWLIST", "AAPL, MSFT", lambda s: s.rollout.allowlist == ["AAPL", "MSFT"]),
        ("EXECDESK_CONSOLE__KEYMAP", '{ approve = "y" }', lambda s: s.console.keymap == {"approve": "y"}),
        # Symbols keep their case under rollout.overrides.
        (
            "EXECDESK_ROLLOUT__OVERRIDES__AAPL__MODE",
            "auto",
            lambda s: s.rollout.overrides["AAPL"].mode is RolloutMode.AUTO,
        ),
    ],
)
def test_overrides_are_read_as_the_key_type(write_config, var, raw, read):
    settings = load_settings(write_config(""), env={var: raw})

    assert read(settings)


def test_an_override_merges_into_a_symbol_table_from_the_file(write_config):
    path = write_config('[rollout.overrides.AAPL]\nmode = "approve"\nmax_position_usd = 5000\n')

    settings = load_settings(path, env={"EXECDESK_ROLLOUT__OVERRIDES__AAPL__MODE": "off"})

    assert settings.rollout.overrides["AAPL"].mode is RolloutMode.OFF
    assert settings.rollout.overrides["AAPL"].max_position_usd == Decimal("5000")


@pytest.mark.parametrize(
    "var, raw, fragments",
    [
        (
            "EXECDESK_RISK_MANAGEMENT__MAX_DAILY_LOSS",
            "abc",
            ["risk_management.max_daily_loss must be a number > 0 and <= 1", "(got 'abc')"],
        ),
        (
            "EXECDESK_RISK_MANAGEMENT__MAX_DAILY_LOSS",
            "-0.5",
            ["risk_management.max_daily_loss must be > 0 and <= 1 (got -0.5)"],
        ),
        ("EXECDESK_EXECUTION__ENABLED", "yes", ["execution.enabled must be true or false (got 'yes')"]),
        (
            "EXECDESK_RISK_MANAGEMENT__MAX_DAILY_LOS",
            "0.1",
            ["risk_management.max_daily_los is not a known key", "did you mean max_daily_loss?"],
        ),
        ("EXECDESK_RISKMANAGEMENT__MAX_DAILY_LOSS", "0.1", ["riskmanagement is not a known key"]),
        (
            "EXECDESK_ROLLOUT__OVERRIDES__AAPL__MODE",
            "fast",
            ["rollout.overrides.AAPL.mode must be one of 'off', 'approve' or 'auto' (got 'fast')"],
        ),
        ("EXECDESK_SIGNALS__KIND", "jsonl", ['signals.path is required when signals.kind = "jsonl"']),
        # One underscore too few would silently change nothing: refused instead.
        ("EXECDESK_RISK_MANAGEMENT_MAX_DAILY_LOSS", "0.01", ["two underscores"]),
        ("EXECDESK_BROKER__API_KEY", "PKXXXX", ["broker.api_key looks like a credential", "APCA_API_KEY_ID"]),
    ],
)
def test_a_bad_override_names_the_variable(write_config, var, raw, fragments):
    with pytest.raises(ConfigError) as caught:
        load_settings(write_config(""), env={var: raw})

    (message,) = caught.value.problems
    assert message.startswith(f"{var} (environment): ")
    for fragment in fragments:
        assert fragment in message


def test_a_bad_override_exits_2_on_the_command_line_naming_the_variable(cli, clean_env, write_config):
    clean_env.setenv("EXECDESK_POSITION_SIZING__MAX_POSITION_SIZE", "1.5")

    result = cli("check-config", write_config(""))

    assert result.code == 2
    assert result.errors == [
        "error: EXECDESK_POSITION_SIZING__MAX_POSITION_SIZE (environment): "
        "position_sizing.max_position_size must be > 0 and <= 1 (got 1.5)"
    ]
    assert "Traceback" not in result.err


def test_live_mode_from_the_environment_still_needs_the_flag(write_config):
    with pytest.raises(ConfigError) as caught:
        load_settings(write_config(""), env={"EXECDESK_EXECUTION__MODE": "live"})

    (message,) = caught.value.problems
    assert message.startswith("EXECDESK_EXECUTION__MODE (environment): ")
    assert "--live" in message
    assert load_settings(write_config(""), env={"EXECDESK_EXECUTION__MODE": "live"}, live_confirmed=True).is_live


def test_unrelated_execdesk_variables_are_left_alone(write_config):
    settings = load_settings(
        write_config(""), env={"EXECDESK_HOME": "/tmp", "EXECDESK_SIM_PORT": "8000", "PATH": "/bin"}
    )

    assert settings.env_overrides == ()


def test_check_config_lists_the_overrides_it_applied(cli, clean_env, write_config):
    clean_env.setenv("EXECDESK_SIM__SEED", "7")

    result = cli("check-config", write_config(""))

    assert result.code == 0, result.err
    assert "# environment overrides: EXECDESK_SIM__SEED" in result.out
    assert "seed = 7" in result.out
