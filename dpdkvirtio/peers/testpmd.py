"""dpdk-testpmd driven interactively over pipes (``-i``), as a peer in tests and
benchmarks. Every process started here is ended by close()/kill(), also when the caller
fails (use it as a context manager).

    from dpdkvirtio.peers import Testpmd
    with Testpmd("net_virtio_user0,path=/tmp/vhu0.sock,queues=1", "txonly") as tp:
        tp.start(); time.sleep(2); print(tp.stop())   # {'rx':…, 'tx':…, 'tx_dropped':…}
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time

from .._process import Child
from .process import cpus, unique_prefix

TESTPMD = shutil.which("dpdk-testpmd") or "/usr/bin/dpdk-testpmd"


class Testpmd:
    """dpdk-testpmd driven interactively (-i) over pipes.

        with TestPmd(vdev="net_virtio_user0,path=S,queues=1", fwd="txonly") as tp:
            tp.start(); time.sleep(1); stats = tp.stop()   # {'rx': .., 'tx': .., 'tx_dropped': ..}
    """

    PROMPT = r"testpmd> "
    __test__ = False                  # not a pytest test class

    def __init__(self, vdev, fwd: str = "rxonly", *, main_cpu: int | None = None,
                 fwd_cpu: int | None = None, memory_mode: str = "hugepages", extra_eal=(),
                 extra_app=(), mbufs: int = 16384, burst: int = 32, timeout: float = 30.0):
        vdevs = [vdev] if isinstance(vdev, str) else list(vdev)
        self.n_ports = len(vdevs)
        c = cpus()
        fwd_cpu = c[0] if fwd_cpu is None else fwd_cpu
        main_cpu = (c[1] if c[1] != fwd_cpu else c[0]) if main_cpu is None else main_cpu
        self.prefix = unique_prefix("tp")
        lcores = f"0@{main_cpu},1@{fwd_cpu}"
        eal = ["--lcores", lcores, "--main-lcore", "0", f"--file-prefix={self.prefix}",
               "--no-pci", "--log-level=5"]
        for v in vdevs:
            eal += ["--vdev", v]
        if memory_mode == "no-huge":
            eal += ["--no-huge", "-m", "512", "--no-shconf"]
        else:
            eal += ["--in-memory", "--single-file-segments"]
        eal += list(extra_eal)
        app = ["-i", f"--forward-mode={fwd}", f"--total-num-mbufs={mbufs}", "--nb-cores=1",
               "--txd=1024", "--rxd=1024", f"--burst={burst}"] + list(extra_app)
        # testpmd's printf output would be block-buffered on a pipe and arrive after the
        # prompts cmdline writes directly: make it unbuffered.
        self.argv = ["stdbuf", "-o0", "-e0", TESTPMD, *eal, "--", *app]
        # ends with the thread that made it (stdbuf execs testpmd: the signal is kept)
        self.child = Child(self.argv, stdin=True)
        self.proc = self.child.proc
        assert self.child.out is not None
        self.out = self.child.out
        self.pos = 0
        end = self.out.wait_for(self.PROMPT, 0, timeout)
        if end is None:
            self.close()
            raise RuntimeError(f"dpdk-testpmd did not start:\n{self.out.buf[-3000:]}")
        self.pos = end

    def cmd(self, text: str, expect: str = "", timeout: float = 30.0,
            expect_count: tuple | None = None) -> str:
        """Send a command; wait for ``expect`` (a regex) in its output, or for
        ``expect_count`` = (text, n) occurrences, then the prompt. Prompts printed by
        asynchronous events are not mistaken for the reply."""
        assert self.proc.stdin is not None               # (Popen with stdin=PIPE)
        self.proc.stdin.write((text + "\n").encode())
        self.proc.stdin.flush()
        start: int | None = self.pos
        if expect_count:
            start = self.out.wait_count(expect_count[0], expect_count[1], self.pos, timeout)
        elif expect:
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

    def core_cycles(self) -> dict:
        """Cumulative forwarding cycles of the forwarding lcore (needs --record-core-cycles):
        ``busy`` TSC cycles spent in bursts that moved packets, the ``packets`` they moved
        (received; sent for txonly) and ``hz``. Zeros before the first packet."""
        text = self.cmd("show fwd stats all", expect=r"Accumulated forward statistics")
        m = re.search(r"CPU cycles/packet=[\d.]+ \(total cycles=(\d+) / total \S+ packets=(\d+)\)"
                      r" at (\d+) MHz Clock", text)
        if not m:
            return {"busy": 0, "packets": 0, "total": None, "hz": None}
        return {"busy": int(m.group(1)), "packets": int(m.group(2)), "total": None,
                "hz": int(m.group(3)) * 1_000_000}

    def port_stats(self, port: int = 0) -> dict:
        text = self.cmd(f"show port stats {port}", expect=r"Throughput[\s\S]*?#{10}")
        rx = re.search(r"RX-packets:\s*(\d+)", text)
        tx = re.search(r"TX-packets:\s*(\d+)", text)
        return {"rx": int(rx.group(1)) if rx else 0, "tx": int(tx.group(1)) if tx else 0}

    def total_stats(self) -> dict:
        """RX/TX packets summed over all ports ('show port stats all')."""
        text = self.cmd("show port stats all", expect_count=("Tx-pps:", self.n_ports), timeout=30)
        rx = sum(int(x) for x in re.findall(r"RX-packets:\s*(\d+)", text))
        tx = sum(int(x) for x in re.findall(r"TX-packets:\s*(\d+)", text))
        return {"rx": rx, "tx": tx}

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
                assert self.proc.stdin is not None
                self.proc.stdin.write(b"quit\n")
                self.proc.stdin.flush()
                self.proc.wait(15)
            except (BrokenPipeError, subprocess.TimeoutExpired, OSError):
                pass
        self.child.stop()
        shutil.rmtree(f"/var/run/dpdk/{self.prefix}", ignore_errors=True)

    def kill(self):
        """Kill -9 (a crash, from the peer's point of view)."""
        self.child.kill()
        shutil.rmtree(f"/var/run/dpdk/{self.prefix}", ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
