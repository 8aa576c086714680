# L0: rte_log.h.
from libc.stdio cimport FILE
from libc.stdint cimport uint32_t

cdef extern from "rte_log.h" nogil:
    enum:
        RTE_LOG_EMERG
        RTE_LOG_ALERT
        RTE_LOG_CRIT
        RTE_LOG_ERR
        RTE_LOG_WARNING
        RTE_LOG_NOTICE
        RTE_LOG_INFO
        RTE_LOG_DEBUG
    int rte_openlog_stream(FILE *f)
    void rte_log_set_global_level(uint32_t level)
    uint32_t rte_log_get_global_level()
    int rte_log_set_level_pattern(const char *pattern, uint32_t level)
    int rte_log_cur_msg_loglevel()
    int rte_log_cur_msg_logtype()
    void rte_log_dump(FILE *f)
