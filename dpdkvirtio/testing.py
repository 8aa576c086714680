"""Peers for tests and benchmarks: dpdk-testpmd driven interactively, and a second
dpdkvirtio process (the agent) driven with JSON commands. Every process started here is
ended by close()/kill(), also when the caller fails (use them as context managers).

    from dpdkvirtio.testing import Testpmd
    with Testpmd("net_virtio_user0,path=/tmp/vhu0.sock,queues=1", "txonly") as tp:
        tp.start(); time.sleep(2); print(tp.stop())   # {'rx':…, 'tx':…, 'tx_dropped':…}
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid

TESTPMD = shutil.which("dpdk-testpmd") or "/usr/bin/dpdk-testpmd"


def unique_prefix(stem="dvt") -> str:
    """A DPDK --file-prefix no other process uses."""
    return f"{stem}{os.getpid()}{uuid.uuid4().hex[:6]}"


def cpus() -> list[int]:
    """This process's CPUs (at least two entries: the only CPU twice on a 1-CPU host)."""
    c = sorted(os.sched_getaffinity(0))
    return c if len(c) >= 2 else c * 2


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
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        self.out = _Reader(self.proc.stdout)
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
        self.proc.stdin.write((text + "\n").encode())
        self.proc.stdin.flush()
        start = self.pos
        if expect_count:
            start = self.out.wait_count(expect_count[0], expect_count[1], self.pos, timeout)
            if start is None:
                raise RuntimeError(f"testpmd did not answer {text!r}:\n{self.out.buf[self.pos:][-3000:]}")
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
                _kill(self.proc)
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




OVS_VSWITCHD_DPDK = "/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk"
OVS_SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"


def ovs_dpdk_available() -> bool:
    return all(os.path.exists(p) for p in (OVS_VSWITCHD_DPDK, OVS_SCHEMA)) and \
        all(shutil.which(t) for t in ("ovsdb-server", "ovsdb-tool", "ovs-vsctl", "ovs-ofctl"))


def _pdeathsig():
    import ctypes
    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)
    except OSError:
        pass


class OvsDpdk:
    """OVS-DPDK (Debian's openvswitch-switch-dpdk) in a private run directory, never the
    system service: ovsdb-server and ovs-vswitchd-dpdk run as children of this process and
    are stopped by close().

        with OvsDpdk("/tmp/x", lcore_cpu=0, pmd_cpu=1) as ovs:
            ovs.add_vhost_client_port("vhu0", "/tmp/x/vhu0.sock")
            ovs.add_flow("in_port=vhu0,actions=drop")
    """

    def __init__(self, workdir: str, *, lcore_cpu: int, pmd_cpu: int, memory_mode="hugepages",
                 socket_mem: int = 1024, bridge: str = "br0", timeout: float = 60.0):
        if not ovs_dpdk_available():
            raise FileNotFoundError("OVS-DPDK is not installed (apt-get install "
                                    "openvswitch-switch-dpdk)")
        self.dir = os.path.join(workdir, "ovs")
        os.makedirs(self.dir, exist_ok=True)
        self.bridge = bridge
        self.prefix = unique_prefix("ovs")
        self.procs: list[subprocess.Popen] = []
        self.env = dict(os.environ, OVS_RUNDIR=self.dir, OVS_LOGDIR=self.dir, OVS_DBDIR=self.dir,
                        OVS_SYSCONFDIR=self.dir, OVS_PKGDATADIR="/usr/share/openvswitch")
        self.db = f"unix:{self.dir}/db.sock"
        try:
            db = os.path.join(self.dir, "conf.db")
            subprocess.run(["ovsdb-tool", "create", db, OVS_SCHEMA], check=True,
                           capture_output=True, env=self.env)
            self._spawn(["ovsdb-server", f"--remote=punix:{self.dir}/db.sock",
                         f"--pidfile={self.dir}/ovsdb.pid", f"--log-file={self.dir}/ovsdb.log",
                         "--unixctl", f"{self.dir}/ovsdb.ctl", db])
            self._wait_path(f"{self.dir}/db.sock", timeout)
            self.vsctl("--no-wait", "init")
            extra = f"--file-prefix={self.prefix} --no-pci"
            oc = [f"other_config:dpdk-init=true", f"other_config:dpdk-lcore-mask={hex(1 << lcore_cpu)}",
                  f"other_config:pmd-cpu-mask={hex(1 << pmd_cpu)}"]
            if memory_mode == "no-huge":
                extra += f" --no-huge -m {socket_mem}"
            else:
                oc.append(f"other_config:dpdk-socket-mem={socket_mem}")
            oc.append(f"other_config:dpdk-extra={extra}")
            self.vsctl("--no-wait", "set", "Open_vSwitch", ".", *oc)
            self._spawn([OVS_VSWITCHD_DPDK, self.db, f"--pidfile={self.dir}/vswitchd.pid",
                         f"--log-file={self.dir}/vswitchd.log",
                         "--unixctl", f"{self.dir}/vswitchd.ctl"])
            deadline = time.monotonic() + timeout
            while self.vsctl("get", "Open_vSwitch", ".", "dpdk_initialized").strip() != "true":
                if time.monotonic() > deadline or any(p.poll() is not None for p in self.procs):
                    raise RuntimeError(f"OVS-DPDK did not initialise DPDK:\n{self.log_tail()}")
                time.sleep(0.2)
            self.vsctl("add-br", bridge, "--", "set", "bridge", bridge, "datapath_type=netdev")
        except BaseException:
            self.close()
            raise

    def _spawn(self, argv):
        log = open(os.path.join(self.dir, os.path.basename(argv[0]) + ".out"), "w")
        self.procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                           env=self.env, preexec_fn=_pdeathsig))
        log.close()

    @staticmethod
    def _wait_path(path, timeout):
        deadline = time.monotonic() + timeout
        while not os.path.exists(path):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{path} did not appear")
            time.sleep(0.05)

    def vsctl(self, *args, timeout: float = 30.0) -> str:
        r = subprocess.run(["ovs-vsctl", f"--db={self.db}", f"--timeout={int(timeout)}", *args],
                           capture_output=True, text=True, env=self.env, timeout=timeout + 5)
        if r.returncode != 0:
            raise RuntimeError(f"ovs-vsctl {' '.join(args)}: {r.stderr.strip()}")
        return r.stdout

    def ofctl(self, *args) -> str:
        r = subprocess.run(["ovs-ofctl", *args[:1], f"unix:{self.dir}/{self.bridge}.mgmt", *args[1:]],
                           capture_output=True, text=True, env=self.env, timeout=30)
        if r.returncode != 0:
            raise RuntimeError(f"ovs-ofctl {' '.join(args)}: {r.stderr.strip()}")
        return r.stdout

    def appctl(self, *args) -> str:
        r = subprocess.run(["ovs-appctl", "-t", f"{self.dir}/vswitchd.ctl", *args],
                           capture_output=True, text=True, env=self.env, timeout=30)
        return r.stdout

    def add_vhost_client_port(self, name: str, server_path: str, **options):
        opts = [f"options:vhost-server-path={server_path}"] + [f"options:{k}={v}" for k, v in options.items()]
        self.vsctl("add-port", self.bridge, name, "--", "set", "Interface", name,
                   "type=dpdkvhostuserclient", *opts)

    def add_vhost_server_port(self, name: str) -> str:
        """A dpdkvhostuser port; returns its socket path (in the run directory)."""
        self.vsctl("add-port", self.bridge, name, "--", "set", "Interface", name,
                   "type=dpdkvhostuser")
        return os.path.join(self.dir, name)

    def ofport(self, name: str) -> int:
        return int(self.vsctl("get", "Interface", name, "ofport").strip())

    def add_flow(self, flow: str):
        """ovs-ofctl add-flow; port names in in_port=/output: are turned into numbers."""
        def num(m):
            return f"{m.group(1)}{self.ofport(m.group(2))}"
        flow = re.sub(r"(in_port=|output:)([A-Za-z_][\w.-]*)", num, flow)
        self.ofctl("add-flow", flow)

    def stats(self, name: str) -> dict:
        text = self.vsctl("get", "Interface", name, "statistics").strip().strip("{}")
        out = {}
        for part in text.split(","):
            if "=" in part:
                k, v = part.split("=", 1)
                try:
                    out[k.strip().strip('"')] = int(v)
                except ValueError:
                    pass
        return out

    def log_tail(self, n: int = 30) -> str:
        try:
            with open(os.path.join(self.dir, "vswitchd.log")) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def close(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self.procs.clear()
        shutil.rmtree(f"/var/run/dpdk/{self.prefix}", ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
