"""What the engine's log lines and problem details say, in the operator's words:
raw exception text ("ConnectionClosedError: received 1011 ...") becomes what happened
and what the engine does about it ("trade stream dropped; reconnecting")."""

from __future__ import annotations

import re

#: (pattern in a raw problem, what it means to an operator)
_CAUSES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), words)
    for pattern, words in (
        (r"ConnectionClosed|received 10\d\d|sent 10\d\d|connection lost", "the venue closed the connection"),
        (r"ConnectionRefused|ConnectError|Cannot connect|Connection refused", "the venue refused the connection"),
        (r"Timeout|timed out", "no answer in time"),
        (r"\b429\b|rate.?limit|too many requests", "the venue is rate-limiting us"),
        (r"\b5\d\d\b|Internal Server Error|Service Unavailable|Bad Gateway", "the venue answered with a server error"),
        (r"\b40[13]\b|unauthori[sz]ed|forbidden", "the venue refused our keys"),
        (r"Name or service not known|getaddrinfo|DNS", "the venue's address cannot be found"),
    )
)
_EXCEPTION = re.compile(r"\b[A-Z][A-Za-z]*(?:Error|Exception|Timeout)\b(?:\(|:)?")
_LINK_DOWN = re.compile(r"^(trade stream|market data|rest|REST) (?:DOWN|down)\b:?\s*(.*)$", re.DOTALL)
_LINK_UP = re.compile(r"^(trade stream|market data|rest|REST) UP \(reconnected\)(?::.*)?$")


def cause_in_words(raw: str) -> str:
    """A raw problem (exception text, HTTP status) as what happened; '' when unknown."""
    for pattern, words in _CAUSES:
        if pattern.search(raw):
            return words
    return ""


def operator_words(text: str) -> str:
    """An event-log line without raw exception text."""
    down = _LINK_DOWN.match(text)
    if down:
        what = "venue REST API" if down[1].lower() == "rest" else down[1]
        cause = cause_in_words(down[2])
        return f"{what} dropped; reconnecting" + (f" ({cause})" if cause else "")
    if _LINK_UP.match(text):
        return text.split(" UP ", 1)[0] + " back (reconnected)"
    if _EXCEPTION.search(text):
        head, sep, _raw = text.partition(": ")
        cause = cause_in_words(text)
        if sep and not _EXCEPTION.search(head):
            return f"{head}: {cause or 'unexpected error (details in the journal)'}"
        return cause or _EXCEPTION.sub("", text).strip(" :")
    return text
