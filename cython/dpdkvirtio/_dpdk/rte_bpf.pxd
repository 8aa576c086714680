# L0: rte_bpf.h (the calls a capture filter uses) and libpcap's filter compiler.
from libc.stdint cimport uint32_t, uint64_t

cdef extern from "pcap/pcap.h" nogil:
    ctypedef struct pcap_t:
        pass
    cdef struct bpf_program:
        pass
    enum: DLT_EN10MB
    enum: PCAP_NETMASK_UNKNOWN
    pcap_t *pcap_open_dead(int linktype, int snaplen)
    int pcap_compile(pcap_t *p, bpf_program *fp, const char *expr, int optimize,
                     uint32_t netmask)
    void pcap_freecode(bpf_program *fp)
    char *pcap_geterr(pcap_t *p)
    void pcap_close(pcap_t *p)

cdef extern from "rte_bpf.h" nogil:
    cdef struct rte_bpf:
        pass
    cdef struct rte_bpf_prm:
        pass
    cdef struct rte_bpf_jit:
        uint64_t (*func)(void *) noexcept nogil
        size_t sz
    int rte_bpf_get_jit(const rte_bpf *bpf, rte_bpf_jit *jit)
    rte_bpf_prm *rte_bpf_convert(const bpf_program *prog)
    rte_bpf *rte_bpf_load(const rte_bpf_prm *prm)
    void rte_bpf_destroy(rte_bpf *bpf)
    uint32_t rte_bpf_exec_burst(const rte_bpf *bpf, void *ctx[], uint64_t rc[], uint32_t num)

cdef extern from "rte_malloc.h" nogil:
    void rte_free(void *ptr)
