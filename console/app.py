"""The operator console: a thin Textual App over an EngineHandle. It reads the
engine's snapshot at most `console.max_fps` times a second, hands it to the main
screen when it changed, and turns keys into engine commands.

One code path whatever the transport: the handle is a SessionClient attached over
the session socket (`execdesk console`, the normal case) or the Session itself in
this process (tests, screenshots). A handle with a `link` (engine.control.Link)
says whether the session is there; while it is not, the last state stays on screen
marked stale (console/link.py) and the handle re-attaches by itself."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from console import keys
from console.link import LinkBanner
from console.messages import CommandFailed, CommandFinished
from console.screens.confirm import ConfirmScreen
from console.screens.help import HelpScreen
from console.screens.main import MainScreen
from engine.commands import CommandResult, EngineHandle, Halt, SessionCommand, StopSession
from engine.config import Settings
from engine.control import Link
from engine.model import TradingState
from engine.snapshot import EngineSnapshot

#: the console never redraws more often than this, whatever the configuration says
MAX_FPS = 10
#: with a dialog or the help screen on top, the main screen behind it is redrawn at
#: most this often (seconds), unless something the operator must see changed
COVERED_INTERVAL = 2.0


class ExecDeskApp(App[None]):
    CSS_PATH = Path(__file__).with_name("app.tcss")
    TITLE = "execdesk"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    BINDINGS = keys.bindings("app")

    def __init__(
        self,
        handle: EngineHandle,
        settings: Settings,
        *,
        clock_in_view: bool = True,
        attached: bool = False,
        read_only: bool = False,
    ) -> None:
        super().__init__()
        self.handle = handle
        #: over the session socket: quitting detaches, the session keeps running
        self.attached = attached
        #: an observer: sends nothing but the kill switch
        self.read_only = read_only
        self._link: Link | None = None
        #: why the console ended: "detached" | "session stopped" | "quit"
        self.ended = "quit"
        self.settings = settings
        self.clock_in_view = clock_in_view
        #: text cursors blink only when the screen may change by itself (not in snapshots)
        self.blink = clock_in_view
        self.keymap = dict(settings.console.keymap)
        self.snapshot: EngineSnapshot = handle.snapshot
        self.halt_pending = False
        self._shown_seq: int | None = None
        self._covered_at = 0.0  # monotonic time the covered main screen was last redrawn
        self._must_see: tuple = ()
        self.set_keymap(self.keymap)

    # -- screens ----------------------------------------------------------------

    def get_default_screen(self) -> Screen:
        return MainScreen()

    @property
    def main_screen(self) -> MainScreen | None:
        screen = self.screen_stack[0] if self.screen_stack else None
        return screen if isinstance(screen, MainScreen) and screen.is_mounted else None

    def on_mount(self) -> None:
        fps = min(MAX_FPS, self.settings.console.max_fps)
        self.set_interval(1 / fps, self.refresh_snapshot, name="snapshot")
        self.refresh_snapshot()

    # -- snapshots ----------------------------------------------------------------

    @staticmethod
    def must_see(snapshot: EngineSnapshot, halt_pending: bool) -> tuple:
        """What shows at once even behind a dialog: state, kill switch, venue link."""
        c = snapshot.connectivity
        return (
            halt_pending,
            snapshot.trading_state,
            snapshot.state_cause,
            snapshot.kill_switch.phase,
            snapshot.trading_ready,
            c.rest,
            c.trade_stream,
            c.market_data,
            c.rate_limited,
            c.journal_ok,
        )

    def refresh_snapshot(self, *, force: bool = False) -> None:
        """Read the engine's latest snapshot; if it changed, show it (one batched frame).

        While a dialog or the help screen covers the main screen, the main screen is
        redrawn only when something it must show at once changed, else at most every
        COVERED_INTERVAL seconds: a redraw behind a modal re-composes both screens,
        and at 10 frames a second that cost three times the main screen alone."""
        snapshot = self.handle.snapshot
        screen = self.main_screen
        if screen is not None:
            self._show_link(screen)
        if screen is None or (snapshot.seq == self._shown_seq and not force):
            return
        if self.screen is not screen and not force:
            now = time.monotonic()
            must_see = self.must_see(snapshot, self.halt_pending)
            if must_see == self._must_see and now - self._covered_at < COVERED_INTERVAL:
                return
            self._covered_at = now
        self._must_see = self.must_see(snapshot, self.halt_pending)
        if self.halt_pending and snapshot.trading_state is TradingState.HALTED:
            self.halt_pending = False  # the engine says so now: the snapshot takes over
        self.snapshot = snapshot
        self._shown_seq = snapshot.seq
        try:
            with self.batch_update():
                screen.apply(snapshot, halt_pending=self.halt_pending)
        except NoMatches:
            self._shown_seq = None  # the screen is still composing its widgets: the next tick shows it

    def _show_link(self, screen: MainScreen) -> None:
        """Say on screen when the session goes away and when it is back."""
        link: Link | None = getattr(self.handle, "link", None)
        if link is None or link == self._link:
            return
        before, self._link = self._link, link
        banners = list(screen.query(LinkBanner))
        if link.up:
            for banner in banners:
                banner.remove()
            if before is not None and before.state == "gone":
                self.say(f"session back: {link.detail}")
                self._shown_seq = None  # show the fresh state at once
            return
        if banners:
            banners[0].show(link)
        else:
            banner = LinkBanner()
            screen.mount(banner, before=0)
            banner.show(link)
        if link.state == "gone" and (before is None or before.state != "gone" or before.detail != link.detail):
            self.say(f"session gone: {link.detail}", warning=True)

    # -- commands -------------------------------------------------------------------

    @work(group="commands", exit_on_error=False)
    async def send(self, command: SessionCommand, label: str) -> CommandResult:
        """Give the Engine a command and report its answer."""
        try:
            result = await self.handle.execute(command)
        except Exception as exc:  # the engine could not take it: say so, never silently
            self.post_message(CommandFailed(command, f"{type(exc).__name__}: {exc}", label))
            raise
        self.post_message(CommandFinished(command, result, label))
        return result

    @work(group="commands", exit_on_error=False)
    async def send_each(self, commands: list[SessionCommand], label: str) -> list[CommandResult]:
        """Give the Engine several commands, one after the other, and report once."""
        results: list[CommandResult] = []
        refused: list[str] = []
        for command in commands:
            try:
                result = await self.handle.execute(command)
            except Exception as exc:
                self.post_message(CommandFailed(command, f"{type(exc).__name__}: {exc}", label))
                raise
            results.append(result)
            if not result.ok:
                refused.append(result.message)
        done = len(results) - len(refused)
        summary = f"{done} done" + (f", {len(refused)} refused: " + "; ".join(refused[:3]) if refused else "")
        self.post_message(
            CommandFinished(commands[0] if commands else None, CommandResult(not refused, summary), label)
        )
        return results

    @on(CommandFinished)
    def _command_finished(self, message: CommandFinished) -> None:
        result = message.result
        verdict = "done" if result.ok else "REFUSED"
        text = f"{message.label}: {verdict}" + (f": {result.message}" if result.message else "")
        self.say(text, warning=not result.ok)
        self.refresh_snapshot()

    @on(CommandFailed)
    def _command_failed(self, message: CommandFailed) -> None:
        self.say(f"{message.label}: FAILED: {message.error}", warning=True)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR and event.worker.group != "commands":
            self.say(f"{event.worker.name}: {event.worker.error}", warning=True)

    def say(self, text: str, *, warning: bool = False) -> None:
        """Tell the operator: a line in the event log, and a toast when it is a problem."""
        screen = self.main_screen
        if screen is not None:
            screen.event_log.note(text, self.snapshot.venue_time, kind="error" if warning else "console")
        if warning:
            self.notify(text, severity="warning", timeout=6)

    # -- app-wide keys ------------------------------------------------------------------

    def action_kill_switch(self) -> None:
        """One keystroke, no confirmation, from any screen: HALTED at once, cancel-all."""
        self.halt_pending = True
        self.refresh_snapshot(force=True)
        self.send(Halt(cause="operator: console kill switch"), "KILL SWITCH")

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.keymap))

    def action_stop_session(self) -> None:
        """Stop the session itself (not just this console): confirmed first."""
        if self.read_only:
            self.say("Stop session: REFUSED: a read-only console sends nothing but the kill switch", warning=True)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.send(StopSession(cause="operator: console"), "Stop session")

        working = self.snapshot.open_order_count
        self.push_screen(
            ConfirmScreen(
                "Stop the session?",
                "The session stops for every console: no new orders, approvals dropped, the journal sealed. "
                f"{working} working orders stay at the venue, unmanaged until a session runs again. "
                "To detach only this console, quit instead.",
                yes="Stop session",
            ),
            answered,
        )

    async def action_quit(self) -> None:
        """Quit. Attached, this only detaches: the session keeps running. In process,
        with orders working at the venue, ask first and say they stay there."""
        if self.attached:
            self.ended = "detached"
            self.exit()
            return
        working = len(self.snapshot.orders) or self.snapshot.open_order_count
        if not working:
            self.exit()
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.exit()

        self.push_screen(
            ConfirmScreen(
                f"Quit with {working} working orders?",
                "They stay working at the venue: quitting the console cancels nothing. "
                "To cancel everything first, press the kill switch "
                f"({keys.effective_key(keys.BY_ID['kill_switch'], self.keymap)}).",
                yes="Quit",
            ),
            answered,
        )

    # -- command palette ----------------------------------------------------------------

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        main = self.screen_stack[0] if self.screen_stack else None
        for key in keys.KEYS:
            target = self if key.where == "app" else main
            if target is None or not target.check_action(key.action, ()):
                continue  # only what applies now (the help screen lists every key)
            shown = keys.effective_key(key, self.keymap)
            yield SystemCommand(
                key.description,
                f"key {self.get_key_display(Binding(shown, key.action))} · binding id {key.id}",
                lambda action=key.action, node=target: self.call_later(self.run_action, action, node),
            )
        for command in super().get_system_commands(screen):
            if command.title not in ("Quit",):
                yield command
