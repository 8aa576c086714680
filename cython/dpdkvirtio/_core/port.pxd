# L1: what every port kind shares: the C dv_port the data path works on, its counters,
# its mempool, who owns each queue, a state machine and the Python burst API.
from libc.stdint cimport uint16_t
from dpdkvirtio._core.dp_types cimport dv_port
from dpdkvirtio._core.mempool cimport Mempool
from dpdkvirtio._core.counters cimport Counters

cdef enum:
    PORT_CREATED = 0
    PORT_STARTED = 1
    PORT_STOPPED = 2
    PORT_CLOSED = 3

cdef class Port:
    cdef dv_port *_p
    cdef readonly Mempool mempool
    cdef readonly Counters counter_block
    cdef readonly str name
    cdef str _telemetry_name
    cdef int _state
    cdef object __weakref__
    cdef public object capture_tap    # capture.CaptureTap, made at the first capture
    cdef int alloc_port(self, int kind, Mempool mempool, int n_queues,
                        int tx_retries_max) except -1
    cdef void release_port(self) noexcept
    cdef int require_state(self, int wanted, str action) except -1
    cdef int require_python_owned(self, str action) except -1
    cdef dv_port *c_port(self) noexcept
    cdef int _owner_index(self, int queue, str direction) except -1
    cdef int _teardown(self) except -1
