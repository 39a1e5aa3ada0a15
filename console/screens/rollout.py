"""The rollout view: every symbol of the universe with its rollout mode, caps,
size multiplier, side restriction and where they come from (default, the
configuration, a run-time override), filterable; bulk changes go through the same
journaled SetOverride command as the per-symbol dialog, one per symbol, by name."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static

from console import format as fmt
from console.screens.confirm import ConfirmScreen
from console.widgets.form import FormInput
from engine.commands import SetOverride
from engine.snapshot import OverrideRow

if TYPE_CHECKING:
    from console.app import ExecDeskApp

COLUMNS = ("Symbol", "Sector", "Mode", "Max USD", "Max % eq", "Size ×", "Side", "Source", "Changed")
_MODE_STYLE = {"off": "bold red", "approve": "yellow", "auto": "bold green"}


def _cap_text(value: object, pct: bool = False) -> str:
    if value is None:
        return fmt.DASH
    return fmt.pct(float(value)) if pct else fmt.money(value, decimals=0)  # type: ignore[arg-type]


class RolloutScreen(Screen[None]):
    DEFAULT_CSS = """
    RolloutScreen #rollout-filter { height: 1; margin: 0 1; }
    RolloutScreen #rollout-title { height: 1; padding: 0 1; text-style: bold; background: $panel; }
    RolloutScreen DataTable { height: 1fr; }
    """

    BINDINGS = [
        Binding("escape,v", "close", "Back", id="rollout_close"),
        Binding("slash", "focus_filter", "Filter", id="rollout_filter"),
        Binding("x", "bulk('off')", "Off: all shown", id="rollout_off"),
        Binding("p", "bulk('approve')", "Approve: all shown", id="rollout_approve"),
        Binding("u", "bulk('auto')", "Auto: all shown", id="rollout_auto"),
        Binding("o", "override", "Override", id="rollout_override"),
    ]

    def __init__(self) -> None:
        super().__init__(id="rollout")
        self.filter_text = ""
        self._overrides_seen: object = None

    @property
    def desk(self) -> ExecDeskApp:
        return cast("ExecDeskApp", self.app)

    def compose(self) -> ComposeResult:
        yield Static(id="rollout-title")
        yield FormInput(
            placeholder="filter: symbol, sector, mode or source words (enter: to the table)",
            id="rollout-filter",
            compact=True,
        )
        yield DataTable(id="rollout-table", cursor_type="row")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        settings = self.desk.settings
        self.universe = settings.load_universe()
        self.configured = settings.rollout.overrides
        self.allow = set(settings.rollout.allowlist)
        self.default_mode = settings.rollout.default_mode.value
        self.query_one(FormInput).cursor_blink = getattr(self.app, "blink", True)
        table = self.query_one(DataTable)
        for label in COLUMNS:
            table.add_column(label, key=label)
        self.rebuild()
        table.focus()
        self.set_interval(1.0, self._maybe_rebuild)

    # -- rows ---------------------------------------------------------------------

    def rows(self) -> list[tuple[str, str, str, object, object, object, str, str, str]]:
        """(symbol, sector, mode, max usd, max pct, multiplier, side, source, last
        change) per symbol; the last change is the venue time of this session's last
        run-time change (earlier ones are in the report), else a dash."""
        live: dict[str, OverrideRow] = dict(self.desk.snapshot.overrides)
        out: list[tuple[str, str, str, object, object, object, str, str, str]] = []
        for asset in self.universe.assets:
            sym = asset.symbol
            row = live.get(sym)
            changed = fmt.venue_clock(row.changed_at) if row is not None and row.changed_at else fmt.DASH
            configured = self.configured.get(sym)
            if row is not None:
                source = "config" if configured is not None and _same(row, configured) else "run-time"
                mode = row.mode or self.default_mode
                usd, pct, mult, side = row.max_position_usd, row.max_position_pct, row.size_multiplier, row.side
            elif configured is not None:
                source = "config"
                mode = configured.mode.value if configured.mode else self.default_mode
                usd, pct, mult = configured.max_position_usd, configured.max_position_pct, configured.size_multiplier
                side = configured.side.value if configured.side else None
            else:
                source, mode, usd, pct, mult, side = "default", self.default_mode, None, None, None, None
            if self.allow and sym not in self.allow:
                mode, source = "off", "not in allowlist"
            out.append((sym, asset.sector, mode, usd, pct, mult, side or "both", source, changed))
        return out

    def shown(self) -> list[tuple]:
        words = self.filter_text.lower().split()
        return [r for r in self.rows() if all(w in " ".join(str(c) for c in r).lower() for w in words)]

    def rebuild(self) -> None:
        table = self.query_one(DataTable)
        selected = None
        if table.row_count:
            selected = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        table.clear()
        shown = self.shown()
        for sym, sector, mode, usd, pct, mult, side, source, changed in shown:
            table.add_row(
                Text(sym, style="bold"),
                sector,
                Text(mode, style=_MODE_STYLE.get(mode, "")),
                Text(_cap_text(usd), justify="right"),
                Text(_cap_text(pct, pct=True), justify="right"),
                Text(fmt.DASH if mult is None else f"{mult:g}", justify="right"),
                side.replace("_", " "),
                Text(source, style="bold magenta" if source == "run-time" else "dim"),
                Text(changed, style="dim"),
                key=sym,
            )
        if selected is not None and any(r[0] == selected for r in shown):
            table.move_cursor(row=table.get_row_index(selected), animate=False)
        filt = f" · filter: {self.filter_text}" if self.filter_text else ""
        self.query_one("#rollout-title", Static).update(
            f"Rollout · {len(shown)} of {len(self.universe.assets)} symbols{filt} · default mode {self.default_mode}"
        )
        self._overrides_seen = self.desk.snapshot.overrides

    def _maybe_rebuild(self) -> None:
        if self.desk.snapshot.overrides is not self._overrides_seen:
            self.rebuild()

    # -- keys -----------------------------------------------------------------------

    @on(Input.Changed, "#rollout-filter")
    def _filter_typed(self, event: Input.Changed) -> None:
        self.filter_text = event.value.strip()
        self.rebuild()

    @on(Input.Submitted, "#rollout-filter")
    def _filter_kept(self, event: Input.Submitted) -> None:
        self.query_one(DataTable).focus()

    def action_focus_filter(self) -> None:
        self.query_one(FormInput).focus()

    def action_close(self) -> None:
        self.app.pop_screen()

    def action_bulk(self, mode: str) -> None:
        shown = self.shown()
        if not shown:
            self.desk.say("Rollout: no symbol shown: nothing to change", warning=True)
            return
        symbols = [r[0] for r in shown]
        live = dict(self.desk.snapshot.overrides)

        def answered(yes: bool | None) -> None:
            if not yes:
                return
            commands = []
            for sym in symbols:
                cur = live.get(sym)
                commands.append(
                    SetOverride(  # keep the symbol's other fields as they are
                        symbol=sym,
                        mode=mode,
                        max_position_usd=cur.max_position_usd if cur else None,
                        max_position_pct=cur.max_position_pct if cur else None,
                        size_multiplier=cur.size_multiplier if cur else None,
                        side=cur.side if cur else None,
                    )
                )
            self.desk.send_each(commands, f"rollout: {len(commands)} symbols to {mode}")

        what = f"filter '{self.filter_text}'" if self.filter_text else "every symbol"
        listed = ", ".join(symbols[:12]) + (f" and {len(symbols) - 12} more" if len(symbols) > 12 else "")
        self.app.push_screen(
            ConfirmScreen(
                f"Set {len(symbols)} symbols ({what}) to {mode}?",
                f"{listed}. Each is a journaled override, as from the override dialog.",
                yes=f"Set {mode}",
                danger=mode == "auto",
            ),
            answered,
        )

    def action_override(self) -> None:
        from console.screens.override import OverrideScreen

        table = self.query_one(DataTable)
        if not table.row_count:
            return
        sym = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value or ""

        def answered(command: SetOverride | None) -> None:
            if command is not None:
                self.desk.send(command, f"{'clear override' if command.clear else 'override'} {command.symbol}")

        self.app.push_screen(OverrideScreen(sym, self.desk.snapshot.overrides.get(sym)), answered)


def _same(row: OverrideRow, configured) -> bool:
    return (
        row.mode == (configured.mode.value if configured.mode else None)
        and row.max_position_usd == configured.max_position_usd
        and row.max_position_pct == configured.max_position_pct
        and row.size_multiplier == configured.size_multiplier
        and row.side == (configured.side.value if configured.side else None)
    )
