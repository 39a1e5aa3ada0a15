"""The `execdesk` command line: subcommands from one table, help everywhere, the
default command, and user mistakes as `error:` lines with exit 2, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC
from pathlib import Path

import pytest

from engine import cli
from engine.cli import COMMANDS, CommandError, Subcommand, load_settings_or_exit, main
from engine.journal import JournalError

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "config" / "execution.toml"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith(("EXECDESK_", "APCA_")):
            monkeypatch.delenv(name)
    return monkeypatch


def _run(*argv: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EXECDESK_", "APCA_"))}
    return subprocess.run(
        [sys.executable, "-m", "engine", *argv],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=60,
    )


def test_help_lists_every_subcommand(capsys):
    assert main(["--help"]) == 0

    out = capsys.readouterr().out
    assert out.startswith("usage: execdesk")
    for command in COMMANDS:
        assert command.name in out


@pytest.mark.parametrize("name", [c.name for c in COMMANDS])
def test_every_subcommand_has_help(capsys, name):
    assert main([name, "--help"]) == 0

    assert f"usage: execdesk {name}" in capsys.readouterr().out


def test_no_subcommand_runs_the_console_command(monkeypatch):
    import console.cli

    seen = {}

    def cmd_console(args):
        seen["config"], seen["live"] = args.config, args.live
        return 0

    monkeypatch.setattr(console.cli, "CONSOLE", Subcommand("console", cmd_console, "the console"))

    assert console.cli.main(["--config", "x.toml"]) == 0
    assert seen == {"config": "x.toml", "live": False}


def test_the_execdesk_script_lists_the_console(capsys):
    import console.cli

    assert console.cli.main(["--help"]) == 0
    assert "console" in capsys.readouterr().out


def test_the_engine_alone_has_no_console_and_prints_help(capsys):
    assert "console" not in {c.name for c in COMMANDS}
    assert main([]) == 0
    assert "usage: execdesk" in capsys.readouterr().out


def test_an_unknown_subcommand_is_a_usage_error(capsys):
    assert main(["bogus"]) == 2

    err = capsys.readouterr().err
    assert "invalid choice: 'bogus'" in err and "Traceback" not in err


def test_check_config_of_the_shipped_file_exits_0_as_a_process():
    done = _run("check-config", "config/execution.toml")

    assert done.returncode == 0, done.stderr
    assert "[risk_management]" in done.stdout
    assert done.stderr == ""


def test_check_config_without_a_path_uses_the_shipped_file_from_any_directory(tmp_path):
    done = _run("check-config", cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert f"# file: {SHIPPED}" in done.stdout


def test_a_bad_configuration_exits_2_as_a_process_without_traceback(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[risk_management]\nmax_daily_loss = -0.02\n[execution]\nmode = 3\n")

    done = _run("check-config", str(bad))

    assert done.returncode == 2
    assert done.stdout == ""
    assert sorted(done.stderr.splitlines()) == [
        f"error: {bad}: execution.mode must be one of 'paper' or 'live' (got 3)",
        f"error: {bad}: risk_management.max_daily_loss must be > 0 and <= 1 (got -0.02)",
    ]


def test_the_console_script_is_installed():
    script = Path(sys.executable).parent / "execdesk"
    if not script.exists():
        pytest.skip("execdesk console script not installed in this environment")

    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)

    assert done.returncode == 0 and "check-config" in done.stdout


# -- the contract other subcommands build on -------------------------------------------------


def _with_command(monkeypatch, name, run, add_arguments=None):
    monkeypatch.setattr(cli, "COMMANDS", (*COMMANDS, Subcommand(name, run, "test", add_arguments)))


def test_a_registered_command_gets_config_and_live_from_either_position(monkeypatch, tmp_path):
    seen = []

    def cmd_probe(args):
        seen.append((args.config, args.live))
        return 0

    _with_command(monkeypatch, "probe", cmd_probe, cli.add_config_arguments)

    assert main(["probe"]) == 0
    assert main(["probe", "--config", "a.toml", "--live"]) == 0
    assert main(["-c", "b.toml", "--live", "probe"]) == 0
    assert seen == [(None, False), ("a.toml", True), ("b.toml", True)]


def test_load_settings_or_exit_turns_config_errors_into_exit_2(monkeypatch, capsys, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[execution]\nmode = "live"\n')

    def cmd_probe(args):
        load_settings_or_exit(args)
        return 0

    _with_command(monkeypatch, "probe", cmd_probe, cli.add_config_arguments)

    assert main(["probe", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {bad}: execution.mode")
    assert main(["probe", "--config", str(bad), "--live"]) == 0


@pytest.mark.parametrize(
    "raised, code, message",
    [
        (
            CommandError("no session is running (var/control.sock)"),
            2,
            "error: no session is running (var/control.sock)",
        ),
        (CommandError("venue unreachable", code=1), 1, "error: venue unreachable"),
        (
            FileNotFoundError(2, "No such file or directory", "signals.jsonl"),
            1,
            "error: signals.jsonl: No such file or directory",
        ),
        (
            PermissionError(13, "Permission denied", "var/journal.sqlite"),
            1,
            "error: var/journal.sqlite: Permission denied",
        ),
        (KeyboardInterrupt(), 130, "interrupted"),
        (
            JournalError("journal var/journal.sqlite: cannot open: database is locked"),
            1,
            "error: journal var/journal.sqlite: cannot open: database is locked",
        ),
    ],
)
def test_user_facing_failures_in_a_command_never_show_a_traceback(monkeypatch, capsys, raised, code, message):
    def cmd_probe(args):
        raise raised

    _with_command(monkeypatch, "probe", cmd_probe)

    assert main(["probe"]) == code
    err = capsys.readouterr().err
    assert err.strip() == message
    assert "Traceback" not in err


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("execdesk ")


def test_exit_codes_are_defined_once_and_the_sim_keeps_the_same_values():
    from engine.exitcodes import ExitCode
    from engine.sim import command as sim_cli

    assert [int(c) for c in ExitCode] == [0, 1, 2, 130]
    assert (sim_cli.EXIT_OK, sim_cli.EXIT_USAGE) == (ExitCode.OK, ExitCode.USAGE)
    assert not hasattr(cli, "EXIT_USAGE"), "engine.cli uses engine.exitcodes.ExitCode, not its own constants"


def test_every_error_the_engine_raises_on_purpose_is_an_execdesk_error():
    from engine.broker.base import BrokerUnavailable
    from engine.config import ConfigError
    from engine.control import ControlError
    from engine.errors import ExecdeskError
    from engine.model import InvalidStateTransition
    from engine.orders import DuplicateOrder, OrderBookError, UnknownOrder
    from engine.report import ReportError
    from engine.session import SessionError
    from engine.signals import SignalSourceError
    from engine.universe import UniverseError

    errors = (
        BrokerUnavailable,
        CommandError,
        ConfigError,
        ControlError,
        DuplicateOrder,
        InvalidStateTransition,
        JournalError,
        OrderBookError,
        ReportError,
        SessionError,
        SignalSourceError,
        UniverseError,
        UnknownOrder,
    )
    assert [e.__name__ for e in errors if not issubclass(e, ExecdeskError)] == []
    assert issubclass(UniverseError, ValueError), "UniverseError stays a ValueError for its existing callers"


def test_the_new_york_time_zone_is_defined_once_for_engine_and_console():
    from datetime import datetime

    from console.format import VENUE_TZ
    from engine.journal import default_venue_date
    from engine.timezones import NEW_YORK

    assert VENUE_TZ is NEW_YORK
    # 03:30 UTC on 6 March is still 5 March in New York (UTC-5 in winter)
    assert default_venue_date(datetime(2026, 3, 6, 3, 30, tzinfo=UTC)).isoformat() == "2026-03-05"
    offenders = [
        str(p.relative_to(REPO))
        for folder in ("engine", "console")
        for p in (REPO / folder).rglob("*.py")
        if "America/New_York" in p.read_text(encoding="utf-8")
        and p.relative_to(REPO).parts[:2] != ("engine", "sim")
        and p.name != "timezones.py"
    ]
    # engine/core.py is being split elsewhere: its copy goes when it switches to engine.timezones
    assert sorted(set(offenders) - {"engine/core.py"}) == []


def test_a_command_builds_only_its_own_options_so_report_and_status_do_not_import_the_venue(tmp_path):
    probe = (
        "import sys\n"
        "from console.cli import main\n"
        f"code = main(['report', '--journal', {str(tmp_path / 'missing.sqlite')!r}])\n"
        "print(code, 'engine.sim' in sys.modules, 'aiohttp' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.stdout.split() == ["2", "False", "False"], done.stdout + done.stderr


def test_every_subcommand_still_has_its_options_when_named_wherever_the_global_options_are(capsys):
    assert main(["sim", "--help"]) == 0
    assert "--port" in capsys.readouterr().out
    assert main(["-c", "x.toml", "report", "--help"]) == 0
    assert "--format" in capsys.readouterr().out


def test_version_is_read_only_when_asked_for(capsys, monkeypatch):
    calls = []
    monkeypatch.setattr(cli, "_version", lambda: calls.append(1) or "9.9")
    assert main(["check-config", "--help"]) == 0 and calls == []
    capsys.readouterr()
    assert main(["--version"]) == 0 and calls == [1]
    assert capsys.readouterr().out == "execdesk 9.9\n"
