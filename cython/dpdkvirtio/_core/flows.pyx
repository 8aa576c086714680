# cython: language_level=3
"""Flow tables (L1): the per-flow counters and latency histograms of measured streams,
C rows that one writer fills (a PMD's rx assignment, or the Python thread through
``account``) and Python reads live as numpy (dpdkvirtio.flows, L2). The loop over the
packets is ``dv_flows_account`` in dp_flows.pyx."""
from libc.stdint cimport uint64_t
from libc.stdlib cimport calloc, free
from dpdkvirtio._dpdk.rte_lcore cimport (rte_get_tsc_hz, rte_rdtsc, rte_eal_get_lcore_state,
    RUNNING)
from dpdkvirtio._dpdk.dv_shim cimport dv_load_acquire_u64, dv_store_release_u64
from dpdkvirtio._core.dp_types cimport (dv_flow, dv_flow_table, DV_LAT_BUCKETS, DV_LAT_SUB,
    DV_SEQ_WINDOW, DV_MARK_OFFSET, DV_MARK_MIN_FRAME)
from dpdkvirtio._core.dp_flows cimport dv_flows_account, dv_ticks_to_ns
from dpdkvirtio._core.counters cimport Counters
from dpdkvirtio._core.telemetry cimport dv_tel_add_flows, dv_tel_forget_flows, dv_tel_name
from dpdkvirtio._core.mbuf cimport Burst
from dpdkvirtio._core.eal cimport eal_check_usable
from dpdkvirtio.errors import ConfigError, PmdError, PmdStateError

import time

LAT_BUCKETS = DV_LAT_BUCKETS
LAT_SUB = DV_LAT_SUB
SEQ_WINDOW = DV_SEQ_WINDOW
MARK_OFFSET = DV_MARK_OFFSET
MARK_MIN_FRAME = DV_MARK_MIN_FRAME
MAX_FLOWS = 65536
cdef unsigned long _tables_made = 0


cdef class FlowTable:
    """Counters for flow ids 0..n_flows-1: one ``dv_flow`` row and one histogram row of
    ``LAT_BUCKETS`` uint64 each. Single writer at a time (``writer``)."""

    def __cinit__(self, Py_ssize_t n_flows):
        eal_check_usable()
        if not 1 <= n_flows <= MAX_FLOWS:
            raise ConfigError(f"a flow table holds 1..{MAX_FLOWS} flows, got {n_flows}")
        self.rows = Counters(n_flows, sizeof(dv_flow), "flow")
        self.hist = Counters(n_flows, DV_LAT_BUCKETS * sizeof(uint64_t), "latency")
        self._t = <dv_flow_table *>calloc(1, sizeof(dv_flow_table))
        if self._t is NULL:
            raise MemoryError()
        self._t.flows = <dv_flow *>self.rows.row(0)
        self._t.hist = <uint64_t *>self.hist.row(0)
        self._t.n_flows = <unsigned int>n_flows
        hz = rte_get_tsc_hz()
        self._t.ns_per_tsc = 1e9 / hz
        mult = round(2 ** 32 * 1e9 / hz)
        self._t.ns_mult = mult if mult < 2 ** 32 else 0      # ticks * mult must fit 64 bits
        self.writer = -1
        global _tables_made
        _tables_made += 1
        self.telemetry_name = f"flows{_tables_made}"

    @property
    def telemetry_name(self):
        """The name DPDK telemetry lists this table under (``/dpdkvirtio/flows,NAME``)."""
        return self._telemetry_name

    @telemetry_name.setter
    def telemetry_name(self, str value not None):
        cdef bytes b = dv_tel_name(value)
        self._telemetry_name = value
        dv_tel_add_flows(self._t, b)

    def __dealloc__(self):
        # A PMD plan referencing the table holds a reference to this object.
        if self._t is not NULL:
            dv_tel_forget_flows(self._t)
        free(self._t)
        self._t = NULL

    cdef dv_flow_table *c_table(self):
        return self._t

    @property
    def n_flows(self):
        return self._t.n_flows

    @property
    def unknown_flow(self):
        """Measured packets whose flow id is >= n_flows (not counted in any row)."""
        return self._t.unknown_flow

    @property
    def unmeasured(self):
        """Packets without the marker that went past this table."""
        return self._t.unmeasured

    @property
    def ns_per_tsc(self):
        return self._t.ns_per_tsc

    def ticks_to_ns(self, uint64_t ticks):
        """TSC ticks to ns, computed as the accounting computes latencies."""
        return dv_ticks_to_ns(self._t, ticks)

    def claim(self, int lcore):
        """Make the PMD on ``lcore`` the writer (the Python thread may no longer account)."""
        if self.writer != -1 and self.writer != lcore:
            raise ConfigError(f"this flow table is already written by the PMD on lcore "
                              f"{self.writer}: one writer per table (give each receiver its own)")
        self.writer = lcore

    def release(self, int lcore):
        if self.writer == lcore:
            self.writer = -1

    def account(self, Burst burst not None, rx_tsc=None):
        """Count the measured packets of ``burst`` in one C loop, as received at TSC
        ``rx_tsc`` (default: now); the packets are not changed. Raises PmdError when a PMD
        writes this table."""
        if self.writer != -1:
            raise PmdStateError(f"this flow table is written by the PMD on lcore {self.writer}; "
                                "account Python-received bursts into a table of their own")
        cdef uint64_t now = rte_rdtsc() if rx_tsc is None else <uint64_t>rx_tsc
        dv_flows_account(self._t, burst._pkts, burst._count, now)

    def reset(self, double timeout_s=5.0):
        """Zero every counter and histogram, by the writer itself (race-free): at once when
        the writer is this thread or a stopped PMD, else at the PMD's next poll. Sequence
        tracking restarts with the next packet of each flow."""
        self._req += 1
        dv_store_release_u64(&self._t.reset_req, self._req)
        if self.writer == -1 or rte_eal_get_lcore_state(self.writer) != RUNNING:
            dv_flows_account(self._t, NULL, 0, 0)
            return
        deadline = time.monotonic() + timeout_s
        while dv_load_acquire_u64(&self._t.reset_ack) != self._req:
            if rte_eal_get_lcore_state(self.writer) != RUNNING:
                dv_flows_account(self._t, NULL, 0, 0)
                return
            if time.monotonic() > deadline:
                raise PmdError(None, f"the PMD on lcore {self.writer} did not reset the flow "
                               f"table within {timeout_s:g} s")
            time.sleep(0.0002)


def flow_layout():
    """(sizeof(dv_flow), [(field, offset)], offset of the window) for the numpy dtype."""
    cdef dv_flow f
    cdef size_t base = <size_t>&f
    names = ["received", "bytes", "lost", "out_of_order", "duplicates", "stale",
             "lat_min_ns", "lat_max_ns", "lat_sum_ns", "jitter_ns16", "next_seq",
             "last_lat_ns", "first_rx_tsc", "last_rx_tsc", "clock_errors"]
    offsets = [<size_t>&f.received, <size_t>&f.bytes, <size_t>&f.lost, <size_t>&f.out_of_order,
               <size_t>&f.duplicates, <size_t>&f.stale, <size_t>&f.lat_min_ns,
               <size_t>&f.lat_max_ns, <size_t>&f.lat_sum_ns, <size_t>&f.jitter_ns16,
               <size_t>&f.next_seq, <size_t>&f.last_lat_ns, <size_t>&f.first_rx_tsc,
               <size_t>&f.last_rx_tsc, <size_t>&f.clock_errors]
    return sizeof(dv_flow), [(n, o - base) for n, o in zip(names, offsets)]
