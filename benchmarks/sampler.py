"""A statistical profile of one thread, shared by profile_cpu.py (the engine's loop
thread) and profile_sim.py (the venue's loop thread, inside the venue process): every
`every` s the thread's Python stack is read (sys._current_frames) and counted, unless
it waits in the selector (idle). Cheap enough not to change what it measures, unlike
cProfile of Python-heavy code. Imports only the standard library, so loading it in
the venue's process adds nothing to the heap it measures."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import CodeType


def file_name(code: CodeType) -> str:
    """A frame's label: its file's name."""
    return Path(code.co_filename).name


def folder_and_file(code: CodeType) -> str:
    """A frame's label: its file's folder and name (sim/server.py, not server.py)."""
    parts = Path(code.co_filename).parts
    return "/".join(parts[-2:]) if len(parts) >= 2 else code.co_filename


class StackSampler:
    def __init__(
        self,
        thread_id: int,
        every: float = 0.0005,
        *,
        name: str = "stack-sampler",
        where: Callable[[CodeType], str] = file_name,
    ) -> None:
        self.thread_id, self.every, self._where = thread_id, every, where
        self.own: dict[str, int] = {}  # innermost frame
        self.inclusive: dict[str, int] = {}  # every function on the stack
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            frame = sys._current_frames().get(self.thread_id)  # noqa: SLF001
            if frame is None:
                continue
            stack = []
            while frame is not None:
                code = frame.f_code
                stack.append(f"{self._where(code)}:{code.co_name}")
                frame = frame.f_back
            if stack[0].endswith(":select"):
                continue  # waiting for something to do: idle, not work
            self.samples += 1
            self.own[stack[0]] = self.own.get(stack[0], 0) + 1
            for name in set(stack):
                self.inclusive[name] = self.inclusive.get(name, 0) + 1

    def report(self, top: int, what: str) -> str:
        lines = [f"{self.samples} busy samples of {what}"]
        for title, table in (("innermost frame", self.own), ("on the stack", self.inclusive)):
            lines.append(f"-- {title}:")
            for name, n in sorted(table.items(), key=lambda kv: -kv[1])[:top]:
                lines.append(f"{100 * n / max(self.samples, 1):6.1f}%  {name}")
        return "\n".join(lines)
