# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Per-flow accounting of measured packets (L1 data path): sequence numbers (loss,
reordering, duplicates in a 1,024-packet window), latency from the sender's TSC stamp
into a log-linear histogram, and RFC 3550 jitter. Called per rx burst by dp_hot's
engines and by the Python burst API."""
from libc.stdint cimport uint8_t, uint32_t, uint64_t, int64_t
from libc.string cimport memset
from dpdkvirtio._dpdk.rte_mbuf cimport rte_mbuf
from dpdkvirtio._dpdk.dv_shim cimport (dv_mbuf_data, dv_store_release_u64, dv_load_acquire_u64,
    dv_load_le64, dv_load_le32, dv_msb64)
from dpdkvirtio._core.dp_types cimport (dv_flow, dv_flow_table, dv_load16, DV_MARK_OFFSET,
    DV_MARK_MIN_FRAME, DV_MARK_MAGIC, DV_LAT_SUB, DV_LAT_BUCKETS, DV_SEQ_WINDOW)


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
        fid = dv_load16(p + DV_MARK_OFFSET + 4)
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
        if dv_load16(p + 12) != 0x0800 or p[14] != 0x45 or p[23] != 17:
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
