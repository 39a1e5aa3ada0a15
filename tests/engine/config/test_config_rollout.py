"""Symbols named in [rollout] are checked against the universe file named by
session.universe_path: a typo is an error naming the symbol, not a silent no-op."""

from __future__ import annotations

import pytest

from engine.config import ConfigError, load_settings
from engine.model import RolloutMode, SideRestriction


def test_per_symbol_overrides_are_typed(write_config):
    path = write_config(
        """
        [rollout]
        default_mode = "off"
        allowlist = ["AAPL", "MSFT"]

        [rollout.overrides.AAPL]
        mode = "auto"
        max_position_usd = 5000
        max_position_pct = 0.05
        size_multiplier = 0.5
        side = "long_only"
        """
    )

    settings = load_settings(path, env={})

    aapl = settings.rollout.overrides["AAPL"]
    assert settings.rollout.default_mode is RolloutMode.OFF
    assert aapl.mode is RolloutMode.AUTO
    assert str(aapl.max_position_usd) == "5000"
    assert aapl.side is SideRestriction.LONG_ONLY


def test_an_override_for_a_symbol_outside_the_universe_is_named(cli, write_config):
    path = write_config('[rollout.overrides.ZZZZ]\nmode = "auto"\n')

    result = cli("check-config", path)

    assert result.code == 2
    (message,) = result.errors
    assert "rollout.overrides.ZZZZ" in message
    assert "'ZZZZ' is not in the universe (config/universe.toml)" in message


def test_an_allowlisted_typo_is_named_with_a_suggestion(cli, write_config):
    path = write_config('[rollout]\nallowlist = ["MSFT", "APPL", "nvda"]\n')

    result = cli("check-config", path)

    assert result.code == 2
    assert len(result.errors) == 2
    assert "rollout.allowlist: 'APPL' is not in the universe" in result.errors[0]
    assert "did you mean AAPL?" in result.errors[0]
    assert "'nvda'" in result.errors[1] and "did you mean NVDA?" in result.errors[1]


@pytest.mark.parametrize(
    "text, fragment",
    [
        (
            '[rollout.overrides.AAPL]\nmode = "fast"\n',
            "rollout.overrides.AAPL.mode must be one of 'off', 'approve' or 'auto'",
        ),
        (
            "[rollout.overrides.AAPL]\nmax_position_pct = 2\n",
            "rollout.overrides.AAPL.max_position_pct must be > 0 and <= 1 (got 2)",
        ),
        (
            "[rollout.overrides.AAPL]\nmax_position_usd = -5\n",
            "rollout.overrides.AAPL.max_position_usd must be > 0 and <= 1000000000000 (got -5)",
        ),
        (
            '[rollout.overrides.AAPL]\nside = "sideways"\n',
            "rollout.overrides.AAPL.side must be one of 'both', 'long_only' or 'short_only'",
        ),
        (
            '[rollout.overrides.AAPL]\nmod = "auto"\n',
            "rollout.overrides.AAPL.mod is not a known key (did you mean mode?)",
        ),
    ],
)
def test_a_bad_override_value_names_the_symbol_and_key(cli, write_config, text, fragment):
    result = cli("check-config", write_config(text))

    assert result.code == 2
    (message,) = result.errors
    assert fragment in message


def test_symbols_are_checked_against_the_universe_the_config_names(tmp_path, write_config):
    universe = tmp_path / "small.toml"
    universe.write_text(
        '[symbols.XYZ]\nname = "X"\nsector = "Energy"\nexchange = "NYSE"\nprice = 10.0\n'
        "volatility = 0.3\nshortable = true\neasy_to_borrow = true\nfractionable = false\n"
    )
    path = write_config(f'[session]\nuniverse_path = "{universe}"\n[rollout]\nallowlist = ["XYZ", "AAPL"]\n')

    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={})

    (message,) = caught.value.problems
    assert "'AAPL' is not in the universe" in message and str(universe) in message


def test_a_universe_path_that_does_not_exist_is_an_error(cli, write_config):
    result = cli("check-config", write_config('[session]\nuniverse_path = "nope/universe.toml"\n'))

    assert result.code == 2
    (message,) = result.errors
    assert "session.universe_path" in message and "nope/universe.toml" in message


def test_a_broken_universe_file_is_reported_with_its_own_name(cli, tmp_path, write_config):
    universe = tmp_path / "broken.toml"
    universe.write_text('[symbols.AAPL]\nname = "Apple"\nprice = -1\n')

    result = cli("check-config", write_config(f'[session]\nuniverse_path = "{universe}"\n'))

    assert result.code == 2
    assert any(f"{universe}: symbols.AAPL.price must be > 0 (got -1)" in e for e in result.errors)
    assert any(f"{universe}: symbols.AAPL.sector is missing" in e for e in result.errors)
