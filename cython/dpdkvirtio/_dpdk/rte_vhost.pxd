# L0: rte_vhost.h (the vhost library, used directly as OVS-DPDK does).
from libc.stdint cimport uint16_t, uint32_t, uint64_t
from dpdkvirtio._dpdk.rte_mbuf cimport rte_mbuf
from dpdkvirtio._dpdk.rte_mempool cimport rte_mempool

cdef extern from "rte_vhost.h" nogil:
    enum: RTE_VHOST_USER_CLIENT
    enum: RTE_VHOST_USER_NO_RECONNECT
    enum: RTE_VHOST_USER_IOMMU_SUPPORT
    enum: RTE_VHOST_USER_POSTCOPY_SUPPORT
    enum: RTE_VHOST_USER_EXTBUF_SUPPORT
    enum: RTE_VHOST_USER_LINEARBUF_SUPPORT
    enum: RTE_VHOST_USER_NET_COMPLIANT_OL_FLAGS
    enum: RTE_VHOST_USER_NET_STATS_ENABLE
    enum: RTE_MAX_VHOST_DEVICE
    enum: RTE_VHOST_STATS_NAME_SIZE
    enum: VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD

    enum rte_vhost_msg_result:
        RTE_VHOST_MSG_RESULT_ERR
        RTE_VHOST_MSG_RESULT_OK
        RTE_VHOST_MSG_RESULT_REPLY
        RTE_VHOST_MSG_RESULT_NOT_HANDLED
    ctypedef rte_vhost_msg_result (*rte_vhost_msg_handle)(int vid, void *msg) noexcept nogil
    cdef struct rte_vhost_user_extern_ops:
        rte_vhost_msg_handle pre_msg_handle
        rte_vhost_msg_handle post_msg_handle
    int rte_vhost_extern_callback_register(int vid, const rte_vhost_user_extern_ops *ops,
                                           void *ctx)
    int rte_vhost_driver_get_protocol_features(const char *path, uint64_t *protocol_features)
    int rte_vhost_driver_set_protocol_features(const char *path, uint64_t protocol_features)

    cdef struct rte_vhost_device_ops:
        int (*new_device)(int vid) noexcept nogil
        void (*destroy_device)(int vid) noexcept nogil
        int (*vring_state_changed)(int vid, uint16_t queue_id, int enable) noexcept nogil
        int (*features_changed)(int vid, uint64_t features) noexcept nogil
        int (*new_connection)(int vid) noexcept nogil
        void (*destroy_connection)(int vid) noexcept nogil
        void (*guest_notified)(int vid) noexcept nogil

    cdef struct rte_vhost_stat:
        uint64_t id
        uint64_t value
    cdef struct rte_vhost_stat_name:
        char name[64]

    int rte_vhost_driver_register(const char *path, uint64_t flags)
    int rte_vhost_driver_unregister(const char *path)
    int rte_vhost_driver_enable_features(const char *path, uint64_t features)
    int rte_vhost_driver_disable_features(const char *path, uint64_t features)
    int rte_vhost_driver_get_features(const char *path, uint64_t *features)
    int rte_vhost_driver_get_queue_num(const char *path, uint32_t *queue_num)
    int rte_vhost_driver_callback_register(const char *path, const rte_vhost_device_ops *ops)
    int rte_vhost_driver_start(const char *path)
    int rte_vhost_get_negotiated_features(int vid, uint64_t *features)
    int rte_vhost_get_ifname(int vid, char *buf, size_t len)
    uint16_t rte_vhost_get_vring_num(int vid)
    int rte_vhost_get_mtu(int vid, uint16_t *mtu)
    int rte_vhost_get_numa_node(int vid)
    int rte_vhost_enable_guest_notification(int vid, uint16_t queue_id, int enable)
    cdef struct rte_vhost_vring:
        int callfd
        int kickfd
        uint16_t size
    int rte_vhost_get_vhost_vring(int vid, uint16_t vring_idx, rte_vhost_vring *vring)
    int rte_vhost_get_vring_base(int vid, uint16_t queue_id, uint16_t *last_avail_idx,
                                 uint16_t *last_used_idx)
    uint32_t rte_vhost_rx_queue_count(int vid, uint16_t qid)
    uint16_t rte_vhost_avail_entries(int vid, uint16_t queue_id)
    uint16_t rte_vhost_enqueue_burst(int vid, uint16_t queue_id, rte_mbuf **pkts,
                                     uint16_t count)
    uint16_t rte_vhost_dequeue_burst(int vid, uint16_t queue_id, rte_mempool *mbuf_pool,
                                     rte_mbuf **pkts, uint16_t count)
    int rte_vhost_vring_stats_get_names(int vid, uint16_t queue_id,
                                        rte_vhost_stat_name *name, unsigned int size)
    int rte_vhost_vring_stats_get(int vid, uint16_t queue_id, rte_vhost_stat *stats,
                                  unsigned int n)
    int rte_vhost_vring_stats_reset(int vid, uint16_t queue_id)
