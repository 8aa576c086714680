# L0: extern declarations for rte_eal.h, rte_errno.h, rte_version.h (names verbatim).
cdef extern from "rte_eal.h" nogil:
    int rte_eal_init(int argc, char **argv)
    int rte_eal_cleanup()
    int rte_eal_has_hugepages()
    int rte_eal_iova_mode()
    const char *rte_eal_get_runtime_dir()

cdef extern from "rte_errno.h" nogil:
    const char *rte_strerror(int errnum)

cdef extern from "rte_version.h" nogil:
    const char *rte_version()
    unsigned int rte_version_year()
    unsigned int rte_version_month()
    unsigned int rte_version_minor()
