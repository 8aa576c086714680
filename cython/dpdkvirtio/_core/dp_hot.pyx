# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The hot path (L1 data path): port rx and tx (malformed-mbuf drops, vhost retries,
the capture hook), the engine table, and the PMD loop with its sleep and interrupt
modes. Every function is ``noexcept nogil`` and works on C structs prepared by the
control plane; the data path never raises, it counts. Capture copies, the generator
and flow accounting are their own dp_ modules, called once per burst."""
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy
from dpdkvirtio._dpdk.rte_mbuf cimport rte_mbuf, rte_pktmbuf_free, rte_pktmbuf_free_bulk
from dpdkvirtio._dpdk.rte_ethdev cimport (rte_eth_rx_burst, rte_eth_tx_burst,
    rte_eth_dev_rx_intr_enable, rte_eth_dev_rx_intr_disable, rte_eth_dev_rx_intr_ctl_q_get_fd)
from dpdkvirtio._dpdk.rte_vhost cimport (rte_vhost_enqueue_burst, rte_vhost_dequeue_burst,
    rte_vhost_enable_guest_notification, rte_vhost_get_vhost_vring, rte_vhost_rx_queue_count,
    rte_vhost_vring)
from dpdkvirtio._dpdk.posix_extra cimport sched_getcpu
from dpdkvirtio._dpdk.posix_extra cimport (epoll_event, epoll_ctl, epoll_wait, EPOLL_CTL_ADD,
    EPOLLIN, EPOLLET, prctl, PR_SET_TIMERSLACK, eventfd, EFD_NONBLOCK, EFD_CLOEXEC)
from posix.unistd cimport read, write
from dpdkvirtio._dpdk.rte_lcore cimport (rte_pause, rte_rdtsc, rte_cpuset_t, CPU_ZERO, CPU_SET,
    rte_thread_set_affinity)
from posix.time cimport timespec, nanosleep
from dpdkvirtio._dpdk.dv_shim cimport (dv_mbuf_data, dv_load_acquire_int, dv_load_seq_int,
    dv_store_seq_int, dv_store_release_int, dv_load_acquire_ptr, dv_store_release_u64,
    dv_full_fence, DV_INJECT_BUSY_CYCLES, dv_spin_cycles)
from dpdkvirtio._core.dp_types cimport *
from dpdkvirtio._core.dp_capture cimport (dv_capture_enter, dv_capture_leave, dv_capture_copy,
    dv_capture_commit, dv_capture_discard, dv_capture_burst)
from dpdkvirtio._core.dp_gen cimport dv_gen_take, dv_gen_sent
from dpdkvirtio._core.dp_flows cimport dv_flows_account


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
            dv_capture_burst(p, q, DV_DIR_RX, pkts, nb)
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
        cap_row = dv_capture_enter(p, q, DV_DIR_TX)
        if cap_row is not NULL:
            dv_capture_copy(p.capture, q, DV_DIR_TX, pkts, n, copies)
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
        dv_capture_discard(copies + sent, n - sent)
        dv_capture_commit(p.capture, cap_row, copies, sent)
        dv_capture_leave(cap_row)
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


cdef uint16_t _engine_generator(dv_poll *pl, rte_mbuf **pkts, uint16_t burst,
                                uint64_t now, dv_pmd_stats *st) noexcept nogil:
    """Build the packets due (dp_gen: templates, field variables, pacing, limits), send
    them on (port, queue)."""
    cdef uint16_t n = dv_gen_take(pl.gen, pkts, burst, now, &pl.port.stats[pl.queue].tx)
    if n == 0:
        return 0
    if DV_INJECT_BUSY_CYCLES != 0:           # a calibration build only (perf calibrate):
        dv_spin_cycles(<uint64_t>DV_INJECT_BUSY_CYCLES * n)     # per packet handled, as rx
    dv_port_tx(pl.port, pl.queue, pkts, n, True)
    dv_gen_sent(pl.gen, n, now)
    st.tx_packets += n
    return n


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
#   2. add ``DV_ENGINE_<NAME>`` to dv_engine_id in dp_types.pxd (before DV_N_ENGINES);
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
