"""Child processes, for every place that starts one (the demo's peer, the agent, the
test and benchmark peers): ``Child`` dies with its parent, has its output drained on a
thread, and is stopped politely then firmly, always reaped, pipes closed."""

from __future__ import annotations

import ctypes
import re
import signal
import subprocess
import threading
import time
from typing import Any

PR_SET_PDEATHSIG = 1


def set_pdeathsig(sig: int = signal.SIGTERM) -> None:
    """Ask the kernel to send ``sig`` to this process when its parent dies (for a
    ``preexec_fn``, or first thing in a child's main). Best effort."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, sig)
    except (OSError, AttributeError):
        pass


def stop(proc: subprocess.Popen[Any], timeout_s: float = 5.0, sig: int = signal.SIGINT) -> None:
    """Send ``sig``, wait up to ``timeout_s``, then kill; always reaps the process."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def close_pipes(proc: subprocess.Popen[Any]) -> None:
    """Close the parent's ends of ``proc``'s stdin/stdout/stderr pipes (idempotent)."""
    for f in (proc.stdin, proc.stdout, proc.stderr):
        if f is not None:
            try:
                f.close()
            except OSError:
                pass


class OutputReader:
    """Collects a process's output on a thread, so that a chatty child never blocks on a
    full pipe. ``tail_chars``: keep only the last that many characters (for output that is
    only shown, such as stderr; the wait_* methods then see only the tail)."""

    def __init__(self, stream: Any, tail_chars: int | None = None) -> None:
        self.buf = ""
        self.tail_chars = tail_chars
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.eof = False
        self.t = threading.Thread(target=self._run, args=(stream,), daemon=True)
        self.t.start()

    def _run(self, stream: Any) -> None:
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

    def wait_count(self, text: str, count: int, start: int, timeout: float) -> int | None:
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

    def wait_match(self, pattern: str, start: int, timeout: float) -> re.Match[str] | None:
        """The first match of ``pattern`` at or after ``start`` (its indices are into
        ``text()``), or None at the timeout or the end of the stream."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                m = rx.search(self.buf, start)
                if m:
                    return m
                left = deadline - time.monotonic()
                if left <= 0 or self.eof:
                    return None
                self.cond.wait(min(left, 0.2))

    def wait_for(self, pattern: str, start: int, timeout: float) -> int | None:
        """Index just after the first match of ``pattern`` at or after ``start``."""
        m = self.wait_match(pattern, start, timeout)
        return None if m is None else m.end()


class Child:
    """One child process, the one way every peer (agent, testpmd, OVS, a running switch)
    starts one: Popen with the parent-death signal (it ends when the thread that made it
    does), its output drained on a thread all along (a chatty child never blocks on a full
    pipe), and ``stop`` that always reaps it and closes the pipes. A context manager.

    ``stdin``: give it a pipe. ``stdout``: "read" (drained into ``out``, an OutputReader;
    stderr goes there too unless ``stderr`` is "read", then into ``err``), "rpc" (left
    for a JSON-RPC connection; stderr then drained into ``err``), or an open file (its
    output logged there, stderr with it). ``stderr="inherit"``: ours (a terminal).
    ``err_tail_chars``: keep only that much of stderr."""

    def __init__(self, argv: Any, *, stdin: bool = False, stdout: Any = "read",
                 stderr: str = "merge", env: Any = None, cwd: Any = None,
                 err_tail_chars: int | None = None) -> None:
        pipe = subprocess.PIPE
        out_target = pipe if stdout in ("read", "rpc") else stdout
        err_target: Any = {"inherit": None, "read": pipe}.get(
            stderr, pipe if stdout == "rpc" else subprocess.STDOUT)
        self.argv = list(argv)
        self.proc = subprocess.Popen(self.argv, stdin=pipe if stdin else None,
                                     stdout=out_target, stderr=err_target, env=env, cwd=cwd,
                                     preexec_fn=set_pdeathsig)
        self.out = OutputReader(self.proc.stdout) if stdout == "read" else None
        self.err = (OutputReader(self.proc.stderr, tail_chars=err_tail_chars)
                    if err_target is pipe else None)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    def running(self) -> bool:
        return self.proc.poll() is None

    def wait(self, timeout_s: float) -> int | None:
        """The exit status, or None if it still runs after ``timeout_s``."""
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout_s: float = 5.0, sig: int | None = None) -> int:
        """Signal it (SIGINT unless ``sig``), wait up to ``timeout_s``, then kill; reap it
        and close the pipes. Idempotent; returns its exit status."""
        stop(self.proc, timeout_s, signal.SIGINT if sig is None else sig)
        self.close_pipes()
        return self.proc.returncode

    def kill(self) -> int:
        """Kill -9 (a crash, from its peers' point of view); reaped, pipes closed."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.close_pipes()
        return self.proc.returncode

    def close_pipes(self) -> None:
        """Close our ends of its pipes (idempotent); once it has exited, the readers are
        given up to 5 s to reach the end of its output first."""
        if self.proc.poll() is not None:
            for reader in (self.out, self.err):
                if reader is not None:
                    reader.t.join(5.0)
        close_pipes(self.proc)

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
