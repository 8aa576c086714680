# cython: language_level=3
"""DPDK log stream → pipe (L1).

DPDK logs from any thread (lcores, vhost-events, interrupt thread), sometimes while
holding internal locks, so the stream's write callback never takes the GIL: it
writes one framed record per message into a non-blocking pipe that Python drains
(see dpdkvirtio.eal). A full pipe drops the record and counts it. Critical records
(rte_panic's message, sent just before abort()) also go straight to stderr: nobody
would drain the pipe after the process is gone.

Frame: int32 payload length, int32 DPDK level, int32 DPDK log type, payload bytes.
"""
from libc.stdio cimport FILE, fclose, fflush, setvbuf, _IOLBF
from libc.stdlib cimport free
from libc.string cimport memcpy
from libc.stdint cimport int32_t, uint64_t
from posix.unistd cimport write
from dpdkvirtio._dpdk.rte_log cimport (rte_openlog_stream, rte_log_cur_msg_loglevel,
    rte_log_cur_msg_logtype, rte_log_dump, rte_log_set_global_level, rte_log_set_level_pattern)

cdef extern from "stdio.h" nogil:
    ctypedef ssize_t (*dv_cookie_write_t)(void *cookie, const char *buf, size_t size) noexcept nogil
    ctypedef struct cookie_io_functions_t:
        void *read
        dv_cookie_write_t write
        void *seek
        void *close
    FILE *fopencookie(void *cookie, const char *mode, cookie_io_functions_t io_funcs)
    FILE *open_memstream(char **ptr, size_t *sizeloc)

cdef enum:
    FRAME_MAX = 4096          # PIPE_BUF: one write() of this size is atomic
    HEADER = 12
    LEVEL_CRIT = 3            # RTE_LOG_CRIT; EMERG=1, ALERT=2 are more severe

cdef int g_fd = -1
cdef uint64_t g_dropped = 0
cdef FILE *g_stream = NULL


cdef ssize_t _write_cb(void *cookie, const char *buf, size_t size) noexcept nogil:
    cdef char frame[FRAME_MAX]
    cdef int32_t header[3]
    cdef size_t room = FRAME_MAX - HEADER
    cdef size_t n = size if size < room else room
    cdef int fd = g_fd
    if fd < 0 or size == 0:
        return size
    header[0] = <int32_t>n
    header[1] = rte_log_cur_msg_loglevel()
    header[2] = rte_log_cur_msg_logtype()
    memcpy(frame, header, HEADER)
    memcpy(frame + HEADER, buf, n)
    if 0 < header[1] <= LEVEL_CRIT:
        write(2, b"DPDK: ", 6)
        write(2, buf, size)
    if write(fd, frame, HEADER + n) < 0:
        global g_dropped
        g_dropped += 1
    return size                     # always claim success: logging must never fail DPDK


def install(int write_fd):
    """Route DPDK's log stream into ``write_fd`` (the non-blocking write end of a
    pipe). Call before rte_eal_init to capture init messages too."""
    global g_fd, g_stream
    cdef cookie_io_functions_t io
    io.read = NULL
    io.seek = NULL
    io.close = NULL
    io.write = _write_cb
    g_fd = write_fd
    if g_stream is NULL:
        g_stream = fopencookie(NULL, "w", io)
        if g_stream is NULL:
            raise OSError("fopencookie failed")
        setvbuf(g_stream, NULL, _IOLBF, FRAME_MAX)
        rte_openlog_stream(g_stream)


def detach():
    """Stop forwarding (e.g. in a forked child); DPDK messages are discarded."""
    global g_fd
    g_fd = -1


def dropped():
    """Records lost because the pipe was full."""
    return g_dropped


def set_level(int level, str pattern=None):
    """Set DPDK's log level globally, or for types matching a glob ``pattern``."""
    if pattern is None:
        rte_log_set_global_level(level)
    elif rte_log_set_level_pattern(pattern.encode(), level) < 0:
        raise ValueError(f"bad log type pattern {pattern!r}")


def log_type_names():
    """Map DPDK log type ids to names, from rte_log_dump()."""
    cdef char *buf = NULL
    cdef size_t size = 0
    cdef FILE *f = open_memstream(&buf, &size)
    if f is NULL:
        return {}
    rte_log_dump(f)
    fflush(f)
    fclose(f)
    text = buf[:size].decode("utf-8", "replace") if buf is not NULL else ""
    free(buf)
    names = {}
    for line in text.splitlines():
        # "id 3: lib.eal, level is info"
        if line.startswith("id ") and ":" in line:
            head, _, rest = line.partition(":")
            try:
                names[int(head[3:])] = rest.split(",")[0].strip()
            except ValueError:
                pass
    return names
