"""A real Linux guest for the tests: Debian's cloud kernel (unpacked from its .deb), a
busybox initramfs built here with cpio, QEMU under TCG with shared memfd memory and a
vhost-user NIC. The guest's virtio-net driver talks to our vhost-user port.

The initramfs loads the virtio modules in dependency order, brings eth0 up, prints
DVGUEST-READY on the serial console and runs a shell there, which Guest.sh() drives.
"""

from __future__ import annotations

import gzip
import hashlib
import lzma
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from dpdkvirtio._process import Child
from dpdkvirtio.progress import Progress

HERE = Path(__file__).resolve().parent
CACHE = HERE / "cache"
QEMU = shutil.which("qemu-system-x86_64") or "/usr/bin/qemu-system-x86_64"
BUSYBOX = "/bin/busybox"
META_PACKAGE = "linux-image-cloud-amd64"
MODULES = ["virtio_pci", "virtio_net", "pktgen"]   # and what they depend on, in order
READY = "DVGUEST-READY"

INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
for m in $(cat /modules.order); do insmod /lib/modules/$m 2>/dev/null; done
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
ip link set eth0 up
echo "DVGUEST-READY $(cat /sys/class/net/eth0/address 2>/dev/null)"
exec sh </dev/ttyS0 >/dev/ttyS0 2>&1
"""


class GuestUnavailable(Exception):
    """The guest cannot be prepared on this host (reason in the message)."""


def _run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def _kernel_package() -> str:
    """The kernel package behind META_PACKAGE: the one already downloaded into the cache
    when there is one (apt-cache need not answer then), else what apt-cache names."""
    cached = sorted(CACHE.glob("linux-image-*-cloud-amd64_*.deb"))
    if cached:
        return cached[-1].name.split("_", 1)[0]
    r = _run(["apt-cache", "depends", META_PACKAGE])
    m = re.search(r"Depends:\s*(linux-image-\S+)", r.stdout)
    if not m:
        raise GuestUnavailable(f"apt-cache knows no {META_PACKAGE}: {r.stderr.strip()}")
    return m.group(1)


def _module_order(moddir: Path, wanted) -> list[str]:
    """Relative paths of ``wanted`` modules and their dependencies, dependencies first."""
    deps = {}
    for line in (moddir / "modules.dep").read_text().splitlines():
        mod, _, rest = line.partition(":")
        deps[mod] = rest.split()
    by_name = {re.sub(r"\.ko(\.\w+)?$", "", os.path.basename(m)).replace("-", "_"): m for m in deps}
    order: list[str] = []

    def visit(m):
        for d in deps.get(m, []):
            visit(d)
        if m not in order:
            order.append(m)
    for w in wanted:
        if w in by_name:
            visit(by_name[w])
    return order


def prepare() -> dict:
    """Kernel and initramfs, built once into tests/guest/cache (the kernel .deb comes from
    Debian's archive through apt-get download)."""
    if not os.path.exists(QEMU):
        raise GuestUnavailable("qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)")
    if not os.path.exists(BUSYBOX):
        raise GuestUnavailable("busybox is not installed (apt-get install busybox-static)")
    CACHE.mkdir(exist_ok=True)
    # shown on the terminal even while pytest captures output (the first run downloads a
    # kernel and builds an initramfs: a minute or more)
    with Progress(4, "guest image", stream=sys.__stderr__) as progress:
        return _prepare(progress)


def _prepare(progress: Progress) -> dict:
    pkg = _kernel_package()
    debs = sorted(CACHE.glob(f"{pkg}_*.deb"))
    if not debs:
        r = _run(["apt-get", "download", pkg], cwd=CACHE, timeout=600)
        debs = sorted(CACHE.glob(f"{pkg}_*.deb"))
        if r.returncode != 0 or not debs:
            raise GuestUnavailable(f"apt-get download {pkg} failed: {r.stderr.strip()[-300:]}")
    root = CACHE / "kernel"
    if not (root / "boot").exists():
        tmp = CACHE / "kernel.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        r = _run(["dpkg-deb", "-x", str(debs[-1]), str(tmp)])
        if r.returncode != 0:
            raise GuestUnavailable(f"dpkg-deb -x failed: {r.stderr}")
        tmp.rename(root)
    progress.step(f"kernel package {debs[-1].name}")
    vmlinuz = sorted((root / "boot").glob("vmlinuz-*"))[-1]
    moddir = sorted((root / "lib" / "modules").iterdir())[-1]
    if not (moddir / "modules.dep").exists():
        # a .deb carries no modules.dep (the package's postinst runs depmod)
        r = _run(["depmod", "-b", str(root), moddir.name])
        if r.returncode != 0:
            raise GuestUnavailable(f"depmod failed: {r.stderr.strip()} (apt-get install kmod)")
    progress.step(f"modules of {moddir.name} indexed")
    order = _module_order(moddir, MODULES)
    # dvguest, the frame sender/checker inside the guest
    src = HERE / "dvguest.c"
    digest = hashlib.sha256(src.read_bytes() + INIT.encode() + "\n".join(order).encode()).hexdigest()[:16]
    initrd = CACHE / f"initramfs-{digest}.gz"
    if not initrd.exists():
        build = CACHE / "initramfs.tmp"
        shutil.rmtree(build, ignore_errors=True)
        for d in ("bin", "proc", "sys", "dev", "lib/modules", "tmp"):
            (build / d).mkdir(parents=True)
        shutil.copy(BUSYBOX, build / "bin" / "busybox")
        r = _run(["gcc", "-static", "-O2", "-o", str(build / "bin" / "dvguest"), str(src)])
        if r.returncode != 0:
            raise GuestUnavailable(f"cannot build dvguest: {r.stderr[-500:]}")
        names = []
        for rel in order:
            data = (moddir / rel).read_bytes()
            if rel.endswith(".xz"):
                data = lzma.decompress(data)
            elif rel.endswith(".gz"):
                data = gzip.decompress(data)
            name = re.sub(r"\.(xz|gz|zst)$", "", os.path.basename(rel))
            (build / "lib" / "modules" / name).write_bytes(data)
            names.append(name)
        (build / "modules.order").write_text("\n".join(names) + "\n")
        (build / "init").write_text(INIT)
        os.chmod(build / "init", 0o755)
        with open(initrd, "wb") as out:
            find = subprocess.Popen(["find", "."], cwd=build, stdout=subprocess.PIPE)
            cpio = subprocess.Popen(["cpio", "-o", "-H", "newc", "--quiet"], cwd=build,
                                    stdin=find.stdout, stdout=subprocess.PIPE)
            find.stdout.close()                 # cpio holds it now
            out.write(gzip.compress(cpio.communicate()[0]))
            find.wait()
        shutil.rmtree(build, ignore_errors=True)
        progress.step(f"initramfs built ({len(order)} modules, dvguest)")
    else:
        progress.step(f"initramfs {initrd.name} cached")
    progress.step("ready")
    return {"kernel": str(vmlinuz), "initrd": str(initrd), "modules": order,
            "kernel_version": moddir.name}


class Guest:
    """A QEMU guest whose virtio-net NIC is the vhost-user socket ``sock``.

    ``qemu_server``: QEMU listens on ``sock`` (our port is then a vhost-user client);
    otherwise QEMU connects to our server socket. ``cpu``: where QEMU may run."""

    def __init__(self, art: dict, sock: str, *, qemu_server: bool = False, queues: int = 1,
                 smp: int = 1, mac: str = "52:54:00:00:00:01", cpu: int | None = None,
                 mem_mb: int = 256, boot_timeout: float = 90.0):
        self.mac = mac
        chardev = f"socket,id=c0,path={sock}" + (",server=on,wait=off" if qemu_server else "")
        dev = f"virtio-net-pci,netdev=n0,mac={mac},romfile=,vectors=0"
        if queues > 1:
            dev += ",mq=on"
        argv = [QEMU, "-accel", "tcg", "-m", str(mem_mb), "-smp", str(smp),
                "-nodefaults", "-no-user-config", "-display", "none", "-monitor", "none",
                "-serial", "stdio", "-kernel", art["kernel"], "-initrd", art["initrd"],
                "-append", "console=ttyS0 panic=-1 quiet loglevel=3 ipv6.disable=1",
                "-object", f"memory-backend-memfd,id=mem,size={mem_mb}M,share=on",
                "-machine", "pc,memory-backend=mem",
                "-chardev", chardev, "-netdev", f"vhost-user,id=n0,chardev=c0,queues={queues}",
                "-device", dev]
        if cpu is not None:
            argv = ["taskset", "-c", str(cpu)] + argv
        self.argv = argv
        self.child = Child(argv, stdin=True)
        self.proc = self.child.proc
        self.out = self.child.out
        self.pos = 0
        self._n = 0
        self.wait_ready(boot_timeout)

    @property
    def buf(self) -> str:
        """The console output so far."""
        return self.out.text()

    def _wait(self, pattern: str, timeout: float) -> re.Match:
        m = self.out.wait_match(pattern, self.pos, timeout)
        if m is None:
            raise TimeoutError(f"guest: no {pattern!r} within {timeout:g} s; console:\n"
                               f"{self.buf[-2000:]}")
        self.pos = m.end()
        return m

    def wait_ready(self, timeout: float = 90.0):
        m = self._wait(READY + r" ([0-9a-f:]+)", timeout)
        self.guest_mac = m.group(1)

    def sh(self, command: str, timeout: float = 60.0) -> str:
        """Run a shell command in the guest; its output."""
        self._n += 1
        marker = f"__DV{self._n}__"
        self.proc.stdin.write(f"{command}; echo {marker} $?\n".encode())
        self.proc.stdin.flush()
        start = self.pos
        m = self._wait(re.escape(marker) + r" (\d+)", timeout)
        out = self.buf[start:m.start()]
        # drop the echoed command line
        lines = [l for l in out.splitlines() if marker not in l and l.strip() != command.strip()]
        if m.group(1) != "0":
            raise RuntimeError(f"guest command failed ({m.group(1)}): {command}\n" + "\n".join(lines))
        return "\n".join(lines)

    def send(self, command: str):
        """Start a command without waiting (e.g. a receiver in the background)."""
        self.proc.stdin.write((command + "\n").encode())
        self.proc.stdin.flush()

    def expect(self, pattern: str, timeout: float = 60.0) -> re.Match:
        return self._wait(pattern, timeout)

    def netstats(self) -> dict:
        out = self.sh("cat /sys/class/net/eth0/statistics/rx_packets "
                      "/sys/class/net/eth0/statistics/tx_packets")
        nums = [int(x) for x in re.findall(r"^\d+$", out, re.M)]
        return {"rx_packets": nums[0], "tx_packets": nums[1]}

    def pktgen(self, count: int, size: int = 60, queue: int | None = None, thread: int = 0,
               timeout: float = 120.0, wait: bool = True, delay_ns: int = 0) -> int | None:
        """Send ``count`` (0: endless) UDP frames 127.0.0.1 -> 127.0.0.2 with the kernel's
        pktgen, ``delay_ns`` apart (0: as fast as it can); returns what pktgen reports as
        sent (None with wait=False: it keeps going in the background)."""
        dev = "eth0" if queue is None else f"eth0@{queue}"
        pg = f"/proc/net/pktgen/{dev}"
        kt = f"/proc/net/pktgen/kpktgend_{thread}"
        # pgctrl start runs every thread's devices: clear them all first
        cmds = ["for t in /proc/net/pktgen/kpktgend_*; do echo rem_device_all > $t; done",
                f"echo 'add_device {dev}' > {kt}",
                f"echo 'count {count}' > {pg}", f"echo 'pkt_size {size}' > {pg}",
                f"echo 'delay {int(delay_ns)}' > {pg}", f"echo 'dst 127.0.0.2' > {pg}",
                f"echo 'src_min 127.0.0.1' > {pg}", f"echo 'src_max 127.0.0.1' > {pg}",
                f"echo 'dst_mac 02:00:00:00:00:02' > {pg}"]
        if queue is not None:
            cmds += [f"echo 'queue_map_min {queue}' > {pg}", f"echo 'queue_map_max {queue}' > {pg}"]
        self.sh("; ".join(cmds))
        if not wait:
            self.send("echo start > /proc/net/pktgen/pgctrl &")
            return None
        self.sh("echo start > /proc/net/pktgen/pgctrl", timeout=timeout)
        out = self.sh(f"cat {pg}")
        m = re.search(r"Result: OK: .*?(\d+) \(\d+\+\d+\)", out) or re.search(r"sofar: (\d+)", out)
        if not m:
            raise RuntimeError(f"pktgen did not report: {out}")
        return int(re.search(r"sofar: (\d+)", out).group(1))

    def reboot(self, timeout: float = 90.0):
        self.send("reboot -f")
        self.wait_ready(timeout)

    def kill(self):
        self.child.kill()

    def close(self):
        if self.child.running():
            try:
                self.send("poweroff -f")
            except (BrokenPipeError, OSError):
                pass
            self.child.wait(10)
        self.child.stop(10, signal.SIGTERM)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
