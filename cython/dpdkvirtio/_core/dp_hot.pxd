# The hot path (dp_hot.pyx): port rx/tx for the Python burst API and the PMD thread's
# entry point, for the control plane.
from libc.stdint cimport uint16_t
from dpdkvirtio._dpdk.rte_mbuf cimport rte_mbuf
from dpdkvirtio._core.dp_types cimport dv_port

cdef uint16_t dv_port_rx(dv_port *p, uint16_t q, rte_mbuf **pkts, uint16_t n) noexcept nogil
cdef uint16_t dv_port_tx(dv_port *p, uint16_t q, rte_mbuf **pkts, uint16_t n,
                         bint drop_unsent) noexcept nogil
cdef void dv_vhost_quiesce(dv_port *p) noexcept nogil
cdef int dv_pmd_main(void *arg) noexcept nogil
cdef int dv_devices_changed_fd() noexcept nogil
cdef void dv_devices_changed() noexcept nogil
