"""How the console shows its link to the session: a line above the desk while the
session is away (stopped, crashed, socket gone), saying so and that what is shown is
the last state seen, stale, until the console has re-attached by itself."""

from __future__ import annotations

import time

from textual.widgets import Static

from engine.control import Link


class LinkBanner(Static):
    """Shown only while the link is not up."""

    DEFAULT_CSS = """
    LinkBanner {
        height: auto;
        width: 1fr;
        padding: 0 1;
        text-style: bold;
        background: $error-darken-1;
        color: white;
    }
    """

    def show(self, link: Link) -> None:
        if link.state == "connecting":
            self.update(f"NOT ATTACHED: {link.detail}")
            return
        away = time.strftime("%H:%M:%S", time.localtime(time.time() - (time.monotonic() - link.since)))
        self.update(f"STALE since {away}: {link.detail}. What is shown is the last state seen.")
