# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The generator (L1 data path): what is due in a poll (pacing, multi-burst, limits, the
timed schedule), packets built from templates by the field engine with their checksums
kept right, and the measured-stream marker stamped. dp_hot's generator engine sends
what dv_gen_take built."""
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from dpdkvirtio._dpdk.rte_mbuf cimport rte_mbuf, rte_pktmbuf_alloc_bulk, rte_memcpy
from dpdkvirtio._dpdk.rte_lcore cimport rte_rdtsc
from dpdkvirtio._dpdk.dv_shim cimport dv_mbuf_data, dv_store_le64, dv_store_be16
from dpdkvirtio._core.dp_types cimport (dv_gen, dv_fvar, dv_txq_stats, dv_load16,
    DV_OP_INC, DV_OP_RANDOM, DV_MARK_OFFSET)


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
        total += dv_load16(p + i)
        i += 2
    if i < length:
        total += <uint32_t>p[i] << 8
    return total


cdef inline void _apply_delta(uint8_t *csum_field, uint32_t delta, bint udp) noexcept nogil:
    # RFC 1624: HC' = ~(~HC + sum(~m + m'))
    cdef uint32_t c = (~dv_load16(csum_field)) & 0xFFFF
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
    if g.fix_udp and dv_load16(p + _UDP_CSUM) != 0:
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
            old_words[w] = dv_load16(p + start + 2 * w)
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
            d += ((~old_words[w]) & 0xFFFF) + dv_load16(p + start + 2 * w)
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
    if g.fix_udp and d_udp and dv_load16(p + _UDP_CSUM) != 0:
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
        csum = dv_load16(g.tmpl_data + _UDP_CSUM) if measured else 0
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
            _stamp(data, seq + i, tsc, tsc_sum, dv_load16(data + _UDP_CSUM))
    return n


cdef inline uint32_t _next_size(dv_gen *g) noexcept nogil:
    cdef uint32_t cur = g.size_cur
    cdef uint32_t v = _next_value(<uint8_t>g.size_op, g.size_min, g.size_max, g.size_step,
                                  &cur, &g.rng)
    g.size_cur = <uint16_t>cur
    return v


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


cdef inline void _after_sent(dv_gen *g, uint16_t n, uint64_t now) noexcept nogil:
    if g.burst_pkts:
        g.in_burst_left -= n if n <= g.in_burst_left else g.in_burst_left
        if g.in_burst_left == 0:
            g.bursts_done += 1
            g.next_burst_tsc = now + g.ibg_tsc
    if g.count_limit and g.built + g.nombuf >= g.count_limit:
        g.done = 1


cdef uint16_t dv_gen_take(dv_gen *g, rte_mbuf **pkts, uint16_t burst, uint64_t now,
                          dv_txq_stats *txs) noexcept nogil:
    """Build into pkts the packets due in this poll (pacing, bursts, limits, the timed
    schedule) and return how many; the caller sends them and calls dv_gen_sent. Due
    packets that cannot be built (mempool empty) are counted lost (g.nombuf,
    txs.nombuf_drops) and the schedule moves on."""
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
            txs.nombuf_drops += want
            _after_sent(g, want, now)
            return 0
    if n == 0 and g.pkts_per_tsc > 0:
        # due now and not buildable: the schedule moves on, the packets are counted lost
        g.nombuf += want
        txs.nombuf_drops += want
        _after_sent(g, want, now)
    return n


cdef void dv_gen_sent(dv_gen *g, uint16_t n, uint64_t now) noexcept nogil:
    """After the n packets dv_gen_take built were handed to the port."""
    g.built += n
    _after_sent(g, n, now)
