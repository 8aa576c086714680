# L0: rte_telemetry.h (DPDK 22.11): commands served on the telemetry socket.
from libc.stdint cimport uint64_t

cdef extern from "rte_telemetry.h" nogil:
    cdef struct rte_tel_data:
        pass
    enum rte_tel_value_type:
        RTE_TEL_STRING_VAL
        RTE_TEL_INT_VAL
        RTE_TEL_U64_VAL
        RTE_TEL_CONTAINER
    enum: RTE_TEL_MAX_STRING_LEN
    enum: RTE_TEL_MAX_DICT_ENTRIES
    enum: RTE_TEL_MAX_ARRAY_ENTRIES
    ctypedef int (*telemetry_cb)(const char *cmd, const char *params,
                                 rte_tel_data *info) noexcept nogil
    int rte_telemetry_register_cmd(const char *cmd, telemetry_cb fn, const char *help)
    int rte_tel_data_start_array(rte_tel_data *d, rte_tel_value_type type)
    int rte_tel_data_start_dict(rte_tel_data *d)
    int rte_tel_data_add_array_string(rte_tel_data *d, const char *str)
    int rte_tel_data_add_array_int(rte_tel_data *d, int x)
    int rte_tel_data_add_array_u64(rte_tel_data *d, uint64_t x)
    int rte_tel_data_add_array_container(rte_tel_data *d, rte_tel_data *val, int keep)
    int rte_tel_data_add_dict_string(rte_tel_data *d, const char *name, const char *val)
    int rte_tel_data_add_dict_int(rte_tel_data *d, const char *name, int val)
    int rte_tel_data_add_dict_u64(rte_tel_data *d, const char *name, uint64_t val)
    int rte_tel_data_add_dict_container(rte_tel_data *d, const char *name, rte_tel_data *val,
                                        int keep)
    rte_tel_data *rte_tel_data_alloc()
    void rte_tel_data_free(rte_tel_data *data)
