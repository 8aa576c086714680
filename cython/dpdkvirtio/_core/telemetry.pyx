# cython: language_level=3
"""DPDK telemetry (L1): ``/dpdkvirtio/...`` commands on DPDK's telemetry socket, so that
``dpdk-telemetry.py`` and other telemetry clients read our ports, PMDs and flow tables as
they read ethdevs.

Ports, PMD threads and flow tables add themselves to a registry here when they are made
and leave it before their C structs are freed. The callbacks run on DPDK's telemetry
thread: they take the registry's mutex and read the C counter rows, never Python
objects (no GIL). Counters are read as the data path writes them (aligned 64-bit loads:
a value may be one burst old, never torn).

Commands (``register_commands``, once per process):

    /dpdkvirtio/ports             names of the ports
    /dpdkvirtio/port,NAME         one port: OVS-named counters, drops by reason, per queue
    /dpdkvirtio/pmds              lcores of the PMD threads
    /dpdkvirtio/pmd,LCORE         busy/idle cycles, burst-size histogram, sleep and
                                  interrupt-mode counters
    /dpdkvirtio/flows             names of the flow tables (measured streams)
    /dpdkvirtio/flows,NAME        one table: totals, then per active flow the counters and
                                  latency percentiles (ns)
"""
from libc.stdint cimport uint64_t
from libc.string cimport strncpy, strcmp, memmove
from libc.stdio cimport snprintf
from libc.stdlib cimport strtoul
from libc.errno cimport EINVAL, ENOENT
from dpdkvirtio._dpdk.posix_extra cimport (pthread_mutex_t, pthread_mutex_init,
    pthread_mutex_lock, pthread_mutex_unlock)
from dpdkvirtio._dpdk.rte_telemetry cimport (rte_tel_data, rte_telemetry_register_cmd,
    telemetry_cb, rte_tel_data_start_array, rte_tel_data_start_dict,
    rte_tel_data_add_array_string, rte_tel_data_add_array_int, rte_tel_data_add_array_u64,
    rte_tel_data_add_dict_string, rte_tel_data_add_dict_int, rte_tel_data_add_dict_u64,
    rte_tel_data_add_dict_container, rte_tel_data_alloc, rte_tel_data_free,
    RTE_TEL_STRING_VAL, RTE_TEL_INT_VAL, RTE_TEL_U64_VAL)
from dpdkvirtio._core.dp_types cimport (dv_port, dv_pmd_ctx, dv_pmd_stats, dv_queue_stats,
    dv_flow_table, dv_flow, DV_KIND_VHOST, DV_MODE_INTERRUPT, DV_HIST_BINS, DV_LAT_BUCKETS,
    DV_LAT_SUB)
from dpdkvirtio.errors import ConfigError, DpdkError

cdef enum:
    TEL_MAX_ENTRIES = 256         # of each kind; more are served but not listed
    TEL_NAME_LEN = 64
    TEL_MAX_FLOWS_SHOWN = 200     # active flows of one table in one reply (16 KiB limit)

cdef struct tel_entry:
    void *ptr                     # dv_port, dv_pmd_ctx or dv_flow_table
    unsigned int lcore            # PMDs
    char name[TEL_NAME_LEN]       # ports and flow tables

cdef struct tel_table:
    tel_entry rows[TEL_MAX_ENTRIES]
    int n

cdef pthread_mutex_t g_lock
cdef tel_table g_ports
cdef tel_table g_pmds
cdef tel_table g_flows
cdef bint g_registered = False
pthread_mutex_init(&g_lock, NULL)

COMMANDS = ("/dpdkvirtio/ports", "/dpdkvirtio/port", "/dpdkvirtio/pmds", "/dpdkvirtio/pmd",
            "/dpdkvirtio/flows")


# ---- the registry (called by port.pyx, pmd.pyx, flows.pyx) -------------------------------

cdef void _add(tel_table *t, void *ptr, const char *name, unsigned int lcore) noexcept nogil:
    """Add ``ptr`` (or rename it when it is there already)."""
    cdef int i
    cdef tel_entry *e = NULL
    pthread_mutex_lock(&g_lock)
    for i in range(t.n):
        if t.rows[i].ptr == ptr:
            e = &t.rows[i]
            break
    if e is NULL and t.n < TEL_MAX_ENTRIES:
        e = &t.rows[t.n]
        t.n += 1
    if e is not NULL:
        e.ptr = ptr
        e.lcore = lcore
        strncpy(e.name, name, TEL_NAME_LEN - 1)
        e.name[TEL_NAME_LEN - 1] = 0
    pthread_mutex_unlock(&g_lock)


cdef void _forget(tel_table *t, void *ptr) noexcept nogil:
    """Remove ``ptr``; on return no telemetry callback reads it any more."""
    cdef int i
    pthread_mutex_lock(&g_lock)
    for i in range(t.n):
        if t.rows[i].ptr == ptr:
            memmove(&t.rows[i], &t.rows[i + 1], (t.n - i - 1) * sizeof(tel_entry))
            t.n -= 1
            break
    pthread_mutex_unlock(&g_lock)


cdef void dv_tel_add_port(dv_port *p, const char *name) noexcept nogil:
    _add(&g_ports, p, name, 0)


cdef void dv_tel_forget_port(dv_port *p) noexcept nogil:
    _forget(&g_ports, p)


cdef void dv_tel_add_pmd(dv_pmd_ctx *ctx, unsigned int lcore) noexcept nogil:
    _add(&g_pmds, ctx, "", lcore)


cdef void dv_tel_forget_pmd(dv_pmd_ctx *ctx) noexcept nogil:
    _forget(&g_pmds, ctx)


cdef void dv_tel_add_flows(dv_flow_table *t, const char *name) noexcept nogil:
    _add(&g_flows, t, name, 0)


cdef void dv_tel_forget_flows(dv_flow_table *t) noexcept nogil:
    _forget(&g_flows, t)


cdef bytes dv_tel_name(str value):
    """A telemetry name as bytes; raises ConfigError unless it is 1..63 bytes."""
    cdef bytes b = value.encode()
    if not 1 <= len(b) < TEL_NAME_LEN:
        raise ConfigError(f"a telemetry name is 1..{TEL_NAME_LEN - 1} bytes, got {value!r}")
    return b


# ---- replies (under g_lock) ---------------------------------------------------------------

cdef int _add_child(rte_tel_data *d, const char *name, rte_tel_data *child) noexcept nogil:
    """Hand ``child`` to ``d`` (which frees it after the reply), or free it on failure."""
    if rte_tel_data_add_dict_container(d, name, child, 0) != 0:
        rte_tel_data_free(child)
        return -1
    return 0


cdef void _queue_dict(rte_tel_data *d, const dv_queue_stats *s) noexcept nogil:
    rte_tel_data_start_dict(d)
    rte_tel_data_add_dict_u64(d, "rx_packets", s.rx.packets)
    rte_tel_data_add_dict_u64(d, "rx_bytes", s.rx.bytes)
    rte_tel_data_add_dict_u64(d, "rx_bursts", s.rx.bursts)
    rte_tel_data_add_dict_u64(d, "rx_empty_polls", s.rx.empty_polls)
    rte_tel_data_add_dict_u64(d, "rx_malformed_drops", s.rx.malformed_drops)
    rte_tel_data_add_dict_u64(d, "tx_packets", s.tx.packets)
    rte_tel_data_add_dict_u64(d, "tx_bytes", s.tx.bytes)
    rte_tel_data_add_dict_u64(d, "tx_bursts", s.tx.bursts)
    rte_tel_data_add_dict_u64(d, "tx_failure_drops", s.tx.failure_drops)
    rte_tel_data_add_dict_u64(d, "tx_not_ready_drops", s.tx.not_ready_drops)
    rte_tel_data_add_dict_u64(d, "tx_nombuf_drops", s.tx.nombuf_drops)
    rte_tel_data_add_dict_u64(d, "tx_retries", s.tx.retries)


cdef int _port_reply(const tel_entry *e, rte_tel_data *d) noexcept nogil:
    """The counters of one port under the names ``dpdkvirtio.stats.port_stats`` uses."""
    cdef const dv_port *p = <const dv_port *>e.ptr
    cdef dv_queue_stats tot
    cdef uint64_t *acc = <uint64_t *>&tot
    cdef const uint64_t *row
    cdef unsigned int q, k
    cdef char key[16]
    cdef rte_tel_data *queues
    cdef rte_tel_data *child
    cdef rte_tel_data *drops
    for k in range(sizeof(dv_queue_stats) // 8):
        acc[k] = 0
    for q in range(p.n_queues):
        row = <const uint64_t *>&p.stats[q]
        for k in range(sizeof(dv_queue_stats) // 8):
            acc[k] += row[k]
    rte_tel_data_start_dict(d)
    rte_tel_data_add_dict_string(d, "name", e.name)
    rte_tel_data_add_dict_string(d, "kind", "vhost-user" if p.kind == DV_KIND_VHOST else "ethdev")
    rte_tel_data_add_dict_int(d, "n_queues", p.n_queues)
    if p.kind == DV_KIND_VHOST:
        rte_tel_data_add_dict_int(d, "connected", 1 if p.vid >= 0 else 0)
    rte_tel_data_add_dict_u64(d, "rx_packets", tot.rx.packets)
    rte_tel_data_add_dict_u64(d, "rx_bytes", tot.rx.bytes)
    rte_tel_data_add_dict_u64(d, "tx_packets", tot.tx.packets)
    rte_tel_data_add_dict_u64(d, "tx_bytes", tot.tx.bytes)
    rte_tel_data_add_dict_u64(d, "tx_dropped", tot.tx.failure_drops + tot.tx.not_ready_drops
                              + tot.tx.nombuf_drops)
    rte_tel_data_add_dict_u64(d, "tx_failure_drops", tot.tx.failure_drops)
    rte_tel_data_add_dict_u64(d, "tx_not_ready_drops", tot.tx.not_ready_drops)
    rte_tel_data_add_dict_u64(d, "tx_nombuf_drops", tot.tx.nombuf_drops)
    rte_tel_data_add_dict_u64(d, "tx_retries", tot.tx.retries)
    rte_tel_data_add_dict_u64(d, "rx_malformed_drops", tot.rx.malformed_drops)
    rte_tel_data_add_dict_u64(d, "rx_bursts", tot.rx.bursts)
    rte_tel_data_add_dict_u64(d, "tx_bursts", tot.tx.bursts)
    drops = rte_tel_data_alloc()
    if drops is not NULL:
        rte_tel_data_start_dict(drops)
        rte_tel_data_add_dict_u64(drops, "tx_failure", tot.tx.failure_drops)
        rte_tel_data_add_dict_u64(drops, "tx_not_ready", tot.tx.not_ready_drops)
        rte_tel_data_add_dict_u64(drops, "tx_nombuf", tot.tx.nombuf_drops)
        rte_tel_data_add_dict_u64(drops, "rx_malformed", tot.rx.malformed_drops)
        _add_child(d, "drops", drops)
    queues = rte_tel_data_alloc()
    if queues is NULL:
        return 0
    rte_tel_data_start_dict(queues)
    for q in range(p.n_queues):
        child = rte_tel_data_alloc()
        if child is NULL:
            break
        _queue_dict(child, &p.stats[q])
        snprintf(key, sizeof(key), "q%u", q)
        _add_child(queues, key, child)
    _add_child(d, "queues", queues)
    return 0


cdef int _pmd_reply(const tel_entry *e, rte_tel_data *d) noexcept nogil:
    cdef const dv_pmd_ctx *c = <const dv_pmd_ctx *>e.ptr
    cdef const dv_pmd_stats *s = c.stats
    cdef uint64_t busy = s.busy_cycles, idle = s.idle_cycles, moved
    cdef unsigned int i
    cdef rte_tel_data *hist
    rte_tel_data_start_dict(d)
    rte_tel_data_add_dict_int(d, "lcore", <int>e.lcore)
    rte_tel_data_add_dict_u64(d, "cpu", s.cpu)
    rte_tel_data_add_dict_string(d, "mode", "interrupt" if c.mode == DV_MODE_INTERRUPT
                                 else "poll")
    rte_tel_data_add_dict_int(d, "burst_size", c.burst_size)
    rte_tel_data_add_dict_u64(d, "sleep_max_us", c.sleep_max_us)
    rte_tel_data_add_dict_u64(d, "tsc_hz", c.tsc_hz)
    rte_tel_data_add_dict_u64(d, "iterations", s.iterations)
    rte_tel_data_add_dict_u64(d, "empty_iterations", s.empty_iterations)
    rte_tel_data_add_dict_u64(d, "busy_cycles", busy)
    rte_tel_data_add_dict_u64(d, "idle_cycles", idle)
    # per mille: telemetry carries integers only
    rte_tel_data_add_dict_u64(d, "busy_permille", busy * 1000 // (busy + idle) if busy + idle
                              else 0)
    rte_tel_data_add_dict_u64(d, "rx_packets", s.rx_packets)
    rte_tel_data_add_dict_u64(d, "tx_packets", s.tx_packets)
    moved = s.rx_packets if s.rx_packets > s.tx_packets else s.tx_packets
    rte_tel_data_add_dict_u64(d, "busy_cycles_per_packet", busy // moved if moved else 0)
    rte_tel_data_add_dict_u64(d, "sleeps", s.sleeps)
    rte_tel_data_add_dict_u64(d, "slept_ns", s.slept_ns)
    rte_tel_data_add_dict_u64(d, "sleep_max_ns", s.sleep_max_ns)
    rte_tel_data_add_dict_u64(d, "intr_arms", s.intr_arms)
    rte_tel_data_add_dict_u64(d, "intr_wakeups", s.intr_wakeups)
    rte_tel_data_add_dict_u64(d, "intr_spurious", s.intr_spurious)
    rte_tel_data_add_dict_u64(d, "intr_timeouts", s.intr_timeouts)
    rte_tel_data_add_dict_u64(d, "stalls", s.stalls)
    rte_tel_data_add_dict_u64(d, "stall_cycles", s.stall_cycles)
    rte_tel_data_add_dict_u64(d, "stall_max_cycles", s.stall_max_cycles)
    rte_tel_data_add_dict_u64(d, "stall_busy_cycles", s.stall_busy_cycles)
    hist = rte_tel_data_alloc()
    if hist is not NULL:
        rte_tel_data_start_array(hist, RTE_TEL_U64_VAL)
        for i in range(DV_HIST_BINS):
            rte_tel_data_add_array_u64(hist, s.hist[i])
        _add_child(d, "burst_hist", hist)
    return 0


cdef uint64_t _bucket_mid_ns(unsigned int i) noexcept nogil:
    """The middle of latency bucket i (as dpdkvirtio.flows reports percentiles)."""
    cdef unsigned int shift
    if i < 2 * DV_LAT_SUB:
        return i
    shift = i // DV_LAT_SUB - 1
    return ((<uint64_t>(i - shift * DV_LAT_SUB)) << shift) + (((<uint64_t>1) << shift) - 1) // 2


cdef void _add_percentiles(rte_tel_data *d, const dv_flow *f, const uint64_t *hist) noexcept nogil:
    """p50/p99/p999 in ns: the first bucket whose cumulative count reaches the rank,
    clamped to the exact min and max."""
    cdef uint64_t total = 0, cum = 0, v
    cdef unsigned int i, k = 0
    cdef uint64_t ranks[3]
    cdef const char *names[3]
    names[0] = "p50_ns"
    names[1] = "p99_ns"
    names[2] = "p999_ns"
    for i in range(DV_LAT_BUCKETS):
        total += hist[i]
    if total == 0:
        return
    # ceil(q * total), at least 1, for q = 0.5, 0.99, 0.999
    ranks[0] = (total * 500 + 999) // 1000
    ranks[1] = (total * 990 + 999) // 1000
    ranks[2] = (total * 999 + 999) // 1000
    for i in range(DV_LAT_BUCKETS):
        cum += hist[i]
        while k < 3 and cum >= (ranks[k] if ranks[k] else 1):
            v = _bucket_mid_ns(i)
            if v < f.lat_min_ns:
                v = f.lat_min_ns
            if v > f.lat_max_ns:
                v = f.lat_max_ns
            rte_tel_data_add_dict_u64(d, names[k], v)
            k += 1
        if k == 3:
            return


cdef int _flows_reply(const tel_entry *e, rte_tel_data *d) noexcept nogil:
    cdef const dv_flow_table *t = <const dv_flow_table *>e.ptr
    cdef const dv_flow *f
    cdef unsigned int i, shown = 0, active = 0
    cdef uint64_t received = 0, lost = 0, ooo = 0, dups = 0
    cdef char key[16]
    cdef rte_tel_data *flows
    cdef rte_tel_data *child
    flows = rte_tel_data_alloc()
    if flows is not NULL:
        rte_tel_data_start_dict(flows)
    for i in range(t.n_flows):
        f = &t.flows[i]
        if f.received == 0 and f.lost == 0 and f.duplicates == 0 and f.stale == 0:
            continue
        active += 1
        received += f.received
        lost += f.lost
        ooo += f.out_of_order
        dups += f.duplicates
        if flows is NULL or shown >= TEL_MAX_FLOWS_SHOWN:
            continue
        child = rte_tel_data_alloc()
        if child is NULL:
            continue
        rte_tel_data_start_dict(child)
        rte_tel_data_add_dict_u64(child, "received", f.received)
        rte_tel_data_add_dict_u64(child, "bytes", f.bytes)
        rte_tel_data_add_dict_u64(child, "lost", f.lost)
        rte_tel_data_add_dict_u64(child, "out_of_order", f.out_of_order)
        rte_tel_data_add_dict_u64(child, "duplicates", f.duplicates)
        rte_tel_data_add_dict_u64(child, "stale", f.stale)
        rte_tel_data_add_dict_u64(child, "next_seq", f.next_seq)
        if f.received:
            rte_tel_data_add_dict_u64(child, "lat_min_ns", f.lat_min_ns)
            rte_tel_data_add_dict_u64(child, "lat_mean_ns", f.lat_sum_ns // f.received)
            rte_tel_data_add_dict_u64(child, "lat_max_ns", f.lat_max_ns)
            rte_tel_data_add_dict_u64(child, "jitter_ns", f.jitter_ns16 // 16)
            _add_percentiles(child, f, &t.hist[<uint64_t>i * DV_LAT_BUCKETS])
        snprintf(key, sizeof(key), "f%u", i)
        if _add_child(flows, key, child) == 0:
            shown += 1
    rte_tel_data_start_dict(d)
    rte_tel_data_add_dict_string(d, "name", e.name)
    rte_tel_data_add_dict_u64(d, "max_flows", t.n_flows)
    rte_tel_data_add_dict_u64(d, "active_flows", active)
    rte_tel_data_add_dict_u64(d, "flows_shown", shown)
    rte_tel_data_add_dict_u64(d, "received", received)
    rte_tel_data_add_dict_u64(d, "lost", lost)
    rte_tel_data_add_dict_u64(d, "out_of_order", ooo)
    rte_tel_data_add_dict_u64(d, "duplicates", dups)
    rte_tel_data_add_dict_u64(d, "unknown_flow", t.unknown_flow)
    rte_tel_data_add_dict_u64(d, "unmeasured", t.unmeasured)
    if flows is not NULL:
        _add_child(d, "flows", flows)
    return 0


# ---- the callbacks (DPDK's telemetry thread) ------------------------------------------------

cdef bint _no_params(const char *params) noexcept nogil:
    return params is NULL or params[0] == 0


cdef void _list_names(const tel_table *t, rte_tel_data *d) noexcept nogil:
    cdef int i
    rte_tel_data_start_array(d, RTE_TEL_STRING_VAL)
    pthread_mutex_lock(&g_lock)
    for i in range(t.n):
        rte_tel_data_add_array_string(d, t.rows[i].name)
    pthread_mutex_unlock(&g_lock)


ctypedef int (*reply_fn)(const tel_entry *e, rte_tel_data *d) noexcept nogil


cdef int _reply_named(const tel_table *t, const char *params, rte_tel_data *d,
                      reply_fn reply) noexcept nogil:
    cdef int i, rc = -ENOENT
    if _no_params(params):
        return -EINVAL
    pthread_mutex_lock(&g_lock)
    for i in range(t.n):
        if strcmp(t.rows[i].name, params) == 0:
            rc = reply(&t.rows[i], d)
            break
    pthread_mutex_unlock(&g_lock)
    return rc


cdef int _cmd_ports(const char *cmd, const char *params, rte_tel_data *d) noexcept nogil:
    _list_names(&g_ports, d)
    return 0


cdef int _cmd_port(const char *cmd, const char *params, rte_tel_data *d) noexcept nogil:
    return _reply_named(&g_ports, params, d, _port_reply)


cdef int _cmd_pmds(const char *cmd, const char *params, rte_tel_data *d) noexcept nogil:
    cdef int i
    rte_tel_data_start_array(d, RTE_TEL_INT_VAL)
    pthread_mutex_lock(&g_lock)
    for i in range(g_pmds.n):
        rte_tel_data_add_array_int(d, <int>g_pmds.rows[i].lcore)
    pthread_mutex_unlock(&g_lock)
    return 0


cdef int _cmd_pmd(const char *cmd, const char *params, rte_tel_data *d) noexcept nogil:
    cdef int i, rc = -ENOENT
    cdef char *end = NULL
    cdef unsigned long lcore
    if _no_params(params):
        return -EINVAL
    lcore = strtoul(params, &end, 10)
    if end is NULL or end[0] != 0:
        return -EINVAL
    pthread_mutex_lock(&g_lock)
    i = g_pmds.n - 1                    # the newest thread of that lcore
    while i >= 0:
        if g_pmds.rows[i].lcore == lcore:
            rc = _pmd_reply(&g_pmds.rows[i], d)
            break
        i -= 1
    pthread_mutex_unlock(&g_lock)
    return rc


cdef int _cmd_flows(const char *cmd, const char *params, rte_tel_data *d) noexcept nogil:
    if _no_params(params):
        _list_names(&g_flows, d)
        return 0
    return _reply_named(&g_flows, params, d, _flows_reply)


def register_commands():
    """Register the ``/dpdkvirtio/...`` commands with DPDK's telemetry (idempotent; after
    the EAL is up). Raises DpdkError when DPDK refuses one."""
    global g_registered
    if g_registered:
        return
    cdef list table = [
        (b"/dpdkvirtio/ports", <size_t>_cmd_ports, b"Names of the ports. No parameters"),
        (b"/dpdkvirtio/port", <size_t>_cmd_port,
         b"A port's counters (OVS names), drops by reason and queues. Parameter: port name"),
        (b"/dpdkvirtio/pmds", <size_t>_cmd_pmds, b"Lcores of the PMD threads. No parameters"),
        (b"/dpdkvirtio/pmd", <size_t>_cmd_pmd,
         b"A PMD's cycles, burst sizes, sleeps and wake-ups. Parameter: lcore"),
        (b"/dpdkvirtio/flows", <size_t>_cmd_flows,
         b"Flow tables of measured streams; with a table name: its flows and latencies"),
    ]
    cdef bytes name, help_text
    cdef size_t fn
    cdef int rc
    for name, fn, help_text in table:
        rc = rte_telemetry_register_cmd(name, <telemetry_cb>fn, help_text)
        if rc != 0:
            raise DpdkError(-rc, f"DPDK refused the telemetry command {name.decode()}",
                            "rte_telemetry_register_cmd")
    g_registered = True


def registered():
    """{"ports": [...], "pmds": [...], "flows": [...]}: what the commands list now."""
    out = {"ports": [], "pmds": [], "flows": []}
    cdef int i
    pthread_mutex_lock(&g_lock)
    try:
        for i in range(g_ports.n):
            out["ports"].append(g_ports.rows[i].name.decode(errors="replace"))
        for i in range(g_pmds.n):
            out["pmds"].append(g_pmds.rows[i].lcore)
        for i in range(g_flows.n):
            out["flows"].append(g_flows.rows[i].name.decode(errors="replace"))
    finally:
        pthread_mutex_unlock(&g_lock)
    return out
