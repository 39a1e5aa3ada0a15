"""Keys as a fast typist (or a paste of keystrokes) sends them: every key handed to the
app's driver at once, with no wait for the app to handle one before the next (Pilot's
own press() waits for idle after every key, which hides ordering races)."""

from __future__ import annotations

import unicodedata

from textual import events
from textual.app import App
from textual.keys import REPLACED_KEYS, _character_to_key, _get_unicode_name_from_key


def key_event(key: str) -> events.Key:
    """The Key event a terminal driver would produce for `key` (as Pilot spells keys)."""
    if len(key) == 1 and not key.isalnum():
        key = _character_to_key(key)
    original = REPLACED_KEYS.get(key, key)
    try:
        char: str | None = unicodedata.lookup(_get_unicode_name_from_key(original))
    except KeyError:
        char = key if len(key) == 1 else None
    return events.Key(key, char)


async def type_fast(pilot, *keys: str) -> None:
    """Hand every key to the driver in one go, then let the app catch up."""
    app: App = pilot.app
    driver = app._driver
    assert driver is not None
    for key in keys:
        event = key_event(key)
        event.set_sender(app)
        driver.send_message(event)
    for _ in range(5):
        await pilot.pause()
