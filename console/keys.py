"""Every key the console answers to, in one table: binding id (what
`[console] keymap` remaps), default key, action and words. The bindings, the help
screen and the command palette are all made from it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from textual.binding import Binding, BindingType

from engine.config import CONSOLE_BINDINGS


@dataclass(frozen=True, slots=True)
class ConsoleKey:
    id: str
    key: str
    action: str
    label: str  # short, for the footer
    description: str  # for the help screen and the command palette
    where: Literal["app", "main"]
    show: bool = True
    priority: bool = False


KEYS: tuple[ConsoleKey, ...] = (
    ConsoleKey(
        "kill_switch",
        CONSOLE_BINDINGS["kill_switch"],
        "kill_switch",
        "KILL",
        "Kill switch: halt and cancel every open order at the venue (no confirmation)",
        "app",
        priority=True,
    ),
    ConsoleKey("approve", CONSOLE_BINDINGS["approve"], "approve", "Approve", "Approve the selected intent", "main"),
    ConsoleKey("reject", CONSOLE_BINDINGS["reject"], "reject", "Reject", "Reject the selected intent", "main"),
    ConsoleKey(
        "approve_all",
        CONSOLE_BINDINGS["approve_all"],
        "approve_all",
        "Approve all",
        "Approve every waiting intent (asks first)",
        "main",
        show=False,
    ),
    ConsoleKey(
        "reject_all",
        CONSOLE_BINDINGS["reject_all"],
        "reject_all",
        "Reject all",
        "Reject every waiting intent (asks first)",
        "main",
        show=False,
    ),
    ConsoleKey(
        "cancel_order",
        CONSOLE_BINDINGS["cancel_order"],
        "cancel_order",
        "Cancel",
        "Cancel the selected working order",
        "main",
    ),
    ConsoleKey(
        "override",
        CONSOLE_BINDINGS["override"],
        "override",
        "Override",
        "Override the selected symbol: mode, caps, multiplier, side",
        "main",
    ),
    ConsoleKey(
        "flatten",
        CONSOLE_BINDINGS["flatten"],
        "flatten",
        "Flatten",
        "Flatten: close every position (asks first)",
        "main",
    ),
    ConsoleKey(
        "resume", CONSOLE_BINDINGS["resume"], "resume", "Resume", "Resume trading after a halt (asks first)", "main"
    ),
    ConsoleKey(
        "filter",
        CONSOLE_BINDINGS["filter"],
        "filter",
        "Filter",
        "Filter the event log by kind, symbol or words",
        "main",
    ),
    ConsoleKey(
        "rollout",
        CONSOLE_BINDINGS["rollout"],
        "rollout",
        "Rollout",
        "Rollout view: every symbol's mode, caps and override source; bulk changes",
        "main",
        show=False,
    ),
    ConsoleKey(
        "fills",
        CONSOLE_BINDINGS["fills"],
        "fills",
        "Fills",
        "Fills of this session with the P&L each realized; realized against unrealized P&L",
        "main",
        show=False,
    ),
    ConsoleKey("help", CONSOLE_BINDINGS["help"], "help", "Help", "Show every key and what it does", "app"),
    ConsoleKey(
        "quit",
        CONSOLE_BINDINGS["quit"],
        "quit",
        "Quit",
        "Quit the console (working orders stay at the venue; asks if any)",
        "app",
    ),
    ConsoleKey(
        "stop_session",
        CONSOLE_BINDINGS["stop_session"],
        "stop_session",
        "Stop session",
        "Stop the session (asks first; orders stay working)",
        "app",
        show=False,
    ),
)

BY_ID = {key.id: key for key in KEYS}


def bindings(where: Literal["app", "main"]) -> list[BindingType]:
    """The bindings of one place (typed as Textual's BINDINGS are)."""
    return [
        Binding(k.key, k.action, k.label, show=k.show, priority=k.priority, id=k.id, tooltip=k.description)
        for k in KEYS
        if k.where == where
    ]


def effective_key(key: ConsoleKey, keymap: Mapping[str, str]) -> str:
    """The key that triggers it now: the configured remap, else the default."""
    return keymap.get(key.id, key.key)
