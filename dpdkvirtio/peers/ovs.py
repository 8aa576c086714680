"""OVS-DPDK (Debian's openvswitch-switch-dpdk) as a peer, in a private run directory."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time

from .._process import Child
from ..hostinfo import OVS_SCHEMA, OVS_VSWITCHD_DPDK, ovs_dpdk_available
from .process import unique_prefix


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
        self.procs: list[Child] = []
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
            oc = ["other_config:dpdk-init=true", f"other_config:dpdk-lcore-mask={hex(1 << lcore_cpu)}",
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
                if time.monotonic() > deadline or any(not p.running() for p in self.procs):
                    raise RuntimeError(f"OVS-DPDK did not initialise DPDK:\n{self.log_tail()}")
                time.sleep(0.2)
            self.vsctl("add-br", bridge, "--", "set", "bridge", bridge, "datapath_type=netdev")
        except BaseException:
            self.close()
            raise

    def _spawn(self, argv):
        with open(os.path.join(self.dir, os.path.basename(argv[0]) + ".out"), "w") as log:
            self.procs.append(Child(argv, stdout=log, env=self.env))

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

    def pmd_cycles(self) -> dict:
        """Cumulative cycles of the PMD thread (``dpif-netdev/pmd-perf-show``): ``busy``
        TSC cycles of iterations that moved packets, ``total`` TSC cycles, the received
        ``packets``."""
        text = self.appctl("dpif-netdev/pmd-perf-show")
        used = re.search(r"Used TSC cycles:\s*(\d+)\s*\(\s*([\d.]+) % of total cycles\)", text)
        busy = re.search(r"busy iterations:\s*\d+\s*\(\s*([\d.]+) % of used cycles\)", text)
        rx = re.search(r"Rx packets:\s*(\d+)", text)
        if not (used and busy and rx):
            return {"busy": 0, "packets": 0, "total": 0, "hz": None}
        used_cycles = int(used.group(1))
        share = float(used.group(2)) / 100
        return {"busy": int(used_cycles * float(busy.group(1)) / 100),
                "total": int(used_cycles / share) if share else used_cycles,
                "packets": int(rx.group(1)), "hz": None}

    def log_tail(self, n: int = 30) -> str:
        try:
            with open(os.path.join(self.dir, "vswitchd.log")) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def close(self):
        for p in reversed(self.procs):
            p.stop(15, signal.SIGTERM)
        self.procs.clear()
        shutil.rmtree(f"/var/run/dpdk/{self.prefix}", ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
