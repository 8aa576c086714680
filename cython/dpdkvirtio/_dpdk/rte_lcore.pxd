# L0: rte_lcore.h, rte_launch.h, rte_cycles.h, rte_pause.h.
cdef extern from "rte_lcore.h" nogil:
    enum: RTE_MAX_LCORE
    enum: LCORE_ID_ANY
    enum rte_lcore_role_t:
        ROLE_RTE
        ROLE_OFF
        ROLE_SERVICE
        ROLE_NON_EAL
    rte_lcore_role_t rte_eal_lcore_role(unsigned int lcore_id)
    unsigned int rte_get_main_lcore()
    unsigned int rte_lcore_count()
    int rte_lcore_to_cpu_id(int lcore_id)
    int rte_lcore_is_enabled(unsigned int lcore_id)
    unsigned int rte_get_next_lcore(unsigned int i, int skip_main, int wrap)
    unsigned int rte_lcore_id()
    unsigned int rte_socket_id()
    ctypedef struct rte_cpuset_t:
        pass
    rte_cpuset_t rte_lcore_cpuset(unsigned int lcore_id)

cdef extern from "<sched.h>" nogil:
    int CPU_ISSET(int cpu, rte_cpuset_t *set)
    enum: CPU_SETSIZE

# DPDK's lcore_function_t is a function *type*; declare our own pointer typedef.
ctypedef int (*dv_lcore_fn_t)(void *) noexcept nogil

cdef extern from "rte_launch.h" nogil:
    enum rte_lcore_state_t:
        WAIT
        RUNNING
    int rte_eal_remote_launch(dv_lcore_fn_t f, void *arg, unsigned int worker_id)
    rte_lcore_state_t rte_eal_get_lcore_state(unsigned int worker_id)
    int rte_eal_wait_lcore(unsigned int worker_id)

cdef extern from "rte_cycles.h" nogil:
    unsigned long long rte_rdtsc()
    unsigned long long rte_get_tsc_hz()

cdef extern from "rte_pause.h" nogil:
    void rte_pause()

cdef extern from "rte_thread.h" nogil:
    int rte_thread_set_affinity(rte_cpuset_t *cpusetp)

cdef extern from "<sched.h>" nogil:
    void CPU_ZERO(rte_cpuset_t *set)
    void CPU_SET(int cpu, rte_cpuset_t *set)
