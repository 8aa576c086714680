"""Child-process hygiene shared by every place that starts one (the demo's child, the
agent, the test and benchmark peers): die with the parent, stop politely then firmly."""

from __future__ import annotations

import ctypes
import signal
import subprocess
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
