"""Every key the console answers to, in one table: binding id (what
`[console] keymap` remaps), default key, action and words. The bindings, the help
screen and the command palette are all made from it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Mapping

from textual.binding import Binding, BindingType


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
    ConsoleKey("kill_switch", "ctrl+k", "kill_switch", "KILL",
               "Kill switch: halt and cancel every open order at the venue (no confirmation)",
               "app", priority=True),
    ConsoleKey("approve", "a", "approve", "Approve", "Approve the selected intent", "main"),
    ConsoleKey("reject", "r", "reject", "Reject", "Reject the selected intent", "main"),
    ConsoleKey("approve_all", "A", "approve_all", "Approve all", "Approve every waiting intent (asks first)", "main", show=False),
    ConsoleKey("reject_all", "R", "reject_all", "Reject all", "Reject every waiting intent", "main", show=False),
    ConsoleKey("cancel_order", "c", "cancel_order", "Cancel order", "Cancel the selected working order", "main", show=False),
    ConsoleKey("override", "o", "override", "Override", "Override the selected symbol: mode, caps, multiplier, side", "main"),
    ConsoleKey("flatten", "F", "flatten", "Flatten all", "Flatten: close every position (asks first)", "main", show=False),
    ConsoleKey("resume", "U", "resume", "Resume", "Resume trading after a halt (asks first)", "main", show=False),
    ConsoleKey("filter", "slash", "filter", "Filter", "Filter the event log by kind, symbol or words", "main"),
    ConsoleKey("help", "question_mark", "help", "Help", "Show every key and what it does", "app"),
    ConsoleKey("quit", "q", "quit", "Quit", "Quit the console (working orders stay at the venue; asks if any)", "app"),
    ConsoleKey("stop_session", "S", "stop_session", "Stop session",
               "Stop the session itself (asks first): no new orders, open orders left working, journal sealed",
               "app", show=False),
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
