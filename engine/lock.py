"""One session per journal: an exclusive OS lock (fcntl.flock) on a lock file next
to the journal, held for the life of the process, and the private place of the
session's control socket. The lock file says who holds it (pid, command, start
time, socket path); a second session on the same journal refuses to start and
names the holder. The kernel drops the lock when the holder dies, however it dies.

The socket lives in a runtime directory only this user can enter
($XDG_RUNTIME_DIR/execdesk, else /tmp/execdesk-<uid>, mode 0700, owned by us),
under a short name derived from the journal's absolute path: any journal path,
however long, gets a socket path well under AF_UNIX's 107-byte limit, and every
client finds it from the journal path alone."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import stat
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import ExecdeskError

#: AF_UNIX sun_path holds 108 bytes including the terminating NUL
MAX_SOCKET_PATH = 107


class JournalLocked(ExecdeskError):
    """Another process holds the journal; the message names it."""


class RuntimeDirError(ExecdeskError):
    """The private runtime directory for the control socket is not safe to use."""


def lock_path_for(journal_path: str | os.PathLike[str]) -> Path:
    p = Path(journal_path)
    return p.with_name(p.name + ".lock")


def runtime_dir() -> Path:
    """The directory of control sockets: only its owner (this user) can enter it."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    candidate = Path(base) / "execdesk" if base else None
    if candidate is None or len(str(candidate)) > MAX_SOCKET_PATH - 30:
        candidate = Path(tempfile.gettempdir()) / f"execdesk-{os.getuid()}"
        if len(str(candidate)) > MAX_SOCKET_PATH - 30:
            candidate = Path("/tmp") / f"execdesk-{os.getuid()}"
    return candidate


def ensure_runtime_dir(path: Path | None = None) -> Path:
    """Create the runtime directory 0700, or check that an existing one is ours and
    private; refuse anything else (a directory another user could enter or prepare)."""
    path = path or runtime_dir()
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise RuntimeDirError(f"{path} is not a directory: it cannot hold the control socket")
    if st.st_uid != os.getuid():
        raise RuntimeDirError(f"{path} belongs to uid {st.st_uid}, not to you: refusing to put a control socket there")
    if stat.S_IMODE(st.st_mode) & 0o077:
        os.chmod(path, 0o700)  # ours: make it private again
    return path


def socket_path_for(journal_path: str | os.PathLike[str]) -> Path:
    """Where the session of this journal serves its control socket."""
    key = hashlib.sha256(str(Path(journal_path).resolve()).encode()).hexdigest()[:24]
    return runtime_dir() / f"{key}.sock"


@dataclass(frozen=True)
class Holder:
    """What the lock file says about the process holding the journal."""

    pid: int | None
    command: str
    started: str
    socket: str

    def describe(self) -> str:
        who = f"pid {self.pid}" if self.pid else "another process"
        parts = [who]
        if self.command:
            parts.append(f"`{self.command}`")
        if self.started:
            parts.append(f"since {self.started}")
        return " ".join(parts)


def read_holder(journal_path: str | os.PathLike[str]) -> Holder | None:
    """The holder written in the lock file (None if there is no readable one). It
    says who took the lock last; whether it is still held is `is_locked`."""
    try:
        data: dict[str, Any] = json.loads(lock_path_for(journal_path).read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    pid = data.get("pid")
    return Holder(
        pid if isinstance(pid, int) else None,
        str(data.get("command", "")),
        str(data.get("started", "")),
        str(data.get("socket", "")),
    )


def is_locked(journal_path: str | os.PathLike[str]) -> bool:
    """True while some process holds the journal's lock."""
    try:
        fd = os.open(lock_path_for(journal_path), os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return True
        raise
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


class JournalLock:
    """The exclusive lock of one journal, held from acquire() until release() (or
    the process's end). The lock file is never deleted: deleting it would let a
    second process lock a new file while the first still holds the old one."""

    def __init__(self, journal_path: str | os.PathLike[str]):
        self.journal_path = Path(journal_path)
        self.path = lock_path_for(journal_path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, socket_path: Path) -> JournalLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.is_dir():
            raise JournalLocked(f"{self.path} is a directory: it cannot be the journal's lock file")
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            holder = read_holder(self.journal_path)
            who = holder.describe() if holder else "another process"
            raise JournalLocked(
                f"the journal {self.journal_path} is in use by {who}: one session per journal. "
                "Attach to it with `execdesk console --attach`, stop it with `execdesk stop`, "
                "or use another --journal."
            ) from None
        record = {
            "pid": os.getpid(),
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:500],
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "socket": str(socket_path),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
