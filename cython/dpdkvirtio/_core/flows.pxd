# L1: per-flow accounting tables (measured streams); the loop is dv_flows_account.
from libc.stdint cimport uint64_t
from dpdkvirtio._core.dp_types cimport dv_flow_table
from dpdkvirtio._core.counters cimport Counters

cdef class FlowTable:
    cdef dv_flow_table *_t
    cdef readonly Counters rows
    cdef readonly Counters hist
    cdef readonly int writer          # -1: the Python thread; else the PMD lcore
    cdef uint64_t _req
    cdef str _telemetry_name
    cdef object __weakref__
    cdef dv_flow_table *c_table(self)
