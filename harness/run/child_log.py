"""What a case's child process writes to its stdout and stderr: a bounded tail, kept in memory.

A model may print megabytes per forward (a debug print left in, a library's warning in a
loop); written to a file, it filled ``$TMPDIR`` (248 MB in 7.5 s). The child's stdout and stderr
go to a pipe instead, read by a thread of the parent that keeps the last ``TAIL_BYTES``: enough
for the last line, faulthandler's report of a fatal error and a stack dump of a hung case. No
file is written, so nothing is left behind. The helpers here turn that text into the one line a
``crashed`` row's ``error`` gets.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from typing import Any

TAIL_BYTES = 64 * 1024
_FRAME = re.compile(r'^\s*File "(?P<path>[^"]*)", line (?P<line>\d+) in (?P<func>.+)$')


class ChildLog:
    """The read end of a child's stdout/stderr pipe and the bounded tail read from it.

    ``writer`` (a ``multiprocessing`` connection, picklable for the fork server) goes to the
    child, which makes it its fds 1 and 2; the parent closes its copy once the child started.
    """

    def __init__(self, ctx: Any, limit: int = TAIL_BYTES) -> None:
        self._reader, self.writer = ctx.Pipe(duplex=False)
        self._limit = limit
        self._tail = bytearray()
        self.total = 0  # bytes written so far (a mark for ``since``)
        self._lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._read, name="cnnbench-child-output", daemon=True
        )
        self._thread.start()

    def _read(self) -> None:
        fd = self._reader.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:  # every writer closed: the child (and what it forked) ended
                break
            with self._lock:
                self._tail += chunk
                self.total += len(chunk)
                if len(self._tail) > self._limit:
                    del self._tail[: len(self._tail) - self._limit]

    def child_started(self) -> None:
        """Close the parent's copy of the write end (the child holds its own)."""
        with contextlib.suppress(OSError):
            self.writer.close()

    def text(self) -> str:
        with self._lock:
            return self._tail.decode(errors="replace")

    def since(self, mark: int) -> str:
        """What was written after ``total`` was ``mark`` (as much of it as the tail holds)."""
        with self._lock:
            new = self.total - mark
            return bytes(self._tail[-new:]).decode(errors="replace") if new > 0 else ""

    def close(self, timeout_s: float = 1.0) -> None:
        """Stop reading (after the child ended: what it wrote last is read first)."""
        self.child_started()
        self._thread.join(timeout_s)
        with contextlib.suppress(OSError):
            self._reader.close()


def stderr_summary(text: str) -> str:
    """The last line the child wrote, and the innermost Python frame faulthandler printed."""
    lines = [ln.rstrip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return "nothing on stderr"
    summary = f"last stderr line: {lines[-1].strip()[:300]}"
    fatal = [i for i, ln in enumerate(lines) if ln.startswith("Fatal Python error")]
    if fatal:
        start = fatal[-1]
        frames = [ln.strip() for ln in lines[start:] if ln.strip().startswith("File ")]
        summary = (
            f"{lines[start].strip()}" + (f" in {frames[0]}" if frames else "") + (f"; {summary}")
        )
    return summary[:1500]


def stack_summary(dump: str, frames: int = 6) -> str:
    """The innermost ``frames`` frames of the main thread in a faulthandler dump (the thread
    whose stack holds the child's loop, harness/run/isolation.py), innermost first."""
    blocks: list[list[tuple[str, str, str]]] = []
    for line in dump.splitlines():
        if "(most recent call first)" in line:
            blocks.append([])
            continue
        match = _FRAME.match(line)
        if match and blocks:
            blocks[-1].append((match["path"], match["line"], match["func"].strip()))
    if not blocks:
        return ""
    loop = os.path.join("run", "isolation.py")
    main = next((b for b in blocks if any(p.endswith(loop) for p, _, _ in b)), max(blocks, key=len))
    shown = [f"{os.path.basename(p)}:{n} in {f}" for p, n, f in main[:frames]]
    more = f" < ... ({len(main) - frames} more)" if len(main) > frames else ""
    return " < ".join(shown) + more
