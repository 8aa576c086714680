# cython: language_level=3
"""Leak counters (L1): how many of each L1 resource are alive, counted where the C memory
or DPDK object is made and freed. Compiled in only by a debug build
(``meson setup -Ddebug_checks=true``); in a release build ``enabled()`` is False, the
counters stay 0 and ``dv_debug_track`` is an empty call on the control path (never in the
data path)."""
from dpdkvirtio._dpdk.dv_shim cimport DV_DEBUG_ENABLED, dv_add_long, dv_load_long

RESOURCE_NAMES = ("port", "mempool", "counters", "generator", "pmd", "plan", "burst")

cdef long g_live[DV_N_RESOURCES]


cdef void dv_debug_track(int resource, long delta) noexcept nogil:
    if DV_DEBUG_ENABLED and 0 <= resource < DV_N_RESOURCES:
        dv_add_long(&g_live[resource], delta)


def enabled():
    """Whether this build counts (meson -Ddebug_checks=true)."""
    return bool(DV_DEBUG_ENABLED)


def live():
    """{resource name: live count}; all 0 in a release build."""
    return {name: dv_load_long(&g_live[i]) for i, name in enumerate(RESOURCE_NAMES)}
