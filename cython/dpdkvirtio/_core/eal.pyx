# cython: language_level=3
"""EAL lifetime (L1): one rte_eal_init per process, cleanup once, inert after fork.

Policy (argv contents, defaults, file prefixes) lives in dpdkvirtio.eal (L2).
"""
import os
from libc.stdlib cimport calloc
from libc.string cimport strdup
from libc.errno cimport EALREADY
from dpdkvirtio._dpdk.rte_eal cimport (rte_eal_init, rte_eal_cleanup, rte_eal_has_hugepages,
    rte_eal_iova_mode, rte_eal_get_runtime_dir, rte_version)
from dpdkvirtio._dpdk.rte_lcore cimport (RTE_MAX_LCORE, ROLE_RTE, ROLE_SERVICE, ROLE_NON_EAL,
    rte_eal_lcore_role, rte_get_main_lcore, rte_lcore_is_enabled,
    rte_get_tsc_hz, rte_eal_get_lcore_state, RUNNING, rte_cpuset_t, rte_lcore_cpuset, CPU_ISSET,
    CPU_SETSIZE)
from dpdkvirtio._dpdk.dv_shim cimport dv_rte_errno
from dpdkvirtio._core.errors cimport raise_dpdk
from dpdkvirtio.errors import EalError, ForkedProcessError

# 0 = never initialised, 1 = running, 2 = cleaned up, 3 = init failed in a way that
# leaves this process unable to try again.
cdef int g_state = 0
cdef int g_forked = 0
cdef int g_pid = 0


cdef bint eal_alive() noexcept nogil:
    return g_state == 1 and not g_forked


cdef int eal_check_usable() except -1:
    if g_forked:
        raise ForkedProcessError()
    if g_state == 0:
        raise EalError(None, "DPDK is not initialised", None,
                       "Call dpdkvirtio.Eal(...) (or dpdkvirtio.init()) first")
    if g_state == 2:
        raise EalError(None, "DPDK was cleaned up in this process and cannot be used again",
                       None, "Start a new process")
    if g_state == 3:
        raise EalError(None, "DPDK initialisation failed earlier in this process", None,
                       "Start a new process")
    return 0


def _after_fork_in_child():
    global g_forked
    g_forked = 1


os.register_at_fork(after_in_child=_after_fork_in_child)


def state():
    """'uninitialised', 'running', 'cleaned-up', 'failed' or 'forked'."""
    if g_forked:
        return "forked"
    return ("uninitialised", "running", "cleaned-up", "failed")[g_state]


def init(list args):
    """Call rte_eal_init with a private, writable copy of ``args`` (args[0] is the
    program name). Returns the number of arguments EAL parsed.

    Raises EalError (errno from rte_errno). EALREADY when EAL was initialised before.
    The GIL is released during init (DPDK threads log and may call back)."""
    global g_state, g_pid
    if g_forked:
        raise ForkedProcessError()
    if g_state != 0:
        raise_dpdk(EalError, EALREADY, "rte_eal_init",
                   "DPDK can be initialised once per process; start a new process "
                   "for other EAL arguments")
    cdef int argc = len(args)
    # EAL permutes argv and may keep pointers into it: allocate once, never free.
    cdef char **argv = <char **>calloc(argc + 1, sizeof(char *))
    if argv is NULL:
        raise MemoryError()
    for i, a in enumerate(args):
        argv[i] = strdup(a.encode())
        if argv[i] is NULL:
            raise MemoryError()
    cdef int rc, err = 0
    with nogil:
        rc = rte_eal_init(argc, argv)
        if rc < 0:
            err = dv_rte_errno()
    if rc < 0:
        # EAL resets its run-once flag for early failures, but keeps what it parsed (a
        # second attempt fails with "--lcores is ignored, because (--lcores) is set"):
        # after any failure this process cannot initialise DPDK any more.
        g_state = 3
        raise_dpdk(EalError, err, "rte_eal_init",
                   "DPDK cannot be initialised again in this process: fix the arguments "
                   "and start a new process")
    g_state = 1
    g_pid = os.getpid()
    return rc


def cleanup():
    """rte_eal_cleanup (once). After it no DPDK call may be made in this process."""
    global g_state
    if g_state != 1 or g_forked:
        return
    g_state = 2
    with nogil:
        rte_eal_cleanup()


def version():
    """The DPDK runtime version string, e.g. 'DPDK 22.11.11' (no init needed)."""
    return rte_version().decode()


def has_hugepages():
    eal_check_usable()
    return bool(rte_eal_has_hugepages())


def iova_mode():
    eal_check_usable()
    return {0: "dc", 1: "pa", 2: "va"}.get(rte_eal_iova_mode(), "unknown")


def runtime_dir():
    eal_check_usable()
    return rte_eal_get_runtime_dir().decode()


def tsc_hz():
    eal_check_usable()
    return rte_get_tsc_hz()


def main_lcore():
    eal_check_usable()
    return rte_get_main_lcore()


def lcore_cpus(unsigned int lcore_id):
    """CPUs of lcore ``lcore_id``'s cpuset, as EAL set it at init."""
    eal_check_usable()
    if lcore_id >= RTE_MAX_LCORE:
        raise ValueError(f"lcore id must be < {RTE_MAX_LCORE}")
    cdef rte_cpuset_t cs = rte_lcore_cpuset(lcore_id)
    return [c for c in range(CPU_SETSIZE) if CPU_ISSET(c, &cs)]


def lcores():
    """Enabled lcores as a list of (lcore_id, cpus, role, is_main, running)."""
    eal_check_usable()
    cdef unsigned int i
    out = []
    main = rte_get_main_lcore()
    for i in range(RTE_MAX_LCORE):
        if not rte_lcore_is_enabled(i):
            continue
        role = rte_eal_lcore_role(i)
        name = ("rte" if role == ROLE_RTE else "service" if role == ROLE_SERVICE
                else "non-eal" if role == ROLE_NON_EAL else "off")
        running = i != main and rte_eal_get_lcore_state(i) == RUNNING
        out.append((i, lcore_cpus(i), name, i == main, running))
    return out
