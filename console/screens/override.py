"""The per-symbol override dialog: rollout mode, position caps, size multiplier and
side restriction for one symbol. It returns a SetOverride command (or None); the
Engine validates, journals and applies it."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from console.widgets.form import FORM_BINDINGS, FormInput, FormSelect
from engine.commands import SetOverride
from engine.model import RolloutMode, SideRestriction
from engine.snapshot import OverrideRow

MODE_OPTIONS = [(m.value, m.value) for m in RolloutMode]
SIDE_OPTIONS = [(s.value.replace("_", " "), s.value) for s in SideRestriction]


class InvalidField(ValueError):
    pass


def _decimal(text: str, what: str) -> Decimal | None:
    text = text.strip().replace(",", "").lstrip("$")
    if not text:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise InvalidField(f"{what}: expected a number, got {text!r}") from None
    if value <= 0:
        raise InvalidField(f"{what}: must be above 0, got {text}")
    return value


def _text(value: object | None) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return f"{value.normalize():f}"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


class OverrideScreen(ModalScreen[SetOverride | None]):
    DEFAULT_CSS = """
    OverrideScreen { align: center middle; }
    OverrideScreen > Vertical {
        width: 66;
        max-width: 100%;
        height: auto;
        border: thick $accent;
        background: $surface;
        padding: 0 1;
    }
    OverrideScreen #title { text-style: bold; margin-bottom: 1; }
    OverrideScreen .field { height: 1; margin-bottom: 1; }
    OverrideScreen .field Label { width: 28; color: $text-muted; }
    OverrideScreen .field Input, OverrideScreen .field Select { width: 1fr; }
    OverrideScreen .field:focus-within Label { color: $accent; text-style: bold; }
    OverrideScreen .field Input:focus { background: $accent 25%; }
    OverrideScreen .field Select:focus > SelectCurrent { background: $accent 25%; }
    OverrideScreen #problem { color: $error; height: auto; }
    OverrideScreen #buttons { height: auto; align-horizontal: right; margin-top: 1; }
    OverrideScreen Button { margin-left: 1; min-width: 10; }
    """

    BINDINGS = [
        *FORM_BINDINGS,
        Binding("escape", "cancel", "Cancel", show=False),
        Binding("ctrl+s", "apply", "Apply", id="override_apply"),
    ]

    def __init__(self, symbol: str, current: OverrideRow | None = None) -> None:
        super().__init__()
        self.symbol = symbol
        self.current = current

    def compose(self) -> ComposeResult:
        cur = self.current
        with Vertical():
            yield Static(self._title(), id="title")
            with Horizontal(classes="field"):
                yield Label("Symbol")
                yield FormInput(self.symbol, id="symbol", compact=True, restrict=r"[A-Za-z0-9.\-]*")
            with Horizontal(classes="field"):
                yield Label("Rollout mode")
                yield FormSelect(
                    MODE_OPTIONS,
                    prompt="(default)",
                    value=cur.mode if cur and cur.mode else Select.NULL,
                    id="mode",
                    compact=True,
                )
            with Horizontal(classes="field"):
                yield Label("Max position, USD")
                yield FormInput(
                    _text(cur and cur.max_position_usd),
                    placeholder="no cap",
                    id="max-usd",
                    compact=True,
                    restrict=r"[0-9.,$]*",
                )
            with Horizontal(classes="field"):
                yield Label("Max position, % of equity")
                pct = cur.max_position_pct * 100 if cur and cur.max_position_pct is not None else None
                yield FormInput(_text(pct), placeholder="no cap", id="max-pct", compact=True, restrict=r"[0-9.]*")
            with Horizontal(classes="field"):
                yield Label("Size multiplier")
                yield FormInput(
                    _text(cur and cur.size_multiplier),
                    placeholder="1",
                    id="multiplier",
                    compact=True,
                    restrict=r"[0-9.]*",
                )
            with Horizontal(classes="field"):
                yield Label("Side")
                yield FormSelect(
                    SIDE_OPTIONS,
                    prompt="(default)",
                    value=cur.side if cur and cur.side else Select.NULL,
                    id="side",
                    compact=True,
                )
            yield Static("", id="problem")
            with Horizontal(id="buttons"):
                yield Button("Apply \\[ctrl+s]", variant="primary", id="apply", compact=True)
                yield Button("Clear override", variant="warning", id="clear", compact=True)
                yield Button("Cancel \\[esc]", id="cancel", compact=True)

    def _title(self) -> str:
        existing = "  (has an override)" if self.current else ""
        return f"Override for {self.symbol or 'a symbol'}{existing}"

    def on_mount(self) -> None:
        for box in self.query(Input):
            box.cursor_blink = getattr(self.app, "blink", True)
        self.query_one("#mode" if self.symbol else "#symbol").focus()

    def build(self, *, clear: bool = False) -> SetOverride:
        """The command the dialog's fields describe. Raises InvalidField."""
        symbol = self.query_one("#symbol", Input).value.strip().upper()
        if not symbol:
            raise InvalidField("symbol: required")
        if clear:
            return SetOverride(symbol=symbol, clear=True)
        mode = self.query_one("#mode", Select).value
        side = self.query_one("#side", Select).value
        usd = _decimal(self.query_one("#max-usd", Input).value, "max position USD")
        pct = _decimal(self.query_one("#max-pct", Input).value, "max position %")
        if pct is not None and pct > 100:
            raise InvalidField(f"max position %: at most 100, got {pct}")
        multiplier = _decimal(self.query_one("#multiplier", Input).value, "size multiplier")
        if mode is Select.NULL and side is Select.NULL and usd is None and pct is None and multiplier is None:
            raise InvalidField(
                "nothing to override: set at least one field"
                + (" (or Clear override to remove it)" if self.current else "")
            )
        return SetOverride(
            symbol=symbol,
            mode=None if mode is Select.NULL else str(mode),
            max_position_usd=usd,
            max_position_pct=None if pct is None else float(pct) / 100,
            size_multiplier=None if multiplier is None else float(multiplier),
            side=None if side is Select.NULL else str(side),
        )

    def _finish(self, *, clear: bool = False) -> None:
        try:
            command = self.build(clear=clear)
        except InvalidField as problem:
            self.query_one("#problem", Static).update(str(problem))
            return
        self.dismiss(command)

    def action_apply(self) -> None:
        self._finish()

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._finish()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "cancel":
            self.dismiss(None)
        else:
            self._finish(clear=event.button.id == "clear")
