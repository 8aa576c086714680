# L1: the C structures the control plane prepares and the data path modules (dp_*.pyx)
# work on, and one inline field reader; each dp_ module's .pxd declares its functions.
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int32_t
from dpdkvirtio._dpdk.rte_mbuf cimport rte_mbuf
from dpdkvirtio._dpdk.rte_mempool cimport rte_mempool
from dpdkvirtio._dpdk.rte_ring cimport rte_ring
from dpdkvirtio._dpdk.rte_bpf cimport rte_bpf

cdef enum:
    DV_MAX_BURST = 512
    DV_KIND_ETHDEV = 1
    DV_KIND_VHOST = 2

# One cache line, single writer: whoever polls this rx queue.
cdef struct dv_rxq_stats:
    uint64_t packets
    uint64_t bytes
    uint64_t bursts               # polls that returned packets
    uint64_t empty_polls
    uint64_t not_ready_polls      # polls while the peer or the queue was not ready
    uint64_t malformed_drops      # mbufs a driver handed out with lengths beyond their buffers
    uint64_t _pad[2]

# One cache line, single writer: whoever transmits on this tx queue.
cdef struct dv_txq_stats:
    uint64_t packets              # accepted by the peer's ring
    uint64_t bytes
    uint64_t bursts
    uint64_t failure_drops        # the peer's ring stayed full after the retries
    uint64_t not_ready_drops      # no peer connected, or its queue disabled
    uint64_t nombuf_drops         # packets a generator could not build (mempool empty)
    uint64_t retries
    uint64_t _pad[1]

cdef struct dv_queue_stats:
    dv_rxq_stats rx
    dv_txq_stats tx

# vhost only: a poller marks a queue busy around each burst so that destroy_device
# can wait until nobody uses the old vid (busy flags on separate cache lines).
cdef struct dv_vq_sync:
    int rx_busy
    int _pad1[15]
    int tx_busy
    int _pad2[15]

# Who may touch one direction of one queue: Python (the burst API) or one PMD lcore.
# Written by the control thread only (under the GIL); read by the burst API.
cdef enum:
    DV_OWNER_PYTHON = -1
    DV_DIR_RX = 0
    DV_DIR_TX = 1

cdef struct dv_queue_owner:
    int32_t lcore                 # DV_OWNER_PYTHON, or the lcore of the PMD that owns it
    uint32_t refs                 # that PMD's assignments using it (a tx queue may serve several)

# A port's capture tap (dpdkvirtio/capture.py): while on for a direction, the data path
# copies every packet of that direction (up to snaplen bytes, with a dv_capture_meta in
# front) into the ring; a writer thread drains it. Allocated with the tap, freed with
# the port.
cdef struct dv_capture_q:         # one queue, one direction: written by its one poller
    int busy                      # inside a burst's capture (stop waits for 0)
    int _pad0
    uint64_t seen                 # packets that passed while the capture was on
    uint64_t accepted             # of those, the filter's matches (all without a filter)
    uint64_t dropped              # of those, not captured: no mbuf, or the ring full
    uint64_t _pad[4]

cdef struct dv_capture:
    int on[2]                     # per direction (DV_DIR_RX, DV_DIR_TX), written by control
    uint32_t generation           # stamped into each copy; the writer skips older ones
    uint32_t snaplen
    rte_bpf *filter               # NULL: every packet (set while off, by control)
    uint64_t (*filter_jit)(void *) noexcept nogil   # the filter compiled to x86, or NULL
    rte_ring *ring                # copies: multi-producer, single consumer
    rte_mempool *mp               # the copies' mbufs
    dv_capture_q *q               # 2 * n_queues rows: [2 * queue + direction]
    uint64_t tsc0                 # a TSC reading and the CLOCK_REALTIME ns taken with it
    uint64_t ns0                  # (capture start): the blocks' timestamps derive from them
    uint64_t tsc_hz

cdef struct dv_capture_meta:      # in front of each copy's data
    uint64_t tsc                  # when the data path saw the packet
    uint32_t orig_len
    uint32_t generation
    uint32_t queue
    uint32_t direction

cdef struct dv_port:
    int kind
    uint16_t port_id              # ethdev port id
    uint16_t n_queues             # queue pairs served (rows of stats)
    int vid                       # vhost: -1 while no device runs (atomic)
    uint32_t tx_retries_max
    rte_mempool *mp               # vhost dequeue allocates from it
    dv_queue_stats *stats         # n_queues rows, owned by a Counters object
    dv_vq_sync *sync              # vhost: n_queues rows
    uint8_t *vring_enabled        # vhost: 2 * n_queues flags (vring index order)
    dv_queue_owner *owners        # 2 * n_queues: [2q + DV_DIR_RX], [2q + DV_DIR_TX]
    int rx_intr                   # ethdev: configured with Rx interrupts (intr_conf.rxq)
    dv_capture *capture           # NULL until the port's first capture


# ---- PMD threads ------------------------------------------------------------------------

# Engines: one C function each, in the table DV_ENGINES (dp_hot.pyx) indexed by this
# enum. Adding an engine = one function + one enum value + one table row.
cdef enum dv_engine_id:
    DV_ENGINE_RXONLY = 0          # count and free
    DV_ENGINE_IO = 1              # forward to (out_port, out_queue)
    DV_ENGINE_MACSWAP = 2         # swap Ethernet addresses, send to (out_port, out_queue)
    DV_ENGINE_GENERATOR = 3       # build packets from templates, send to (port, queue)
    DV_N_ENGINES = 4

# What an engine touches (the control side claims queues and checks arguments by it).
cdef enum:
    DV_USES_RX = 1                # polls rx queue (port, queue)
    DV_USES_TX_OUT = 2            # sends on tx queue (out_port, out_queue)
    DV_USES_TX_OWN = 4            # sends on tx queue (port, queue)
    DV_OUT_DEFAULTS_TO_IN = 8     # out_port defaults to port (sends back)
    DV_USES_GEN = 16              # needs a generator (dv_gen)

cdef enum:
    DV_PMD_MAX_BURST = 64
    DV_HIST_BINS = 65             # burst sizes 0..64
    DV_MAX_VARS = 8
    DV_OP_INC = 0
    DV_OP_DEC = 1
    DV_OP_RANDOM = 2

# One per PMD lcore; single writer: that lcore.
cdef struct dv_pmd_stats:
    uint64_t iterations
    uint64_t busy_cycles          # TSC cycles of iterations that moved packets
    uint64_t idle_cycles          # TSC cycles of iterations that moved none
    uint64_t empty_iterations
    uint64_t rx_packets
    uint64_t tx_packets
    uint64_t plan_epoch           # epoch of the plan the lcore runs
    uint64_t cpu                  # CPU the lcore last pinned itself to
    uint64_t hist[DV_HIST_BINS]   # how many packets each poll moved
    uint64_t sleeps               # rounds followed by a sleep (pmd-sleep-max)
    uint64_t slept_ns             # time spent in those sleeps
    uint64_t sleep_max_ns         # the longest single sleep
    uint64_t intr_arms            # interrupt mode: waits entered (notifications armed)
    uint64_t intr_wakeups         # waits ended by a kick (or by the control side)
    uint64_t intr_spurious        # wake-ups after which the next round moved nothing
    uint64_t intr_timeouts        # waits ended by the timeout
    uint64_t stalls               # polls that took stall_tsc or longer: the CPU was taken
    uint64_t stall_cycles         # their TSC cycles in all
    uint64_t stall_max_cycles     # the longest
    uint64_t stall_busy_cycles    # the part of stall_cycles inside busy rounds (busy_cycles)
    uint64_t _pad[4]              # rows are whole cache lines

# One per (PMD, assignment); single writer: the PMD.
cdef struct dv_poll_stats:
    uint64_t cycles
    uint64_t packets
    uint64_t polls
    uint64_t _pad[5]

cdef struct dv_fvar:              # a field-engine variable
    uint16_t offset               # byte offset in the frame
    uint8_t size                  # 1, 2 or 4 bytes, big endian
    uint8_t op                    # DV_OP_*
    uint8_t in_ip                 # inside the IPv4 header (fix its checksum)
    uint8_t in_udp                # covered by the UDP checksum
    uint32_t min
    uint32_t max
    uint32_t step
    uint32_t cur

cdef struct dv_gen:
    rte_mempool *mp
    const uint8_t *tmpl_data      # all templates, back to back
    const uint32_t *tmpl_off
    const uint16_t *tmpl_len
    uint32_t n_tmpl
    uint32_t next_tmpl
    dv_fvar vars[DV_MAX_VARS]
    uint32_t n_vars
    int size_op                   # -1: fixed sizes, else DV_OP_*
    uint16_t size_min
    uint16_t size_max
    uint16_t size_step
    uint16_t size_cur
    int fix_ip                    # keep the IPv4 header checksum right
    int fix_udp                   # keep the UDP checksum right (when the template has one)
    double pkts_per_tsc           # 0: as fast as possible (written by control)
    double catchup_tsc            # paced: a late poll makes up for this much time at most
    double tokens
    uint64_t last_tsc
    uint64_t count_limit          # 0: none
    uint64_t duration_tsc         # 0: none; the deadline is set when the generator starts
    uint64_t deadline_tsc
    uint32_t burst_pkts           # multi-burst: packets per burst (0: continuous)
    uint32_t n_bursts             # multi-burst: bursts (0: forever)
    uint64_t ibg_tsc              # multi-burst: gap between bursts
    uint32_t in_burst_left
    uint32_t bursts_done
    uint64_t next_burst_tsc
    uint64_t built                # packets built and handed to the port
    uint64_t nombuf               # packets due but not built (mempool empty), paced mode
    int done                      # a limit was reached (written by the PMD)
    int paused                    # written by control
    int started
    uint64_t rng
    int32_t flow_id               # -1: unmeasured; else stamp the marker (marker.py)
    uint64_t seq_next             # the next packet's sequence number
    const uint64_t *due_tsc       # timed replay: template i is due at pass start + due_tsc[i]
    uint64_t loop_tsc             # timed replay: the length of one pass
    uint64_t pass_start_tsc       # timed replay: when the current pass started
    uint32_t due_next             # timed replay: the next template due

# ---- Measured streams (layout of the marker: dpdkvirtio/marker.py) ---------------------
cdef enum:
    DV_MARK_OFFSET = 42           # start of the UDP payload of Ethernet/IPv4/UDP
    DV_MARK_MIN_FRAME = 64        # DV_MARK_OFFSET + 22
    DV_MARK_MAGIC = 0x314D5644    # b"DVM1" loaded as a little-endian uint32
    DV_LAT_SUB = 64               # log-linear histogram: 64 buckets per power of two
    DV_LAT_BUCKETS = 2112         # exact below 128 ns, then <= 1/64 wide, up to 2**38 ns
    DV_SEQ_WINDOW = 1024          # sequence numbers remembered per flow (bits)

# One per flow, single writer: the receiver the table is attached to.
cdef struct dv_flow:
    uint64_t received             # unique measured packets
    uint64_t bytes
    uint64_t lost                 # sequence numbers skipped and not (yet) seen late
    uint64_t out_of_order         # arrived after a higher sequence number (filled a gap)
    uint64_t duplicates           # a sequence number seen before (within the window)
    uint64_t stale                # older than the window: late or duplicate, not counted
    uint64_t lat_min_ns
    uint64_t lat_max_ns
    uint64_t lat_sum_ns
    uint64_t jitter_ns16          # RFC 3550 interarrival jitter estimate, times 16
    uint64_t next_seq             # highest sequence number seen + 1
    uint64_t last_lat_ns
    uint64_t first_rx_tsc
    uint64_t last_rx_tsc
    uint64_t clock_errors         # stamped in the receiver's future (latency counted as 0)
    uint64_t epoch_seq            # first sequence number counted since a reset (~0: take next)
    uint64_t window[16]           # seen bits of next_seq - 1024 .. next_seq - 1

cdef struct dv_flow_table:
    dv_flow *flows                # n_flows rows
    uint64_t *hist                # n_flows * DV_LAT_BUCKETS counts
    uint32_t n_flows
    double ns_per_tsc
    uint64_t ns_mult              # ns per TSC tick as 32.32 fixed point (0: use ns_per_tsc)
    uint64_t reset_req            # written by control; the writer zeroes and acks
    uint64_t reset_ack
    uint64_t unknown_flow         # measured packets with flow id >= n_flows
    uint64_t unmeasured           # packets without the marker


cdef struct dv_poll:
    int engine                    # dv_engine_id
    dv_port *port                 # rx port (tx port of a generator)
    uint16_t queue
    dv_port *out_port
    uint16_t out_queue
    dv_gen *gen
    dv_poll_stats *pst
    dv_flow_table *flows          # NULL: no per-flow accounting on this rx queue

cdef struct dv_plan:
    uint64_t epoch
    uint32_t n_polls
    dv_poll *polls

cdef struct dv_pmd_ctx:
    dv_plan *plan                 # swapped by control (atomic pointer)
    uint64_t ack_epoch            # the lcore has finished an iteration with this epoch
    int stop
    int cpu_request               # -1: none; else re-pin to this CPU
    int cpu_ack
    uint16_t burst_size
    dv_pmd_stats *stats
    uint32_t sleep_max_us         # 0: pure polling; else sleep when idle (written by control)
    uint32_t sleep_thresh         # a poll moving fewer packets than this is idle
    uint64_t tsc_hz
    uint64_t stall_tsc            # a poll this long was interrupted (DV_STALL_US)
    int mode                      # DV_MODE_* (written by control)
    uint32_t intr_after_rounds    # interrupt mode: empty rounds before waiting
    int epoll_fd                  # interrupt mode: kick eventfds (edge) + wake_fd
    int wake_fd                   # control writes it to end a wait (plan, stop, mode)
    uint32_t intr_timeout_ms      # interrupt mode: a wait ends after this without a kick

cdef enum:
    DV_MODE_POLL = 0
    DV_MODE_INTERRUPT = 1
    DV_INTR_TIMEOUT_MS = 100      # default of dv_pmd_ctx.intr_timeout_ms
    DV_STALL_US = 100             # no poll lasts this long unless its CPU was taken away
    DV_INTR_TIMEOUT_MS_MAX = 60000
    DV_GEN_CATCHUP_NS = 1000000   # 1 ms: how late a paced generator's poll may be made up for


cdef inline uint32_t dv_load16(const uint8_t *p) noexcept nogil:
    """A big-endian 16-bit field (network order)."""
    return (<uint32_t>p[0] << 8) | p[1]
