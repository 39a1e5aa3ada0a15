"""Given a configuration mistake, when `execdesk check-config` reads it, then it exits 2
with one `error: ` line per problem naming the file, the key and the value found,
and never a traceback."""

from __future__ import annotations

import pytest

CASES = {
    # name: (file text, text every error message must contain)
    "unknown key": (
        "[execution]\nenabeld = true\n",
        ["execution.enabeld is not a known key", "did you mean enabled?"],
    ),
    "unknown section": (
        "[risk]\nmax_daily_loss = 0.01\n",
        ["risk is not a known key", "did you mean risk_management?"],
    ),
    "string for a number": (
        '[position_sizing]\nmax_position_size = "big"\n',
        ["position_sizing.max_position_size must be a number > 0 and <= 1", "(got 'big')"],
    ),
    "string for a boolean": (
        '[execution]\nenabled = "yes"\n',
        ["execution.enabled must be true or false (got 'yes')"],
    ),
    "fraction for a whole number": (
        "[order_management]\nmax_orders_per_bar = 2.5\n",
        ["order_management.max_orders_per_bar must be a whole number", "(got 2.5)"],
    ),
    "string for money": (
        '[risk_management]\nmax_order_notional = "lots"\n',
        ["risk_management.max_order_notional must be a number (got 'lots')"],
    ),
    "number for a string": (
        "[session]\njournal_path = 7\n",
        ["session.journal_path must be a string", "(got 7)"],
    ),
    "scalar for a section": (
        "execution = 3\n",
        ["execution must be a table (got 3)"],
    ),
    "negative fraction": (
        "[risk_management]\nmax_daily_loss = -0.02\n",
        ["risk_management.max_daily_loss must be > 0 and <= 1 (got -0.02)"],
    ),
    "fraction above one": (
        "[position_sizing]\nmax_position_size = 1.5\n",
        ["position_sizing.max_position_size must be > 0 and <= 1 (got 1.5)"],
    ),
    "zero where positive is required": (
        "[monitoring]\nrisk_check_interval = 0\n",
        ["monitoring.risk_check_interval must be > 0 and <= 86400 (got 0)"],
    ),
    "value outside a choice": (
        '[order_management]\ntime_in_force = "week"\n',
        ["order_management.time_in_force must be one of 'day', 'gtc', 'ioc' or 'fok' (got 'week')"],
    ),
    "trip state that is not a trip": (
        '[risk_management]\ntrip_state = "ACTIVE"\n',
        ["risk_management.trip_state must be one of 'REDUCING' or 'HALTED' (got 'ACTIVE')"],
    ),
    "signal file missing for jsonl": (
        '[signals]\nkind = "jsonl"\n',
        ['signals.path is required when signals.kind = "jsonl"'],
    ),
    "callable without module:function": (
        '[signals]\nkind = "callable"\ncallable = "mymodel"\n',
        ["signals.callable must be", "(got 'mymodel')"],
    ),
    "broker url without scheme": (
        '[broker]\ntrading_url = "localhost:8000"\n',
        ["broker.trading_url must be an http:// or https:// URL", "(got 'localhost:8000')"],
    ),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_a_bad_value_is_named_with_its_key_and_exits_2(case, cli, write_config):
    text, expected = CASES[case]
    path = write_config(text)

    result = cli("check-config", path)

    assert result.code == 2
    assert result.out == ""
    assert len(result.errors) == 1, result.err
    message = result.errors[0]
    assert message.startswith(f"error: {path}: ")
    for fragment in expected:
        assert fragment in message
    assert "Traceback" not in result.err


def test_every_problem_is_reported_at_once_each_on_its_own_line(cli, write_config):
    path = write_config(
        """
        [risk_management]
        max_daily_loss = -0.02
        max_sector_exposure = 2

        [order_management]
        time_in_force = "week"
        """
    )

    result = cli("check-config", path)

    assert result.code == 2
    keys = ["risk_management.max_daily_loss", "risk_management.max_sector_exposure", "order_management.time_in_force"]
    assert len(result.errors) == 3
    for key, line in zip(keys, result.errors, strict=False):
        assert key in line
    assert result.err.count("\n") == 3  # nothing but the three error lines


@pytest.mark.parametrize(
    "text, key",
    [
        ('[broker]\napi_key = "' + "PK" + "A" * 18 + '"\n', "broker.api_key"),
        ('[broker]\nsecret_key = "s3cr3t-value-here"\n', "broker.secret_key"),
        ('APCA_API_SECRET_KEY = "s3cr3t-value-here"\n', "APCA_API_SECRET_KEY"),
        ('[rollout.overrides.AAPL]\nbroker_token = "abc"\n', "rollout.overrides.AAPL.broker_token"),
    ],
)
def test_a_secret_in_the_file_is_refused_and_points_to_the_environment(cli, write_config, text, key):
    path = write_config(text)

    result = cli("check-config", path)

    assert result.code == 2
    (message,) = result.errors
    assert key in message
    assert "APCA_API_KEY_ID" in message and "APCA_API_SECRET_KEY" in message
    assert "environment" in message
    assert "s3cr3t" not in result.err + result.out  # the secret itself is never echoed
    assert "PKAAAA" not in result.err + result.out


def test_the_environment_secret_pasted_into_a_value_is_refused_without_echoing_it(cli, clean_env, write_config):
    path = write_config('[broker]\ntrading_url = "https://paper-api.alpaca.markets/?k=TopSecretValue123"\n')
    clean_env.setenv("APCA_API_KEY_ID", "PKKEYID123456")
    clean_env.setenv("APCA_API_SECRET_KEY", "TopSecretValue123")

    result = cli("check-config", path)

    assert result.code == 2
    (message,) = result.errors
    assert "broker.trading_url contains the value of APCA_API_SECRET_KEY" in message
    assert "TopSecretValue123" not in result.err + result.out


def test_live_mode_without_the_live_flag_is_refused(cli, write_config):
    path = write_config('[execution]\nmode = "live"\n')

    result = cli("check-config", path)

    assert result.code == 2
    (message,) = result.errors
    assert "execution.mode" in message and "--live" in message


@pytest.mark.parametrize("argv", [["check-config", "{p}", "--live"], ["--live", "check-config", "{p}"]])
def test_live_mode_with_the_live_flag_is_accepted_and_says_so(cli, write_config, argv):
    path = write_config('[execution]\nmode = "live"\n')

    result = cli(*[a.format(p=path) for a in argv])

    assert result.code == 0, result.err
    assert "trading mode: LIVE (confirmed with --live)" in result.out


def test_a_missing_file_is_named(cli, tmp_path):
    missing = tmp_path / "nowhere.toml"

    result = cli("check-config", missing)

    assert result.code == 2
    assert result.errors == [f"error: {missing}: configuration file not found"]


def test_a_directory_is_not_a_configuration(cli, tmp_path):
    result = cli("check-config", tmp_path)

    assert result.code == 2
    assert "is a directory" in result.errors[0]


@pytest.mark.parametrize(
    "text, line",
    [
        ("[execution]\nenabled = true\nmode = \n", 3),
        ("[execution]\nenabled = true\n\n\n[execution]\n", 5),
        ('[risk_management]\nmax_daily_loss = 0.02\nrestricted_symbols = ["GME",\n', 4),
    ],
)
def test_invalid_toml_names_the_line(cli, write_config, text, line):
    path = write_config(text)

    result = cli("check-config", path)

    assert result.code == 2
    (message,) = result.errors
    assert f"{path}: invalid TOML at line {line}" in message


def test_a_file_that_is_not_utf8_is_refused(cli, tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes('[session]\njournal_path = "caf\xe9"\n'.encode("latin-1"))

    result = cli("check-config", path)

    assert result.code == 2
    assert "not UTF-8" in result.errors[0]
