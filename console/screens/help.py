"""The `?` screen: every key the console answers to, as remapped by the keymap in
the configuration, with its binding id."""

from __future__ import annotations

from collections.abc import Mapping

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from console.keys import KEYS, effective_key


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Vertical {
        width: 96;
        max-width: 100%;
        height: auto;
        max-height: 100%;
        border: thick $primary;
        background: $surface;
        padding: 0 1;
    }
    HelpScreen VerticalScroll { height: auto; max-height: 1fr; }
    HelpScreen #help-keys { height: auto; }
    HelpScreen #help-title { text-style: bold; }
    HelpScreen #help-foot { color: $text-muted; }
    """

    BINDINGS = [
        Binding("escape,question_mark,q", "close", "Close", show=False),
    ]

    def __init__(self, keymap: Mapping[str, str]) -> None:
        super().__init__()
        self.keymap = keymap

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("Keys  (also in the command palette: ctrl+p)", id="help-title")
            # a Rich table: descriptions wrap, so every column fits 80 columns
            table = Table(box=None, expand=True, show_edge=False, pad_edge=False, row_styles=["", "on #1c2430"])
            table.add_column("Key", no_wrap=True)
            table.add_column("What it does", ratio=1)
            table.add_column("Binding id", no_wrap=True)
            for key in KEYS:
                shown = self.app.get_key_display(Binding(effective_key(key, self.keymap), key.action))
                style = "bold red" if key.id == "kill_switch" else "bold"
                table.add_row(Text(shown, style=style), key.description, Text(key.id, style="dim"))
            with VerticalScroll():
                yield Static(table, id="help-keys")
            yield Static(
                'Remap in the configuration: \\[console] keymap = { approve = "y", kill_switch = "ctrl+x" }. '
                "Esc closes.",
                id="help-foot",
            )

    def action_close(self) -> None:
        self.dismiss(None)
