# cython: language_level=3
"""VhostPort (L1): the vhost library used directly (as OVS-DPDK does), not the net_vhost PMD.

Callbacks from DPDK's vhost-events / reconnect threads never take the GIL: they update
the port's C state (vid, enabled vrings) and append fixed-size records to a ring,
signalling an eventfd; Python drains the ring (drain_events) when it wants to.

Order: register → disable/enable features → callback_register → start. close() calls
rte_vhost_driver_unregister without the GIL (it may run destroy_device synchronously)."""
cimport cython
from libc.stdint cimport uint16_t, uint32_t, uint64_t, int32_t
from libc.string cimport strncpy, strcmp, memset
from posix.unistd cimport write, read, usleep
from dpdkvirtio._dpdk.posix_extra cimport (pthread_mutex_t, pthread_mutex_init,
    pthread_mutex_lock, pthread_mutex_unlock, eventfd, EFD_NONBLOCK, EFD_CLOEXEC)
from dpdkvirtio._dpdk.rte_vhost cimport *
from dpdkvirtio._dpdk.rte_lcore cimport rte_rdtsc, rte_get_tsc_hz
from dpdkvirtio._dpdk.dv_shim cimport dv_store_seq_int, dv_load_acquire_int
from dpdkvirtio._core.dp_types cimport dv_port, DV_KIND_VHOST
from dpdkvirtio._core.dp_hot cimport dv_vhost_quiesce, dv_devices_changed
from dpdkvirtio._core.port cimport Port, PORT_CREATED, PORT_STARTED, PORT_CLOSED
from dpdkvirtio._core.mempool cimport Mempool
from dpdkvirtio._core.errors cimport raise_dpdk
from dpdkvirtio._core.eal cimport eal_check_usable, eal_alive
from dpdkvirtio._core.fdhygiene cimport cloexec_sweep_c
from dpdkvirtio._core.screen cimport (screen_message, message_request, SCREEN_PASS,
    SCREEN_REFUSE, SCREEN_POSTCOPY_ADVISED)
import errno
import os

from dpdkvirtio.errors import ConfigError, VhostError, make_error

# DPDK 22.11's vhost event thread ("vhost-events") waits in poll() (1 s timeout) on the
# fds it had when the wait began; a socket that starts listening meanwhile is not polled
# until that wait times out, so a front-end's first message waited up to 1 s (a
# VirtioUserPort to a server started just before took 1.0 s in every test and benchmark
# trial). The library wakes the thread through a pipe of its own for a new connection but
# not for a new listening socket: we do, after each server start. The pipe is the one
# pair that the process's first rte_vhost_driver_start creates; not found (another DPDK),
# nothing is written and starts behave as before.
_UNKNOWN, _ABSENT = -2, -1
_events_pipe = [_UNKNOWN, None]      # its write end's fd once found, and the pipe's inode


def _pipe_ends() -> dict:
    """{fd: (pipe inode, O_ACCMODE)} of this process's pipe fds."""
    out = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
            if not target.startswith("pipe:["):
                continue
            with open(f"/proc/self/fdinfo/{name}") as f:
                flags = next(int(line.split()[1], 8) for line in f if line.startswith("flags:"))
        except (OSError, StopIteration, ValueError):
            continue
        out[int(name)] = (target, flags & 3)
    return out


def _find_events_pipe(before: dict, after: dict) -> None:
    """The write end of the one pipe whose both ends appeared between the two readings
    (anything else: none is used)."""
    new = {fd: v for fd, v in after.items() if before.get(fd) != v}
    inodes = {ino for ino, _mode in new.values()}
    writers = [fd for fd, (_ino, mode) in new.items() if mode == os.O_WRONLY]
    if len(inodes) == 1 and len(new) == 2 and len(writers) == 1:
        _events_pipe[:] = [writers[0], inodes.pop()]
    else:
        _events_pipe[:] = [_ABSENT, None]


def _wake_events_thread() -> None:
    """One byte into the event thread's pipe (its reader discards it), if the fd still
    is that pipe."""
    fd, inode = _events_pipe
    if fd < 0:
        return
    try:
        if os.readlink(f"/proc/self/fd/{fd}") != inode:
            raise OSError("the fd is no longer the events pipe")
        os.write(fd, b"1")
    except OSError:
        _events_pipe[:] = [_ABSENT, None]


cdef enum:
    MAX_SLOTS = 1024              # RTE_MAX_VHOST_DEVICE / MAX_VHOST_SOCKET
    EVENT_RING = 8192
    PATH_MAX_LEN = 108            # sizeof(sun_path)

# Event kinds (kept in step with EVENT_NAMES below).
cdef enum:
    EV_NEW_CONNECTION = 1
    EV_NEW_DEVICE = 2
    EV_VRING_STATE = 3
    EV_FEATURES_CHANGED = 4
    EV_DESTROY_DEVICE = 5
    EV_DESTROY_CONNECTION = 6
    EV_CONNECTION_REFUSED = 7
    EV_MESSAGE_REJECTED = 8

EVENT_NAMES = {1: "new_connection", 2: "new_device", 3: "vring_state_changed",
               4: "features_changed", 5: "destroy_device", 6: "destroy_connection",
               7: "connection_refused", 8: "message_rejected"}

cdef struct dv_vhost_slot:
    char path[PATH_MAX_LEN]
    dv_port *port                 # NULL: slot free
    int generation
    int vid                       # connection's vid, -1 when none
    int running                   # new_device .. destroy_device
    uint64_t features             # negotiated, valid while running
    uint32_t n_vrings             # vrings the front-end set up
    uint32_t connections          # connections seen (reconnects)
    uint32_t devices              # new_device calls seen
    uint32_t refused              # extra front-ends turned away while one was connected
    uint32_t rejected             # messages refused by the screen (connection closed)
    int postcopy                  # the port offers postcopy (RTE_VHOST_USER_POSTCOPY_SUPPORT)
    int advised                   # POSTCOPY_ADVISE seen on the current connection
    uint64_t disconnect_tsc       # when the last device or connection ended

cdef struct dv_vhost_event:
    uint32_t kind
    int32_t slot
    int32_t generation
    int32_t vid
    uint32_t queue
    int32_t enable
    uint64_t features
    uint64_t tsc

cdef pthread_mutex_t g_lock
cdef dv_vhost_slot g_slots[MAX_SLOTS]
cdef int g_vid_slot[RTE_MAX_VHOST_DEVICE]
cdef dv_vhost_event g_events[EVENT_RING]
cdef uint64_t g_ev_head = 0       # next write
cdef uint64_t g_ev_tail = 0       # next read
cdef uint64_t g_ev_lost = 0
cdef int g_efd = -1
cdef rte_vhost_device_ops g_ops   # static storage: DPDK keeps the pointer
cdef rte_vhost_user_extern_ops g_screen

pthread_mutex_init(&g_lock, NULL)
for _i in range(RTE_MAX_VHOST_DEVICE):
    g_vid_slot[_i] = -1
for _i in range(MAX_SLOTS):
    g_slots[_i].vid = -1
g_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)


# ---- callbacks: DPDK threads, no GIL, no Python objects -------------------------------

cdef void _push_locked(uint32_t kind, int slot, int vid, uint32_t queue, int enable,
                       uint64_t features) noexcept nogil:
    global g_ev_head, g_ev_lost
    cdef dv_vhost_event *e
    cdef uint64_t one = 1
    if g_ev_head - g_ev_tail >= EVENT_RING:
        g_ev_lost += 1
        return
    e = &g_events[g_ev_head % EVENT_RING]
    e.kind = kind
    e.slot = slot
    e.generation = g_slots[slot].generation if slot >= 0 else 0
    e.vid = vid
    e.queue = queue
    e.enable = enable
    e.features = features
    e.tsc = rte_rdtsc()
    g_ev_head += 1
    if g_efd >= 0:
        write(g_efd, &one, 8)


cdef int _slot_by_path_locked(int vid) noexcept nogil:
    cdef char name[PATH_MAX_LEN]
    cdef int i
    if rte_vhost_get_ifname(vid, name, PATH_MAX_LEN) != 0:
        return -1
    for i in range(MAX_SLOTS):
        if g_slots[i].port is not NULL and strcmp(g_slots[i].path, name) == 0:
            return i
    return -1


cdef int _slot_of_locked(int vid) noexcept nogil:
    """The slot whose *current* connection is ``vid``, or -1 (unknown, or a connection that
    another one has replaced: its late callbacks must not touch the port)."""
    cdef int s = -1
    if 0 <= vid < RTE_MAX_VHOST_DEVICE:
        s = g_vid_slot[vid]
    if s < 0:
        s = _slot_by_path_locked(vid)
        if s >= 0 and g_slots[s].vid < 0:
            g_slots[s].vid = vid             # adopt: no new_connection was seen for it
            if 0 <= vid < RTE_MAX_VHOST_DEVICE:
                g_vid_slot[vid] = s
    if s >= 0 and g_slots[s].vid != vid:
        return -1
    return s


cdef void _count_rejected_locked(int s, int vid, uint32_t request) noexcept nogil:
    if s >= 0:
        g_slots[s].rejected += 1
        _push_locked(EV_MESSAGE_REJECTED, s, vid, request, 0, 0)


cdef rte_vhost_msg_result _on_message(int vid, void *msg) noexcept nogil:
    """Before DPDK handles a message of our connections: the screen (screen.pyx) decides,
    this hook keeps the port's books (postcopy advised once, rejections counted and
    reported as "message_rejected" events)."""
    cdef int s, verdict
    cdef bint postcopy_allowed
    pthread_mutex_lock(&g_lock)
    s = g_vid_slot[vid] if 0 <= vid < RTE_MAX_VHOST_DEVICE else -1
    postcopy_allowed = s >= 0 and g_slots[s].postcopy and not g_slots[s].advised
    pthread_mutex_unlock(&g_lock)
    # (one connection's messages are handled one at a time, on the vhost-events thread)
    verdict = screen_message(<char *>msg, postcopy_allowed, vid)
    if verdict == SCREEN_PASS:
        return RTE_VHOST_MSG_RESULT_NOT_HANDLED
    pthread_mutex_lock(&g_lock)
    if verdict == SCREEN_POSTCOPY_ADVISED:
        if s >= 0:
            g_slots[s].advised = 1
    else:
        _count_rejected_locked(s, vid, message_request(<char *>msg))
    pthread_mutex_unlock(&g_lock)
    if verdict == SCREEN_REFUSE:
        return RTE_VHOST_MSG_RESULT_ERR
    return RTE_VHOST_MSG_RESULT_NOT_HANDLED


cdef int _on_new_connection(int vid) noexcept nogil:
    pthread_mutex_lock(&g_lock)
    cdef int s = _slot_by_path_locked(vid)
    cdef int rc = 0
    if s >= 0:
        if g_slots[s].vid >= 0 and g_slots[s].vid != vid and g_slots[s].running:
            # A server socket accepts any number of connections; a second front-end must
            # not take the port over from the one whose device runs: refusing here makes
            # DPDK close its connection.
            g_slots[s].refused += 1
            _push_locked(EV_CONNECTION_REFUSED, s, vid, 0, 0, 0)
            rc = -1
        else:
            # (an older connection without a running device is on its way out: DPDK
            # reports destroy_device before destroy_connection; the new one replaces it)
            if 0 <= vid < RTE_MAX_VHOST_DEVICE:
                g_vid_slot[vid] = s
            g_slots[s].vid = vid
            g_slots[s].connections += 1
            g_slots[s].advised = 0
            _push_locked(EV_NEW_CONNECTION, s, vid, 0, 0, 0)
    pthread_mutex_unlock(&g_lock)
    if rc == 0:
        rte_vhost_extern_callback_register(vid, &g_screen, NULL)
    cloexec_sweep_c()                          # the connection's socket
    return rc


cdef int _on_new_device(int vid) noexcept nogil:
    cdef uint64_t features = 0
    cdef uint16_t nvr, i
    pthread_mutex_lock(&g_lock)
    cdef int s = _slot_of_locked(vid)
    cdef dv_port *p
    if s >= 0:
        p = g_slots[s].port
        rte_vhost_get_negotiated_features(vid, &features)
        nvr = rte_vhost_get_vring_num(vid)
        # We poll: ask the guest not to kick us on every packet.
        for i in range(nvr):
            rte_vhost_enable_guest_notification(vid, i, 0)
        g_slots[s].features = features
        g_slots[s].n_vrings = nvr
        g_slots[s].running = 1
        g_slots[s].devices += 1
        dv_store_seq_int(&p.vid, vid)          # publish to pollers last
        _push_locked(EV_NEW_DEVICE, s, vid, nvr, 1, features)
    pthread_mutex_unlock(&g_lock)
    if s >= 0:
        dv_devices_changed()                   # waiting PMDs re-arm with the new kickfds
    cloexec_sweep_c()                          # guest memory and kick/call eventfds
    return 0


cdef void _on_destroy_device(int vid) noexcept nogil:
    pthread_mutex_lock(&g_lock)
    cdef int s = _slot_of_locked(vid)
    cdef dv_port *p
    cdef uint32_t i
    if s >= 0:
        p = g_slots[s].port
        dv_store_seq_int(&p.vid, -1)
        dv_vhost_quiesce(p)                    # no poller uses the old vid after this
        for i in range(2 * p.n_queues):
            p.vring_enabled[i] = 0
        g_slots[s].running = 0
        g_slots[s].disconnect_tsc = rte_rdtsc()
        _push_locked(EV_DESTROY_DEVICE, s, vid, 0, 0, 0)
    pthread_mutex_unlock(&g_lock)


cdef int _on_vring_state_changed(int vid, uint16_t vring, int enable) noexcept nogil:
    pthread_mutex_lock(&g_lock)
    cdef int s = _slot_of_locked(vid)
    cdef dv_port *p
    if s >= 0:
        p = g_slots[s].port
        if vring < 2 * p.n_queues:
            p.vring_enabled[vring] = 1 if enable else 0
        _push_locked(EV_VRING_STATE, s, vid, vring, enable, 0)
    pthread_mutex_unlock(&g_lock)
    if s >= 0 and enable:
        dv_devices_changed()
    cloexec_sweep_c()
    return 0


cdef int _on_features_changed(int vid, uint64_t features) noexcept nogil:
    pthread_mutex_lock(&g_lock)
    cdef int s = _slot_of_locked(vid)
    if s >= 0:
        g_slots[s].features = features
        _push_locked(EV_FEATURES_CHANGED, s, vid, 0, 0, features)
    pthread_mutex_unlock(&g_lock)
    return 0


cdef void _on_destroy_connection(int vid) noexcept nogil:
    pthread_mutex_lock(&g_lock)
    cdef int s = -1
    if 0 <= vid < RTE_MAX_VHOST_DEVICE:
        s = g_vid_slot[vid]
        g_vid_slot[vid] = -1
    if s >= 0 and g_slots[s].vid == vid:      # a replaced connection leaves the slot alone
        g_slots[s].vid = -1
        g_slots[s].disconnect_tsc = rte_rdtsc()
        _push_locked(EV_DESTROY_CONNECTION, s, vid, 0, 0, 0)
    pthread_mutex_unlock(&g_lock)


g_ops.new_device = _on_new_device
g_ops.destroy_device = _on_destroy_device
g_ops.vring_state_changed = _on_vring_state_changed
g_ops.features_changed = _on_features_changed
g_ops.new_connection = _on_new_connection
g_ops.destroy_connection = _on_destroy_connection
g_ops.guest_notified = NULL
g_screen.pre_msg_handle = _on_message
g_screen.post_msg_handle = NULL


# ---- Python side ------------------------------------------------------------------------

def events_fd():
    """An fd that becomes readable when events are queued (for select/asyncio)."""
    return g_efd


def events_lost():
    """Events dropped because nobody drained the ring (the port state stays exact)."""
    return g_ev_lost


def drain_events():
    """Take every queued event: a list of (kind, slot, generation, vid, queue, enable,
    features, tsc) tuples, oldest first. kind names are in EVENT_NAMES."""
    global g_ev_tail
    cdef uint64_t counter
    cdef dv_vhost_event e
    out = []
    if g_efd >= 0:
        read(g_efd, &counter, 8)
    while True:
        with nogil:
            pthread_mutex_lock(&g_lock)
            if g_ev_tail == g_ev_head:
                pthread_mutex_unlock(&g_lock)
                break
            e = g_events[g_ev_tail % EVENT_RING]
            g_ev_tail += 1
            pthread_mutex_unlock(&g_lock)
        out.append((EVENT_NAMES.get(e.kind, str(e.kind)), e.slot, e.generation, e.vid,
                    e.queue, e.enable, e.features, e.tsc))
    return out


@cython.no_gc_clear
cdef class VhostPort(Port):
    """A vhost-user socket served by the vhost library. Use the L2 classes
    (VhostUserPort: server, VhostUserClientPort: client)."""

    def __cinit__(self, *args, **kwargs):
        self._slot = -1

    def open(self, Mempool mempool not None, str path, uint64_t flags, int n_queues,
             uint64_t disable_features, uint64_t enable_features, int tx_retries_max,
             socket_mode=None, socket_owner=None, socket_group=None):
        """Register ``path`` with ``flags`` (RTE_VHOST_USER_*), adjust features and
        callbacks. The socket is not listened on / connected until start(); a server
        socket then gets ``socket_mode`` and ``socket_owner``/``socket_group`` (numbers,
        None: unchanged). On failure everything done is undone (_teardown)."""
        eal_check_usable()
        if self._registered or self._state != PORT_CREATED:
            raise VhostError(None, "port already set up")
        b_path = path.encode()
        if len(b_path) >= PATH_MAX_LEN:
            raise ConfigError(f"socket path is {len(b_path)} bytes; the limit is {PATH_MAX_LEN - 1}")
        self.name = path
        self.path = path
        self.flags = flags | RTE_VHOST_USER_NET_STATS_ENABLE
        self._socket_mode = socket_mode
        self._socket_owner = socket_owner
        self._socket_group = socket_group
        cdef const char *c_path = b_path
        cdef int rc, i, slot = -1
        cdef uint64_t pfeat = 0
        # Claim a slot first so callbacks can find the port as soon as DPDK knows the path.
        self.alloc_port(DV_KIND_VHOST, mempool, n_queues, tx_retries_max)
        with nogil:
            pthread_mutex_lock(&g_lock)
            for i in range(MAX_SLOTS):
                if g_slots[i].port is not NULL and strcmp(g_slots[i].path, c_path) == 0:
                    slot = -2
                    break
            if slot == -1:
                for i in range(MAX_SLOTS):
                    if g_slots[i].port is NULL:
                        slot = i
                        break
            if slot >= 0:
                memset(&g_slots[slot], 0, sizeof(dv_vhost_slot))
                strncpy(g_slots[slot].path, c_path, PATH_MAX_LEN - 1)
                g_slots[slot].vid = -1
                g_slots[slot].generation = self._generation = _next_generation()
                g_slots[slot].port = self._p
                g_slots[slot].postcopy = (flags & RTE_VHOST_USER_POSTCOPY_SUPPORT) != 0
            pthread_mutex_unlock(&g_lock)
        if slot == -2:
            self.release_port()
            raise make_error(VhostError, errno.EEXIST,
                             f"socket {path!r} is already used by a port of this process",
                             None, "Close that port first or use another path")
        if slot == -1:
            self.release_port()
            raise make_error(VhostError, errno.ENOSPC,
                             f"all {MAX_SLOTS} vhost-user port slots are in use", None,
                             "Close unused ports")
        self._slot = slot
        try:
            rc = rte_vhost_driver_register(c_path, self.flags)
            if rc != 0:
                raise_dpdk(VhostError, 0, "rte_vhost_driver_register",
                           f"could not register {path!r}: check the DPDK log; at most "
                           f"{MAX_SLOTS} sockets per process")
            self._registered = True
            if disable_features and rte_vhost_driver_disable_features(c_path, disable_features) != 0:
                raise_dpdk(VhostError, 0, "rte_vhost_driver_disable_features")
            if enable_features and rte_vhost_driver_enable_features(c_path, enable_features) != 0:
                raise_dpdk(VhostError, 0, "rte_vhost_driver_enable_features")
            # inflight tracking (vhost-user-blk) is not offered: see _screen_message
            if rte_vhost_driver_get_protocol_features(c_path, &pfeat) == 0:
                rte_vhost_driver_set_protocol_features(
                    c_path, pfeat & ~((<uint64_t>1) << VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD))
            if rte_vhost_driver_callback_register(c_path, &g_ops) != 0:
                raise_dpdk(VhostError, 0, "rte_vhost_driver_callback_register")
        except BaseException:
            self._teardown()
            raise

    def start(self):
        """rte_vhost_driver_start: listen (server) or connect (client; if the server is
        not there yet the library keeps retrying). Once only. A server socket is bound
        under a tight umask, then given its mode and owner."""
        eal_check_usable()
        if self._state == PORT_STARTED:
            return
        self.require_state(PORT_CREATED, "start")
        b_path = self.path.encode()
        cdef const char *c_path = b_path
        cdef int rc
        cdef bint server = not (self.flags & RTE_VHOST_USER_CLIENT)
        # The library binds on this thread: a tight umask closes the window before chmod.
        old_umask = os.umask(0o177) if server else None
        before = _pipe_ends() if _events_pipe[0] == _UNKNOWN else None
        try:
            with nogil:
                rc = rte_vhost_driver_start(c_path)
        finally:
            if old_umask is not None:
                os.umask(old_umask)
        if before is not None and rc == 0:
            _find_events_pipe(before, _pipe_ends())
        if rc == 0 and server:
            _wake_events_thread()
        if rc == 0 and server:
            if self._socket_mode is not None:
                os.chmod(self.path, self._socket_mode)
            if self._socket_owner is not None or self._socket_group is not None:
                os.chown(self.path, -1 if self._socket_owner is None else self._socket_owner,
                         -1 if self._socket_group is None else self._socket_group)
        if rc != 0 and server:
            raise_dpdk(VhostError, 0, "rte_vhost_driver_start",
                       f"could not start {self.path!r}: a server socket path must not exist "
                       "and its directory must be writable; see the DPDK log")
        if rc != 0:
            raise_dpdk(VhostError, 0, "rte_vhost_driver_start",
                       f"could not connect to {self.path!r}: start the server first (QEMU "
                       "server=on, virtio-user server=1), or keep reconnect=True to wait "
                       "for it; see the DPDK log")
        self._started = True
        self._state = PORT_STARTED
        with nogil:
            cloexec_sweep_c()                     # the listening socket

    cdef int _teardown(self) except -1:
        """Unregister the socket (a server socket file is removed), free the slot and the
        port: the mirror of open."""
        b_path = (self.path or "").encode()
        cdef const char *c_path = b_path
        cdef int slot = self._slot
        cdef int i
        cdef uint64_t settle_tsc
        if self._registered:
            if slot >= 0 and (self.flags & RTE_VHOST_USER_CLIENT):
                # DPDK 22.11 race: after a client's connection ends, the vhost-events thread
                # calls destroy_device, drops the connection, and only then creates the
                # socket it reconnects with; an unregister in between misses that socket
                # (an fd leaked, once per close). Give the thread that moment.
                settle_tsc = g_slots[slot].disconnect_tsc + rte_get_tsc_hz() // 10
                with nogil:
                    while rte_rdtsc() < settle_tsc:
                        usleep(1000)
            with nogil:
                # May call destroy_device/destroy_connection on this thread.
                rte_vhost_driver_unregister(c_path)
            self._registered = False
        if slot >= 0:
            with nogil:
                pthread_mutex_lock(&g_lock)
                for i in range(RTE_MAX_VHOST_DEVICE):
                    if g_vid_slot[i] == slot:
                        g_vid_slot[i] = -1
                g_slots[slot].port = NULL
                g_slots[slot].path[0] = 0
                g_slots[slot].vid = -1
                g_slots[slot].running = 0
                pthread_mutex_unlock(&g_lock)
            self._slot = -1
        self._state = PORT_CLOSED
        self.release_port()
        return 0

    def __dealloc__(self):
        # Never blocks (unregister may spin): an open port is closed by the L2 registry at
        # exit; here the memory is released only when no callback can reach it.
        if self._slot < 0 or not eal_alive():
            if self._slot < 0:
                self.release_port()

    @property
    def slot(self):
        return self._slot

    @property
    def generation(self):
        return self._generation

    def status(self):
        """A dict of the live state: vid, running (a device is up), features, n_vrings,
        connections, devices, enabled vrings."""
        cdef dv_vhost_slot s
        if self._slot < 0:
            return {"vid": -1, "running": False, "features": 0, "n_vrings": 0,
                    "connections": 0, "devices": 0, "refused": 0, "rejected": 0,
                    "enabled_vrings": []}
        with nogil:
            pthread_mutex_lock(&g_lock)
            s = g_slots[self._slot]
            pthread_mutex_unlock(&g_lock)
        enabled = [i for i in range(2 * self._p.n_queues) if self._p.vring_enabled[i]]
        return {"vid": s.vid, "running": bool(s.running), "features": s.features,
                "n_vrings": s.n_vrings, "connections": s.connections, "devices": s.devices,
                "refused": s.refused, "rejected": s.rejected, "enabled_vrings": enabled}

    @property
    def running(self):
        """True while a front-end device is up (between new_device and destroy_device)."""
        return self._p is not NULL and dv_load_acquire_int(&self._p.vid) >= 0

    def vring_stats(self, int queue):
        """DPDK's per-vring stats for queue pair ``queue``: {name: value} for its rx (odd)
        and tx (even) vrings. Empty while no device runs."""
        eal_check_usable()
        if self._p is NULL:
            return {}
        cdef int vid = dv_load_acquire_int(&self._p.vid)
        if vid < 0:
            return {}
        cdef int n, got
        cdef rte_vhost_stat_name names[64]
        cdef rte_vhost_stat vals[64]
        out = {}
        for vring in (2 * queue + 1, 2 * queue):
            n = rte_vhost_vring_stats_get_names(vid, vring, names, 64)
            if n <= 0 or n > 64:
                continue
            got = rte_vhost_vring_stats_get(vid, vring, vals, 64)
            for i in range(min(n, got)):
                out[names[vals[i].id].name.decode()] = vals[i].value
        return out

    def socket_features(self):
        """Features offered on this socket (before negotiation)."""
        eal_check_usable()
        cdef uint64_t f = 0
        b_path = self.path.encode()
        if rte_vhost_driver_get_features(b_path, &f) != 0:
            raise_dpdk(VhostError, 0, "rte_vhost_driver_get_features")
        return f


cdef int g_generation = 0

cdef int _next_generation() noexcept nogil:
    global g_generation
    g_generation += 1
    return g_generation


FLAG_CLIENT = RTE_VHOST_USER_CLIENT
FLAG_NO_RECONNECT = RTE_VHOST_USER_NO_RECONNECT
FLAG_IOMMU_SUPPORT = RTE_VHOST_USER_IOMMU_SUPPORT
FLAG_POSTCOPY_SUPPORT = RTE_VHOST_USER_POSTCOPY_SUPPORT
FLAG_EXTBUF_SUPPORT = RTE_VHOST_USER_EXTBUF_SUPPORT
FLAG_LINEARBUF_SUPPORT = RTE_VHOST_USER_LINEARBUF_SUPPORT
FLAG_NET_COMPLIANT_OL_FLAGS = RTE_VHOST_USER_NET_COMPLIANT_OL_FLAGS
FLAG_NET_STATS_ENABLE = RTE_VHOST_USER_NET_STATS_ENABLE
