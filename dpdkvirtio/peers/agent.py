"""A second dpdkvirtio process (``python -m dpdkvirtio._agent``) driven with JSON
commands: the peer "of our own" in tests and benchmarks."""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import time

from .._process import stop as _stop
from .process import cpus


class Agent:
    """A second process of our own (tests/agent.py) driven with JSON commands."""

    def __init__(self, memory_mode: str = "auto", cpu: int | None = None, timeout: float = 60.0,
                 env=None, control_cpus=None):
        c = cpus()
        self.cpu = c[0] if cpu is None else cpu
        self.proc = subprocess.Popen([sys.executable, "-m", "dpdkvirtio._agent"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env)
        self.timeout = timeout
        self._buf = b""
        self.call("init", memory_mode=memory_mode, cpu=self.cpu, control_cpus=control_cpus)

    def call(self, op: str, timeout: float | None = None, **kw):
        msg = json.dumps({"op": op, **kw}) + "\n"
        try:
            self.proc.stdin.write(msg.encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise RuntimeError(f"agent died: {self.stderr()}") from None
        deadline = time.monotonic() + (timeout or self.timeout)
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"agent did not answer {op!r} in time")
            r, _, _ = select.select([fd], [], [], left)
            if r:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise RuntimeError(f"agent exited ({self.proc.poll()}): {self.stderr()}")
                self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        reply = json.loads(line)
        if not reply.get("ok"):
            raise AgentError(reply.get("type", "Error"), reply.get("error", "?"))
        return reply

    def stderr(self) -> str:
        if self.proc.poll() is None:
            return ""
        return self.proc.stderr.read().decode(errors="replace")[-3000:]

    def close(self):
        if self.proc.poll() is None:
            try:
                self.call("exit", timeout=30)
            except Exception:  # noqa: BLE001
                pass
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                _stop(self.proc)
        self._close_pipes()

    def kill(self):
        """Kill -9 (a crash); remove the runtime directory it could not."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close_pipes()
        shutil.rmtree(f"/var/run/dpdk/dv{self.proc.pid}", ignore_errors=True)

    def _close_pipes(self):
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                f.close()
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class AgentError(Exception):
    def __init__(self, kind, message):
        super().__init__(f"{kind}: {message}")
        self.kind = kind
