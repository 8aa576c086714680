# cython: language_level=3
"""Port (L1): the base of EthPort (ethdev: virtio-user and other vdevs) and VhostPort
(vhost library). It owns the C ``dv_port`` the data path uses and gives Python the
burst API: rx_burst / tx_burst on a queue pair index.

**Where a port's state lives.** Everything the data path or a DPDK callback may read is
in the C struct ``dv_port`` (dp_types.pxd): the queue counters, the vhost vid and
enabled vrings, and the *owner* of each (queue, direction): Python or one PMD lcore.
``claim``/``release`` are the only writers of the owner field (the PMD module calls them
when it adds, moves or removes an assignment); the burst API refuses a queue a PMD owns,
and ``close``/``stop`` refuse while any queue is owned. The lifecycle state
(created/started/stopped/closed) is ``_state`` here. Subclasses construct in ``open``
and tear down in ``_teardown``, the mirror of ``open``; ``close`` is defined once, here."""
cimport cython
from libc.stdlib cimport calloc, free
from libc.stdint cimport uint8_t, uint16_t
from dpdkvirtio._core.debug cimport dv_debug_track, DV_RES_PORT
from dpdkvirtio._core.dp_types cimport (dv_port, dv_queue_stats, dv_vq_sync, dv_queue_owner,
    DV_KIND_VHOST, DV_OWNER_PYTHON, DV_DIR_RX, DV_DIR_TX)
from dpdkvirtio._core.dp_hot cimport dv_port_rx, dv_port_tx
from dpdkvirtio._core.mbuf cimport Burst
from dpdkvirtio._core.mempool cimport Mempool
from dpdkvirtio._core.counters cimport Counters
from dpdkvirtio._core.telemetry cimport dv_tel_add_port, dv_tel_forget_port, dv_tel_name
from dpdkvirtio._core.eal cimport eal_alive, eal_check_usable
from dpdkvirtio._dpdk.dv_shim cimport dv_aligned_zalloc
from dpdkvirtio.errors import PortStateError, ConfigError

STATE_NAMES = ("created", "started", "stopped", "closed")
MAX_QUEUES = 1024
DIRECTIONS = {"rx": DV_DIR_RX, "tx": DV_DIR_TX}


@cython.no_gc_clear
cdef class Port:
    """Base of all ports. Queue indexes are queue *pairs* (rx queue q and tx queue q)."""

    cdef int alloc_port(self, int kind, Mempool mempool, int n_queues,
                        int tx_retries_max) except -1:
        if n_queues < 1 or n_queues > MAX_QUEUES:
            raise ConfigError(f"queues must be 1..{MAX_QUEUES}, got {n_queues}")
        if tx_retries_max < 0 or tx_retries_max > 32:
            raise ConfigError(f"tx_retries_max must be 0..32, got {tx_retries_max}")
        cdef int i
        self._p = <dv_port *>calloc(1, sizeof(dv_port))
        if self._p is NULL:
            raise MemoryError()
        dv_debug_track(DV_RES_PORT, 1)
        self.counter_block = Counters(n_queues, sizeof(dv_queue_stats), "queue")
        self._p.kind = kind
        self._p.n_queues = <uint16_t>n_queues
        self._p.vid = -1
        self._p.tx_retries_max = tx_retries_max
        self._p.stats = <dv_queue_stats *>self.counter_block.row(0)
        self._p.mp = mempool.ptr()
        self._p.owners = <dv_queue_owner *>calloc(2 * n_queues, sizeof(dv_queue_owner))
        if self._p.owners is NULL:
            raise MemoryError()
        for i in range(2 * n_queues):
            self._p.owners[i].lcore = DV_OWNER_PYTHON
        if kind == DV_KIND_VHOST:
            self._p.sync = <dv_vq_sync *>dv_aligned_zalloc(n_queues * sizeof(dv_vq_sync))
            self._p.vring_enabled = <uint8_t *>calloc(2 * n_queues, 1)
            if self._p.sync is NULL or self._p.vring_enabled is NULL:
                raise MemoryError()
        self.mempool = mempool
        mempool.add_user()
        self._state = PORT_CREATED
        dv_tel_add_port(self._p, self.name.encode()[:63])
        return 0

    cdef void release_port(self) noexcept:
        """Free the C port. Only once nothing (lcore, callback) can touch it any more."""
        if self.capture_tap is not None:
            self.capture_tap.release()      # (raises nothing: frees DPDK objects)
            self.capture_tap = None
        if self._p is not NULL:
            dv_tel_forget_port(self._p)     # no telemetry reader left on it after this
            free(self._p.sync)
            free(self._p.vring_enabled)
            free(self._p.owners)
            free(self._p)
            dv_debug_track(DV_RES_PORT, -1)
            self._p = NULL
        if self.mempool is not None:
            self.mempool.remove_user()
            self.mempool = None

    cdef dv_port *c_port(self) noexcept:
        return self._p

    cdef int require_state(self, int wanted, str action) except -1:
        if self._state != wanted:
            hint = None
            if self._state == PORT_CLOSED:
                hint = "Create a new port"
            elif wanted == PORT_STARTED:
                hint = "Call start() first"
            raise PortStateError(
                f"cannot {action} port {self.name!r}: it is {STATE_NAMES[self._state]}", hint)
        return 0

    cdef int require_python_owned(self, str action) except -1:
        cdef uint16_t i
        if self._p is NULL:
            return 0
        for i in range(2 * self._p.n_queues):
            if self._p.owners[i].lcore != DV_OWNER_PYTHON:
                raise PortStateError(
                    f"cannot {action} port {self.name!r}: its {('rx', 'tx')[i % 2]} queue "
                    f"{i // 2} is polled by the PMD on lcore {self._p.owners[i].lcore}",
                    "Remove the port from its PMDs (Pmd.remove) first")
        return 0

    cdef int _owner_index(self, int queue, str direction) except -1:
        if self._p is NULL:
            self.require_state(PORT_STARTED, "assign")
        if direction not in DIRECTIONS:
            raise ConfigError(f"direction must be 'rx' or 'tx', got {direction!r}")
        if queue < 0 or queue >= self._p.n_queues:
            raise IndexError(f"queue {queue} out of range: port {self.name!r} has "
                             f"{self._p.n_queues} queue(s)")
        return 2 * queue + DIRECTIONS[direction]

    def owner(self, int queue, str direction):
        """The lcore of the PMD that owns (``queue``, ``direction``), or None (Python)."""
        cdef int i = self._owner_index(queue, direction)
        cdef int lcore = self._p.owners[i].lcore
        return None if lcore == DV_OWNER_PYTHON else lcore

    def claim(self, int queue, str direction, int lcore):
        """Give (``queue``, ``direction``) to the PMD on ``lcore`` (a tx queue may be
        claimed again by the same PMD: it counts references). Raises PortStateError when
        another PMD owns it or the port is closed. Control thread only."""
        if self._state == PORT_CLOSED:
            self.require_state(PORT_STARTED, "assign")
        cdef int i = self._owner_index(queue, direction)
        cdef dv_queue_owner *o = &self._p.owners[i]
        if lcore < 0:
            raise ConfigError("a PMD's lcore is >= 0")
        if o.lcore != DV_OWNER_PYTHON and o.lcore != lcore:
            raise PortStateError(f"{direction} queue {queue} of port {self.name!r} is already "
                                 f"used by the PMD on lcore {o.lcore}",
                                 "Remove it there first (or use Pmd.move_rxq / another queue)")
        if o.lcore == lcore and direction == "rx":
            raise PortStateError(f"rx queue {queue} of port {self.name!r} is already polled "
                                 f"by the PMD on lcore {lcore}")
        o.lcore = lcore
        o.refs += 1

    def release(self, int queue, str direction, int lcore):
        """Drop one reference of the PMD on ``lcore`` to (``queue``, ``direction``); at
        zero the queue is Python's again. Control thread only, after the PMD stopped
        using it."""
        if self._p is NULL:
            return
        cdef int i = self._owner_index(queue, direction)
        cdef dv_queue_owner *o = &self._p.owners[i]
        if o.lcore != lcore:
            raise PortStateError(f"{direction} queue {queue} of port {self.name!r} is not "
                                 f"owned by lcore {lcore}")
        o.refs -= 1
        if o.refs == 0:
            o.lcore = DV_OWNER_PYTHON

    @property
    def pmd_owned(self):
        """How many (queue, direction) a PMD owns."""
        if self._p is NULL:
            return 0
        return sum(1 for i in range(2 * self._p.n_queues)
                   if self._p.owners[i].lcore != DV_OWNER_PYTHON)

    @property
    def telemetry_name(self):
        """The name DPDK telemetry lists this port under (``/dpdkvirtio/port,NAME``);
        the path or device name until a caller (a switch) names it."""
        return self._telemetry_name if self._telemetry_name is not None else self.name

    @telemetry_name.setter
    def telemetry_name(self, str value not None):
        cdef bytes b = dv_tel_name(value)
        self._telemetry_name = value
        if self._p is not NULL:
            dv_tel_add_port(self._p, b)

    @property
    def state(self):
        """'created', 'started', 'stopped' or 'closed'."""
        return STATE_NAMES[self._state]

    @property
    def closed(self):
        return self._state == PORT_CLOSED

    @property
    def n_queues(self):
        """Queue pairs served."""
        return self._p.n_queues if self._p is not NULL else 0

    @property
    def tx_retries_max(self):
        return self._p.tx_retries_max if self._p is not NULL else 0

    @tx_retries_max.setter
    def tx_retries_max(self, int value):
        if value < 0 or value > 32:
            raise ConfigError(f"tx_retries_max must be 0..32, got {value}")
        if self._p is not NULL:
            self._p.tx_retries_max = value

    def rx_burst(self, int queue, Burst burst not None):
        """Receive into ``burst`` (appended after what it holds, up to its capacity) from
        rx queue ``queue``. Returns the number received; the burst owns them.
        Raises PortStateError unless started or while a PMD polls the queue, IndexError
        for a bad queue, ForkedProcessError in a forked child."""
        if not eal_alive():
            eal_check_usable()
        if self._state != PORT_STARTED:
            self.require_state(PORT_STARTED, "receive on")
        if <unsigned int>queue >= self._p.n_queues:
            raise IndexError(f"queue {queue} out of range: port {self.name!r} has "
                             f"{self._p.n_queues} queue(s)")
        if self._p.owners[2 * queue + DV_DIR_RX].lcore != DV_OWNER_PYTHON:
            raise PortStateError(f"rx queue {queue} of port {self.name!r} is polled by the "
                                 f"PMD on lcore {self._p.owners[2 * queue].lcore}",
                                 "Remove it from the PMD (Pmd.remove) to receive from Python")
        if burst._exports:
            burst.check_mutable()
        cdef uint16_t room = burst._capacity - burst._count
        if room == 0:
            return 0
        cdef uint16_t n = dv_port_rx(self._p, <uint16_t>queue, burst._pkts + burst._count, room)
        burst._count += n
        return n

    def tx_burst(self, int queue, Burst burst not None, bint drop_unsent=True):
        """Send the packets held by ``burst`` on tx queue ``queue``. Returns the number
        the peer accepted; those leave the burst. With ``drop_unsent`` (default) the rest
        are freed and counted in the port's drop counters by reason (tx_failure_drops,
        tx_not_ready_drops); otherwise they stay in the burst for a later retry.
        Raises PortStateError unless started or while a PMD uses the queue, IndexError
        for a bad queue, ForkedProcessError in a forked child."""
        if not eal_alive():
            eal_check_usable()
        if self._state != PORT_STARTED:
            self.require_state(PORT_STARTED, "transmit on")
        if <unsigned int>queue >= self._p.n_queues:
            raise IndexError(f"queue {queue} out of range: port {self.name!r} has "
                             f"{self._p.n_queues} queue(s)")
        if self._p.owners[2 * queue + DV_DIR_TX].lcore != DV_OWNER_PYTHON:
            raise PortStateError(f"tx queue {queue} of port {self.name!r} is used by the "
                                 f"PMD on lcore {self._p.owners[2 * queue + 1].lcore}",
                                 "Remove it from the PMD (Pmd.remove) to send from Python")
        if burst._exports:
            burst.check_mutable()
        cdef uint16_t n = burst._count
        if n == 0:
            return 0
        cdef uint16_t sent = dv_port_tx(self._p, <uint16_t>queue, burst._pkts, n, drop_unsent)
        if drop_unsent:
            burst._count = 0
        else:
            burst.consume_front(sent)
        return sent

    def close(self):
        """Tear the port down (idempotent): the mirror of ``open``. Raises
        PortStateError while a PMD owns one of its queues."""
        if self._state == PORT_CLOSED:
            return
        if not eal_alive():
            self._state = PORT_CLOSED          # DPDK is gone: nothing to undo
            return
        self.require_python_owned("close")
        self._teardown()

    cdef int _teardown(self) except -1:
        self._state = PORT_CLOSED
        self.release_port()
        return 0
