# cython: language_level=3
"""CaptureTap (L1): a port's capture resources — the C ``dv_capture`` the data path
copies into (dp_capture.pyx, from dv_port_rx/dv_port_tx), its ring and the copies'
mempool — and the writer-side drain (pcapng blocks written to a file). One tap per port,
made at its first capture and kept until the port is freed (a poller may still hold the
pointer between captures; only a closed port has no poller). Captures take turns on it:
``start`` raises while one is on. The file format and the writer thread are
dpdkvirtio/capture.py's."""
cimport cython
from libc.stdlib cimport calloc, free
from libc.stdint cimport uint32_t, uint64_t
from dpdkvirtio._dpdk.rte_ring cimport (rte_ring_create, rte_ring_free, rte_ring_count,
    RING_F_SC_DEQ)
from dpdkvirtio._dpdk.rte_mbuf cimport (rte_mbuf, rte_pktmbuf_pool_create, rte_pktmbuf_alloc,
                                       rte_pktmbuf_free_bulk, rte_pktmbuf_free, rte_pktmbuf_adj,
                                       RTE_PKTMBUF_HEADROOM)
from dpdkvirtio._dpdk.rte_mempool cimport rte_mempool, rte_mempool_free, rte_mempool_in_use_count
from dpdkvirtio._dpdk.rte_pcapng cimport rte_pcapng_mbuf_size
from dpdkvirtio._dpdk.rte_bpf cimport (rte_bpf, rte_bpf_prm, rte_bpf_jit, rte_bpf_get_jit,
    rte_bpf_convert, rte_bpf_load,
    rte_bpf_destroy, rte_free, pcap_t, bpf_program, pcap_open_dead, pcap_compile,
    pcap_freecode, pcap_geterr, pcap_close, DLT_EN10MB, PCAP_NETMASK_UNKNOWN)
from dpdkvirtio._dpdk.rte_lcore cimport rte_pause, rte_rdtsc, rte_get_tsc_hz
from dpdkvirtio._dpdk.dv_shim cimport (dv_aligned_zalloc, dv_store_seq_int, dv_load_seq_int,
    dv_rte_errno, dv_load_acquire_int, dv_store_release_int)
from posix.time cimport timespec, nanosleep
from dpdkvirtio._core.dp_types cimport (dv_capture, dv_capture_q, dv_capture_meta, dv_port,
    DV_DIR_RX, DV_DIR_TX)
from dpdkvirtio._dpdk.rte_ring cimport rte_ring_dequeue_burst
from dpdkvirtio._dpdk.rte_pcapng cimport (rte_pcapng_copy, RTE_PCAPNG_DIRECTION_IN,
    RTE_PCAPNG_DIRECTION_OUT)
from dpdkvirtio._dpdk.posix_extra cimport (pthread_mutex_t, pthread_mutex_init,
    pthread_mutex_lock, pthread_mutex_unlock)
from dpdkvirtio._dpdk.dv_shim cimport dv_mbuf_data
from posix.uio cimport iovec, writev
from libc.errno cimport errno, EINTR
from libc.string cimport memcpy
from dpdkvirtio._core.port cimport Port
from dpdkvirtio._core.errors cimport dpdk_reason, raise_dpdk
from dpdkvirtio.errors import ConfigError, PortStateError, DpdkError

import os
import time

RING_SIZE = 8192                # copies waiting for the writer
POOL_SIZE = 12287               # copies in the ring, in bursts and being written
COPY_DATA_ROOM = 2048           # bytes per copy segment (longer snaps are chained)
SNAPLEN_MAX = 65535
cdef enum:
    FMT_POOL_SIZE = 127             # the writer's format buffers (a burst of 64 at a time)
_serial = 0


# ---- the writer's drain: copies from the ring to pcapng blocks in a file -------------

cdef pthread_mutex_t g_pcapng_lock
pthread_mutex_init(&g_pcapng_lock, NULL)


cdef inline uint64_t _capture_ns(const dv_capture *cap, uint64_t tsc) noexcept nogil:
    """Wall-clock ns of a TSC reading, from the pair sampled at capture start (whole
    seconds first: no overflow for any uptime)."""
    cdef uint64_t d
    if tsc >= cap.tsc0:
        d = tsc - cap.tsc0
        return cap.ns0 + (d // cap.tsc_hz) * 1000000000 + (d % cap.tsc_hz) * 1000000000 // cap.tsc_hz
    d = cap.tsc0 - tsc
    return cap.ns0 - (d // cap.tsc_hz) * 1000000000 - (d % cap.tsc_hz) * 1000000000 // cap.tsc_hz


cdef int _write_all(int fd, iovec *iov, int niov, uint64_t *nbytes) noexcept nogil:
    """writev until everything is written (a pipe may take part of it). 0 or -errno."""
    cdef Py_ssize_t w
    while niov > 0:
        w = writev(fd, iov, niov)
        if w < 0:
            if errno == EINTR:
                continue
            return -errno
        nbytes[0] += <uint64_t>w
        while niov > 0 and <size_t>w >= iov[0].iov_len:
            w -= iov[0].iov_len
            iov += 1
            niov -= 1
        if niov > 0:
            iov[0].iov_base = <char *>iov[0].iov_base + w
            iov[0].iov_len -= w
    return 0


cdef long dv_capture_drain(dv_capture *cap, int fd, rte_mempool *fmt_mp,
                           const uint32_t *iface, uint64_t limit, uint64_t *nbytes,
                           uint64_t *lost) noexcept nogil:
    """Writer side: take up to 64 copies from the ring, format each as a pcapng Enhanced
    Packet Block with rte_pcapng_copy (interface iface[direction], the data path's TSC as
    its timestamp, the original length), and write them to fd. Copies of an older
    generation (or all, without fmt_mp) are freed unwritten; at most ``limit`` packets
    are written (0: no limit), the others freed; a copy that cannot be formatted (no
    mbuf) is counted in ``lost``. Returns packets written (adds their bytes to nbytes),
    or -errno when the write failed. rte_pcapng_copy keeps a process-wide TSC-to-time
    state it updates without a lock: every call is made here, under g_pcapng_lock."""
    cdef void *objs[64]
    cdef rte_mbuf *blocks[64]
    cdef iovec iov[64]
    cdef unsigned int got, i
    cdef int nblocks = 0, k, rc = 0
    cdef rte_mbuf *mc
    cdef rte_mbuf *blk
    cdef dv_capture_meta meta
    cdef uint32_t *epb
    cdef uint64_t ns
    got = rte_ring_dequeue_burst(cap.ring, objs, 64, NULL)
    if got == 0:
        return 0
    pthread_mutex_lock(&g_pcapng_lock)
    for i in range(got):
        mc = <rte_mbuf *>objs[i]
        memcpy(&meta, dv_mbuf_data(mc), sizeof(dv_capture_meta))
        if (fmt_mp is NULL or meta.generation != cap.generation
                or (limit and <uint64_t>nblocks >= limit)):
            rte_pktmbuf_free(mc)
            continue
        rte_pktmbuf_adj(mc, sizeof(dv_capture_meta))
        blk = rte_pcapng_copy(
            0, meta.queue, mc, fmt_mp, mc.pkt_len, meta.tsc,
            RTE_PCAPNG_DIRECTION_IN if meta.direction == DV_DIR_RX else RTE_PCAPNG_DIRECTION_OUT)
        rte_pktmbuf_free(mc)
        if blk is NULL or blk.nb_segs != 1:        # (the format pool holds a block whole)
            if blk is not NULL:
                rte_pktmbuf_free(blk)
            lost[0] += 1
            continue
        # the EPB: type, total length, interface id, ts hi, ts lo, captured, original.
        # The timestamp is ours: rte_pcapng_copy (22.11) sets its time base at its first
        # call and wraps a TSC older than that base (a packet copied before the writer's
        # first call, or older than one converted from another queue) to ~7.5e9 s ahead.
        epb = <uint32_t *>dv_mbuf_data(blk)
        epb[2] = iface[meta.direction]
        ns = _capture_ns(cap, meta.tsc)
        epb[3] = <uint32_t>(ns >> 32)
        epb[4] = <uint32_t>ns
        epb[6] = meta.orig_len
        iov[nblocks].iov_base = epb
        iov[nblocks].iov_len = blk.data_len
        blocks[nblocks] = blk
        nblocks += 1
    pthread_mutex_unlock(&g_pcapng_lock)
    if nblocks:
        rc = _write_all(fd, iov, nblocks, nbytes)
    for k in range(nblocks):
        rte_pktmbuf_free(blocks[k])
    return rc if rc < 0 else nblocks


@cython.final
cdef class CaptureTap:
    cdef dv_capture *_c
    cdef Port _port
    cdef int _n_queues
    cdef rte_mempool *_fmt_mp
    cdef unsigned int _fmt_room       # the format pool's data room (kept while it fits)
    cdef rte_mbuf *_held[FMT_POOL_SIZE]
    cdef unsigned int _n_held
    cdef readonly bint capturing
    cdef int _stop_writer

    def __cinit__(self, Port port):
        global _serial
        cdef dv_port *p = port.c_port()
        if p is NULL:
            raise PortStateError(f"port {port.name!r} is closed")
        if p.capture is not NULL:
            raise ConfigError(f"port {port.name!r} already has a capture tap")
        _serial += 1
        name = f"dvcap{_serial}".encode()
        self._port = port
        self._n_queues = p.n_queues
        self._c = <dv_capture *>calloc(1, sizeof(dv_capture))
        if self._c is NULL:
            raise MemoryError()
        self._c.q = <dv_capture_q *>dv_aligned_zalloc(2 * p.n_queues * sizeof(dv_capture_q))
        if self._c.q is NULL:
            self._free()
            raise MemoryError()
        self._c.ring = rte_ring_create(name + b"r", RING_SIZE, -1, RING_F_SC_DEQ)
        if self._c.ring is NULL:
            err = dv_rte_errno()
            self._free()
            raise_dpdk(DpdkError, err, "rte_ring_create",
                       "not enough DPDK memory for a capture ring (more hugepages, or a "
                       "larger --no-huge memory size)")
        self._c.mp = rte_pktmbuf_pool_create(name + b"m", POOL_SIZE, 256, 0,
                                             COPY_DATA_ROOM + RTE_PKTMBUF_HEADROOM, -1)
        if self._c.mp is NULL:
            err = dv_rte_errno()
            self._free()
            raise_dpdk(DpdkError, err, "rte_pktmbuf_pool_create",
                       f"not enough DPDK memory for {POOL_SIZE} capture buffers (more "
                       "hugepages, or a larger --no-huge memory size)")
        p.capture = self._c           # from here until the port is freed

    cdef void _free(self) noexcept:
        if self._c is NULL:
            return
        if self._c.ring is not NULL:
            rte_ring_free(self._c.ring)
        if self._c.mp is not NULL:
            rte_mempool_free(self._c.mp)
        free(self._c.q)
        free(self._c)
        self._c = NULL

    def release(self):
        """Free everything (the port is being freed: no poller can reach the tap)."""
        cdef dv_port *p = self._port.c_port() if self._port is not None else NULL
        self._drop_queued()
        self._free_fmt()
        self._free_filter()
        if p is not NULL and p.capture is self._c:
            p.capture = NULL
        self._free()

    cdef void _free_filter(self) noexcept:
        if self._c is not NULL and self._c.filter is not NULL:
            self._c.filter_jit = NULL
            rte_bpf_destroy(self._c.filter)
            self._c.filter = NULL

    cdef rte_bpf *_compile(self, str expr, int snaplen) except NULL:
        """A pcap filter expression (tcpdump's syntax) as an rte_bpf program."""
        cdef bpf_program prog
        cdef rte_bpf_prm *prm
        cdef rte_bpf *bpf
        cdef pcap_t *pc = pcap_open_dead(DLT_EN10MB, snaplen)
        if pc is NULL:
            raise MemoryError()
        if pcap_compile(pc, &prog, expr.encode(), 1, PCAP_NETMASK_UNKNOWN) != 0:
            err = pcap_geterr(pc).decode(errors="replace")
            pcap_close(pc)
            raise ConfigError(f"capture filter {expr!r}: {err}")
        prm = rte_bpf_convert(&prog)
        pcap_freecode(&prog)
        pcap_close(pc)
        if prm is NULL:
            raise ConfigError(f"capture filter {expr!r}: DPDK could not convert it to eBPF "
                              f"({dpdk_reason(dv_rte_errno(), 'rte_bpf_convert')})")
        bpf = rte_bpf_load(prm)
        rte_free(prm)
        if bpf is NULL:
            raise ConfigError(f"capture filter {expr!r}: DPDK could not load its eBPF "
                              f"({dpdk_reason(dv_rte_errno(), 'rte_bpf_load')})")
        return bpf

    cdef void _free_fmt(self) noexcept:
        self.release_format_buffers()
        if self._fmt_mp is not NULL:
            rte_mempool_free(self._fmt_mp)
            self._fmt_mp = NULL

    cdef void _drop_queued(self) noexcept:
        cdef uint64_t none = 0, lost = 0
        cdef uint32_t iface[2]
        if self._c is NULL:
            return
        self._c.generation += 1                  # everything queued is now stale
        while rte_ring_count(self._c.ring):
            dv_capture_drain(self._c, -1, NULL, iface, 0, &none, &lost)

    def start(self, bint rx, bint tx, int snaplen, str filter=None):
        """Turn copying on for the directions asked (the counters start from here), of
        every packet or of those a pcap ``filter`` expression matches (compiled by
        libpcap, run by DPDK's rte_bpf). Raises ConfigError for a bad expression."""
        global _serial
        if self._c is NULL:
            raise PortStateError("the capture tap was released (port closed)")
        if self.capturing:
            raise ConfigError(f"a capture is already running on port {self._port.name!r}; "
                              "stop it first")
        if not 1 <= snaplen <= SNAPLEN_MAX:
            raise ConfigError(f"snaplen must be 1..{SNAPLEN_MAX} bytes, got {snaplen}")
        if not (rx or tx):
            raise ConfigError("capture at least one direction (rx, tx or both)")
        self._drop_queued()
        self.release_format_buffers()
        cdef unsigned int room = min(65535, rte_pcapng_mbuf_size(snaplen) + RTE_PKTMBUF_HEADROOM)
        if self._fmt_mp is not NULL and self._fmt_room < room:
            self._free_fmt()                   # too small for this snap length
        self._free_filter()
        cdef rte_bpf_jit jit
        if filter:
            self._c.filter = self._compile(filter, snaplen)
            # DPDK compiles eBPF to x86 at load; the interpreter is the fallback
            if rte_bpf_get_jit(self._c.filter, &jit) == 0 and jit.func is not NULL:
                self._c.filter_jit = jit.func
        if self._fmt_mp is NULL:
            # the writer's pcapng blocks: one burst at a time, each in one segment; kept
            # for the next capture of this tap (making 127 blocks of up to 64 KiB costs
            # milliseconds)
            _serial += 1
            self._fmt_mp = rte_pktmbuf_pool_create(
                f"dvcap{_serial}f".encode(), FMT_POOL_SIZE, 0, 0, room, -1)
            if self._fmt_mp is NULL:
                self._free_filter()
                raise_dpdk(DpdkError, dv_rte_errno(), "rte_pktmbuf_pool_create",
                           "not enough DPDK memory for the capture writer's buffers")
            self._fmt_room = room
        self._c.snaplen = snaplen
        self._c.tsc_hz = rte_get_tsc_hz()
        t0 = rte_rdtsc()
        ns = time.time_ns()
        t1 = rte_rdtsc()
        self._c.tsc0 = t0 + (t1 - t0) // 2
        self._c.ns0 = ns
        self._stop_writer = 0
        self.capturing = True
        dv_store_seq_int(&self._c.on[DV_DIR_RX], 1 if rx else 0)
        dv_store_seq_int(&self._c.on[DV_DIR_TX], 1 if tx else 0)

    def stop(self):
        """Turn copying off and wait until no poller is inside a capture burst: after
        this, the ring holds every copy and the counters are final."""
        cdef int i
        if self._c is NULL or not self.capturing:
            return
        dv_store_seq_int(&self._c.on[DV_DIR_RX], 0)
        dv_store_seq_int(&self._c.on[DV_DIR_TX], 0)
        with nogil:
            for i in range(2 * self._n_queues):
                while dv_load_seq_int(&self._c.q[i].busy):
                    rte_pause()
        self._free_filter()                          # no poller can be running it now
        self.capturing = False

    def totals(self):
        """{"rx": {"seen", "accepted", "dropped"}, "tx": {...}} summed over queues, since
        the tap was made (callers take differences): packets that passed while a capture
        was on, the filter's matches among them, and matches not captured."""
        out = {}
        for name, d in (("rx", DV_DIR_RX), ("tx", DV_DIR_TX)):
            c = {"seen": 0, "accepted": 0, "dropped": 0}
            if self._c is not NULL:
                for q in range(self._n_queues):
                    c["seen"] += self._c.q[2 * q + d].seen
                    c["accepted"] += self._c.q[2 * q + d].accepted
                    c["dropped"] += self._c.q[2 * q + d].dropped
            out[name] = c
        return out

    def hold_format_buffers(self):
        """Take every free buffer of the writer's format pool, as a formatting that used
        them all up would (for tests of ``format_failed``: copies drained meanwhile are
        taken from the ring and counted, not written). Returns how many were taken;
        ``release_format_buffers`` (or the next start or the tap's end) gives them back."""
        cdef rte_mbuf *m
        if self._fmt_mp is NULL:
            raise PortStateError("no capture has started on this tap")
        while self._n_held < FMT_POOL_SIZE:
            m = rte_pktmbuf_alloc(self._fmt_mp)
            if m is NULL:
                break
            self._held[self._n_held] = m
            self._n_held += 1
        return self._n_held

    def release_format_buffers(self):
        if self._n_held:
            rte_pktmbuf_free_bulk(self._held, self._n_held)
            self._n_held = 0

    def queued(self):
        return rte_ring_count(self._c.ring) if self._c is not NULL else 0

    def buffers_in_use(self):
        """(copies, format buffers) taken from the tap's two pools and not given back:
        copies waiting in the ring count, as do held format buffers. Both are 0 once a
        capture's writer has emptied the ring; more is a leak."""
        copies = rte_mempool_in_use_count(self._c.mp) if self._c is not NULL else 0
        fmt = rte_mempool_in_use_count(self._fmt_mp) if self._fmt_mp is not NULL else 0
        return copies, fmt

    def stop_writer(self):
        """Make a running ``write`` return (from any thread)."""
        dv_store_release_int(&self._stop_writer, 1)

    def write(self, int fd, int iface_rx, int iface_tx, uint64_t count=0,
              uint64_t max_bytes=0, double duration_s=0.0, bint until_empty=False):
        """The writer: drain the ring to fd as pcapng blocks (interface ids per direction),
        without the GIL, until ``stop_writer``, ``count`` packets written, ``max_bytes``
        written or ``duration_s`` passed (0: no such limit) — or, with ``until_empty``,
        until the ring is empty. Returns (packets, bytes, lost, reason): lost were taken
        but could not be formatted; reason one of "stopped", "count", "bytes", "duration",
        "empty". Raises OSError when a write fails."""
        cdef uint32_t iface[2]
        cdef uint64_t nbytes = 0, lost = 0, written = 0
        cdef uint64_t deadline = 0, left
        cdef long n = 0
        cdef int reason = 0
        cdef timespec idle
        if self._c is NULL or self._fmt_mp is NULL:
            raise PortStateError("no capture was started on this tap")
        iface[DV_DIR_RX] = iface_rx
        iface[DV_DIR_TX] = iface_tx
        idle.tv_sec = 0
        idle.tv_nsec = 500_000
        if duration_s > 0:
            deadline = rte_rdtsc() + <uint64_t>(duration_s * rte_get_tsc_hz())
        with nogil:
            while True:
                left = count - written if count else 0
                n = dv_capture_drain(self._c, fd, self._fmt_mp, iface, left, &nbytes, &lost)
                if n < 0:
                    break
                written += <uint64_t>n
                if count and written >= count:
                    reason = 1
                elif max_bytes and nbytes >= max_bytes:
                    reason = 2
                elif deadline and rte_rdtsc() >= deadline:
                    reason = 3
                elif until_empty and rte_ring_count(self._c.ring) == 0:
                    reason = 4
                elif not until_empty and dv_load_acquire_int(&self._stop_writer):
                    reason = 0                       # (the last drain ignores it: all out)
                elif n == 0:
                    nanosleep(&idle, NULL)
                    continue
                else:
                    continue
                break
        if n < 0:
            raise OSError(-n, f"writing the capture: {os.strerror(-n)}")
        return written, nbytes, lost, ("stopped", "count", "bytes", "duration", "empty")[reason]
