"""The `execdesk` command line: one `cmd_<name>(args) -> int` function per subcommand,
registered in COMMANDS. User mistakes end as `error: ...` lines and exit 2, never a
traceback; any other ExecdeskError a command lets through ends the same way, exit 1.

Adding a subcommand (the whole edit):

    def _run_arguments(p: argparse.ArgumentParser) -> None:
        add_config_arguments(p)             # -c/--config PATH and --live
        p.add_argument("--headless", action="store_true", help="...")

    def cmd_run(args: argparse.Namespace) -> int:
        settings = load_settings_or_exit(args)   # errors -> stderr, exit 2
        from engine.core import Engine           # heavy imports inside the command
        ...
        return ExitCode.OK                       # engine/exitcodes.py: every exit status

    COMMANDS = (
        ...,
        Subcommand("run", cmd_run, "run a headless session", _run_arguments),
    )

With no subcommand, `execdesk` runs the command named DEFAULT_COMMAND ("console")
once it is registered, and prints this help until then.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from engine.errors import ExecdeskError
from engine.exitcodes import ExitCode

if TYPE_CHECKING:
    from engine.config import Settings

# The configuration (pydantic models) is imported by the commands that need it, not
# here: `execdesk report --journal J` and `execdesk status` start without it.

DEFAULT_COMMAND = "console"


class CommandError(ExecdeskError):
    """A user-facing failure: each problem is printed as `error: <problem>`.
    Raise it from any cmd_<name>; main() prints it and exits with `code`."""

    def __init__(self, *problems: str, code: int = ExitCode.USAGE):
        super().__init__("\n".join(problems))
        self.problems = list(problems)
        self.code = code


@dataclass(frozen=True)
class Subcommand:
    name: str
    run: Callable[[argparse.Namespace], int]
    help: str  # one line, shown in `execdesk --help`
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None
    description: str | None = None  # longer text for `execdesk <name> --help`


# -- shared helpers for subcommands --------------------------------------------------------


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """-c/--config PATH and --live, for every command that loads the configuration.
    They may also be given before the subcommand: `execdesk --config x.toml run`."""
    parser.add_argument(
        "-c",
        "--config",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help="configuration file (default: config/execution.toml)",
    )
    _add_live_argument(parser)


def _add_live_argument(parser: argparse.ArgumentParser, default: Any = argparse.SUPPRESS) -> None:
    parser.add_argument(
        "--live",
        action="store_true",
        default=default,
        help='confirm live trading: needed, together with execution.mode = "live" in the '
        "configuration, before anything talks to a live account",
    )


def print_errors(problems: Sequence[str]) -> None:
    """Each problem on its own line on stderr, prefixed `error: `."""
    for problem in problems:
        for line in str(problem).splitlines() or [""]:
            print(f"error: {line}", file=sys.stderr)


def load_settings_or_exit(args: argparse.Namespace, *, for_trading: bool = True) -> Settings:
    """The validated configuration named by args.config (honouring args.live), or every
    problem on stderr and SystemExit(2). Every command that needs settings uses this;
    for_trading=False for commands that place no new order (the kill switch, status,
    report), which never need --live."""
    from engine.config import ConfigError, load_settings

    try:
        return load_settings(
            getattr(args, "config", None),
            live_confirmed=bool(getattr(args, "live", False)),
            for_trading=for_trading,
        )
    except ConfigError as exc:
        print_errors(exc.problems)
        raise SystemExit(ExitCode.USAGE) from None


# -- check-config ---------------------------------------------------------------------------


def _check_config_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "config",
        nargs="?",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help="configuration file to check (default: config/execution.toml)",
    )
    _add_live_argument(p)
    p.add_argument(
        "--format",
        choices=("toml", "json"),
        default="toml",
        help="toml (default; the output loads back as a configuration file) or json",
    )


def cmd_check_config(args: argparse.Namespace) -> int:
    from engine.config import effective_view

    settings = load_settings_or_exit(args)
    view = effective_view(settings, json_safe=args.format == "json")
    if args.format == "json":
        print(json.dumps(view, indent=2, ensure_ascii=False))
        return ExitCode.OK
    print(render_settings_toml(settings, view))
    return ExitCode.OK


def render_settings_toml(settings: Settings, view: dict[str, Any]) -> str:
    """The effective configuration as TOML (loadable again), with a header saying where
    it came from and the masked credentials as comments."""
    from engine.config import credentials_from_env

    creds = view.pop("credentials", {})
    overrides = ", ".join(settings.env_overrides) or "none"
    mode = "LIVE (confirmed with --live)" if settings.is_live else "paper"
    lines = [
        "# execdesk: effective configuration",
        f"# file: {settings.source_path}",
        f"# environment overrides: {overrides}",
        f"# trading mode: {mode}",
    ]
    lines += [f"# credentials from the environment: {k} = {v}" for k, v in creds.items()]
    if credentials_from_env() is None and settings.broker.kind == "alpaca":
        lines.append('# note: broker.kind = "alpaca" needs APCA_API_KEY_ID and APCA_API_SECRET_KEY to run')
    body = _toml_tables(view, ())
    return "\n".join(lines) + "\n" + body + "\n\n# configuration OK"


def _toml_tables(table: dict[str, Any], path: tuple[str, ...]) -> str:
    """[section] tables; a table whose values are all tables (rollout.overrides) becomes
    [rollout.overrides.AAPL] tables; other dicts (console.keymap) are inline tables."""
    out = []

    def is_table(v: Any) -> bool:
        return isinstance(v, dict) and (not path or _is_table_of_tables(v))

    scalars = {k: v for k, v in table.items() if not is_table(v)}
    tables = {k: v for k, v in table.items() if is_table(v)}
    if path and (scalars or not tables):
        out.append(f"\n[{'.'.join(_toml_key(p) for p in path)}]")
    for key, value in scalars.items():
        if value is None:
            continue  # TOML has no null: an unset optional key is simply absent
        out.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for key, value in tables.items():
        out.append(_toml_tables(value, (*path, key)))
    return "\n".join(out)


def _is_table_of_tables(value: Any) -> bool:
    """A section, or a table whose values are all tables (rollout.overrides)."""
    return isinstance(value, dict) and bool(value) and all(isinstance(v, dict) for v in value.values())


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, Decimal)):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items() if v is not None)
        return "{ " + items + " }" if items else "{}"
    return json.dumps(str(value))


# -- sessions: console, run, sim -----------------------------------------------------------


def _journal_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--journal",
        metavar="PATH",
        default=None,
        help="the session's journal (default: session.journal_path of the configuration)",
    )


def journal_argument(p: argparse.ArgumentParser) -> None:
    _journal_argument(p)


def check_journal_argument(journal: str | None) -> None:
    """--journal PATH names the journal's file: an empty path or a directory is a
    usage error (nothing is opened, no mode is changed)."""
    if journal is None:
        return
    from engine.config import journal_path_problem

    problem = journal_path_problem(journal)
    if problem:
        raise CommandError(f"--journal {journal!r} {problem}")


def _run_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p)
    p.add_argument(
        "--signals",
        metavar="PATH",
        default=None,
        help='signal file: JSONL (one batch a line, "-" for stdin) or CSV (ts,symbol,signal) by extension',
    )
    _journal_argument(p)
    p.add_argument(
        "--bars",
        metavar="N",
        type=_positive_int,
        default=None,
        help="stop after N batches once their orders are final or timed out",
    )
    p.add_argument(
        "--auto-approve",
        action="store_true",
        help="send every intent that passes the checks without waiting for approval (refused in live mode, "
        'like rollout.default_mode = "auto")',
    )
    p.add_argument(
        "--day",
        action="store_true",
        help="run the trading day: preflight before the open, the close routine and the day's report "
        '(reports/YYYY-MM-DD.md), then the next trading day ([session] schedule = "day" does the same)',
    )
    p.add_argument(
        "--days",
        metavar="N",
        type=_positive_int,
        default=None,
        help="with --day: stop after N trading days",
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def cmd_run(args: argparse.Namespace) -> int:
    check_journal_argument(args.journal)
    settings = load_settings_or_exit(args)
    if args.auto_approve and settings.is_live:
        raise CommandError(
            "--auto-approve is refused in live mode: live orders go without approval only for the symbols "
            'named with mode = "auto" under [rollout.overrides.<SYMBOL>]'
        )
    from engine.doctor import PreflightFailed
    from engine.runner import HeadlessRun, settings_with_signals
    from engine.session import SessionError
    from engine.signals import SignalSourceError

    try:
        settings = settings_with_signals(settings, args.signals)
    except ValueError as exc:
        raise CommandError(f"--signals {args.signals}: {exc}") from None
    day = args.day or settings.session.schedule == "day"
    if day and args.bars is not None:
        raise CommandError("--bars and the trading day (--day) do not go together: the day ends at the close")
    if args.days is not None and not day:
        raise CommandError('--days needs --day (or [session] schedule = "day")')
    try:
        if day:
            from engine.day import TradingDay, TradingDayError

            try:
                return TradingDay(
                    settings, journal_path=args.journal, auto_approve=args.auto_approve, days=args.days
                ).run()
            except TradingDayError as exc:
                raise CommandError(str(exc), code=ExitCode.FAILURE) from None
        return HeadlessRun(settings, journal_path=args.journal, bars=args.bars, auto_approve=args.auto_approve).run()
    except PreflightFailed as exc:
        raise CommandError(*exc.problems, code=ExitCode.FAILURE) from None
    except (SessionError, SignalSourceError) as exc:
        raise CommandError(str(exc), code=ExitCode.FAILURE) from None


# -- doctor ---------------------------------------------------------------------------------


def _doctor_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")


def cmd_doctor(args: argparse.Namespace) -> int:
    settings = load_settings_or_exit(args)
    from engine.session import Session, SessionError

    session = Session(settings)
    try:
        report = session.preflight()
    except SessionError as exc:
        raise CommandError(str(exc), code=ExitCode.FAILURE) from None
    finally:
        session.stop()
    print(report.to_json() if args.json else report.render())
    return ExitCode.OK if report.passed else ExitCode.FAILURE


def _sim_arguments(p: argparse.ArgumentParser) -> None:
    from engine.sim.command import add_arguments

    add_arguments(p)


def cmd_sim(args: argparse.Namespace) -> int:
    from engine.sim.command import run

    return run(args)


# -- control of a running session ------------------------------------------------------------


def _control_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p)
    _journal_argument(p)


def _status_arguments(p: argparse.ArgumentParser) -> None:
    _control_arguments(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _control(args: argparse.Namespace, cmd: str, **fields: Any) -> dict[str, Any]:
    from engine.control_client import ControlError, request  # the socket only: no models
    from engine.lock import socket_path_for

    check_journal_argument(args.journal)
    journal = args.journal or load_settings_or_exit(args, for_trading=False).session.journal_path
    try:
        answer = request(socket_path_for(journal), cmd, **fields)
    except ControlError as exc:
        raise CommandError(str(exc), code=ExitCode.FAILURE) from None
    if not answer.get("ok") and "status" not in answer:
        raise CommandError(answer.get("error") or answer.get("message") or "the session refused", code=ExitCode.FAILURE)
    return answer


def cmd_status(args: argparse.Namespace) -> int:
    status = _control(args, "status")["status"]
    if args.json:
        print(json.dumps(status, indent=2))
        return ExitCode.OK
    c = status["connectivity"]
    print(
        f"session {status['session_id']}  {status['mode']}/{status['venue']}  {status['trading_state']}"
        + (f" ({status['state_cause']})" if status["trading_state"] != "ACTIVE" else "")
    )
    print(f"equity {status['equity']}  day P&L {status['day_pl']} (limit -{status['daily_loss_limit']})")
    print(
        f"open orders {status['open_orders']} (+{status['external_orders']} external)  positions {status['positions']}"
        f"  awaiting approval {status['awaiting_approval']}  bars {status['bars_processed']}"
    )
    print(
        f"REST {c['rest']}  trade stream {c['trade_stream']}  market data {c['market_data']}"
        + ("  reconciling" if c["reconciling"] else "")
        + ("  RATE LIMITED" if c["rate_limited"] else "")
        + ("" if c["journal_ok"] else "  JOURNAL ERROR")
    )
    return ExitCode.OK


def _control_command(name: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        answer = _control(args, name)
        print(answer.get("message", ""))
        if name == "halt" and answer.get("ok"):
            _wait_for_kill_confirmation(args)
        return ExitCode.OK if answer.get("ok") else ExitCode.FAILURE

    return run


def _wait_for_kill_confirmation(args: argparse.Namespace, timeout: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kill = _control(args, "status")["status"]["kill_switch"]
        if kill["phase"] == "confirmed":
            print(f"venue confirmed {kill['cancels_confirmed']} cancels")
            return
        time.sleep(0.2)
    print("the venue has not confirmed every cancel yet: check `execdesk status`")


def _answered(answer: dict[str, Any]) -> int:
    print(answer.get("message") or answer.get("error") or "")
    return ExitCode.OK if answer.get("ok") else ExitCode.FAILURE


def _intent_arguments(p: argparse.ArgumentParser) -> None:
    _control_arguments(p)
    p.add_argument("intent_id", nargs="?", metavar="ID", help="the intent's id (its client order id)")
    p.add_argument("--all", action="store_true", help="every intent waiting for approval")


def _intent_command(word: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        if bool(args.intent_id) == bool(args.all):
            raise CommandError(f"{word}: give one intent ID or --all (see `execdesk pending`)")
        if args.all:
            return _answered(_control(args, f"{word}_all"))
        return _answered(_control(args, word, intent_id=args.intent_id))

    return run


def _pending_arguments(p: argparse.ArgumentParser) -> None:
    _control_arguments(p)
    p.add_argument("--json", action="store_true", help="print the queue as one JSON array")


def cmd_pending(args: argparse.Namespace) -> int:
    intents = _control(args, "pending")["intents"]
    if args.json:
        print(json.dumps(intents, indent=2))
        return ExitCode.OK
    if not intents:
        print("no intent is waiting for approval")
        return ExitCode.OK
    print(f"{'ID':<40} {'SYMBOL':<6} {'SIDE':<4} {'QTY':>8} {'LIMIT':>10} {'NOTIONAL':>11}  CHECK  EXPIRES")
    for i in intents:
        print(
            f"{i['intent_id']:<40} {i['symbol']:<6} {i['side']:<4} {i['qty']:>8} {i['limit_price'] or 'market':>10}"
            f" {i['notional']:>11}  {i['verdict']:<5}  {i['expires_at'] or '-'}"
        )
    return ExitCode.OK


_SIDES = {"long": "long_only", "short": "short_only", "both": "both"}


def _override_arguments(p: argparse.ArgumentParser) -> None:
    _control_arguments(p)
    p.add_argument("symbol", metavar="SYMBOL")
    p.add_argument("--mode", choices=("off", "approve", "auto"), help="the symbol's rollout mode")
    p.add_argument("--max-usd", metavar="N", help="cap on the symbol's position, in USD")
    p.add_argument("--multiplier", metavar="X", type=float, help="size multiplier for the symbol's orders")
    p.add_argument("--side", choices=tuple(_SIDES), help="long (long only), short (short only) or both")
    p.add_argument("--clear", action="store_true", help="remove the symbol's override")


def cmd_override(args: argparse.Namespace) -> int:
    if args.max_usd is not None:
        try:
            if Decimal(args.max_usd) < 0:
                raise ValueError
        except (ArithmeticError, ValueError):
            raise CommandError(f"--max-usd: expected a positive amount in USD, got {args.max_usd!r}") from None
    fields = {
        "symbol": args.symbol.upper(),
        "mode": args.mode,
        "max_position_usd": args.max_usd,
        "size_multiplier": args.multiplier,
        "side": _SIDES[args.side] if args.side else None,
        "clear": args.clear,
    }
    if not args.clear and all(fields[k] is None for k in ("mode", "max_position_usd", "size_multiplier", "side")):
        raise CommandError("override: give at least one of --mode, --max-usd, --multiplier, --side (or --clear)")
    return _answered(_control(args, "override", **fields))


def cmd_stop(args: argparse.Namespace) -> int:
    """Stop the session in order and wait (boundedly) until it has gone."""
    import time

    from engine.lock import is_locked

    answer = _control(args, "stop")
    code = _answered(answer)
    if not answer.get("ok"):
        return code
    journal = args.journal or load_settings_or_exit(args).session.journal_path
    deadline = time.monotonic() + 60
    while is_locked(journal) and time.monotonic() < deadline:
        time.sleep(0.2)
    if is_locked(journal):
        print("the session has not finished stopping yet: check `execdesk status`")
        return ExitCode.FAILURE
    print("session stopped: journal sealed")
    return ExitCode.OK


def _report_arguments(p: argparse.ArgumentParser) -> None:
    from engine.report import add_arguments

    add_config_arguments(p)
    add_arguments(p)


def cmd_report(args: argparse.Namespace) -> int:
    from engine import report

    if getattr(args, "journal", None) is None:
        args.journal = load_settings_or_exit(args, for_trading=False).session.journal_path
    return report.run(args)


# -- the table of subcommands ---------------------------------------------------------------

COMMANDS: tuple[Subcommand, ...] = (
    Subcommand(
        "check-config",
        cmd_check_config,
        "validate the configuration and print it with secrets masked",
        _check_config_arguments,
        description="Load the configuration file with its EXECDESK_* environment overrides, "
        "validate it, and print the effective configuration (API keys masked). Exits 0 when "
        "it is valid; otherwise prints every problem as `error: ...` and exits 2.",
    ),
    Subcommand(
        "run",
        cmd_run,
        "run a headless session",
        _run_arguments,
        description="Run a session without the console: a live status in a terminal, plain log lines "
        "when piped. SIGINT, SIGTERM and SIGHUP stop it in order; the execution report is printed at the end.",
    ),
    Subcommand("sim", cmd_sim, "run the local Alpaca-compatible venue standalone", _sim_arguments),
    Subcommand(
        "doctor",
        cmd_doctor,
        "preflight: check keys, account, data plan, assets, clock and calendar against the venue",
        _doctor_arguments,
        description="Run the preflight every session starts with, on its own: the API keys, paper or live "
        "endpoint, the account's status and blocks, the market-data plan (entitled feed, stream symbol "
        "limit), every universe symbol's asset record, the clock and the calendar. Exits 0 when nothing "
        "blocks a session (warnings are listed), 1 when something does, 2 for a bad configuration.",
    ),
    Subcommand("status", cmd_status, "show the state of a running session", _status_arguments),
    Subcommand(
        "halt",
        _control_command("halt"),
        "kill switch: HALT a running session and cancel every open order",
        _control_arguments,
    ),
    Subcommand("resume", _control_command("resume"), "resume a HALTED or REDUCING session", _control_arguments),
    Subcommand("flatten", _control_command("flatten"), "close every position of a running session", _control_arguments),
    Subcommand("report", cmd_report, "execution report of a session's journal", _report_arguments),
    Subcommand(
        "pending", cmd_pending, "list the intents of a running session waiting for approval", _pending_arguments
    ),
    Subcommand(
        "approve", _intent_command("approve"), "approve an intent (or --all) of a running session", _intent_arguments
    ),
    Subcommand(
        "reject", _intent_command("reject"), "reject an intent (or --all) of a running session", _intent_arguments
    ),
    Subcommand(
        "override",
        cmd_override,
        "set a symbol's run-time override in a running session",
        _override_arguments,
        description="Set (or --clear) a symbol's run-time override: rollout mode, position cap in USD, "
        "size multiplier, allowed side. Fields not given are left as they are.",
    ),
    Subcommand(
        "stop",
        cmd_stop,
        "stop a running session in order (open orders stay working, journal sealed)",
        _control_arguments,
    ),
)


# -- entry point ----------------------------------------------------------------------------


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("execdesk")
    except Exception:  # not installed (running from a source tree)
        return "unknown"


class _VersionAction(argparse.Action):
    """--version, looked up only when asked for (the package metadata is slow to read)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: Any):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        print(f"execdesk {_version()}")
        parser.exit()


def build_parser(
    commands: Sequence[Subcommand] | None = None, argv: Sequence[str] | None = None
) -> argparse.ArgumentParser:
    """The `execdesk` parser. With argv, only the subcommands named in it (and the
    default command) get their options: building a subcommand's options may import
    what it runs (`sim` imports the venue), and `execdesk report` or `status` must
    not pay for that. Without argv, every subcommand gets its options."""
    parser = argparse.ArgumentParser(
        prog="execdesk",
        description="execdesk: signal-driven execution on Alpaca (paper first) with pre-trade "
        "risk checks, a journal and an operator console.",
        epilog="Configuration reference: docs/configuration.md. "
        "Run `execdesk <command> --help` for a command's options.",
    )
    parser.add_argument("--version", action=_VersionAction, help="show the version and exit")
    parser.add_argument(
        "-c",
        "--config",
        metavar="PATH",
        default=None,
        help="configuration file (default: config/execution.toml)",
    )
    _add_live_argument(parser, default=False)
    sub = parser.add_subparsers(dest="command", metavar="<command>", title="commands")
    named = None if argv is None else {*argv, DEFAULT_COMMAND}
    for command in COMMANDS if commands is None else commands:
        p = sub.add_parser(command.name, help=command.help, description=command.description or command.help)
        if command.add_arguments is not None and (named is None or command.name in named):
            command.add_arguments(p)
        p.set_defaults(_run=command.run)
    return parser


def main(argv: Sequence[str] | None = None, extra_commands: Sequence[Subcommand] = ()) -> int:
    """Run one execdesk command; returns the process exit code. Front ends built on
    the engine (the console) add their own subcommands through extra_commands: the
    engine never imports them."""
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = (*extra_commands, *COMMANDS)
    parser = build_parser(commands, argv)
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            if DEFAULT_COMMAND not in {c.name for c in commands}:
                parser.print_help()
                return ExitCode.OK
            args = parser.parse_args([*argv, DEFAULT_COMMAND])
        return int(args._run(args) or ExitCode.OK)
    except SystemExit as exc:  # argparse (--help, bad arguments) and load_settings_or_exit
        return exc.code if isinstance(exc.code, int) else (ExitCode.OK if exc.code is None else ExitCode.USAGE)
    except CommandError as exc:
        print_errors(exc.problems)
        return exc.code
    except ExecdeskError as exc:
        if _is_configuration_error(exc):
            print_errors(getattr(exc, "problems", None) or [str(exc)])
            return ExitCode.USAGE
        # refused by the engine and not handled by the command
        print_errors(getattr(exc, "problems", None) or [str(exc)])
        return ExitCode.FAILURE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except BrokenPipeError:  # `execdesk check-config | head`
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitCode.OK
    except OSError as exc:
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        print_errors([f"{where}{exc.strerror or exc}"])
        return ExitCode.FAILURE


def _is_configuration_error(exc: ExecdeskError) -> bool:
    """A bad configuration or universe file (a usage error, exit 2). Their modules are
    loaded by then if such an error was raised: looked up, not imported."""
    config, universe = sys.modules.get("engine.config"), sys.modules.get("engine.universe")
    return (config is not None and isinstance(exc, config.ConfigError)) or (
        universe is not None and isinstance(exc, universe.UniverseError)
    )


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
