# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""All loops over packets live here (L1). Every function is ``noexcept nogil`` and works
on C structs prepared by the control plane; the data path never raises, it counts."""
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t
from libc.string cimport memcpy, memset
from dpdkvirtio._dpdk.rte_mbuf cimport (rte_mbuf, rte_pktmbuf_alloc_bulk, rte_pktmbuf_free_bulk,
    rte_pktmbuf_alloc, rte_pktmbuf_tailroom,
    rte_pktmbuf_free, rte_pktmbuf_read, rte_memcpy, rte_pktmbuf_copy, rte_pktmbuf_prepend,
    rte_pktmbuf_adj)
from dpdkvirtio._dpdk.rte_mempool cimport rte_mempool
from dpdkvirtio._dpdk.rte_ethdev cimport (rte_eth_rx_burst, rte_eth_tx_burst,
    rte_eth_dev_rx_intr_enable, rte_eth_dev_rx_intr_disable, rte_eth_dev_rx_intr_ctl_q_get_fd)
from dpdkvirtio._dpdk.rte_vhost cimport (rte_vhost_enqueue_burst, rte_vhost_dequeue_burst,
    rte_vhost_enable_guest_notification, rte_vhost_get_vhost_vring, rte_vhost_rx_queue_count,
    rte_vhost_vring)
from dpdkvirtio._dpdk.posix_extra cimport sched_getcpu
from dpdkvirtio._dpdk.posix_extra cimport (epoll_event, epoll_ctl, epoll_wait, EPOLL_CTL_ADD,
    EPOLLIN, EPOLLET, prctl, PR_SET_TIMERSLACK, eventfd, EFD_NONBLOCK, EFD_CLOEXEC)
from posix.unistd cimport read, write
from posix.uio cimport iovec, writev
from libc.errno cimport errno, EINTR
from dpdkvirtio._dpdk.rte_ring cimport rte_ring_enqueue_burst, rte_ring_dequeue_burst
from dpdkvirtio._dpdk.rte_bpf cimport rte_bpf_exec_burst
from dpdkvirtio._dpdk.rte_pcapng cimport (rte_pcapng_copy, RTE_PCAPNG_DIRECTION_IN,
    RTE_PCAPNG_DIRECTION_OUT)
from dpdkvirtio._dpdk.posix_extra cimport (pthread_mutex_t, pthread_mutex_init,
    pthread_mutex_lock, pthread_mutex_unlock)
from dpdkvirtio._dpdk.rte_lcore cimport (rte_pause, rte_rdtsc, rte_cpuset_t, CPU_ZERO, CPU_SET,
    rte_thread_set_affinity)
from posix.time cimport timespec, nanosleep
from dpdkvirtio._dpdk.dv_shim cimport (dv_mbuf_data, dv_load_acquire_int, dv_load_seq_int,
    dv_store_seq_int, dv_store_release_int, dv_load_acquire_ptr, dv_store_release_u64,
    dv_load_acquire_u64, dv_load_le64, dv_store_le64, dv_load_le32, dv_msb64, dv_store_be16,
    dv_full_fence, DV_INJECT_BUSY_CYCLES, dv_spin_cycles)


cdef inline uint64_t _sum_len(rte_mbuf **pkts, uint16_t n) noexcept nogil:
    cdef uint64_t total = 0
    cdef uint16_t i
    for i in range(n):
        total += pkts[i].pkt_len
    return total


cdef inline bint _mbuf_consistent(rte_mbuf *m) noexcept nogil:
    # every segment's data inside its buffer, and the segments add up to pkt_len
    cdef uint64_t total = 0
    cdef rte_mbuf *seg = m
    if m.nb_segs == 1:
        # the common case from the first cache line only (m.next is in the second)
        return <uint32_t>m.data_off + m.data_len <= m.buf_len and m.data_len == m.pkt_len
    while seg is not NULL:
        if <uint32_t>seg.data_off + seg.data_len > seg.buf_len:
            return False
        total += seg.data_len
        seg = seg.next
    return total == m.pkt_len


cdef inline uint16_t _drop_malformed(rte_mbuf **pkts, uint16_t nb, dv_rxq_stats *st) noexcept nogil:
    # A driver sets lengths from what its peer wrote (virtio-user: the used ring's len,
    # unchecked by DPDK 22.11's virtio driver): an mbuf claiming more than its buffer
    # holds would make every reader run past it. Such mbufs are freed and counted; the
    # bytes of the kept ones are counted in the same pass.
    cdef uint16_t i, kept = 0
    cdef uint64_t nbytes = 0
    for i in range(nb):
        if _mbuf_consistent(pkts[i]):
            nbytes += pkts[i].pkt_len
            pkts[kept] = pkts[i]
            kept += 1
        else:
            rte_pktmbuf_free(pkts[i])
            st.malformed_drops += 1
    st.bytes += nbytes
    return kept


# -- capture ----------------------------------------------------------------------------
cdef inline dv_capture_q *_capture_enter(dv_port *p, uint16_t q, int direction) noexcept nogil:
    """The queue's capture row when a capture of this direction is on (marked busy: the
    caller must _capture_leave it), else NULL. Costs one load while the port never had a
    capture, two while its capture is off. Marking busy, then reading ``on`` again (both
    sequentially consistent), pairs with CaptureTap.stop: clear ``on``, wait for busy 0."""
    cdef dv_capture *cap = p.capture
    cdef dv_capture_q *row
    if cap is NULL or not cap.on[direction]:     # (a plain read first: off costs no store)
        return NULL
    row = &cap.q[2 * q + direction]
    dv_store_seq_int(&row.busy, 1)
    if dv_load_seq_int(&cap.on[direction]):
        return row
    dv_store_release_int(&row.busy, 0)
    return NULL


cdef inline void _capture_leave(dv_capture_q *row) noexcept nogil:
    dv_store_release_int(&row.busy, 0)


cdef inline void _capture_meta(dv_capture *cap, dv_capture_meta *meta, const rte_mbuf *m,
                               uint16_t q, int direction) noexcept nogil:
    meta.tsc = rte_rdtsc()
    meta.orig_len = m.pkt_len
    meta.generation = cap.generation
    meta.queue = q
    meta.direction = <uint32_t>direction


cdef rte_mbuf *_capture_chain(dv_capture *cap, const rte_mbuf *m, uint16_t q,
                              int direction) noexcept nogil:
    """The general copy (a chained packet, or a snap beyond one copy buffer)."""
    cdef rte_mbuf *mc = rte_pktmbuf_copy(m, cap.mp, 0, cap.snaplen)
    cdef dv_capture_meta *meta
    if mc is NULL:
        return NULL
    meta = <dv_capture_meta *>rte_pktmbuf_prepend(mc, sizeof(dv_capture_meta))
    if meta is NULL:
        rte_pktmbuf_free(mc)
        return NULL
    _capture_meta(cap, meta, m, q, direction)
    return mc


cdef rte_mbuf *DV_CAP_FILTERED = <rte_mbuf *>1     # in copies[]: the filter said no


cdef void _capture_copy(dv_capture *cap, uint16_t q, int direction, rte_mbuf **pkts,
                        uint16_t n, rte_mbuf **copies) noexcept nogil:
    """Copy pkts[0:n] (snaplen bytes each, a dv_capture_meta in front) into copies[]:
    DV_CAP_FILTERED where the filter did not match, NULL where no mbuf was left. Without
    a filter, the usual packet (one segment, snap within one copy buffer) takes one mbuf
    of a bulk allocation and one memcpy."""
    cdef uint16_t i
    cdef uint32_t length
    cdef rte_mbuf *m
    cdef rte_mbuf *mc
    cdef uint8_t *data
    cdef uint64_t rc[DV_MAX_BURST]
    cdef bint bulk = False
    if cap.filter_jit is not NULL:
        for i in range(n):
            rc[i] = cap.filter_jit(pkts[i])
    elif cap.filter is not NULL:
        rte_bpf_exec_burst(cap.filter, <void **>pkts, rc, n)
    else:
        bulk = rte_pktmbuf_alloc_bulk(cap.mp, copies, n) == 0
    for i in range(n):
        m = pkts[i]
        if cap.filter is not NULL and rc[i] == 0:
            copies[i] = DV_CAP_FILTERED
            continue
        length = m.pkt_len if m.pkt_len < cap.snaplen else cap.snaplen
        mc = copies[i] if bulk else rte_pktmbuf_alloc(cap.mp)
        if mc is not NULL and m.nb_segs == 1 and \
                length + sizeof(dv_capture_meta) <= rte_pktmbuf_tailroom(mc):
            data = <uint8_t *>dv_mbuf_data(mc)
            _capture_meta(cap, <dv_capture_meta *>data, m, q, direction)
            rte_memcpy(data + sizeof(dv_capture_meta), dv_mbuf_data(m), length)
            mc.data_len = <uint16_t>(length + sizeof(dv_capture_meta))
            mc.pkt_len = mc.data_len
        else:
            if mc is not NULL:
                rte_pktmbuf_free(mc)
            mc = _capture_chain(cap, m, q, direction)
        copies[i] = mc


cdef inline void _capture_discard(rte_mbuf **copies, uint16_t n) noexcept nogil:
    cdef uint16_t i
    for i in range(n):
        if copies[i] is not NULL and copies[i] is not DV_CAP_FILTERED:
            rte_pktmbuf_free(copies[i])


cdef void _capture_commit(dv_capture *cap, dv_capture_q *row, rte_mbuf **copies,
                          uint16_t n) noexcept nogil:
    """Enqueue the copies of copies[0:n]; count n seen, the filter's matches accepted,
    and the matches not enqueued dropped."""
    cdef uint16_t i, k = 0, matched = 0
    cdef unsigned int put
    for i in range(n):
        if copies[i] is DV_CAP_FILTERED:
            continue
        matched += 1
        if copies[i] is not NULL:
            copies[k] = copies[i]
            k += 1
    put = rte_ring_enqueue_burst(cap.ring, <void **>copies, k, NULL)
    if put < k:
        rte_pktmbuf_free_bulk(copies + put, k - put)
    row.seen += n
    row.accepted += matched
    row.dropped += matched - put


cdef void _capture_burst(dv_port *p, uint16_t q, int direction, rte_mbuf **pkts,
                         uint16_t n) noexcept nogil:
    cdef rte_mbuf *copies[DV_MAX_BURST]
    cdef dv_capture_q *row
    if n == 0:
        return
    row = _capture_enter(p, q, direction)
    if row is NULL:
        return
    _capture_copy(p.capture, q, direction, pkts, n, copies)
    _capture_commit(p.capture, row, copies, n)
    _capture_leave(row)


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


cdef uint16_t dv_port_rx(dv_port *p, uint16_t q, rte_mbuf **pkts, uint16_t n) noexcept nogil:
    """Receive up to n packets from queue q; the caller owns pkts[0:ret]. Packets an
    ethdev driver hands out with lengths beyond their buffers are dropped and counted
    (malformed_drops)."""
    cdef dv_rxq_stats *st = &p.stats[q].rx
    cdef uint16_t nb = 0
    cdef int vid
    cdef dv_vq_sync *sync
    if p.kind == DV_KIND_ETHDEV:
        nb = rte_eth_rx_burst(p.port_id, q, pkts, n)
        if nb:
            nb = _drop_malformed(pkts, nb, st)      # counts st.bytes too
    else:
        sync = &p.sync[q]
        dv_store_seq_int(&sync.rx_busy, 1)
        vid = dv_load_seq_int(&p.vid)
        if vid >= 0 and p.vring_enabled[2 * q + 1]:
            nb = rte_vhost_dequeue_burst(vid, 2 * q + 1, p.mp, pkts, n)
            st.bytes += _sum_len(pkts, nb)
        else:
            st.not_ready_polls += 1
        dv_store_release_int(&sync.rx_busy, 0)
    if nb:
        st.packets += nb
        st.bursts += 1
        if DV_INJECT_BUSY_CYCLES != 0:       # a calibration build only (perf calibrate):
            dv_spin_cycles(<uint64_t>DV_INJECT_BUSY_CYCLES * nb)   # per packet received
        if p.capture is not NULL:
            _capture_burst(p, q, DV_DIR_RX, pkts, nb)
    else:
        st.empty_polls += 1
    return nb


cdef inline uint16_t _vhost_enqueue(dv_port *p, int vid, uint16_t q, rte_mbuf **pkts,
                                    uint16_t n, dv_txq_stats *st) noexcept nogil:
    # Retry while the guest makes room (as OVS does), up to tx_retries_max times.
    cdef uint16_t sent = 0, k
    cdef uint32_t retries = 0
    while True:
        k = rte_vhost_enqueue_burst(vid, 2 * q, pkts + sent, n - sent)
        sent += k
        if sent == n or k == 0 or retries >= p.tx_retries_max:
            break
        retries += 1
    st.retries += retries
    return sent


cdef inline uint16_t _eth_tx(dv_port *p, uint16_t q, rte_mbuf **pkts, uint16_t n,
                             dv_txq_stats *st) noexcept nogil:
    cdef uint16_t sent = 0, k
    cdef uint32_t retries = 0
    while True:
        k = rte_eth_tx_burst(p.port_id, q, pkts + sent, n - sent)
        sent += k
        if sent == n or k == 0 or retries >= p.tx_retries_max:
            break
        retries += 1
    st.retries += retries
    return sent


cdef uint16_t dv_port_tx(dv_port *p, uint16_t q, rte_mbuf **pkts, uint16_t n,
                         bint drop_unsent) noexcept nogil:
    """Send pkts[0:n] on queue q. The sent prefix pkts[0:ret] is consumed (handed to the
    driver, or copied into the guest ring and freed). With drop_unsent the rest is freed
    and counted as dropped by reason; otherwise pkts[ret:n] stay with the caller."""
    cdef dv_txq_stats *st = &p.stats[q].tx
    cdef uint16_t sent = 0
    cdef uint64_t nbytes
    cdef int vid
    cdef bint not_ready = False
    cdef dv_vq_sync *sync
    cdef dv_capture_q *cap_row = NULL
    cdef rte_mbuf *copies[DV_MAX_BURST]
    if n == 0:
        return 0
    nbytes = _sum_len(pkts, n)
    if p.capture is not NULL:
        # copied before the driver owns them; only the sent ones are kept (unsent ones
        # are sent later, or dropped: not transmitted)
        cap_row = _capture_enter(p, q, DV_DIR_TX)
        if cap_row is not NULL:
            _capture_copy(p.capture, q, DV_DIR_TX, pkts, n, copies)
    if p.kind == DV_KIND_ETHDEV:
        sent = _eth_tx(p, q, pkts, n, st)
    else:
        sync = &p.sync[q]
        dv_store_seq_int(&sync.tx_busy, 1)
        vid = dv_load_seq_int(&p.vid)
        if vid >= 0 and p.vring_enabled[2 * q]:
            sent = _vhost_enqueue(p, vid, q, pkts, n, st)
        else:
            not_ready = True
        dv_store_release_int(&sync.tx_busy, 0)
        if sent:
            # enqueue copied the data: the mbufs are still ours to free
            rte_pktmbuf_free_bulk(pkts, sent)
    if sent < n:
        nbytes -= _sum_len(pkts + sent, n - sent)
        if drop_unsent:
            if not_ready:
                st.not_ready_drops += n - sent
            else:
                st.failure_drops += n - sent
            rte_pktmbuf_free_bulk(pkts + sent, n - sent)
    if cap_row is not NULL:
        _capture_discard(copies + sent, n - sent)
        _capture_commit(p.capture, cap_row, copies, sent)
        _capture_leave(cap_row)
    st.packets += sent
    st.bytes += nbytes
    st.bursts += 1
    return sent


cdef void dv_vhost_quiesce(dv_port *p) noexcept nogil:
    """After p.vid was set to -1: wait until no poller is inside a burst that may
    have read the old vid."""
    cdef uint16_t q
    for q in range(p.n_queues):
        while dv_load_seq_int(&p.sync[q].rx_busy) or dv_load_seq_int(&p.sync[q].tx_busy):
            rte_pause()


cdef uint32_t dv_fill_template(rte_mempool *mp, rte_mbuf **pkts, uint32_t n,
                               const uint8_t *tmpl, uint32_t length) noexcept nogil:
    """Allocate n mbufs holding a copy of tmpl[0:length]; all or nothing: returns n or 0."""
    cdef uint32_t i
    cdef rte_mbuf *m
    if rte_pktmbuf_alloc_bulk(mp, pkts, n) != 0:
        return 0
    for i in range(n):
        m = pkts[i]
        memcpy(dv_mbuf_data(m), tmpl, length)
        m.data_len = <uint16_t>length
        m.pkt_len = length
    return n


cdef uint32_t dv_fill_rows(rte_mempool *mp, rte_mbuf **pkts, uint32_t n, const uint8_t *data,
                           Py_ssize_t row_stride, const uint32_t *lengths,
                           uint32_t fixed_length) noexcept nogil:
    """Allocate n mbufs, mbuf i holding row i of data (lengths[i] bytes, or fixed_length
    when lengths is NULL). All or nothing: returns n or 0."""
    cdef uint32_t i, length
    cdef rte_mbuf *m
    if rte_pktmbuf_alloc_bulk(mp, pkts, n) != 0:
        return 0
    for i in range(n):
        m = pkts[i]
        length = lengths[i] if lengths is not NULL else fixed_length
        memcpy(dv_mbuf_data(m), data + i * row_stride, length)
        m.data_len = <uint16_t>length
        m.pkt_len = length
    return n


cdef uint32_t dv_copy_out(rte_mbuf **pkts, uint32_t n, uint8_t *out, Py_ssize_t row_stride,
                          uint32_t width, uint32_t *lengths) noexcept nogil:
    """Copy the first `width` bytes of each packet into row i of out (multi-segment
    packets are gathered); store full packet lengths when lengths is not NULL."""
    cdef uint32_t i, k
    cdef rte_mbuf *m
    cdef const void *src
    for i in range(n):
        m = pkts[i]
        k = m.pkt_len if m.pkt_len < width else width
        src = rte_pktmbuf_read(m, 0, k, out + i * row_stride)
        if src != <const void *>(out + i * row_stride):
            memcpy(out + i * row_stride, src, k)
        if lengths is not NULL:
            lengths[i] = m.pkt_len
    return n


cdef void dv_lengths(rte_mbuf **pkts, uint32_t n, uint32_t *out) noexcept nogil:
    cdef uint32_t i
    for i in range(n):
        out[i] = pkts[i].pkt_len


# ---- field engine -----------------------------------------------------------------------

cdef inline uint64_t _rng_next(uint64_t *state) noexcept nogil:
    # xorshift64*: fast, good enough to spread flows
    cdef uint64_t x = state[0]
    x ^= x >> 12
    x ^= x << 25
    x ^= x >> 27
    state[0] = x
    return x * <uint64_t>0x2545F4914F6CDD1D


cdef inline uint32_t _next_value(uint8_t op, uint32_t lo, uint32_t hi, uint32_t step,
                                 uint32_t *cur, uint64_t *rng) noexcept nogil:
    """The value for this packet; advances *cur (inc/dec wrap within [lo, hi])."""
    cdef uint32_t v = cur[0]
    if op == DV_OP_RANDOM:
        return lo + <uint32_t>(_rng_next(rng) % (<uint64_t>hi - lo + 1))
    if op == DV_OP_INC:
        cur[0] = lo if (v > hi or hi - v < step) else v + step
    else:
        cur[0] = hi if (v < lo or v - lo < step) else v - step
    return v


cdef inline uint32_t _load16(const uint8_t *p) noexcept nogil:
    return (<uint32_t>p[0] << 8) | p[1]


cdef inline void _store16(uint8_t *p, uint32_t v) noexcept nogil:
    p[0] = <uint8_t>(v >> 8)
    p[1] = <uint8_t>v


cdef inline uint32_t _fold(uint32_t c) noexcept nogil:
    while c >> 16:
        c = (c & 0xFFFF) + (c >> 16)
    return c


cdef inline uint32_t _sum16(const uint8_t *p, uint32_t length) noexcept nogil:
    cdef uint32_t total = 0, i = 0
    while i + 1 < length:
        total += _load16(p + i)
        i += 2
    if i < length:
        total += <uint32_t>p[i] << 8
    return total


cdef inline void _apply_delta(uint8_t *csum_field, uint32_t delta, bint udp) noexcept nogil:
    # RFC 1624: HC' = ~(~HC + sum(~m + m'))
    cdef uint32_t c = (~_load16(csum_field)) & 0xFFFF
    c = _fold(c + delta)
    c = (~c) & 0xFFFF
    if udp and c == 0:
        c = 0xFFFF
    _store16(csum_field, c)


cdef enum:
    _ETH = 14
    _IP_CSUM = 14 + 10
    _UDP = 14 + 20
    _UDP_CSUM = 14 + 20 + 6


cdef void _full_checksums(dv_gen *g, uint8_t *p, uint32_t length) noexcept nogil:
    """Recompute IPv4 lengths and checksums after the packet size changed."""
    cdef uint32_t c, ulen
    _store16(p + _ETH + 2, length - _ETH)
    ulen = length - _UDP
    _store16(p + _UDP + 4, ulen)
    if g.fix_ip:
        _store16(p + _IP_CSUM, 0)
        _store16(p + _IP_CSUM, (~_fold(_sum16(p + _ETH, 20))) & 0xFFFF)
    if g.fix_udp and _load16(p + _UDP_CSUM) != 0:
        _store16(p + _UDP_CSUM, 0)
        c = _sum16(p + _ETH + 12, 8) + 17 + ulen + _sum16(p + _UDP, ulen)
        c = (~_fold(c)) & 0xFFFF
        _store16(p + _UDP_CSUM, c if c else 0xFFFF)


cdef void _apply_fields(dv_gen *g, uint8_t *p, uint32_t length, bint sized) noexcept nogil:
    cdef uint32_t d_ip = 0, d_udp = 0, d, val, i, w, start, end
    cdef uint32_t old_words[3]
    cdef dv_fvar *v
    for i in range(g.n_vars):
        v = &g.vars[i]
        if v.offset + v.size > length:
            continue
        val = _next_value(v.op, v.min, v.max, v.step, &v.cur, &g.rng)
        start = v.offset & ~1u
        end = (v.offset + v.size + 1) & ~1u
        w = 0
        while start + 2 * w < end:
            old_words[w] = _load16(p + start + 2 * w)
            w += 1
        if v.size == 1:
            p[v.offset] = <uint8_t>val
        elif v.size == 2:
            _store16(p + v.offset, val)
        else:
            _store16(p + v.offset, val >> 16)
            _store16(p + v.offset + 2, val)
        d = 0
        w = 0
        while start + 2 * w < end:
            d += ((~old_words[w]) & 0xFFFF) + _load16(p + start + 2 * w)
            w += 1
        if v.in_ip:
            d_ip += d
        if v.in_udp:
            d_udp += d
    if sized:
        _full_checksums(g, p, length)
        return
    if g.fix_ip and d_ip:
        _apply_delta(p + _IP_CSUM, d_ip, False)
    if g.fix_udp and d_udp and _load16(p + _UDP_CSUM) != 0:
        _apply_delta(p + _UDP_CSUM, d_udp, True)


cdef uint16_t dv_gen_build(dv_gen *g, rte_mbuf **pkts, uint16_t n) noexcept nogil:
    """Allocate and fill n packets from the generator's templates and field engine.
    All or nothing: returns n or 0 (mempool empty)."""
    cdef uint16_t i
    cdef uint32_t t, length
    cdef rte_mbuf *m
    cdef uint8_t *data
    cdef bint sized = g.size_op >= 0
    cdef bint measured = g.flow_id >= 0
    cdef uint64_t tsc = 0, seq = g.seq_next
    cdef uint32_t tsc_sum = 0, csum
    if rte_pktmbuf_alloc_bulk(g.mp, pkts, n) != 0:
        return 0
    if measured:
        # one TSC read per burst, after the allocation, right before the copies
        tsc = rte_rdtsc()
        tsc_sum = _chunks16(tsc)
        g.seq_next = seq + n
    if g.n_tmpl == 1 and g.n_vars == 0 and not sized:
        length = g.tmpl_len[0]
        csum = _load16(g.tmpl_data + _UDP_CSUM) if measured else 0
        for i in range(n):
            m = pkts[i]
            data = <uint8_t *>dv_mbuf_data(m)
            rte_memcpy(data, g.tmpl_data, length)
            m.data_len = <uint16_t>length
            m.pkt_len = length
            if measured:
                _stamp(data, seq + i, tsc, tsc_sum, csum)
        return n
    for i in range(n):
        m = pkts[i]
        t = g.next_tmpl
        g.next_tmpl = t + 1 if t + 1 < g.n_tmpl else 0
        length = g.tmpl_len[t]
        if sized:
            length = _next_size(g)
        data = <uint8_t *>dv_mbuf_data(m)
        rte_memcpy(data, g.tmpl_data + g.tmpl_off[t], length)
        m.data_len = <uint16_t>length
        m.pkt_len = length
        if g.n_vars or sized:
            _apply_fields(g, data, length, sized)
        if measured:
            _stamp(data, seq + i, tsc, tsc_sum, _load16(data + _UDP_CSUM))
    return n


cdef inline uint32_t _next_size(dv_gen *g) noexcept nogil:
    cdef uint32_t cur = g.size_cur
    cdef uint32_t v = _next_value(<uint8_t>g.size_op, g.size_min, g.size_max, g.size_step,
                                  &cur, &g.rng)
    g.size_cur = <uint16_t>cur
    return v


# ---- PMD loop ---------------------------------------------------------------------------

cdef inline uint16_t _timed_due(dv_gen *g, uint16_t want, uint64_t now) noexcept nogil:
    """Timed replay: how many packets from due_next on are due by now (at most want)."""
    cdef uint16_t k = 0
    cdef uint32_t i = g.due_next
    cdef uint64_t start = g.pass_start_tsc
    while k < want and start + g.due_tsc[i] <= now:
        k += 1
        i += 1
        if i == g.n_tmpl:
            i = 0
            start += g.loop_tsc
    return k


cdef inline void _timed_consume(dv_gen *g, uint16_t n) noexcept nogil:
    cdef uint16_t _k
    for _k in range(n):
        g.due_next += 1
        if g.due_next == g.n_tmpl:
            g.due_next = 0
            g.pass_start_tsc += g.loop_tsc


cdef uint16_t _engine_generator(dv_poll *pl, rte_mbuf **pkts, uint16_t burst,
                                uint64_t now, dv_pmd_stats *st) noexcept nogil:
    """Build packets from the templates (field/size variables, pacing, limits), send them
    on (port, queue)."""
    cdef dv_gen *g = pl.gen
    cdef uint16_t want = burst, n
    cdef uint64_t remaining
    cdef double cap
    if g.done or g.paused:
        g.last_tsc = now                 # (a resumed generator starts afresh, no catch-up)
        return 0
    if not g.started:
        g.started = 1
        g.pass_start_tsc = now
        g.last_tsc = now
        g.next_burst_tsc = now
        g.in_burst_left = 0
        g.deadline_tsc = now + g.duration_tsc if g.duration_tsc else 0
    if g.deadline_tsc and now >= g.deadline_tsc:
        g.done = 1
        return 0
    if g.burst_pkts:
        if g.in_burst_left == 0:
            if g.n_bursts and g.bursts_done >= g.n_bursts:
                g.done = 1
                return 0
            if now < g.next_burst_tsc:
                g.last_tsc = now
                return 0
            g.in_burst_left = g.burst_pkts
        if want > g.in_burst_left:
            want = <uint16_t>g.in_burst_left
    if g.count_limit:
        remaining = g.count_limit - g.built - g.nombuf
        if remaining == 0:
            g.done = 1
            return 0
        if want > remaining:
            want = <uint16_t>remaining
    if g.due_tsc is not NULL:
        want = _timed_due(g, want, now)
        if want == 0:
            return 0
    elif g.pkts_per_tsc > 0:
        g.tokens += <double>(now - g.last_tsc) * g.pkts_per_tsc
        g.last_tsc = now
        # a poll that came late (the lcore preempted, a slow tx) is made up for, up to
        # DV_GEN_CATCHUP_NS of packets: the average rate holds through host jitter
        cap = g.pkts_per_tsc * g.catchup_tsc
        if cap < burst:
            cap = burst if burst > 1 else 1
        if g.tokens > cap:
            g.tokens = cap
        if g.tokens < 1.0:
            return 0
        if want > <uint16_t>g.tokens:
            want = <uint16_t>g.tokens
        g.tokens -= want
    n = dv_gen_build(g, pkts, want)
    if g.due_tsc is not NULL:
        _timed_consume(g, want)
        if n == 0:
            # due and not buildable: the schedule moves on, the packets are counted lost
            g.next_tmpl = <uint32_t>((g.next_tmpl + want) % g.n_tmpl)
            g.nombuf += want
            pl.port.stats[pl.queue].tx.nombuf_drops += want
            _after_sent(g, want, now)
            return 0
    if n == 0:
        if g.pkts_per_tsc > 0:
            # due now and not buildable: the schedule moves on, the packets are counted lost
            g.nombuf += want
            pl.port.stats[pl.queue].tx.nombuf_drops += want
            _after_sent(g, want, now)
        return 0
    if DV_INJECT_BUSY_CYCLES != 0:           # a calibration build only (perf calibrate):
        dv_spin_cycles(<uint64_t>DV_INJECT_BUSY_CYCLES * n)     # per packet handled, as rx
    dv_port_tx(pl.port, pl.queue, pkts, n, True)
    g.built += n
    st.tx_packets += n
    _after_sent(g, n, now)
    return n


cdef inline uint32_t _chunks16(uint64_t v) noexcept nogil:
    """One's-complement sum of the four 16-bit chunks of v, folded to 16 bits."""
    cdef uint32_t s = <uint32_t>(v & 0xFFFF) + <uint32_t>((v >> 16) & 0xFFFF) \
        + <uint32_t>((v >> 32) & 0xFFFF) + <uint32_t>(v >> 48)
    s = (s & 0xFFFF) + (s >> 16)
    return (s & 0xFFFF) + (s >> 16)


cdef inline void _stamp(uint8_t *p, uint64_t seq, uint64_t tsc, uint32_t tsc_sum,
                        uint32_t csum) noexcept nogil:
    """Write sequence number and TSC into a packet's marker (bytes 48..63, zero in the
    template); ``csum`` is the packet's UDP checksum before (0: none, left so). RFC 1624:
    the old words were zero, so the delta is the sum of the new ones, summed here as
    little-endian chunks and byte-swapped once (RFC 1071's byte-order independence)."""
    cdef uint32_t d
    dv_store_le64(p + DV_MARK_OFFSET + 6, seq)
    dv_store_le64(p + DV_MARK_OFFSET + 14, tsc)
    if csum != 0:
        d = tsc_sum + _chunks16(seq)
        d = (d & 0xFFFF) + (d >> 16)
        d = ((~csum) & 0xFFFF) + (((d & 0xFF) << 8) | (d >> 8))
        d = (~((d & 0xFFFF) + (d >> 16))) & 0xFFFF
        dv_store_be16(p + _UDP_CSUM, <uint16_t>(d if d else 0xFFFF))


cdef inline uint32_t _lat_bucket(uint64_t ns) noexcept nogil:
    """Log-linear bucket of a latency: exact below 128 ns, then 64 buckets per power of
    two (bucket i >= 128 covers [(i % 64 + 64) << s, ... + 2**s) with s = i // 64 - 1)."""
    cdef uint32_t shift, i
    if ns < 2 * DV_LAT_SUB:
        return <uint32_t>ns
    shift = <uint32_t>dv_msb64(ns) - 6
    i = shift * DV_LAT_SUB + <uint32_t>(ns >> shift)
    return i if i < DV_LAT_BUCKETS else DV_LAT_BUCKETS - 1


cdef uint64_t DV_EPOCH_RESYNC = 0xFFFFFFFFFFFFFFFF    # dv_flow.epoch_seq after a reset


cdef inline void _forget_seqs(dv_flow *f, uint64_t first, uint64_t end) noexcept nogil:
    """Mark sequence numbers first..end-1 unseen in the window (they were skipped)."""
    if end - first >= DV_SEQ_WINDOW:
        memset(f.window, 0, sizeof(f.window))
        return
    while first < end:
        f.window[(first >> 6) & 15] &= ~((<uint64_t>1) << (first & 63))
        first += 1


cdef inline bint _track_seq(dv_flow *f, uint64_t seq) noexcept nogil:
    """Sequence bookkeeping of one measured packet; False when it is not new (duplicate,
    or older than the window)."""
    cdef uint64_t *word = &f.window[(seq >> 6) & 15]
    cdef uint64_t bit = (<uint64_t>1) << (seq & 63)
    if f.epoch_seq == DV_EPOCH_RESYNC:
        f.next_seq = seq
        f.epoch_seq = seq
        memset(f.window, 0, sizeof(f.window))
    if seq >= f.next_seq:
        if seq > f.next_seq:
            f.lost += seq - f.next_seq
            _forget_seqs(f, f.next_seq, seq)
        word[0] |= bit
        f.next_seq = seq + 1
        return True
    if f.next_seq - seq > DV_SEQ_WINDOW:
        f.stale += 1
        return False
    if word[0] & bit:
        f.duplicates += 1
        return False
    if seq < f.epoch_seq:
        # sent before the reset: never counted lost in this epoch, so it fills no gap
        f.stale += 1
        return False
    word[0] |= bit
    f.out_of_order += 1
    f.lost -= 1
    return True


cdef inline uint64_t _ticks_to_ns(const dv_flow_table *t, uint64_t ticks) noexcept nogil:
    # integer multiply-shift below 2**32 ticks (the common case), else a signed double
    # conversion (an unsigned one costs a branch sequence on x86-64)
    if (ticks >> 32) == 0 and t.ns_mult:
        return (ticks * t.ns_mult) >> 32
    return <uint64_t>(<int64_t>(<double>(<int64_t>ticks) * t.ns_per_tsc))


cdef uint64_t dv_ticks_to_ns(const dv_flow_table *t, uint64_t ticks) noexcept nogil:
    """TSC ticks to ns exactly as the accounting does (for the control side and tests)."""
    return _ticks_to_ns(t, ticks)


cdef inline void _mark_seen(dv_flow *f, uint64_t first, uint64_t end) noexcept nogil:
    """Mark sequence numbers first..end-1 seen in the window, a word at a time."""
    cdef uint64_t lo, width, mask
    if end - first >= DV_SEQ_WINDOW:
        first = end - DV_SEQ_WINDOW
    while first < end:
        lo = first & 63
        width = 64 - lo if end - first >= 64 - lo else end - first
        mask = (<uint64_t>-1) if width == 64 else (((<uint64_t>1) << width) - 1) << lo
        f.window[(first >> 6) & 15] |= mask
        first += width


cdef inline uint64_t _account_one(dv_flow_table *t, dv_flow *f, uint32_t fid, uint64_t tx,
                                  uint64_t now, uint32_t length) noexcept nogil:
    """Latency, histogram and counters of one new measured packet; returns its latency."""
    cdef uint64_t lat, diff
    if now >= tx:
        lat = _ticks_to_ns(t, now - tx)
    else:
        lat = 0
        f.clock_errors += 1
    if f.received == 0:
        f.lat_min_ns = lat
        f.first_rx_tsc = now
    else:
        # RFC 3550 6.4.1: J += (|D| - J) / 16, kept as 16 * J
        diff = lat - f.last_lat_ns if lat >= f.last_lat_ns else f.last_lat_ns - lat
        f.jitter_ns16 += diff - (f.jitter_ns16 >> 4)
        if lat < f.lat_min_ns:
            f.lat_min_ns = lat
    if lat > f.lat_max_ns:
        f.lat_max_ns = lat
    f.received += 1
    f.bytes += length
    f.lat_sum_ns += lat
    f.last_lat_ns = lat
    f.last_rx_tsc = now
    t.hist[<uint64_t>fid * DV_LAT_BUCKETS + _lat_bucket(lat)] += 1
    return lat


cdef inline void _extend(dv_flow_table *t, dv_flow *f, uint32_t fid, uint64_t lat,
                         uint64_t k, uint64_t k_bytes, uint64_t first, uint64_t end,
                         uint64_t tx, uint64_t now) noexcept nogil:
    """Account k more packets that followed a packet of the same flow in order (sequence
    numbers first..end-1) with the same sender TSC: same latency, so D = 0 for each."""
    f.received += k
    f.bytes += k_bytes
    f.lat_sum_ns += k * lat
    while k:
        f.jitter_ns16 -= f.jitter_ns16 >> 4
        k -= 1
    if now < tx:
        f.clock_errors += end - first
    _mark_seen(f, first, end)
    f.next_seq = end
    t.hist[<uint64_t>fid * DV_LAT_BUCKETS + _lat_bucket(lat)] += end - first


cdef void dv_flows_account(dv_flow_table *t, rte_mbuf **pkts, uint32_t n,
                           uint64_t now) noexcept nogil:
    """Per-flow accounting of the measured packets in pkts[0:n], received at TSC ``now``
    (packets are not modified). Also carries out a reset the control side asked for.
    Packets that continue a run (same flow, next sequence number, the same sender TSC:
    one sender burst) are counted together, so each costs a header check and a few
    compares; any other packet takes the full path."""
    cdef uint64_t req = dv_load_acquire_u64(&t.reset_req)
    cdef uint32_t i, fid, run_fid = 0
    cdef uint64_t seq, tx, run_tx = 0, run_next = 0, run_first = 0, run_lat = 0
    cdef uint64_t k = 0, k_bytes = 0
    cdef uint8_t *p
    cdef rte_mbuf *m
    cdef dv_flow *f
    cdef dv_flow *run_f = NULL
    if req != t.reset_ack:
        memset(t.flows, 0, t.n_flows * sizeof(dv_flow))
        memset(t.hist, 0, t.n_flows * DV_LAT_BUCKETS * sizeof(uint64_t))
        for fid in range(t.n_flows):
            t.flows[fid].epoch_seq = DV_EPOCH_RESYNC
        t.unknown_flow = 0
        t.unmeasured = 0
        dv_store_release_u64(&t.reset_ack, req)
    for i in range(n):
        m = pkts[i]
        p = <uint8_t *>dv_mbuf_data(m)
        if m.data_len < DV_MARK_MIN_FRAME or dv_load_le32(p + DV_MARK_OFFSET) != DV_MARK_MAGIC:
            t.unmeasured += 1
            continue
        fid = _load16(p + DV_MARK_OFFSET + 4)
        seq = dv_load_le64(p + DV_MARK_OFFSET + 6)
        tx = dv_load_le64(p + DV_MARK_OFFSET + 14)
        if run_f is not NULL:
            # magic, flow, next sequence number and sender TSC match the run: the headers
            # were checked on the run's first packet
            if fid == run_fid and seq == run_next and tx == run_tx:
                k += 1
                k_bytes += m.pkt_len
                run_next += 1
                continue
            if k:
                _extend(t, run_f, run_fid, run_lat, k, k_bytes, run_first, run_next, run_tx, now)
            run_f = NULL
        if _load16(p + 12) != 0x0800 or p[14] != 0x45 or p[23] != 17:
            t.unmeasured += 1
            continue
        if fid >= t.n_flows:
            t.unknown_flow += 1
            continue
        f = &t.flows[fid]
        if not _track_seq(f, seq):
            continue
        run_lat = _account_one(t, f, fid, tx, now, m.pkt_len)
        if f.next_seq == seq + 1:                 # the highest so far: a run may follow
            run_f, run_fid, run_tx = f, fid, tx
            run_first = run_next = seq + 1
            k = k_bytes = 0
    if run_f is not NULL and k:
        _extend(t, run_f, run_fid, run_lat, k, k_bytes, run_first, run_next, run_tx, now)


cdef inline void _after_sent(dv_gen *g, uint16_t n, uint64_t now) noexcept nogil:
    if g.burst_pkts:
        g.in_burst_left -= n if n <= g.in_burst_left else g.in_burst_left
        if g.in_burst_left == 0:
            g.bursts_done += 1
            g.next_burst_tsc = now + g.ibg_tsc
    if g.count_limit and g.built + g.nombuf >= g.count_limit:
        g.done = 1


cdef inline void _macswap(rte_mbuf **pkts, uint16_t n) noexcept nogil:
    cdef uint16_t i
    cdef uint8_t *p
    cdef uint8_t tmp[6]
    for i in range(n):
        p = <uint8_t *>dv_mbuf_data(pkts[i])
        memcpy(tmp, p, 6)
        memcpy(p, p + 6, 6)
        memcpy(p + 6, tmp, 6)


cdef uint16_t _engine_rxonly(dv_poll *pl, rte_mbuf **pkts, uint16_t burst, uint64_t now,
                             dv_pmd_stats *st) noexcept nogil:
    """Count and free."""
    cdef uint16_t n = dv_port_rx(pl.port, pl.queue, pkts, burst)
    if pl.flows is not NULL:
        dv_flows_account(pl.flows, pkts, n, rte_rdtsc())
    if n:
        st.rx_packets += n
        rte_pktmbuf_free_bulk(pkts, n)
    return n


cdef inline uint16_t _forward(dv_poll *pl, rte_mbuf **pkts, uint16_t burst,
                             dv_pmd_stats *st, bint swap_macs) noexcept nogil:
    cdef uint16_t n = dv_port_rx(pl.port, pl.queue, pkts, burst)
    if pl.flows is not NULL:
        dv_flows_account(pl.flows, pkts, n, rte_rdtsc())
    if n:
        st.rx_packets += n
        if swap_macs:
            _macswap(pkts, n)
        st.tx_packets += dv_port_tx(pl.out_port, pl.out_queue, pkts, n, True)
    return n


cdef uint16_t _engine_io(dv_poll *pl, rte_mbuf **pkts, uint16_t burst, uint64_t now,
                         dv_pmd_stats *st) noexcept nogil:
    """Forward to (out_port, out_queue) unchanged."""
    return _forward(pl, pkts, burst, st, False)


cdef uint16_t _engine_macswap(dv_poll *pl, rte_mbuf **pkts, uint16_t burst, uint64_t now,
                              dv_pmd_stats *st) noexcept nogil:
    """Swap the Ethernet addresses, send to (out_port, out_queue)."""
    return _forward(pl, pkts, burst, st, True)


ctypedef uint16_t (*dv_engine_fn)(dv_poll *pl, rte_mbuf **pkts, uint16_t burst, uint64_t now,
                                  dv_pmd_stats *st) noexcept nogil

cdef struct dv_engine:
    const char *name
    dv_engine_fn poll             # one poll; returns the packets it moved
    int uses                      # DV_USES_* / DV_OUT_DEFAULTS_TO_IN flags

# The engine table: the one place engines are named (Python reads ENGINES below).
# How to add an engine:
#   1. write ``cdef uint16_t _engine_<name>(dv_poll *pl, rte_mbuf **pkts, uint16_t burst,
#      uint64_t now, dv_pmd_stats *st) noexcept nogil`` above: poll pl.port/pl.queue (or
#      build packets), send, count into ``st``, return the packets moved;
#   2. add ``DV_ENGINE_<NAME>`` to dv_engine_id in datapath.pxd (before DV_N_ENGINES);
#   3. add its row below: name, function, and the DV_USES_* flags of what it touches.
# Python then offers it (dv.ENGINES, Pmd.add_rxq(action=<name>) when it uses an rx queue),
# claims its queues by the flags, and the PMD loop calls it; nothing else names it.
cdef dv_engine DV_ENGINES[DV_N_ENGINES]
DV_ENGINES[<int>DV_ENGINE_RXONLY] = dv_engine(b"rxonly", _engine_rxonly, DV_USES_RX)
DV_ENGINES[<int>DV_ENGINE_IO] = dv_engine(b"io", _engine_io, DV_USES_RX | DV_USES_TX_OUT)
DV_ENGINES[<int>DV_ENGINE_MACSWAP] = dv_engine(
    b"macswap", _engine_macswap, DV_USES_RX | DV_USES_TX_OUT | DV_OUT_DEFAULTS_TO_IN)
DV_ENGINES[<int>DV_ENGINE_GENERATOR] = dv_engine(
    b"generator", _engine_generator, DV_USES_TX_OWN | DV_USES_GEN)

ENGINES = {DV_ENGINES[i].name.decode(): (i, DV_ENGINES[i].uses) for i in range(DV_N_ENGINES)}
USES_RX = DV_USES_RX
USES_TX_OUT = DV_USES_TX_OUT
USES_TX_OWN = DV_USES_TX_OWN
OUT_DEFAULTS_TO_IN = DV_OUT_DEFAULTS_TO_IN
USES_GEN = DV_USES_GEN


cdef uint32_t _idle_sleep(dv_pmd_ctx *ctx, dv_pmd_stats *st, uint32_t sleep_us) noexcept nogil:
    """Load-based sleep (OVS pmd-sleep-max semantics): after an idle round, sleep
    ``sleep_us`` (grown by 1 us per idle round up to sleep_max_us); returns the next step."""
    cdef timespec ts
    cdef uint64_t t0, ns
    ts.tv_sec = 0
    ts.tv_nsec = <long>sleep_us * 1000
    t0 = rte_rdtsc()
    nanosleep(&ts, NULL)
    ns = (rte_rdtsc() - t0) * 1000000000 // ctx.tsc_hz if ctx.tsc_hz else 0
    st.sleeps += 1
    st.slept_ns += ns
    if ns > st.sleep_max_ns:
        st.sleep_max_ns = ns
    if sleep_us < ctx.sleep_max_us:
        sleep_us += 1
    return sleep_us


cdef inline void _watch(int epoll_fd, int fd) noexcept nogil:
    # edge-triggered, never read: the fd is the vhost library's or the driver's, and may
    # be closed and its number reused (EEXIST when already watched: kept)
    cdef epoll_event ev
    if fd >= 0:
        ev.events = EPOLLIN | EPOLLET
        ev.data.u64 = 1
        epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev)


cdef bint _notify(dv_plan *plan, int epoll_fd, bint enable) noexcept nogil:
    """Enable (or disable) notifications on every rx queue of the plan that has them:
    vhost-user queues (the guest's kick: rte_vhost_enable_guest_notification, the vring's
    kick eventfd) and ethdev queues opened with Rx interrupts (rte_eth_dev_rx_intr_*, the
    queue's interrupt eventfd — virtio-user's is the vring's call eventfd). Enabling
    registers those eventfds with the PMD's epoll set and returns True when a vhost ring
    already holds packets. Each vhost queue is marked busy around it, so destroy_device
    waits for us; DPDK calls destroy_device without holding the vring locks these
    functions take."""
    cdef uint32_t i
    cdef dv_poll *pl
    cdef dv_port *p
    cdef dv_vq_sync *sync
    cdef int vid
    cdef uint16_t vring
    cdef rte_vhost_vring vr
    cdef bint pending = False
    for i in range(plan.n_polls):
        pl = &plan.polls[i]
        p = pl.port
        if not (DV_ENGINES[pl.engine].uses & DV_USES_RX):
            continue
        if p.kind != DV_KIND_VHOST:
            if p.rx_intr:
                if enable:
                    rte_eth_dev_rx_intr_enable(p.port_id, pl.queue)
                    _watch(epoll_fd, rte_eth_dev_rx_intr_ctl_q_get_fd(p.port_id, pl.queue))
                else:
                    rte_eth_dev_rx_intr_disable(p.port_id, pl.queue)
            continue
        vring = 2 * pl.queue + 1
        sync = &p.sync[pl.queue]
        dv_store_seq_int(&sync.rx_busy, 1)
        vid = dv_load_seq_int(&p.vid)
        if vid >= 0 and p.vring_enabled[vring]:
            rte_vhost_enable_guest_notification(vid, vring, 1 if enable else 0)
            if enable:
                dv_full_fence()
                if rte_vhost_rx_queue_count(vid, vring) > 0:
                    pending = True
                if rte_vhost_get_vhost_vring(vid, vring, &vr) == 0:
                    _watch(epoll_fd, vr.kickfd)
        dv_store_release_int(&sync.rx_busy, 0)
    return pending


# One eventfd for the process, never read: a vhost-user device coming up or a vring being
# enabled writes it, and every PMD's epoll set watches it edge-triggered, so a PMD waiting
# with notifications armed before that kick eventfd existed ends its wait and re-arms with
# the new one (otherwise the guest's first kicks go unheard until the wait times out).
cdef int g_devices_changed_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)


cdef int dv_devices_changed_fd() noexcept nogil:
    return g_devices_changed_fd


cdef void dv_devices_changed() noexcept nogil:
    """Called by the vhost event thread (new_device, a vring enabled): end every
    interrupt-mode wait now."""
    cdef uint64_t one = 1
    if g_devices_changed_fd >= 0:
        write(g_devices_changed_fd, &one, 8)


cdef bint _wait_for_kick(dv_pmd_ctx *ctx, dv_pmd_stats *st) noexcept nogil:
    """Interrupt mode, notifications armed and a full round since then empty: sleep in
    epoll until a queue's notification fires, the control side writes wake_fd, a device
    changes (dv_devices_changed) or intr_timeout_ms passes. True when an event woke it."""
    cdef epoll_event evs[8]
    cdef int n = 0, k
    cdef uint64_t junk
    if not dv_load_acquire_int(&ctx.stop) and ctx.mode == DV_MODE_INTERRUPT:
        # arms == wakeups + timeouts except while the PMD is inside this wait
        st.intr_arms += 1
        n = epoll_wait(ctx.epoll_fd, evs, 8, ctx.intr_timeout_ms)
        if n <= 0:
            st.intr_timeouts += 1
        else:
            st.intr_wakeups += 1
            for k in range(n):
                if evs[k].data.u64 == 0:                   # our wake_fd: drain it
                    read(ctx.wake_fd, &junk, 8)
    return n > 0


cdef int dv_pmd_main(void *arg) noexcept nogil:
    """The PMD thread: poll every assignment of the current plan, round after round,
    until told to stop. Picks up new plans, burst sizes and CPU moves between rounds."""
    cdef dv_pmd_ctx *ctx = <dv_pmd_ctx *>arg
    cdef dv_pmd_stats *st = ctx.stats
    cdef rte_mbuf *pkts[DV_PMD_MAX_BURST]
    cdef dv_plan *plan
    cdef dv_poll *pl
    cdef uint64_t t_start, t_prev, t_now, moved, round_stall
    cdef uint32_t i
    cdef uint16_t n, burst
    cdef int req
    cdef rte_cpuset_t cs
    cdef bint busy_round
    cdef uint32_t sleep_us = 1, sleep_max, idle_rounds = 0
    cdef bint woke = False, slow
    cdef dv_plan *armed = NULL      # interrupt mode: notifications on for this plan
    # the kernel may delay a timed sleep by the thread's timer slack (50 us by default):
    # 1 us, so that a pmd-sleep-max sleep lasts what it asks for (as OVS does)
    prctl(PR_SET_TIMERSLACK, 1000, 0, 0, 0)
    st.cpu = <uint64_t>sched_getcpu()      # the lcore is pinned to one CPU
    t_prev = rte_rdtsc()
    while not dv_load_acquire_int(&ctx.stop):
        slow = False
        plan = <dv_plan *>dv_load_acquire_ptr(<void **>&ctx.plan)
        if armed is not NULL and armed != plan:
            # a new plan: disarm the old one before acknowledging (control frees it then)
            _notify(armed, ctx.epoll_fd, False)
            armed = NULL
            t_prev = rte_rdtsc()
        burst = ctx.burst_size
        if burst == 0 or burst > DV_PMD_MAX_BURST:
            burst = 32
        # The clock runs on from the last poll's reading: one rdtsc per poll (about 30
        # cycles on these CPUs), and the bookkeeping between rounds counts to the next
        # round. After anything slow (a sleep, a wait, a syscall) it is read afresh.
        t_start = t_prev
        moved = 0
        round_stall = 0
        busy_round = False
        if plan is not NULL:
            for i in range(plan.n_polls):
                pl = &plan.polls[i]
                n = DV_ENGINES[pl.engine].poll(pl, pkts, burst, t_prev, st)
                t_now = rte_rdtsc()
                if t_now - t_prev >= ctx.stall_tsc:
                    # the kernel or the hypervisor ran something else meanwhile: every
                    # packet in flight waited this long
                    st.stalls += 1
                    st.stall_cycles += t_now - t_prev
                    round_stall += t_now - t_prev
                    if t_now - t_prev > st.stall_max_cycles:
                        st.stall_max_cycles = t_now - t_prev
                pl.pst.cycles += t_now - t_prev
                pl.pst.packets += n
                pl.pst.polls += 1
                t_prev = t_now
                st.hist[n if n < DV_HIST_BINS else DV_HIST_BINS - 1] += 1
                moved += n
                # a busy poll, or a generator with work to do, keeps the PMD awake
                if n >= ctx.sleep_thresh or (pl.gen is not NULL and not pl.gen.done
                                             and not pl.gen.paused):
                    busy_round = True
        if plan is NULL or plan.n_polls == 0:
            t_prev = rte_rdtsc()
        st.iterations += 1
        if moved:
            st.busy_cycles += t_prev - t_start
            st.stall_busy_cycles += round_stall
        else:
            st.idle_cycles += t_prev - t_start
            st.empty_iterations += 1
        if plan is not NULL:
            st.plan_epoch = plan.epoch
            dv_store_release_u64(&ctx.ack_epoch, plan.epoch)
        if woke:
            woke = False
            if not moved:
                st.intr_spurious += 1
        if ctx.mode == DV_MODE_INTERRUPT and plan is not NULL:
            slow = True
            # Empty rounds arm the notifications; one more full round polls what came
            # before they were on (the lost wake-up); if it is empty too, wait. Any packet
            # keeps it polling: a wait costs syscalls and, in a VM, the vCPU's wake-up.
            if busy_round or moved:
                idle_rounds = 0
                if armed is not NULL:
                    _notify(armed, ctx.epoll_fd, False)
                    armed = NULL
            elif armed is not NULL:
                woke = _wait_for_kick(ctx, st)
                _notify(armed, ctx.epoll_fd, False)
                armed = NULL
                idle_rounds = 0
            else:
                idle_rounds += 1
                if idle_rounds >= ctx.intr_after_rounds:
                    _notify(plan, ctx.epoll_fd, True)
                    armed = plan
        elif armed is not NULL:
            _notify(armed, ctx.epoll_fd, False)
            armed = NULL
            slow = True
        sleep_max = ctx.sleep_max_us
        if sleep_max and ctx.mode == DV_MODE_POLL:
            if busy_round:
                sleep_us = 1
            else:
                sleep_us = _idle_sleep(ctx, st, sleep_us if sleep_us <= sleep_max else sleep_max)
                slow = True
        req = dv_load_acquire_int(&ctx.cpu_request)
        if req >= 0 and req != ctx.cpu_ack:
            CPU_ZERO(&cs)
            CPU_SET(req, &cs)
            if rte_thread_set_affinity(&cs) == 0:
                st.cpu = <uint64_t>req
            dv_store_release_int(&ctx.cpu_ack, req)
            slow = True
        if slow:
            t_prev = rte_rdtsc()
    if armed is not NULL:
        _notify(armed, ctx.epoll_fd, False)
    dv_store_release_u64(&ctx.ack_epoch, <uint64_t>-1)
    return 0


def pmd_stats_layout():
    """(sizeof(dv_pmd_stats), scalar fields [(name, offset)], hist offset, hist bins)."""
    cdef dv_pmd_stats s
    cdef size_t base = <size_t>&s
    fields = [
        ("iterations", <size_t>&s.iterations - base),
        ("busy_cycles", <size_t>&s.busy_cycles - base),
        ("idle_cycles", <size_t>&s.idle_cycles - base),
        ("empty_iterations", <size_t>&s.empty_iterations - base),
        ("rx_packets", <size_t>&s.rx_packets - base),
        ("tx_packets", <size_t>&s.tx_packets - base),
        ("plan_epoch", <size_t>&s.plan_epoch - base),
        ("cpu", <size_t>&s.cpu - base),
        ("sleeps", <size_t>&s.sleeps - base),
        ("slept_ns", <size_t>&s.slept_ns - base),
        ("sleep_max_ns", <size_t>&s.sleep_max_ns - base),
        ("intr_arms", <size_t>&s.intr_arms - base),
        ("intr_wakeups", <size_t>&s.intr_wakeups - base),
        ("intr_spurious", <size_t>&s.intr_spurious - base),
        ("intr_timeouts", <size_t>&s.intr_timeouts - base),
        ("stalls", <size_t>&s.stalls - base),
        ("stall_cycles", <size_t>&s.stall_cycles - base),
        ("stall_max_cycles", <size_t>&s.stall_max_cycles - base),
        ("stall_busy_cycles", <size_t>&s.stall_busy_cycles - base),
    ]
    return sizeof(dv_pmd_stats), fields, <size_t>&s.hist[0] - base, DV_HIST_BINS


def poll_stats_layout():
    cdef dv_poll_stats s
    cdef size_t base = <size_t>&s
    return sizeof(dv_poll_stats), [("cycles", <size_t>&s.cycles - base),
                                   ("packets", <size_t>&s.packets - base),
                                   ("polls", <size_t>&s.polls - base)]


def queue_stats_layout():
    """(sizeof(dv_queue_stats), [(field name, byte offset), ...]) of the per-queue counter
    row, read from the C struct so the numpy dtype cannot drift from it."""
    cdef dv_queue_stats s
    cdef size_t base = <size_t>&s
    fields = [
        ("rx_packets", <size_t>&s.rx.packets - base),
        ("rx_bytes", <size_t>&s.rx.bytes - base),
        ("rx_bursts", <size_t>&s.rx.bursts - base),
        ("rx_empty_polls", <size_t>&s.rx.empty_polls - base),
        ("rx_not_ready_polls", <size_t>&s.rx.not_ready_polls - base),
        ("rx_malformed_drops", <size_t>&s.rx.malformed_drops - base),
        ("tx_packets", <size_t>&s.tx.packets - base),
        ("tx_bytes", <size_t>&s.tx.bytes - base),
        ("tx_bursts", <size_t>&s.tx.bursts - base),
        ("tx_failure_drops", <size_t>&s.tx.failure_drops - base),
        ("tx_not_ready_drops", <size_t>&s.tx.not_ready_drops - base),
        ("tx_nombuf_drops", <size_t>&s.tx.nombuf_drops - base),
        ("tx_retries", <size_t>&s.tx.retries - base),
    ]
    return sizeof(dv_queue_stats), fields
