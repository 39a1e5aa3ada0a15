"""Form fields that take keys in the order they were typed.

Textual forwards a typed character straight to the focused widget's queue, but runs
a non-priority binding (Tab's focus_next, an Input's ctrl+u, backspace, arrows) only
once the key has bubbled from that widget up to the App, one queue at a time. Typed
quickly, the characters after a Tab then land in the field the Tab was leaving, and a
ctrl+u can wipe characters typed after it. Here a field runs its own bindings in its
own queue, in order with the characters, and forms move focus on Tab as a priority
binding, at the moment the key arrives (see FORM_BINDINGS)."""

from __future__ import annotations

from textual import events
from textual.binding import Binding
from textual.widgets import Input, Select

#: bindings every form screen adds: focus moves when the key arrives, not after it bubbled
FORM_BINDINGS = [
    Binding("tab", "app.focus_next", "Next field", show=False, priority=True),
    Binding("shift+tab", "app.focus_previous", "Previous field", show=False, priority=True),
]


async def _run_own_binding(widget, event: events.Key) -> bool:
    """Run the widget's own binding for this key now; True if there was one."""
    bindings = widget._bindings.key_to_bindings.get(event.key)
    if not bindings:
        return False
    for binding in bindings:
        if binding.priority:
            continue
        event.stop()
        event.prevent_default()
        await widget.run_action(binding.action)
        return True
    return False


class FormInput(Input):
    """An Input whose editing keys (ctrl+u, backspace, arrows, enter, ...) are applied
    in the order they were typed, between the characters around them."""

    async def _on_key(self, event: events.Key) -> None:
        if event.is_printable:
            await super()._on_key(event)
            return
        if not await _run_own_binding(self, event):
            await super()._on_key(event)


class FormSelect(Select):
    """A Select whose own keys (enter, space, arrows: open the list) are applied in order."""

    async def _on_key(self, event: events.Key) -> None:
        if not await _run_own_binding(self, event):
            await super()._on_key(event)
