# L0: rte_ethdev.h (control path + inline burst functions) and rte_dev.h (hotplug).
from libc.stdint cimport uint16_t, uint32_t, uint64_t
from dpdkvirtio._dpdk.rte_mbuf cimport rte_mbuf
from dpdkvirtio._dpdk.rte_mempool cimport rte_mempool

cdef extern from "rte_ethdev.h" nogil:
    enum: RTE_MAX_ETHPORTS
    enum: RTE_ETHDEV_QUEUE_STAT_CNTRS
    enum: RTE_ETH_NAME_MAX_LEN
    enum: RTE_ETH_XSTATS_NAME_SIZE
    enum: RTE_ETH_LINK_UP
    enum: RTE_ETH_DEV_INTR_LSC
    cdef struct rte_eth_intr_conf:
        uint32_t lsc
        uint32_t rxq
    cdef struct rte_eth_conf:
        rte_eth_intr_conf intr_conf
    cdef struct rte_device:
        pass
    cdef struct rte_eth_dev_info:
        rte_device *device
        const char *driver_name
        const uint32_t *dev_flags
        uint16_t max_rx_queues
        uint16_t max_tx_queues
    cdef struct rte_eth_stats:
        uint64_t ipackets
        uint64_t opackets
        uint64_t ibytes
        uint64_t obytes
        uint64_t imissed
        uint64_t ierrors
        uint64_t oerrors
        uint64_t rx_nombuf
    cdef struct rte_eth_xstat:
        uint64_t id
        uint64_t value
    cdef struct rte_eth_xstat_name:
        char name[64]
    cdef struct rte_eth_link:
        uint32_t link_speed
        uint16_t link_status
    cdef struct rte_ether_addr:
        unsigned char addr_bytes[6]

    int rte_eth_dev_rx_intr_enable(uint16_t port_id, uint16_t queue_id)
    int rte_eth_dev_rx_intr_disable(uint16_t port_id, uint16_t queue_id)
    int rte_eth_dev_rx_intr_ctl_q_get_fd(uint16_t port_id, uint16_t queue_id)
    int rte_eth_dev_configure(uint16_t port_id, uint16_t nb_rx_queue, uint16_t nb_tx_queue,
                              const rte_eth_conf *eth_conf)
    int rte_eth_rx_queue_setup(uint16_t port_id, uint16_t rx_queue_id, uint16_t nb_rx_desc,
                               unsigned int socket_id, const void *rx_conf, rte_mempool *mb_pool)
    int rte_eth_tx_queue_setup(uint16_t port_id, uint16_t tx_queue_id, uint16_t nb_tx_desc,
                               unsigned int socket_id, const void *tx_conf)
    int rte_eth_dev_start(uint16_t port_id)
    int rte_eth_dev_stop(uint16_t port_id)
    int rte_eth_dev_close(uint16_t port_id)
    int rte_eth_dev_info_get(uint16_t port_id, rte_eth_dev_info *dev_info)
    int rte_eth_dev_socket_id(uint16_t port_id)
    int rte_eth_dev_is_valid_port(uint16_t port_id)
    int rte_eth_dev_get_port_by_name(const char *name, uint16_t *port_id)
    int rte_eth_dev_get_name_by_port(uint16_t port_id, char *name)
    int rte_eth_macaddr_get(uint16_t port_id, rte_ether_addr *mac_addr)
    int rte_eth_stats_get(uint16_t port_id, rte_eth_stats *stats)
    int rte_eth_stats_reset(uint16_t port_id)
    int rte_eth_xstats_get_names(uint16_t port_id, rte_eth_xstat_name *xstats_names,
                                 unsigned int size)
    int rte_eth_xstats_get(uint16_t port_id, rte_eth_xstat *xstats, unsigned int n)
    int rte_eth_link_get_nowait(uint16_t port_id, rte_eth_link *link)
    int rte_eth_promiscuous_enable(uint16_t port_id)

    # static inline in the header: Cython emits a call, the C compiler inlines it.
    uint16_t rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id,
                              rte_mbuf **rx_pkts, const uint16_t nb_pkts)
    uint16_t rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id,
                              rte_mbuf **tx_pkts, uint16_t nb_pkts)

cdef extern from "rte_dev.h" nogil:
    int rte_eal_hotplug_add(const char *busname, const char *devname, const char *drvargs)
    int rte_eal_hotplug_remove(const char *busname, const char *devname)
    int rte_dev_remove(rte_device *dev)
