# L1: the process's ports, PMDs and flow tables as DPDK telemetry sees them. The data
# structures register themselves when made and leave when freed; the telemetry thread
# reads their C structs under one mutex, without the GIL.
from dpdkvirtio._core.dp_types cimport dv_port, dv_pmd_ctx, dv_flow_table

cdef void dv_tel_add_port(dv_port *p, const char *name) noexcept nogil
cdef void dv_tel_forget_port(dv_port *p) noexcept nogil
cdef void dv_tel_add_pmd(dv_pmd_ctx *ctx, unsigned int lcore) noexcept nogil
cdef void dv_tel_forget_pmd(dv_pmd_ctx *ctx) noexcept nogil
cdef void dv_tel_add_flows(dv_flow_table *t, const char *name) noexcept nogil
cdef void dv_tel_forget_flows(dv_flow_table *t) noexcept nogil
cdef bytes dv_tel_name(str value)
