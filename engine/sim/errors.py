"""Alpaca-shaped errors: every refusal carries ``{"code": <8 digits>, "message": ...}``.

Alpaca's codes are the HTTP status followed by five digits (``40310000`` for a 403
about buying power, ``42210000`` for a 422 validation error, ...).
"""

from __future__ import annotations

from typing import Any

CODE_BAD_REQUEST = 40010000
CODE_UNAUTHORIZED = 40110000
CODE_FORBIDDEN = 40310000
CODE_NOT_FOUND = 40410000
CODE_METHOD_NOT_ALLOWED = 40510000
CODE_TOO_LARGE = 41310000
CODE_UNPROCESSABLE = 42210000
CODE_RATE_LIMIT = 42910000
CODE_INTERNAL = 50010000
CODE_UNAVAILABLE = 50310000
CODE_GATEWAY_TIMEOUT = 50410000


class VenueError(Exception):
    """A refusal the venue answers with an HTTP status and an Alpaca error body."""

    def __init__(self, status: int, code: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        out.update(self.extra)
        return out


def bad_request(message: str) -> VenueError:
    return VenueError(400, CODE_BAD_REQUEST, message)


def forbidden(message: str, **extra: Any) -> VenueError:
    return VenueError(403, CODE_FORBIDDEN, message, **extra)


def not_found(message: str) -> VenueError:
    return VenueError(404, CODE_NOT_FOUND, message)


def unprocessable(message: str, **extra: Any) -> VenueError:
    return VenueError(422, CODE_UNPROCESSABLE, message, **extra)
