"""The control socket's path belongs to one live session: a second session bound at
the same path (its journal moved or deleted under the first, so the journal's lock
did not stop it) must not take the socket of a session that still answers, and a
session that stops removes only the socket it bound itself."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest

from engine.control import ControlError, ControlServer


def _server(path: Path) -> ControlServer:
    async def execute(command):  # never called here
        raise AssertionError("no command is sent in these tests")

    return ControlServer(path, snapshot=lambda: None, execute=execute)  # type: ignore[arg-type, return-value]


def _exists(path: Path) -> bool:
    return os.path.lexists(path)


def _answers(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        return False
    finally:
        probe.close()
    return True


@pytest.fixture
def sock_path(tmp_path: Path) -> Path:
    runtime = tmp_path / "rt"
    runtime.mkdir(mode=0o700)
    return runtime / "journal.sock"


def test_a_live_sessions_socket_is_not_taken_over(sock_path: Path) -> None:
    async def scenario() -> None:
        first = _server(sock_path)
        await first.start()
        try:
            second = _server(sock_path)
            with pytest.raises(ControlError, match="another session still answers on it"):
                await second.start()
            assert _answers(sock_path), "the first session lost its socket"
        finally:
            await first.stop()
        assert not _exists(sock_path)

    asyncio.run(scenario())


def test_a_socket_left_by_a_dead_session_is_replaced(sock_path: Path) -> None:
    left = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    left.bind(str(sock_path))
    left.close()  # the file stays, nobody listens: what a killed session leaves
    assert _exists(sock_path) and not _answers(sock_path)

    async def scenario() -> None:
        server = _server(sock_path)
        await server.start()
        try:
            assert _answers(sock_path)
        finally:
            await server.stop()

    asyncio.run(scenario())


def test_a_stopping_session_leaves_another_sessions_socket_alone(sock_path: Path) -> None:
    async def scenario() -> None:
        first = _server(sock_path)
        await first.start()
        os.unlink(sock_path)  # its socket file removed under it (the runtime dir cleaned by hand)
        second = _server(sock_path)
        await second.start()
        try:
            await first.stop()
            assert _exists(sock_path) and _answers(sock_path), "the first session removed the second's socket"
        finally:
            await second.stop()
        assert not _exists(sock_path)

    asyncio.run(scenario())
