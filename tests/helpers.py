"""Test helpers: short socket directories, a dpdk-testpmd driver, a second process of our
own (the agent), and process/socket leak checks. Every process started here is ended,
also when a test fails."""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TESTPMD = shutil.which("dpdk-testpmd") or "/usr/bin/dpdk-testpmd"


def short_dir(prefix="dvt") -> str:
    """A fresh directory under /tmp with a short name (socket paths must stay < 108 bytes)."""
    return tempfile.mkdtemp(prefix=f"{prefix}-", dir="/tmp")


def unique_prefix(stem="dvt") -> str:
    return f"{stem}{os.getpid()}{uuid.uuid4().hex[:6]}"


def cpus():
    c = sorted(os.sched_getaffinity(0))
    return c if len(c) >= 2 else c * 2


def free_hugepages_mb() -> int:
    try:
        free = int(Path("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages").read_text())
        return free * 2
    except OSError:
        return 0


def _kill(proc: subprocess.Popen, timeout=5.0):
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class _Reader:
    """Collects a process's stdout on a thread."""

    def __init__(self, stream):
        self.buf = ""
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.eof = False
        self.t = threading.Thread(target=self._run, args=(stream,), daemon=True)
        self.t.start()

    def _run(self, stream):
        while True:
            chunk = stream.read1(4096) if hasattr(stream, "read1") else stream.read(4096)
            with self.cond:
                if not chunk:
                    self.eof = True
                    self.cond.notify_all()
                    return
                self.buf += chunk.decode("utf-8", "replace")
                self.cond.notify_all()

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


class Testpmd:
    """dpdk-testpmd driven interactively (-i) over pipes.

        with TestPmd(vdev="net_virtio_user0,path=S,queues=1", fwd="txonly") as tp:
            tp.start(); time.sleep(1); stats = tp.stop()   # {'rx': .., 'tx': .., 'tx_dropped': ..}
    """

    PROMPT = r"testpmd> "
    __test__ = False                  # not a pytest test class

    def __init__(self, vdev: str, fwd: str = "rxonly", *, main_cpu: int | None = None,
                 fwd_cpu: int | None = None, memory_mode: str = "hugepages", extra_eal=(),
                 extra_app=(), timeout: float = 30.0):
        c = cpus()
        fwd_cpu = c[0] if fwd_cpu is None else fwd_cpu
        main_cpu = (c[1] if c[1] != fwd_cpu else c[0]) if main_cpu is None else main_cpu
        self.prefix = unique_prefix("tp")
        lcores = f"0@{main_cpu},1@{fwd_cpu}"
        eal = ["--lcores", lcores, "--main-lcore", "0", f"--file-prefix={self.prefix}",
               "--no-pci", "--vdev", vdev, "--log-level=5"]
        if memory_mode == "no-huge":
            eal += ["--no-huge", "-m", "512", "--no-shconf"]
        else:
            eal += ["--in-memory", "--single-file-segments"]
        eal += list(extra_eal)
        app = ["-i", f"--forward-mode={fwd}", "--total-num-mbufs=16384", "--nb-cores=1",
               "--txd=1024", "--rxd=1024"] + list(extra_app)
        # testpmd's printf output would be block-buffered on a pipe and arrive after the
        # prompts cmdline writes directly: make it unbuffered.
        self.argv = ["stdbuf", "-o0", "-e0", TESTPMD, *eal, "--", *app]
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        self.out = _Reader(self.proc.stdout)
        self.pos = 0
        end = self.out.wait_for(self.PROMPT, 0, timeout)
        if end is None:
            self.close()
            raise RuntimeError(f"dpdk-testpmd did not start:\n{self.out.buf[-3000:]}")
        self.pos = end

    def cmd(self, text: str, expect: str = "", timeout: float = 30.0) -> str:
        """Send a command; wait for ``expect`` (a regex) in its output, then the prompt.
        Prompts printed by asynchronous events are not mistaken for the reply."""
        self.proc.stdin.write((text + "\n").encode())
        self.proc.stdin.flush()
        start = self.pos
        if expect:
            start = self.out.wait_for(expect, self.pos, timeout)
            if start is None:
                raise RuntimeError(f"testpmd did not answer {text!r}:\n{self.out.buf[self.pos:][-3000:]}")
        end = self.out.wait_for(self.PROMPT, start, timeout)
        if end is None:
            raise RuntimeError(f"testpmd did not answer {text!r}:\n{self.out.buf[self.pos:][-3000:]}")
        reply = self.out.buf[self.pos:end]
        self.pos = end
        return reply

    def start(self, tx_first: bool = False):
        return self.cmd("start tx_first" if tx_first else "start",
                        expect=r"(?:forwarding packets/burst|already started)")

    def stop(self) -> dict:
        """Stop forwarding; the accumulated forward statistics of all ports."""
        text = self.cmd("stop", expect=r"(?:Accumulated forward statistics[\s\S]*?Done\.|not started)")
        m = re.search(r"Accumulated forward statistics.*?RX-packets:\s*(\d+)\s+RX-dropped:\s*(\d+).*?"
                      r"TX-packets:\s*(\d+)\s+TX-dropped:\s*(\d+)", text, re.S)
        if not m:
            raise RuntimeError(f"no forward statistics in:\n{text}")
        return {"rx": int(m.group(1)), "rx_dropped": int(m.group(2)), "tx": int(m.group(3)),
                "tx_dropped": int(m.group(4))}

    def port_stats(self, port: int = 0) -> dict:
        text = self.cmd(f"show port stats {port}", expect=r"Throughput[\s\S]*?#{10}")
        rx = re.search(r"RX-packets:\s*(\d+)", text)
        tx = re.search(r"TX-packets:\s*(\d+)", text)
        return {"rx": int(rx.group(1)) if rx else 0, "tx": int(tx.group(1)) if tx else 0}

    def link_up(self, port: int = 0) -> bool:
        return "Link status: up" in self.cmd(f"show port info {port}", expect=r"Link status: \w+")

    def wait_link_up(self, timeout: float = 10.0, port: int = 0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.link_up(port):
                return True
            time.sleep(0.1)
        return False

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(b"quit\n")
                self.proc.stdin.flush()
                self.proc.wait(15)
            except (BrokenPipeError, subprocess.TimeoutExpired, OSError):
                _kill(self.proc)
        shutil.rmtree(f"/var/run/dpdk/{self.prefix}", ignore_errors=True)

    def kill(self):
        """Kill -9 (a crash, from the peer's point of view)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(f"/var/run/dpdk/{self.prefix}", ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Agent:
    """A second process of our own (tests/agent.py) driven with JSON commands."""

    def __init__(self, memory_mode: str = "auto", cpu: int | None = None, timeout: float = 60.0,
                 env=None):
        c = cpus()
        self.cpu = c[0] if cpu is None else cpu
        self.proc = subprocess.Popen([sys.executable, str(REPO / "tests" / "agent.py")],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, cwd=str(REPO), env=env)
        self.timeout = timeout
        self._buf = b""
        self.call("init", memory_mode=memory_mode, cpu=self.cpu)

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
                _kill(self.proc)

    def kill(self):
        """Kill -9 (a crash); remove the runtime directory it could not."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(f"/var/run/dpdk/dv{self.proc.pid}", ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class AgentError(Exception):
    def __init__(self, kind, message):
        super().__init__(f"{kind}: {message}")
        self.kind = kind


def run_python(code: str, timeout: float = 60.0, env=None) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (for tests that need their own EAL)."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=timeout, cwd=str(REPO), env=env)


def our_processes() -> list[str]:
    """Descendants of this test process still alive (their command lines)."""
    me = os.getpid()
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            stat = (p / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == me:
                cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                if (p / "status").read_text().find("State:\tZ") < 0:
                    out.append(f"{p.name}: {cmd}")
        except (OSError, IndexError, ValueError):
            continue
    return out
