"""What every peer shares: CPU placement, unique DPDK file prefixes, and a reader that
collects a child's output on a thread."""

from __future__ import annotations

import os
import re
import threading
import time
import uuid


def unique_prefix(stem="dvt") -> str:
    """A DPDK --file-prefix no other process uses."""
    return f"{stem}{os.getpid()}{uuid.uuid4().hex[:6]}"


def cpus() -> list[int]:
    """This process's CPUs (at least two entries: the only CPU twice on a 1-CPU host)."""
    c = sorted(os.sched_getaffinity(0))
    return c if len(c) >= 2 else c * 2


def front_back() -> tuple[int, int]:
    """(front, back): the first and the last of this process's CPUs, where a test or a
    benchmark puts the sending side and the side under measurement (one CPU twice on a
    1-CPU host)."""
    c = cpus()
    return c[0], c[-1]


class OutputReader:
    """Collects a process's output on a thread, so that a chatty child never blocks on a
    full pipe. ``tail_chars``: keep only the last that many characters (for output that is
    only shown, such as stderr; the wait_* methods then see only the tail)."""

    def __init__(self, stream, tail_chars: int | None = None):
        self.buf = ""
        self.tail_chars = tail_chars
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.eof = False
        self.t = threading.Thread(target=self._run, args=(stream,), daemon=True)
        self.t.start()

    def _run(self, stream):
        while True:
            try:
                chunk = stream.read1(4096) if hasattr(stream, "read1") else stream.read(4096)
            except (OSError, ValueError):           # the pipe was closed under us
                chunk = b""
            with self.cond:
                if not chunk:
                    self.eof = True
                    self.cond.notify_all()
                    return
                self.buf += chunk.decode("utf-8", "replace")
                if self.tail_chars is not None and len(self.buf) > 2 * self.tail_chars:
                    self.buf = self.buf[-self.tail_chars:]
                self.cond.notify_all()

    def text(self, last_chars: int | None = None, wait_eof_s: float = 0.0) -> str:
        """What was read (its last ``last_chars``), after waiting up to ``wait_eof_s`` for
        the end of the stream."""
        self.t.join(wait_eof_s)
        with self.lock:
            return self.buf if last_chars is None else self.buf[-last_chars:]

    def wait_count(self, text: str, count: int, start: int, timeout: float):
        """Index just after the ``count``-th occurrence of ``text`` at or after ``start``."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                pos, found = start, 0
                while found < count:
                    i = self.buf.find(text, pos)
                    if i < 0:
                        break
                    found += 1
                    pos = i + len(text)
                if found == count:
                    return pos
                left = deadline - time.monotonic()
                if left <= 0 or self.eof:
                    return None
                self.cond.wait(min(left, 0.2))

    def wait_for(self, pattern: str, start: int, timeout: float):
        """Index just after the first match of ``pattern`` at or after ``start``."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                m = rx.search(self.buf, start)
                if m:
                    return m.end()
                left = deadline - time.monotonic()
                if left <= 0 or self.eof:
                    return None
                self.cond.wait(min(left, 0.2))
