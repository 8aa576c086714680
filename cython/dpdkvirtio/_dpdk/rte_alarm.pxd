# L0: rte_alarm.h. Alarm callbacks run on the EAL interrupt thread ("eal-intr-thread"),
# one at a time and never concurrently with an interrupt handler.
from libc.stdint cimport uint64_t

cdef extern from "rte_alarm.h" nogil:
    ctypedef void (*rte_eal_alarm_callback)(void *arg) noexcept nogil
    int rte_eal_alarm_set(uint64_t us, rte_eal_alarm_callback cb, void *cb_arg)
    int rte_eal_alarm_cancel(rte_eal_alarm_callback cb_fn, void *cb_arg)
