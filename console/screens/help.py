"""The `?` screen: every key the console answers to, as remapped by the keymap in
the configuration, with its binding id."""

from __future__ import annotations

from typing import Mapping

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

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
    HelpScreen DataTable { height: auto; max-height: 16; }
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
            table: DataTable = DataTable(cursor_type="none", show_cursor=False, zebra_stripes=True)
            table.add_column("Key", key="key")
            table.add_column("What it does", key="what")
            table.add_column("Binding id", key="id")
            for key in KEYS:
                shown = self.app.get_key_display(Binding(effective_key(key, self.keymap), key.action))
                style = "bold red" if key.id == "kill_switch" else "bold"
                table.add_row(Text(shown, style=style), key.description, Text(key.id, style="dim"), key=key.id)
            yield table
            yield Static(
                'Remap in the configuration: \\[console] keymap = { approve = "y", kill_switch = "ctrl+x" }. '
                "Esc closes.",
                id="help-foot",
            )

    def action_close(self) -> None:
        self.dismiss(None)
