# cython: language_level=3
"""Error choke point (L1).

DPDK reports errors four ways: a negative errno return, -1 with ``rte_errno``,
NULL with ``rte_errno``, or a bare -1. Callers read ``rte_errno`` on the failing
thread, inside the same ``nogil`` block, and pass it here.
"""
from dpdkvirtio._dpdk.rte_eal cimport rte_strerror
import errno as _errno

from dpdkvirtio.errors import DpdkError, error_class


cdef str _strerror(int err):
    if err <= 0:
        return "unknown error"
    return rte_strerror(err).decode("utf-8", "replace")


cdef str dpdk_reason(int err, str function):
    """``function: text [ENAME]`` for an error a caller reports in another exception
    class (a ConfigError about the user's input that DPDK refused)."""
    if err <= 0:
        return f"{function}: failed without an error code"
    return f"{function}: {_strerror(err)} [{_errno.errorcode.get(err, str(err))}]"


cdef int raise_dpdk(object exc_type, int err, str function, str hint=None) except -1:
    """Raise ``exc_type`` (a DpdkError subclass) for positive ``err``; err <= 0 means
    the function set no errno. Any other class is a programming error (TypeError): its
    constructor would not take (errno, message, function, hint)."""
    if not (isinstance(exc_type, type) and issubclass(exc_type, DpdkError)):
        raise TypeError(f"raise_dpdk takes a DpdkError class, not {exc_type!r}")
    if err > 0:
        raise error_class(exc_type, err)(err, _strerror(err), function, hint)
    raise exc_type(None, "failed without an error code", function, hint)


cdef int check_neg_errno(int rc, str function, object exc_type, str hint=None) except -1:
    """For functions returning 0/positive on success and -errno on failure."""
    if rc >= 0:
        return rc
    return raise_dpdk(exc_type, -rc, function, hint)


cdef int check_rte_errno(int rc, int err, str function, object exc_type, str hint=None) except -1:
    """For functions returning -1 (or NULL, passed as rc=-1) and setting rte_errno;
    ``err`` is rte_errno read right after the call on the same thread."""
    if rc >= 0:
        return rc
    return raise_dpdk(exc_type, err, function, hint)
