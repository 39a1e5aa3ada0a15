"""Values that passed check-config and then broke the session: every number has a
bound, a journal path names a file, an allowlist names symbols, a URL carries no
credentials, and live is live however it is reached (issue 11 items 8 and 9,
issue 12 item 6)."""

from __future__ import annotations

import pytest

from engine.config import ConfigError, effective_view, load_settings, redact_urls

LIVE_URL = "https://api.alpaca.markets"


def problems_of(path, env=None, **kw) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env=env or {}, **kw)
    return caught.value.problems


# ---- bounds ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("[risk_management]\nmax_quote_age = 1e308\n", "risk_management.max_quote_age must be > 0 and <= 86400"),
        ("[risk_management]\nmax_quote_age = inf\n", "risk_management.max_quote_age must be"),
        ("[risk_management]\nmax_quote_age = nan\n", "risk_management.max_quote_age must be"),
        ("[risk_management]\nvenue_outage_trip = 1e20\n", "risk_management.venue_outage_trip must be > 0 and <= 86400"),
        ("[monitoring]\nrisk_check_interval = 1e308\n", "monitoring.risk_check_interval must be > 0 and <= 86400"),
        ("[rollout]\napproval_timeout = 1e12\n", "rollout.approval_timeout must be > 0 and <= 86400"),
        ("[signals]\nmax_age = 1e308\n", "signals.max_age must be > 0 and <= 604800"),
        ("[session]\nbar_interval = 1e308\n", "session.bar_interval must be > 0 and <= 86400"),
        (
            "[order_management]\nin_flight_query_after = 1e308\n",
            "order_management.in_flight_query_after must be > 0 and <= 86400",
        ),
        (
            "[risk_management]\nmax_order_notional = 1e400\n",
            "risk_management.max_order_notional must be",
        ),
        ("[risk_management]\nmax_order_qty = 1e30\n", "risk_management.max_order_qty must be > 0 and <= 1000000000"),
        (
            "[risk_management]\nmax_orders_per_second = 9223372036854775807\n",
            "risk_management.max_orders_per_second must be >= 1 and <= 10000",
        ),
        ("[sim]\nstarting_cash = 1e300\n", "sim.starting_cash must be > 0 and <= 1000000000000"),
        ("[sim]\nmargin_multiplier = 1.5\n", "sim.margin_multiplier must be 1, 2, 3 or 4"),
    ],
)
def test_a_number_beyond_its_bound_is_refused_by_check_config(cli, write_config, text, fragment):
    result = cli("check-config", write_config(text))

    assert result.code == 2, result.out
    assert any(fragment in line for line in result.errors), result.err
    assert "Traceback" not in result.err


def test_the_shipped_defaults_sit_within_every_bound(clean_env):
    assert load_settings(env={}).risk_management.max_quote_age == 30


# ---- the journal path ----------------------------------------------------------------------


def test_an_empty_journal_path_is_refused_by_check_config(cli, write_config):
    result = cli("check-config", write_config('[session]\njournal_path = ""\n'))

    assert result.code == 2
    assert result.errors == [
        f"error: {result_path(result)}: session.journal_path is empty: name the journal's file, "
        "e.g. var/journal.sqlite (got '')"
    ]


def result_path(result) -> str:
    return result.errors[0].removeprefix("error: ").split(": ", 1)[0]


def test_a_journal_path_that_is_a_directory_is_refused_and_left_alone(cli, write_config, tmp_path):
    folder = tmp_path / "journals"
    folder.mkdir(mode=0o755)
    result = cli("check-config", write_config(f'[session]\njournal_path = "{folder}"\n'))

    assert result.code == 2
    assert "session.journal_path is a directory" in result.err
    assert folder.stat().st_mode & 0o777 == 0o755


def test_run_with_journal_pointing_at_a_directory_says_so_and_changes_nothing(cli, tmp_path):
    folder = tmp_path / "journals"
    folder.mkdir(mode=0o755)

    result = cli("run", "--journal", str(folder), "--bars", "1")

    assert result.code == 2
    assert result.errors == [
        f"error: --journal '{folder}' is a directory: name the journal's file inside it, "
        "e.g. <directory>/journal.sqlite"
    ]
    assert folder.stat().st_mode & 0o777 == 0o755
    assert list(folder.iterdir()) == []


def test_the_journal_itself_refuses_a_directory_without_touching_its_mode(tmp_path):
    from engine.journal import Journal, JournalError

    folder = tmp_path / "journals"
    folder.mkdir(mode=0o755)

    with pytest.raises(JournalError, match="is a directory"):
        Journal(folder)
    assert folder.stat().st_mode & 0o777 == 0o755


# ---- the allowlist ---------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [",,,", " , ", ""])
def test_an_allowlist_override_naming_no_symbol_is_refused(write_config, raw):
    problems = problems_of(write_config(""), env={"EXECDESK_ROLLOUT__ALLOWLIST": raw})

    assert problems == [
        f"EXECDESK_ROLLOUT__ALLOWLIST (environment): rollout.allowlist names no symbol (got {raw!r}): write "
        "symbols separated by commas (AAPL,MSFT), or [] for an empty list"
    ]


def test_an_explicit_empty_allowlist_still_means_the_whole_universe(write_config):
    settings = load_settings(write_config(""), env={"EXECDESK_ROLLOUT__ALLOWLIST": "[]"})

    assert settings.rollout.allowlist == []


def test_an_allowlist_with_an_empty_symbol_is_refused(write_config):
    problems = problems_of(write_config('[rollout]\nallowlist = ["AAPL", " "]\n'))

    assert any("rollout.allowlist names an empty symbol" in p for p in problems), problems


# ---- credentials in URLs ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["http://PKSECRETKEY:topsecretvalue@127.0.0.1:8765", "https://PKSECRETKEY@paper-api.alpaca.markets"],
)
def test_a_url_with_credentials_in_an_override_is_refused_without_printing_it(cli, clean_env, url):
    clean_env.setenv("EXECDESK_BROKER__TRADING_URL", url)

    result = cli("check-config")

    assert result.code == 2
    assert result.errors == [
        "error: EXECDESK_BROKER__TRADING_URL (environment): broker.trading_url is a URL with credentials in it "
        "(user:password@host, or a ?token=... query): API keys come only from APCA_API_KEY_ID / "
        "APCA_API_SECRET_KEY, never from EXECDESK_* overrides"
    ]
    assert "PKSECRETKEY" not in result.out + result.err


def test_a_url_with_credentials_in_the_file_is_refused_like_a_credential(cli, write_config):
    path = write_config('[broker]\ndata_url = "http://PKSECRETKEY:topsecretvalue@127.0.0.1:8765"\n')

    result = cli("check-config", path)

    assert result.code == 2
    assert "broker.data_url is a URL with credentials in it" in result.err
    assert "PKSECRETKEY" not in result.out + result.err and "topsecretvalue" not in result.err


def test_a_url_with_a_secret_query_value_is_refused_too(cli, clean_env):
    clean_env.setenv("EXECDESK_BROKER__DATA_URL", "http://127.0.0.1:8765/x?token=topsecretvalue")

    result = cli("check-config")

    assert result.code == 2
    assert "broker.data_url is a URL with credentials in it" in result.err
    assert "topsecretvalue" not in result.out + result.err


def test_urls_are_redacted_wherever_they_are_printed():
    assert (
        redact_urls("connected to ws://PK123:s3cr3t@127.0.0.1:9/stream") == "connected to ws://***@127.0.0.1:9/stream"
    )
    assert redact_urls("GET https://h/x?apikey=abc&feed=iex") == "GET https://h/x?apikey=***&feed=iex"
    assert redact_urls("nothing to hide at http://127.0.0.1:9") == "nothing to hide at http://127.0.0.1:9"


def test_check_config_prints_urls_redacted(write_config):
    settings = load_settings(write_config('[broker]\ntrading_url = "http://127.0.0.1:1/v?x=1"\n'), env={})
    settings.broker.trading_url = "http://127.0.0.1:1/?secret=abc"  # as if it had slipped through

    assert effective_view(settings)["broker"]["trading_url"] == "http://127.0.0.1:1/?secret=***"


# ---- live is live --------------------------------------------------------------------------


def test_a_trading_url_on_alpacas_live_host_is_live_and_refused_in_paper_mode(write_config):
    path = write_config(f'[broker]\nkind = "alpaca"\ntrading_url = "{LIVE_URL}"\n')

    problems = problems_of(path, live_confirmed=True)

    assert len(problems) == 1 and "is Alpaca's live trading endpoint" in problems[0], problems
    assert 'needs execution.mode = "live" and --live' in problems[0]


@pytest.mark.parametrize("url", [LIVE_URL, "https://API.Alpaca.Markets./", "https://api.alpaca.markets:443/v2"])
def test_the_live_endpoint_in_an_override_is_live_too_and_needs_live(write_config, url):
    env = {"EXECDESK_BROKER__KIND": "alpaca", "EXECDESK_BROKER__TRADING_URL": url}

    [problem] = problems_of(write_config(""), env=env)
    assert problem.startswith("EXECDESK_BROKER__TRADING_URL (environment): broker.trading_url")

    [problem] = problems_of(write_config('[execution]\nmode = "live"\n'), env=env)
    assert 'execution.mode = "live" needs --live' in problem

    settings = load_settings(write_config('[execution]\nmode = "live"\n'), env=env, live_confirmed=True)
    assert settings.is_live and settings.live_endpoint


def test_the_paper_endpoint_is_not_live(write_config):
    path = write_config('[broker]\nkind = "alpaca"\ntrading_url = "https://paper-api.alpaca.markets"\n')

    assert not load_settings(path, env={}).is_live


def test_the_kill_switch_status_and_report_never_need_live(write_config):
    path = write_config(f'[execution]\nmode = "live"\n[broker]\nkind = "alpaca"\ntrading_url = "{LIVE_URL}"\n')

    settings = load_settings(path, env={}, for_trading=False)

    assert settings.is_live


@pytest.mark.parametrize(
    "command, answer",
    [
        (["status"], "no session is running"),
        (["halt"], "no session is running"),
        (["resume"], "no session is running"),
        (["flatten"], "no session is running"),
        (["report"], "nobody.sqlite: no such file"),
    ],
)
def test_commands_that_place_no_order_run_on_a_live_configuration_without_live(
    cli, write_config, tmp_path, command, answer
):
    journal = tmp_path / "nobody.sqlite"
    path = write_config(
        f'[execution]\nmode = "live"\n[session]\njournal_path = "{journal}"\n[rollout]\ndefault_mode = "auto"\n'
    )

    result = cli(*command, "--config", path)

    assert "--live" not in result.err and "auto" not in result.err, result.err
    assert result.code != 0 and answer in result.err  # they got as far as the journal


# ---- live and auto ---------------------------------------------------------------------------


def test_live_mode_refuses_default_mode_auto_as_it_refuses_auto_approve(write_config):
    path = write_config('[execution]\nmode = "live"\n[rollout]\ndefault_mode = "auto"\n')

    [problem] = problems_of(path, live_confirmed=True)

    assert 'rollout.default_mode = "auto" is refused in live mode, like --auto-approve' in problem


def test_live_mode_keeps_auto_for_the_symbols_rolled_out_by_name(write_config):
    path = write_config('[execution]\nmode = "live"\n[rollout.overrides.AAPL]\nmode = "auto"\n')

    settings = load_settings(path, env={}, live_confirmed=True)

    assert settings.rollout.overrides["AAPL"].mode.value == "auto"
