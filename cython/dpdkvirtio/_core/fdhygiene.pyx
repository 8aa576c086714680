# cython: language_level=3
"""fd hygiene (L1): DPDK's vhost library receives guest memory and kick/call eventfds with
recvmsg() without MSG_CMSG_CLOEXEC and creates its sockets without SOCK_CLOEXEC, so a
child process would inherit a guest's memory. These functions mark such fds
close-on-exec; they run on DPDK's threads (no GIL). Python's own fds are
non-inheritable already (PEP 446)."""
from libc.stdint cimport uint32_t
from libc.stdio cimport snprintf
from libc.string cimport strncmp
from dpdkvirtio._dpdk.posix_extra cimport (DIR, dirent, opendir, readdir, closedir, dirfd,
    fcntl, F_GETFD, F_SETFD, FD_CLOEXEC, readlink, atoi)


cdef void mark_cloexec(int fd) noexcept nogil:
    """Set FD_CLOEXEC on ``fd`` (no-op when set or not open)."""
    cdef int flags = fcntl(fd, F_GETFD)
    if flags >= 0 and not (flags & FD_CLOEXEC):
        fcntl(fd, F_SETFD, flags | FD_CLOEXEC)


cdef uint32_t cloexec_sweep_c() noexcept nogil:
    """Mark every inheritable memfd, eventfd and socket of this process close-on-exec;
    returns how many it changed."""
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
        # one fcntl first: nearly every fd is close-on-exec already, and a readlink (a path
        # walk) per fd made each new vhost-user connection cost O(open fds) path walks
        flags = fcntl(fd, F_GETFD)
        if flags < 0 or flags & FD_CLOEXEC:
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
        if fcntl(fd, F_SETFD, flags | FD_CLOEXEC) == 0:
            changed += 1
    closedir(d)
    return changed


def cloexec_sweep():
    """Run the sweep now; returns how many fds it changed."""
    cdef uint32_t n
    with nogil:
        n = cloexec_sweep_c()
    return n
