# cython: language_level=3
"""EthPort (L1): a vdev probed at runtime with rte_eal_hotplug_add (never --vdev at init,
whose failures are only logged), then configured with n queue pairs on one mempool.

Teardown mirrors construction: stop → close (releases the port id) → hotplug remove.
Every call that may talk to a peer (probe, start, stop, close) runs without the GIL.

Stop, close and remove run on the EAL interrupt thread (as an alarm), not on the caller's.
virtio-user handles link-state interrupts there, and DPDK 22.11 unregisters its interrupt
callback at stop without checking for -EAGAIN (returned while that callback is running):
when a peer's disconnect and our stop coincide, the callback stays registered on an fd
that close() then closes, and the interrupt thread later panics in epoll_ctl ("Error
adding fd"). The driver's own deferred work (alarms with a pointer to the device) also
runs there. On that thread no interrupt callback can run at the same time, and alarms
already pending run first."""
cimport cython
from libc.errno cimport errno, EINTR
from libc.stdint cimport uint16_t
from libc.stdlib cimport calloc, free
from libc.string cimport memset, strdup
from posix.time cimport timespec, clock_gettime, CLOCK_REALTIME
from dpdkvirtio._dpdk.rte_ethdev cimport *
from dpdkvirtio._dpdk.rte_alarm cimport rte_eal_alarm_set
from dpdkvirtio._dpdk.posix_extra cimport sem_t, sem_init, sem_post, sem_timedwait, sem_destroy
from dpdkvirtio._core.dp_types cimport DV_KIND_ETHDEV
from dpdkvirtio._core.port cimport Port, PORT_CREATED, PORT_STARTED, PORT_STOPPED, PORT_CLOSED
from dpdkvirtio._core.mempool cimport Mempool
from dpdkvirtio._core.errors cimport check_neg_errno, raise_dpdk
from dpdkvirtio._core.eal cimport eal_check_usable, eal_alive
from dpdkvirtio.errors import PortError, PortStateError, ConfigError


cdef enum:
    TEARDOWN_STOP = 1
    TEARDOWN_CLOSE = 2
    TEARDOWN_REMOVE = 4
    TEARDOWN_DELAY_US = 2000          # after any alarm the driver has just set (1 us)
    TEARDOWN_TIMEOUT_S = 60

cdef struct dv_teardown:
    uint16_t port_id
    int steps
    char *devname
    int rc_stop
    int rc_close
    int rc_remove
    sem_t done


cdef void _teardown_cb(void *arg) noexcept nogil:
    cdef dv_teardown *t = <dv_teardown *>arg
    if t.steps & TEARDOWN_STOP:
        t.rc_stop = rte_eth_dev_stop(t.port_id)
    if t.steps & TEARDOWN_CLOSE:
        t.rc_close = rte_eth_dev_close(t.port_id)
    if t.steps & TEARDOWN_REMOVE:
        t.rc_remove = rte_eal_hotplug_remove("vdev", t.devname)
    sem_post(&t.done)


cdef int _teardown_steps(uint16_t port_id, int steps, const char *devname,
                         int *rc_stop, int *rc_close, int *rc_remove) noexcept nogil:
    """Run the steps on the EAL interrupt thread and wait. Returns 0, or -1 when that thread
    did not answer within TEARDOWN_TIMEOUT_S (the request is then left to it, not freed)."""
    cdef dv_teardown *t = <dv_teardown *>calloc(1, sizeof(dv_teardown))
    cdef timespec deadline
    if t is NULL:
        return -1
    t.port_id = port_id
    t.steps = steps
    t.devname = strdup(devname)
    sem_init(&t.done, 0, 0)
    if rte_eal_alarm_set(TEARDOWN_DELAY_US, _teardown_cb, t) != 0:
        _teardown_cb(t)                   # no alarm service: do it here
    clock_gettime(CLOCK_REALTIME, &deadline)
    deadline.tv_sec += TEARDOWN_TIMEOUT_S
    while sem_timedwait(&t.done, &deadline) != 0:
        if errno != EINTR:
            return -1
    rc_stop[0] = t.rc_stop
    rc_close[0] = t.rc_close
    rc_remove[0] = t.rc_remove
    sem_destroy(&t.done)
    free(t.devname)
    free(t)
    return 0


cdef int _probe_rc_to_errno(int rc) noexcept:
    # Drivers often return a bare -1 from probe: that is no errno (not EPERM).
    return -rc if rc < -1 else 0


@cython.no_gc_clear
cdef class EthPort(Port):
    """An ethdev port made from a vdev. Use the L2 classes (VirtioUserPort, VdevPort)."""

    def open(self, Mempool mempool not None, str devname, str devargs, int n_queues,
             int rx_ring_size, int tx_ring_size, int tx_retries_max, bint rx_interrupts=False):
        """Probe ``devname`` with ``devargs``, configure ``n_queues`` queue pairs with rings
        of the given sizes on ``mempool``. Unwinds everything on failure.
        Blocks while the driver talks to its peer (virtio-user server mode waits for
        the vhost-user client to connect). ``rx_interrupts``: configure Rx interrupts
        (intr_conf.rxq), so that an interrupt-mode PMD can wait on this port's queues."""
        eal_check_usable()
        if self._state != PORT_CREATED or self._probed:
            raise PortStateError("port already set up")
        if n_queues < 1:
            raise ConfigError("a port needs at least one queue pair")
        self.name = devname
        self.devargs = devargs
        b_name = devname.encode()
        b_args = devargs.encode()
        cdef const char *c_name = b_name
        cdef const char *c_args = b_args
        cdef int rc
        with nogil:
            rc = rte_eal_hotplug_add("vdev", c_name, c_args)
        if rc != 0:
            raise_dpdk(PortError, _probe_rc_to_errno(rc), "rte_eal_hotplug_add",
                       f"probing vdev {devname!r} with devargs {devargs!r} failed; check the "
                       "driver name, the devargs keys and that the peer is reachable")
        self._probed = True
        cdef uint16_t pid
        cdef rte_eth_dev_info info
        cdef rte_eth_conf conf
        try:
            check_neg_errno(rte_eth_dev_get_port_by_name(c_name, &pid),
                            "rte_eth_dev_get_port_by_name", PortError,
                            f"vdev {devname!r} was probed but created no ethdev port")
            self.port_id = pid
            check_neg_errno(rte_eth_dev_info_get(pid, &info), "rte_eth_dev_info_get", PortError)
            if n_queues > info.max_rx_queues or n_queues > info.max_tx_queues:
                raise ConfigError(
                    f"{devname}: {n_queues} queue pairs asked, the driver allows "
                    f"{min(info.max_rx_queues, info.max_tx_queues)} (e.g. virtio-user "
                    "needs queues=N in its devargs)")
            self.alloc_port(DV_KIND_ETHDEV, mempool, n_queues, tx_retries_max)
            self._p.port_id = pid
            memset(&conf, 0, sizeof(conf))
            # Link-state interrupts only where something needs them: virtio-user in server
            # mode accepts the back-end's reconnection in its LSC handler. Elsewhere the
            # link is polled, which keeps the port's fd out of the interrupt thread.
            if (info.dev_flags is not NULL and (info.dev_flags[0] & RTE_ETH_DEV_INTR_LSC)
                    and "server=1" in devargs.split(",")):
                conf.intr_conf.lsc = 1
            if rx_interrupts:
                conf.intr_conf.rxq = 1
                self._p.rx_intr = 1
            check_neg_errno(rte_eth_dev_configure(pid, n_queues, n_queues, &conf),
                            "rte_eth_dev_configure", PortError,
                            f"{devname}: the driver refused Rx interrupts" if rx_interrupts
                            else None)
            self._configured = True
            socket_id = rte_eth_dev_socket_id(pid)
            if socket_id < 0:
                socket_id = 0
            for q in range(n_queues):
                check_neg_errno(rte_eth_rx_queue_setup(pid, q, rx_ring_size, socket_id, NULL,
                                                       mempool.ptr()),
                                "rte_eth_rx_queue_setup", PortError,
                                f"rx ring of {rx_ring_size} descriptors on queue {q}: the size "
                                "must be a power of 2 the driver accepts and the mempool "
                                "must hold enough mbufs to fill it")
                check_neg_errno(rte_eth_tx_queue_setup(pid, q, tx_ring_size, socket_id, NULL),
                                "rte_eth_tx_queue_setup", PortError)
        except BaseException:
            self._teardown()
            raise

    def start(self):
        """rte_eth_dev_start. Raises PortStateError when closed."""
        eal_check_usable()
        if self._state == PORT_STARTED:
            return
        if self._state == PORT_CLOSED:
            self.require_state(PORT_CREATED, "start")
        cdef int rc
        cdef uint16_t pid = self.port_id
        with nogil:
            rc = rte_eth_dev_start(pid)
        check_neg_errno(rc, "rte_eth_dev_start", PortError,
                        "the peer may be unreachable or the mempool too small for the rx rings")
        self._state = PORT_STARTED

    def stop(self):
        """rte_eth_dev_stop (start() restarts). Raises PortStateError while a PMD owns one
        of its queues: a burst on a stopped ethdev is not allowed."""
        eal_check_usable()
        if self._state != PORT_STARTED:
            return
        self.require_python_owned("stop")
        cdef int rc_stop = 0, rc_close = 0, rc_remove = 0, rc
        cdef uint16_t pid = self.port_id
        with nogil:
            rc = _teardown_steps(pid, TEARDOWN_STOP, "", &rc_stop, &rc_close, &rc_remove)
        if rc != 0:
            raise PortError(None, f"stopping {self.name!r}: the EAL interrupt thread did not "
                            f"answer within {TEARDOWN_TIMEOUT_S} s (a driver callback is stuck)")
        self._state = PORT_STOPPED
        check_neg_errno(rc_stop, "rte_eth_dev_stop", PortError)

    cdef int _teardown(self) except -1:
        """Stop, close and remove the vdev: the mirror of open (each step only if done)."""
        cdef uint16_t pid = self.port_id
        cdef int rc_stop = 0, rc_close = 0, rc_remove = 0, rc
        cdef int steps = 0
        b_name = (self.name or "").encode()
        cdef const char *c_name = b_name
        if self._state == PORT_STARTED:
            steps |= TEARDOWN_STOP
        if self._configured or self._probed:
            steps |= TEARDOWN_CLOSE
        if self._probed:
            steps |= TEARDOWN_REMOVE
        if steps:
            with nogil:
                rc = _teardown_steps(pid, steps, c_name, &rc_stop, &rc_close, &rc_remove)
            if rc != 0:
                self._state = PORT_CLOSED
                raise PortError(None, f"closing {self.name!r}: the EAL interrupt thread did "
                                f"not answer within {TEARDOWN_TIMEOUT_S} s; the port is "
                                "abandoned (a driver callback is stuck)")
        self._probed = False
        self._configured = False
        self._state = PORT_CLOSED
        self.release_port()
        return 0

    def __dealloc__(self):
        # Never blocks: a port still open at garbage collection is closed at EAL exit
        # by the L2 registry; here only the C memory is released when nothing can use it.
        if self._state == PORT_CLOSED or not eal_alive():
            self.release_port()

    def link(self):
        """(up, speed_mbps) without waiting."""
        eal_check_usable()
        cdef rte_eth_link link
        if self._state == PORT_CLOSED:
            self.require_state(PORT_STARTED, "query")
        check_neg_errno(rte_eth_link_get_nowait(self.port_id, &link), "rte_eth_link_get_nowait",
                        PortError)
        return bool(link.link_status), link.link_speed

    def mac(self):
        eal_check_usable()
        cdef rte_ether_addr a
        if self._state == PORT_CLOSED:
            self.require_state(PORT_STARTED, "query")
        check_neg_errno(rte_eth_macaddr_get(self.port_id, &a), "rte_eth_macaddr_get", PortError)
        return ":".join(f"{a.addr_bytes[i]:02x}" for i in range(6))

    def driver_name(self):
        eal_check_usable()
        cdef rte_eth_dev_info info
        check_neg_errno(rte_eth_dev_info_get(self.port_id, &info), "rte_eth_dev_info_get", PortError)
        return info.driver_name.decode()

    def dpdk_stats(self):
        """rte_eth_stats_get as a dict (the driver's own counters)."""
        eal_check_usable()
        if self._state == PORT_CLOSED:
            self.require_state(PORT_STARTED, "query")
        cdef rte_eth_stats s
        check_neg_errno(rte_eth_stats_get(self.port_id, &s), "rte_eth_stats_get", PortError)
        return {"ipackets": s.ipackets, "opackets": s.opackets, "ibytes": s.ibytes,
                "obytes": s.obytes, "imissed": s.imissed, "ierrors": s.ierrors,
                "oerrors": s.oerrors, "rx_nombuf": s.rx_nombuf}

    def xstats(self):
        """The driver's extended stats as a list of (name, value)."""
        eal_check_usable()
        if self._state == PORT_CLOSED:
            self.require_state(PORT_STARTED, "query")
        cdef int n = rte_eth_xstats_get_names(self.port_id, NULL, 0)
        check_neg_errno(n, "rte_eth_xstats_get_names", PortError)
        if n == 0:
            return []
        cdef rte_eth_xstat_name *names = <rte_eth_xstat_name *>calloc(n, sizeof(rte_eth_xstat_name))
        cdef rte_eth_xstat *values = <rte_eth_xstat *>calloc(n, sizeof(rte_eth_xstat))
        try:
            if names is NULL or values is NULL:
                raise MemoryError()
            got = rte_eth_xstats_get_names(self.port_id, names, n)
            check_neg_errno(got, "rte_eth_xstats_get_names", PortError)
            got2 = rte_eth_xstats_get(self.port_id, values, n)
            check_neg_errno(got2, "rte_eth_xstats_get", PortError)
            m = min(got, got2, n)
            return [(names[values[i].id].name.decode() if values[i].id < <unsigned>m else str(values[i].id),
                     values[i].value) for i in range(m)]
        finally:
            free(names)
            free(values)
