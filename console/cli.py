"""The `execdesk` console script: the engine's command line plus the `console`
subcommand (the default with no subcommand). It lives here because the console
depends on the engine, never the other way round."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from engine import cli as engine_cli


def _console_arguments(p: argparse.ArgumentParser) -> None:
    engine_cli.add_config_arguments(p)
    engine_cli.journal_argument(p)
    p.add_argument(
        "--attach",
        action="store_true",
        help="attach to the session already running for the journal; never start one",
    )
    p.add_argument(
        "--read-only",
        action="store_true",
        help="an observer: shows everything, sends nothing but the kill switch (implies --attach)",
    )


def cmd_console(args: argparse.Namespace) -> int:
    settings = engine_cli.load_settings_or_exit(args)
    from console.run import run_console

    return run_console(
        settings,
        journal_path=getattr(args, "journal", None),
        attach_only=bool(getattr(args, "attach", False)),
        read_only=bool(getattr(args, "read_only", False)),
        config=getattr(args, "config", None),
        live=bool(getattr(args, "live", False)),
    )


CONSOLE = engine_cli.Subcommand(
    "console",
    cmd_console,
    "the operator console (the default): attach to the journal's session, starting it if needed",
    _console_arguments,
    description="Attach the Textual operator console to the session of the journal. When none is "
    "running, start it first as a background process of its own (its output in <journal>.session.log), "
    "so that it survives the console and the terminal. With the default configuration the session "
    "runs the built-in venue and the demo signal model. Quitting (q) detaches; the session keeps "
    "running until `execdesk stop` or the console's stop command (S).",
)


def main(argv: Sequence[str] | None = None) -> int:
    return engine_cli.main(argv, extra_commands=(CONSOLE,))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
