# L1: leak counters of the L1 resources (compiled in with meson -Ddebug_checks=true).
cdef enum dv_resource:
    DV_RES_PORT = 0               # a C port (dv_port)
    DV_RES_MEMPOOL = 1            # an rte_mempool
    DV_RES_COUNTERS = 2           # a block of counter rows
    DV_RES_GENERATOR = 3          # a generator's C state
    DV_RES_PMD = 4                # a PMD thread's context
    DV_RES_PLAN = 5               # a PMD plan
    DV_RES_BURST = 6              # a Burst's slot array
    DV_N_RESOURCES = 7

cdef void dv_debug_track(int resource, long delta) noexcept nogil
