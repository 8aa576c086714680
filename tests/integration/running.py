"""`dpdkvirtio run` in the background for the integration tests (test_cli, test_observe)."""
import json
import os
import signal
import subprocess
import sys
import textwrap

from dpdkvirtio._process import Child
from dpdkvirtio.peers import front_back
from tests.helpers import REPO, wait_still

FRONT, BACK = front_back()


def cli(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "dpdkvirtio", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, cwd=str(REPO))


class Running:
    """`dpdkvirtio run TOPO` in the background, stopped (SIGTERM) at the end."""

    def __init__(self, d, ports, flows=(), extra_oc="", extra_toml="", run_args=()):
        self.dir = d
        body = textwrap.dedent(f"""
            [switch]
            name = "br0"
            [switch.other_config]
            pmd-cpu-mask = "{hex(1 << BACK)}"
            dpdk-lcore-mask = "{hex(1 << FRONT)}"
            vhost-sock-dir = "{d}"
            dpdk-socket-mem = "512"
            {extra_oc}
        """)
        for name, ptype, opts in ports:
            body += f'[[port]]\nname = "{name}"\ntype = "{ptype}"\n'
            if opts:
                body += "options = { " + ", ".join(f'{k} = {json.dumps(v)}' for k, v in opts.items()) + " }\n"
        for a, b in flows:
            body += f'[[flow]]\nin_port = "{a}"\nout_port = "{b}"\n'
        body += textwrap.dedent(extra_toml)
        topo = os.path.join(d, "topo.toml")
        with open(topo, "w") as f:
            f.write(body)
        self._start(topo, os.path.join(d, "br0.ctl"), run_args)

    @classmethod
    def topology(cls, path, control_socket, run_args=()):
        """Run a topology file as it is; ``control_socket`` is the one it names."""
        self = cls.__new__(cls)
        self.dir = os.path.dirname(control_socket)
        self._start(path, control_socket, run_args)
        return self

    def _start(self, topo, control_socket, run_args):
        self.topo = topo
        self.sock = control_socket
        self.child = Child([sys.executable, "-m", "dpdkvirtio", "run", self.topo, *run_args],
                           stderr="read", cwd=str(REPO))
        self.proc = self.child.proc
        if self.child.out.wait_for("running", 0, 60) is None:
            self.stop()
            raise RuntimeError(f"dpdkvirtio run did not start: {self.child.err.text()}")

    @property
    def out(self) -> list[str]:
        """Its stdout so far, in lines."""
        return self.child.out.text().splitlines(keepends=True)

    def ctl(self, *args, json_out=True, check=True):
        r = cli("ctl", "--socket", self.sock, *args, *(["--json"] if json_out else []))
        if check:
            assert r.returncode == 0, r.stderr
            return json.loads(r.stdout) if json_out else r.stdout
        return r

    def stats(self):
        return self.ctl("port-stats")

    def settle(self, port, key="rx_packets"):
        return wait_still(lambda: self.stats()[port][key], 0.5, 30, 0.1)

    def stop(self):
        return self.child.stop(30, signal.SIGTERM)
