# cython: language_level=3
"""VhostPort (L1): the vhost library used directly (as OVS-DPDK does), not the net_vhost PMD.

Callbacks from DPDK's vhost-events / reconnect threads never take the GIL: they update
the port's C state (vid, enabled vrings) and append fixed-size records to a ring,
signalling an eventfd; Python drains the ring (drain_events) when it wants to.

Order: register → disable/enable features → callback_register → start. close() calls
rte_vhost_driver_unregister without the GIL (it may run destroy_device synchronously)."""
cimport cython
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int32_t
from libc.string cimport strncpy, strcmp, strncmp, memset
from libc.stdio cimport snprintf
from posix.unistd cimport write, read, close as c_close
from dpdkvirtio._dpdk.rte_vhost cimport *
from dpdkvirtio._dpdk.rte_lcore cimport rte_rdtsc
from dpdkvirtio._dpdk.dv_shim cimport dv_store_seq_int, dv_store_release_int, dv_load_acquire_int
from dpdkvirtio._core.datapath cimport dv_port, dv_vhost_quiesce, DV_KIND_VHOST
from dpdkvirtio._core.port cimport Port, PORT_CREATED, PORT_STARTED, PORT_STOPPED, PORT_CLOSED
from dpdkvirtio._core.mempool cimport Mempool
from dpdkvirtio._core.errors cimport raise_dpdk
from dpdkvirtio._core.eal cimport eal_check_usable, eal_alive
import errno

from dpdkvirtio.errors import ConfigError, VhostError, make_error

cdef extern from "<pthread.h>" nogil:
    ctypedef struct pthread_mutex_t:
        pass
    int pthread_mutex_init(pthread_mutex_t *m, const void *attr)
    int pthread_mutex_lock(pthread_mutex_t *m)
    int pthread_mutex_unlock(pthread_mutex_t *m)

cdef extern from "<dirent.h>" nogil:
    ctypedef struct DIR:
        pass
    struct dirent:
        char d_name[256]
    DIR *opendir(const char *name)
    dirent *readdir(DIR *d)
    int closedir(DIR *d)
    int dirfd(DIR *d)

cdef extern from "<fcntl.h>" nogil:
    int fcntl(int fd, int cmd, ...)
    enum: F_GETFD
    enum: F_SETFD
    enum: FD_CLOEXEC

cdef extern from "<unistd.h>" nogil:
    ssize_t readlink(const char *path, char *buf, size_t size)

cdef extern from "<stdlib.h>" nogil:
    int atoi(const char *s)

cdef extern from "<sys/stat.h>" nogil:
    cdef struct stat:
        unsigned int st_mode
        long st_size
    int fstat(int fd, stat *buf)
    bint S_ISREG(unsigned int mode)

cdef extern from "<sys/eventfd.h>" nogil:
    int eventfd(unsigned int initval, int flags)
    enum: EFD_NONBLOCK
    enum: EFD_CLOEXEC

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
    VHOST_USER_SET_MEM_TABLE = 5
    VHOST_USER_POSTCOPY_ADVISE = 28
    VHOST_USER_GET_INFLIGHT_FD = 31
    VHOST_USER_SET_INFLIGHT_FD = 32
    # struct vhu_msg_context of DPDK 22.11 (lib/vhost/vhost_user.h, packed): a 12-byte
    # header, a 632-byte payload union (its largest member is VhostUserCryptoSessionParam),
    # then int fds[8] and int fd_num. The screen only trusts these offsets when what it
    # finds there looks like received fds (0 <= fd_num <= 8, each fd open).
    MSG_PAYLOAD = 12
    CTX_FDS = 12 + 632
    CTX_FD_NUM = 12 + 632 + 8 * 4
    CTX_MAX_FDS = 8
    MEM_MAX_REGIONS = 8

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


cdef uint32_t _cloexec_sweep() noexcept nogil:
    """Mark inheritable memfds, eventfds and sockets close-on-exec. DPDK's vhost library
    receives guest memory and kick/call eventfds with recvmsg() without MSG_CMSG_CLOEXEC and
    creates its sockets without SOCK_CLOEXEC: a child process would inherit a guest's
    memory. Python makes its own fds non-inheritable already (PEP 446)."""
    cdef DIR *d = opendir("/proc/self/fd")
    cdef dirent *e
    cdef char path[64]
    cdef char link[64]
    cdef ssize_t n
    cdef int fd, flags, own
    cdef uint32_t changed = 0
    if d is NULL:
        return 0
    own = dirfd(d)
    while True:
        e = readdir(d)
        if e is NULL:
            break
        if e.d_name[0] < 48 or e.d_name[0] > 57:      # not a number
            continue
        fd = atoi(e.d_name)
        if fd == own or fd < 3:
            continue
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd)
        n = readlink(path, link, sizeof(link) - 1)
        if n <= 0:
            continue
        link[n] = 0
        # (the kernel shows a memfd as "/memfd:NAME (deleted)")
        if strncmp(link, "/memfd:", 7) != 0 and strncmp(link, "socket:", 7) != 0 \
                and strncmp(link, "anon_inode:[eventfd]", 20) != 0:
            continue
        flags = fcntl(fd, F_GETFD)
        if flags >= 0 and not (flags & FD_CLOEXEC):
            fcntl(fd, F_SETFD, flags | FD_CLOEXEC)
            changed += 1
    closedir(d)
    return changed


def cloexec_sweep():
    """Run the sweep now (see _cloexec_sweep); returns how many fds it changed."""
    cdef uint32_t n
    with nogil:
        n = _cloexec_sweep()
    return n


cdef bint _ctx_fds_sane(char *ctx) noexcept nogil:
    cdef int n = (<int *>(ctx + CTX_FD_NUM))[0]
    cdef int *fds = <int *>(ctx + CTX_FDS)
    cdef int i
    if n < 0 or n > CTX_MAX_FDS:
        return False
    for i in range(n):
        if fds[i] < 0 or fcntl(fds[i], F_GETFD) < 0:
            return False
    return True


cdef void _ctx_drop_fds(char *ctx) noexcept nogil:
    """Close the fds the message carried and tell DPDK it carried none: DPDK's handler then
    fails its own fd-count check, and nothing is left to leak."""
    cdef int n = (<int *>(ctx + CTX_FD_NUM))[0]
    cdef int *fds = <int *>(ctx + CTX_FDS)
    cdef int i
    for i in range(n):
        c_close(fds[i])
        fds[i] = -1
    (<int *>(ctx + CTX_FD_NUM))[0] = 0


cdef bint _mem_table_maps(char *ctx) noexcept nogil:
    """Whether every region of a SET_MEM_TABLE message lies inside the regular file sent
    for it. (DPDK 22.11 keeps the fd of the region whose mmap fails: it is moved out of
    the message before mapping and not counted for clean-up.)"""
    cdef uint32_t nregions = (<uint32_t *>(ctx + MSG_PAYLOAD))[0]
    cdef int fd_num = (<int *>(ctx + CTX_FD_NUM))[0]
    cdef int *fds = <int *>(ctx + CTX_FDS)
    cdef uint64_t *region
    cdef uint64_t size, offset
    cdef stat st
    cdef int i
    if nregions > MEM_MAX_REGIONS or <int>nregions != fd_num:
        return True                     # DPDK refuses these itself and closes the fds
    for i in range(<int>nregions):
        region = <uint64_t *>(ctx + MSG_PAYLOAD + 8 + 32 * i)   # gpa, size, uaddr, offset
        size = region[1]
        offset = region[3]
        if fstat(fds[i], &st) != 0 or not S_ISREG(st.st_mode) or size == 0:
            return False
        if offset > <uint64_t>st.st_size or size > <uint64_t>st.st_size - offset:
            return False
    return True


cdef rte_vhost_msg_result _screen_message(int vid, void *msg) noexcept nogil:
    """Runs before DPDK handles each vhost-user message of our connections, on the one
    vhost-events thread that serves every port, and neutralises requests that DPDK 22.11
    handles dangerously:
    - GET_INFLIGHT_FD creates and zero-fills a memfd of num_queues x queue_size entries,
      both chosen by the front-end (up to ~64 GB, a stall of every port). Inflight tracking
      is for vhost-user-blk; net ports do not offer it. Its sizes (payload bytes 12..35)
      are zeroed, so DPDK's handler fails at once and closes the connection.
    - SET_INFLIGHT_FD keeps the fd it received when it fails; SET_MEM_TABLE keeps the fd of
      a region it cannot map. Their fds are closed here and the message is passed on with
      none, so DPDK's handler fails its fd check and closes the connection.
    - POSTCOPY_ADVISE creates a userfaultfd that outlives the connection: refused unless
      the port offers postcopy, and then once per connection.
    Every fd a message carries is made close-on-exec here. A neutralised message counts
    in the port's ``rejected`` status and is reported as a "message_rejected" event."""
    cdef char *ctx = <char *>msg
    cdef uint32_t request = (<uint32_t *>ctx)[0]
    cdef int s, i, flags
    cdef bint reject = False
    if _ctx_fds_sane(ctx):
        # every fd a front-end sends (guest memory, kick/call eventfds) close-on-exec at
        # once: DPDK receives them without MSG_CMSG_CLOEXEC
        for i in range((<int *>(ctx + CTX_FD_NUM))[0]):
            flags = fcntl((<int *>(ctx + CTX_FDS))[i], F_GETFD)
            if flags >= 0 and not (flags & FD_CLOEXEC):
                fcntl((<int *>(ctx + CTX_FDS))[i], F_SETFD, flags | FD_CLOEXEC)
    if request == VHOST_USER_POSTCOPY_ADVISE:
        # DPDK 22.11 creates a userfaultfd for every POSTCOPY_ADVISE, whether or not
        # postcopy was offered, and keeps it after the connection ends: refused here
        # unless the port offers postcopy, and then once per connection. The handler
        # does not run (RESULT_ERR from this hook); DPDK closes the connection.
        pthread_mutex_lock(&g_lock)
        s = g_vid_slot[vid] if 0 <= vid < RTE_MAX_VHOST_DEVICE else -1
        if s < 0 or not g_slots[s].postcopy or g_slots[s].advised:
            if _ctx_fds_sane(ctx):
                _ctx_drop_fds(ctx)      # DPDK's error path would keep what it carried
            if s >= 0:
                g_slots[s].rejected += 1
                _push_locked(EV_MESSAGE_REJECTED, s, vid, request, 0, 0)
            pthread_mutex_unlock(&g_lock)
            return RTE_VHOST_MSG_RESULT_ERR
        g_slots[s].advised = 1
        pthread_mutex_unlock(&g_lock)
    elif request == VHOST_USER_GET_INFLIGHT_FD:
        memset(ctx + MSG_PAYLOAD, 0, 24)
        reject = True
    elif request == VHOST_USER_SET_INFLIGHT_FD or request == VHOST_USER_SET_MEM_TABLE:
        if not _ctx_fds_sane(ctx):
            return RTE_VHOST_MSG_RESULT_NOT_HANDLED     # unknown layout: leave it to DPDK
        if request == VHOST_USER_SET_INFLIGHT_FD:
            memset(ctx + MSG_PAYLOAD, 0, 24)
            _ctx_drop_fds(ctx)
            reject = True
        elif not _mem_table_maps(ctx):
            (<uint32_t *>(ctx + MSG_PAYLOAD))[0] = 1      # one region expected, no fd sent
            _ctx_drop_fds(ctx)
            reject = True
    if reject:
        pthread_mutex_lock(&g_lock)
        s = g_vid_slot[vid] if 0 <= vid < RTE_MAX_VHOST_DEVICE else -1
        if s >= 0:
            g_slots[s].rejected += 1
            _push_locked(EV_MESSAGE_REJECTED, s, vid, request, 0, 0)
        pthread_mutex_unlock(&g_lock)
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
    _cloexec_sweep()                          # the connection's socket
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
    _cloexec_sweep()                          # guest memory and kick/call eventfds
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
    _cloexec_sweep()
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
        _push_locked(EV_DESTROY_CONNECTION, s, vid, 0, 0, 0)
    pthread_mutex_unlock(&g_lock)


g_ops.new_device = _on_new_device
g_ops.destroy_device = _on_destroy_device
g_ops.vring_state_changed = _on_vring_state_changed
g_ops.features_changed = _on_features_changed
g_ops.new_connection = _on_new_connection
g_ops.destroy_connection = _on_destroy_connection
g_ops.guest_notified = NULL
g_screen.pre_msg_handle = _screen_message
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

    def _setup(self, Mempool mempool not None, str path, uint64_t flags, int n_queues,
               uint64_t disable_features, uint64_t enable_features, int tx_retries_max):
        """Register ``path`` with ``flags`` (RTE_VHOST_USER_*), adjust features and
        callbacks. The socket is not listened on / connected until start()."""
        eal_check_usable()
        if self._registered or self._state != PORT_CREATED:
            raise VhostError(None, "port already set up")
        b_path = path.encode()
        if len(b_path) >= PATH_MAX_LEN:
            raise ConfigError(f"socket path is {len(b_path)} bytes; the limit is {PATH_MAX_LEN - 1}")
        self.name = path
        self.path = path
        self.flags = flags | RTE_VHOST_USER_NET_STATS_ENABLE
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
        not there yet the library keeps retrying). Once only."""
        eal_check_usable()
        if self._state == PORT_STARTED:
            return
        self.require_state(PORT_CREATED, "start")
        b_path = self.path.encode()
        cdef const char *c_path = b_path
        cdef int rc
        with nogil:
            rc = rte_vhost_driver_start(c_path)
        if rc != 0:
            raise_dpdk(VhostError, 0, "rte_vhost_driver_start",
                       f"could not start {self.path!r}: a server socket path must not exist "
                       "and its directory must be writable; see the DPDK log")
        self._started = True
        self._state = PORT_STARTED
        cloexec_sweep()                           # the listening socket

    def close(self):
        """Unregister the socket (a server socket file is removed) and free the port.
        Idempotent. Stop every poller of this port first."""
        if self._state == PORT_CLOSED:
            return
        if not eal_alive():
            self._state = PORT_CLOSED
            return
        self._teardown()

    cdef _teardown(self):
        b_path = (self.path or "").encode()
        cdef const char *c_path = b_path
        cdef int slot = self._slot
        cdef int i
        if self._registered:
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
        cdef int n, got, got2
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
