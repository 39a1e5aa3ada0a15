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


def cmd_console(args: argparse.Namespace) -> int:
    settings = engine_cli.load_settings_or_exit(args)
    from console.run import run_console

    return run_console(settings, journal_path=args.journal)


CONSOLE = engine_cli.Subcommand(
    "console",
    cmd_console,
    "the operator console (the default): a live session in the terminal",
    _console_arguments,
    description="Start a session and the Textual operator console over it. With the default "
    "configuration it starts the built-in venue and the demo signal model.",
)


def main(argv: Sequence[str] | None = None) -> int:
    return engine_cli.main(argv, extra_commands=(CONSOLE,))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
