"""The one-shot client of a session's control socket (`execdesk status`, `halt`,
`approve`, ...): one request, one answer. Only the standard library, so a command
that asks a running session starts without the engine's models; engine.control
(the server and the attached client) re-exports both names."""

from __future__ import annotations

import json
import socket
from decimal import Decimal
from pathlib import Path
from typing import Any

from engine.errors import ExecdeskError

__all__ = ["ControlError", "request"]


class ControlError(ExecdeskError):
    """The session cannot be reached or answered badly."""


def _line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, default=_json_default, separators=(",", ":")).encode() + b"\n"


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


def request(path: Path, cmd: str, timeout: float = 15.0, **fields: Any) -> dict[str, Any]:
    """Send one request to a running session and return its answer; raise
    ControlError if none answers."""
    if not path.exists():
        raise ControlError(f"no session is running (no control socket at {path})")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    chunks: list[bytes] = []
    try:
        try:
            s.connect(str(path))
        except OSError as exc:
            raise ControlError(f"no session is running at {path} ({exc.strerror or exc})") from None
        s.sendall(_line({"cmd": cmd, **fields}))
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
            if chunk.endswith(b"\n"):
                break
    except TimeoutError:
        raise ControlError(f"the session at {path} did not answer within {timeout:.0f} s") from None
    except OSError as exc:
        raise ControlError(f"the session at {path} closed the connection ({exc.strerror or exc})") from None
    finally:
        s.close()
    if not chunks:
        raise ControlError(f"the session at {path} closed the connection without an answer")
    try:
        answer = json.loads(b"".join(chunks).decode("utf-8"))
    except ValueError:
        raise ControlError(f"the session at {path} answered something that is not JSON") from None
    if not isinstance(answer, dict):
        raise ControlError(f"the session at {path} answered something that is not an object")
    return answer
