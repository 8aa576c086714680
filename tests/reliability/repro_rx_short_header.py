"""Standalone reproducer: a guest crashes a DPDK 22.11 vhost-user back-end (Debian's
dpdk-testpmd here, no dpdkvirtio code in the back-end) with three receive descriptors.

``mbuf_to_desc`` (lib/vhost/virtio_net.c) handles a first receive buffer shorter than the
virtio-net header by continuing the header in the next buffer at offset
``vhost_hlen - first_len``, and sets ``buf_avail = next_len - buf_offset`` without
checking that the next buffer is that long: with a 1-byte first buffer and a 2-byte
second one, ``buf_avail`` wraps (uint32) and the whole packet is copied from 11 bytes into
the 2-byte buffer onwards. Placed at the end of a memory region, the copy runs off the
back-end's mapping of guest memory: SIGSEGV, or a write into whatever host mapping
follows. The same code is in 23.11.

Run (root, Debian's dpdk and python3-numpy):

    python3 -m tests.reliability.repro_rx_short_header [--mergeable]

It prints the used element testpmd returned (1512 bytes: it claims to have delivered the
packet), whether the packet's bytes are in the guest's buffers (they are not: they went
past the 2-byte buffer) and testpmd's exit status (-11 when the copy hit an unmapped page;
otherwise the write went into whatever the process had mapped there). A fixed back-end
refuses the chain or fills the buffers correctly.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

from tests.reliability import hostile as H


def short_header_chain(mergeable: bool = False, packet_size: int = 1500,
                       timeout_s: float = 10.0) -> dict:
    """Start testpmd (net_vhost, txonly) with a hostile guest posting the three rx
    buffers. Returns testpmd's exit ``status`` (None while it runs; -11: SIGSEGV), the
    ``used`` elements it returned, and whether the packet's bytes reached the guest's
    third buffer where they belong (``packet_in_guest_buffers``: False with a used
    element of packet_size + 12 bytes means they were written somewhere else)."""
    sockdir = tempfile.mkdtemp(prefix="dvrepro-")
    sock = os.path.join(sockdir, "vhost.sock")
    argv = ["dpdk-testpmd", "-l", "0,1", "--no-huge", "-m", "512", "--no-shconf", "--no-pci",
            f"--file-prefix=dvrepro{os.getpid()}", "--vdev", f"net_vhost0,iface={sock}",
            "--", "--forward-mode=txonly", f"--txpkts={packet_size}", "--auto-start",
            "--total-num-mbufs=4096"]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    mem = drv = None
    try:
        deadline = time.monotonic() + timeout_s
        while not os.path.exists(sock):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"dpdk-testpmd did not create {sock} (status {proc.poll()})")
            time.sleep(0.05)
        mem = H.GuestMemory()
        drv = H.Driver(sock, mem, (1 << H.F_MRG_RXBUF) if mergeable else 0, packed=False)
        drv.handshake()
        rx = drv.rings[0]
        end_of_c = mem.data[2].end
        bufs = [(mem.data[0].gpa + 4096, 1, H.WRITE),        # shorter than the 12-byte header
                (end_of_c - 2, 2, H.WRITE),                  # 2 bytes at a region's end
                (mem.data[0].gpa + 8192, 4096, H.WRITE)]     # room for the packet
        if mergeable:
            rx.offer([rx.chain([b]) for b in bufs])
        else:
            rx.offer([rx.chain(bufs)])
        drv.kick_vring(0)
        deadline = time.monotonic() + timeout_s
        while not rx.used_entries() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.5)                                   # a crash may follow the copy
        used = rx.used_entries()
        # header: 1 + 2 + 9 bytes; then the packet belongs in the third buffer
        third = bufs[2]
        landed = int(mem.read(third[0] + 9, packet_size) != mem.data[0].expected[
            third[0] + 9 - mem.data[0].gpa:third[0] + 9 - mem.data[0].gpa + packet_size].tobytes())
        return {"status": proc.poll(), "used": used,
                "packet_in_guest_buffers": bool(landed)}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdin is not None:
            proc.stdin.close()
        if drv is not None:
            drv.close()
        if mem is not None:
            mem.close()
        if os.path.exists(sock):
            os.unlink(sock)
        os.rmdir(sockdir)


def main(argv=None):
    args = sys.argv[1:] if argv is None else argv
    out = short_header_chain(mergeable="--mergeable" in args)
    print(f"used elements {out['used']}; packet in the guest's buffers: "
          f"{out['packet_in_guest_buffers']}; dpdk-testpmd exit status {out['status']}")
    reproduced = out["status"] == -11 or (out["used"] and not out["packet_in_guest_buffers"])
    print("reproduced: the packet was written outside the guest's buffers" if reproduced
          else "not reproduced")
    return 0 if reproduced else 1


if __name__ == "__main__":
    raise SystemExit(main())
