"""The exit status of every `execdesk` command, defined once. engine/sim, a separate
system, keeps its own few constants with the same values (tests/test_cli.py checks)."""

from __future__ import annotations

from enum import IntEnum

__all__ = ["ExitCode"]


class ExitCode(IntEnum):
    OK = 0
    FAILURE = 1  # the command ran and failed: venue down, session refused, file not writable, a bug
    USAGE = 2  # the user asked for something invalid: bad configuration, arguments, journal or session
    INTERRUPTED = 130  # stopped by Ctrl-C (128 + SIGINT)
