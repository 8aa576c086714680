# cython: language_level=3
"""The vhost-user message screen (L1): runs before DPDK 22.11 handles each message of our
connections (on the one vhost-events thread, no GIL) and neutralises the requests DPDK
handles dangerously:

- GET_INFLIGHT_FD creates and zero-fills a memfd of num_queues x queue_size entries, both
  chosen by the front-end (up to ~64 GB, a stall of every port). Inflight tracking is for
  vhost-user-blk; net ports do not offer it. Its sizes (payload bytes 12..35) are zeroed,
  so DPDK's handler fails at once and closes the connection.
- SET_INFLIGHT_FD keeps the fd it received when it fails; SET_MEM_TABLE keeps the fd of a
  region it cannot map. Their fds are closed here and the message is passed on with none,
  so DPDK's handler fails its fd check and closes the connection.
- POSTCOPY_ADVISE creates a userfaultfd that outlives the connection: refused unless the
  caller allows it (the port offers postcopy and none was advised on this connection).
- SET_VRING_BASE on a packed ring takes the index (bits 0..14) as it comes: an index at
  or past the ring's size makes the data path read and write descriptors past the ring
  (found by the hostile-guest fuzz: a used descriptor written 64 KiB past the ring). So
  is SET_VRING_NUM shrinking a packed ring below its indexes, and SET_FEATURES turning
  rings whose indexes were set as split ones (free-running) into packed ones. All three
  are refused (DPDK closes the connection).

Every fd a message carries is made close-on-exec. The caller (vhost.pyx) counts every
verdict other than SCREEN_PASS as a rejected message of the port.

The screen reads DPDK 22.11's private ``struct vhu_msg_context`` (lib/vhost/vhost_user.h,
packed): a 12-byte header, a 632-byte payload union (its largest member is
VhostUserCryptoSessionParam), then int fds[8] and int fd_num. It trusts these offsets only
when what it finds there looks like received fds (0 <= fd_num <= 8, each fd open);
meson.build refuses any DPDK other than 22.11."""
from libc.stdint cimport uint16_t, uint32_t, uint64_t
from libc.string cimport memset
from posix.unistd cimport close as c_close
from dpdkvirtio._dpdk.posix_extra cimport fcntl, F_GETFD, stat, fstat, S_ISREG
from dpdkvirtio._core.fdhygiene cimport mark_cloexec
from dpdkvirtio._dpdk.rte_vhost cimport (rte_vhost_get_negotiated_features,
                                         rte_vhost_get_vhost_vring, rte_vhost_get_vring_base,
                                         rte_vhost_get_vring_num, rte_vhost_vring)

cdef enum:
    VHOST_USER_SET_FEATURES = 2
    VHOST_USER_SET_MEM_TABLE = 5
    VHOST_USER_SET_VRING_NUM = 8
    VHOST_USER_SET_VRING_BASE = 10
    VIRTIO_F_RING_PACKED = 34
    PACKED_INDEX_MASK = 0x7FFF
    VHOST_USER_POSTCOPY_ADVISE = 28
    VHOST_USER_GET_INFLIGHT_FD = 31
    VHOST_USER_SET_INFLIGHT_FD = 32
    MSG_PAYLOAD = 12
    CTX_FDS = 12 + 632
    CTX_FD_NUM = 12 + 632 + 8 * 4
    CTX_MAX_FDS = 8
    MEM_MAX_REGIONS = 8

# Layout facts, for tests and for the build check.
LAYOUT = {"payload": MSG_PAYLOAD, "fds": CTX_FDS, "fd_num": CTX_FD_NUM,
          "max_fds": CTX_MAX_FDS}


cdef uint32_t message_request(char *ctx) noexcept nogil:
    return (<uint32_t *>ctx)[0]


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


cdef bint _packed_indexes_fit(int vid, char *ctx, uint32_t request) noexcept nogil:
    """For a packed ring: whether the ring's avail and used indexes stay below its size
    after this SET_VRING_BASE or SET_VRING_NUM (payload: uint32 vring, uint32 num)."""
    cdef uint64_t features = 0
    cdef uint32_t vring = (<uint32_t *>(ctx + MSG_PAYLOAD))[0]
    cdef uint32_t num = (<uint32_t *>(ctx + MSG_PAYLOAD))[1]
    cdef rte_vhost_vring vr
    cdef uint16_t avail = 0, used = 0
    if rte_vhost_get_negotiated_features(vid, &features) != 0:
        return True
    if not (features >> VIRTIO_F_RING_PACKED) & 1 or vring > 0xFFFF:
        return True                     # split rings use indexes modulo their size
    if request == VHOST_USER_SET_VRING_BASE:
        if rte_vhost_get_vhost_vring(vid, <uint16_t>vring, &vr) != 0:
            return False                # no SET_VRING_NUM yet: no size to index within
        return (num & PACKED_INDEX_MASK) < vr.size
    if rte_vhost_get_vring_base(vid, <uint16_t>vring, &avail, &used) != 0:
        return True                     # a ring not set up yet: its indexes start at 0
    return (avail & PACKED_INDEX_MASK) < num and (used & PACKED_INDEX_MASK) < num


cdef bint _rings_fit_packed(int vid, char *ctx) noexcept nogil:
    """For SET_FEATURES (payload: uint64): when it asks for packed rings, whether every
    ring's indexes, set while it was split, lie within its size."""
    cdef uint64_t features = (<uint64_t *>(ctx + MSG_PAYLOAD))[0]
    cdef rte_vhost_vring vr
    cdef uint16_t i, avail = 0, used = 0
    if not (features >> VIRTIO_F_RING_PACKED) & 1:
        return True
    for i in range(rte_vhost_get_vring_num(vid)):
        if rte_vhost_get_vhost_vring(vid, i, &vr) != 0:
            continue
        if rte_vhost_get_vring_base(vid, i, &avail, &used) != 0:
            continue
        if avail >= vr.size or used >= vr.size:
            return False
    return True


cdef int screen_message(char *ctx, bint postcopy_allowed, int vid) noexcept nogil:
    """The verdict (SCREEN_*) on one message of connection ``vid``; rewrites it where
    that makes DPDK's handler fail safely."""
    cdef uint32_t request = message_request(ctx)
    cdef int i
    cdef bint sane = _ctx_fds_sane(ctx)
    if sane:
        for i in range((<int *>(ctx + CTX_FD_NUM))[0]):
            mark_cloexec((<int *>(ctx + CTX_FDS))[i])
    if request == VHOST_USER_POSTCOPY_ADVISE:
        if not postcopy_allowed:
            if sane:
                _ctx_drop_fds(ctx)      # DPDK's error path would keep what it carried
            return SCREEN_REFUSE
        return SCREEN_POSTCOPY_ADVISED
    if request == VHOST_USER_GET_INFLIGHT_FD:
        memset(ctx + MSG_PAYLOAD, 0, 24)
        return SCREEN_NEUTRALISED
    if request == VHOST_USER_SET_VRING_BASE or request == VHOST_USER_SET_VRING_NUM:
        return SCREEN_PASS if _packed_indexes_fit(vid, ctx, request) else SCREEN_REFUSE
    if request == VHOST_USER_SET_FEATURES:
        return SCREEN_PASS if _rings_fit_packed(vid, ctx) else SCREEN_REFUSE
    if request == VHOST_USER_SET_INFLIGHT_FD or request == VHOST_USER_SET_MEM_TABLE:
        if not sane:
            return SCREEN_PASS          # unknown layout: leave it to DPDK
        if request == VHOST_USER_SET_INFLIGHT_FD:
            memset(ctx + MSG_PAYLOAD, 0, 24)
            _ctx_drop_fds(ctx)
            return SCREEN_NEUTRALISED
        if not _mem_table_maps(ctx):
            (<uint32_t *>(ctx + MSG_PAYLOAD))[0] = 1      # one region expected, no fd sent
            _ctx_drop_fds(ctx)
            return SCREEN_NEUTRALISED
    return SCREEN_PASS
