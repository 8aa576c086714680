# cython: language_level=3
"""PMD threads (L1): a worker lcore running the C poll loop dv_pmd_main over a *plan*
(the list of assignments it polls). Plans are swapped while the lcore runs: the new
plan is published with an atomic store and the old one is freed only after the lcore
has finished a round with the new one, so assignments, burst size and the CPU change
without stopping the lcore and without a use-after-free.

Policy (which lcore, which queue where) lives in dpdkvirtio.pmd (L2)."""
cimport cython
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, malloc, free
from libc.string cimport memcpy
from dpdkvirtio._dpdk.rte_lcore cimport (rte_eal_remote_launch, rte_eal_get_lcore_state,
    rte_eal_wait_lcore, rte_eal_lcore_role, rte_get_main_lcore, rte_lcore_is_enabled,
    rte_get_tsc_hz, rte_rdtsc, RTE_MAX_LCORE, ROLE_RTE, WAIT, RUNNING)
from dpdkvirtio._dpdk.dv_shim cimport (dv_load_acquire_u64, dv_store_release_ptr,
    dv_store_release_int, dv_load_acquire_int)
from dpdkvirtio._core.debug cimport (dv_debug_track, DV_RES_GENERATOR, DV_RES_PMD,
    DV_RES_PLAN)
from posix.unistd cimport close, write
from dpdkvirtio._dpdk.posix_extra cimport (epoll_create1, epoll_ctl, epoll_event, eventfd,
    EPOLL_CLOEXEC, EPOLL_CTL_ADD, EPOLLIN, EPOLLET, EFD_NONBLOCK, EFD_CLOEXEC)
from dpdkvirtio._core.dp_types cimport (dv_pmd_ctx, dv_plan, dv_poll, dv_gen, dv_pmd_stats,
    dv_poll_stats, DV_PMD_MAX_BURST, DV_MAX_VARS, DV_USES_RX, DV_USES_TX_OUT,
    DV_USES_GEN, DV_MARK_MIN_FRAME, DV_MODE_POLL, DV_MODE_INTERRUPT, DV_KIND_VHOST,
    DV_INTR_TIMEOUT_MS, DV_INTR_TIMEOUT_MS_MAX, DV_STALL_US, DV_GEN_CATCHUP_NS)
from dpdkvirtio._core.dp_hot cimport dv_pmd_main, dv_devices_changed_fd
from dpdkvirtio._core.port cimport Port, PORT_CLOSED
from dpdkvirtio._core.mempool cimport Mempool
from dpdkvirtio._core.telemetry cimport dv_tel_add_pmd, dv_tel_forget_pmd
from dpdkvirtio._core.counters cimport Counters
from dpdkvirtio._core.flows cimport FlowTable
from dpdkvirtio._core.eal cimport eal_check_usable, eal_alive
from dpdkvirtio.errors import PmdError, PmdStateError, ConfigError
from dpdkvirtio._core.dp_hot import ENGINES as _ENGINES

import time
from collections import namedtuple

PMD_MAX_BURST = DV_PMD_MAX_BURST        # packets per PMD poll or generator burst (Pmd.burst_size)
MAX_VARS = DV_MAX_VARS
MAX_SLEEP_US = 10000                    # as OVS's pmd-sleep-max
DEFAULT_INTR_AFTER_ROUNDS = 100         # empty rounds before an interrupt-mode PMD waits
INTR_TIMEOUT_MS = DV_INTR_TIMEOUT_MS    # default of Pmd.interrupt_timeout_ms
INTR_TIMEOUT_MS_MAX = DV_INTR_TIMEOUT_MS_MAX
OPS = {"inc": 0, "dec": 1, "random": 2}

# One entry of a plan (set_plan): what the lcore polls, in which engine, and where the
# results go. ``out_port``/``out_queue``: an io or forward engine's output; ``generator``:
# a generator engine's; ``poll_row``: the row of poll_stats it counts in; ``flow_table``:
# the measured-flow table of an rx engine, or None.
PlanEntry = namedtuple("PlanEntry", ["engine", "port", "queue", "out_port", "out_queue",
                                     "generator", "poll_row", "flow_table"])


def worker_lcores():
    """Worker lcores of this EAL (role RTE, not the main lcore)."""
    eal_check_usable()
    main = rte_get_main_lcore()
    return [i for i in range(RTE_MAX_LCORE)
            if rte_lcore_is_enabled(i) and i != main and rte_eal_lcore_role(i) == ROLE_RTE]


def tsc_hz():
    return rte_get_tsc_hz()


def rdtsc():
    return rte_rdtsc()


@cython.no_gc_clear
cdef class Generator:
    """A packet generator's C state: templates, field variables, pacing and limits.

    ``templates``: list of bytes-like frames (each <= the mempool's data size).
    ``variables``: list of (offset, size, op, min, max, step, start, in_ip, in_udp).
    ``size_var``: None or (op, min, max, step); templates must be >= max bytes long.
    Limits: ``count`` packets (0: none), ``duration_s`` (0: none), multi-burst
    ``burst_packets`` per burst, ``bursts`` (0: forever), ``ibg_s`` gap between bursts.
    ``pps``: rate (0: as fast as possible), changeable while running. Timed replay:
    ``due_ns`` (one non-decreasing offset per template, ns from the start of a pass) and
    ``loop_ns`` (a pass's length, > the last offset) replace the rate."""

    def __cinit__(self, Mempool mempool not None, list templates, list variables=None,
                  size_var=None, bint fix_ip=True, bint fix_udp=True, double pps=0.0,
                  uint64_t count=0, double duration_s=0.0, uint32_t burst_packets=0,
                  uint32_t bursts=0, double ibg_s=0.0, uint64_t seed=0x9E3779B97F4A7C15,
                  int flow_id=-1, due_ns=None, uint64_t loop_ns=0):
        eal_check_usable()
        if not templates:
            raise ConfigError("a generator needs at least one template packet")
        variables = variables or []
        if len(variables) > DV_MAX_VARS:
            raise ConfigError(f"at most {DV_MAX_VARS} field variables per generator")
        cdef Py_ssize_t total = 0, i
        cdef uint32_t limit = mempool.data_size
        blobs = []
        for t in templates:
            b = bytes(t)
            if not 14 <= len(b) <= limit or len(b) > 65535:
                raise ConfigError(f"template of {len(b)} bytes: templates must be 14..{limit} "
                                  f"bytes (the data size of mempool {mempool.name!r})")
            blobs.append(b)
            total += len(b)
        self._g = <dv_gen *>calloc(1, sizeof(dv_gen))
        if self._g is not NULL:
            dv_debug_track(DV_RES_GENERATOR, 1)
        self._tmpl = malloc(total)
        self._offs = malloc(len(blobs) * sizeof(uint32_t))
        self._lens = malloc(len(blobs) * sizeof(uint16_t))
        if not (self._g and self._tmpl and self._offs and self._lens):
            raise MemoryError()
        cdef uint32_t off = 0
        cdef const unsigned char[::1] view
        for i, b in enumerate(blobs):
            view = b
            memcpy(<char *>self._tmpl + off, &view[0], len(b))
            (<uint32_t *>self._offs)[i] = off
            (<uint16_t *>self._lens)[i] = <uint16_t>len(b)
            off += len(b)
        g = self._g
        g.mp = mempool.ptr()
        g.tmpl_data = <const uint8_t *>self._tmpl
        g.tmpl_off = <const uint32_t *>self._offs
        g.tmpl_len = <const uint16_t *>self._lens
        g.n_tmpl = len(blobs)
        g.n_vars = len(variables)
        for i, (offset, size, op, lo, hi, step, start, in_ip, in_udp) in enumerate(variables):
            if size not in (1, 2, 4):
                raise ConfigError("field variables are 1, 2 or 4 bytes wide")
            if op not in OPS:
                raise ConfigError(f"op must be one of {list(OPS)}")
            if not 0 <= lo <= hi < (1 << (8 * size)):
                raise ConfigError(f"range {lo}..{hi} does not fit {size} byte(s)")
            if step < 1:
                raise ConfigError("step must be >= 1")
            g.vars[i].offset = offset
            g.vars[i].size = size
            g.vars[i].op = OPS[op]
            g.vars[i].min = lo
            g.vars[i].max = hi
            g.vars[i].step = step
            g.vars[i].cur = start
            g.vars[i].in_ip = in_ip
            g.vars[i].in_udp = in_udp
        g.size_op = -1
        if size_var is not None:
            op, lo, hi, step = size_var
            if op not in OPS or not 14 <= lo <= hi or step < 1:
                raise ConfigError("size variable: op inc/dec/random, 14 <= min <= max, step >= 1")
            if any(len(b) < hi for b in blobs):
                raise ConfigError(f"templates must be at least {hi} bytes for a size range up to {hi}")
            g.size_op = OPS[op]
            g.size_min = lo
            g.size_max = hi
            g.size_step = step
            g.size_cur = lo if op != "dec" else hi
        g.fix_ip = fix_ip
        g.fix_udp = fix_udp
        g.count_limit = count
        hz = rte_get_tsc_hz()
        g.duration_tsc = <uint64_t>(duration_s * hz) if duration_s > 0 else 0
        g.burst_pkts = burst_packets
        g.n_bursts = bursts
        g.ibg_tsc = <uint64_t>(ibg_s * hz) if ibg_s > 0 else 0
        g.catchup_tsc = <double>DV_GEN_CATCHUP_NS * hz / 1e9
        g.rng = seed if seed else 0x9E3779B97F4A7C15
        if not -1 <= flow_id <= 65535:
            raise ConfigError(f"flow_id must be 0..65535 (or -1: unmeasured), got {flow_id}")
        if flow_id >= 0 and any(len(b) < DV_MARK_MIN_FRAME for b in blobs):
            raise ConfigError(f"measured templates must be at least {DV_MARK_MIN_FRAME} bytes")
        g.flow_id = flow_id
        if due_ns is not None:
            self._set_schedule(due_ns, loop_ns, len(blobs), hz)
        self.mempool = mempool
        self.set_rate(pps)

    cdef int _set_schedule(self, due_ns, uint64_t loop_ns, Py_ssize_t n, uint64_t hz) except -1:
        cdef Py_ssize_t i
        cdef uint64_t prev = 0, d
        due = list(due_ns)
        if len(due) != n:
            raise ConfigError(f"timed replay needs one offset per template: {len(due)} offsets "
                              f"for {n} templates")
        self._due = malloc(n * sizeof(uint64_t))
        if self._due is NULL:
            raise MemoryError()
        for i in range(n):
            if due[i] < prev:
                raise ConfigError("timed replay offsets must not decrease")
            prev = due[i]
            d = <uint64_t>(<double>due[i] * hz / 1e9)
            (<uint64_t *>self._due)[i] = d
        if loop_ns <= prev:
            raise ConfigError(f"a timed replay's pass ({loop_ns} ns) must be longer than its "
                              f"last offset ({prev} ns)")
        self._g.loop_tsc = <uint64_t>(<double>loop_ns * hz / 1e9)
        self._g.due_tsc = <const uint64_t *>self._due
        return 0

    def __dealloc__(self):
        # The PMD holds a reference to this object while the generator is in its plan.
        if self._g is not NULL:
            free(self._g)
            dv_debug_track(DV_RES_GENERATOR, -1)
        free(self._tmpl)
        free(self._offs)
        free(self._lens)
        free(self._due)

    def set_rate(self, double pps):
        """Packets per second (0: as fast as possible). Takes effect at once."""
        if pps < 0:
            raise ConfigError("rate must be >= 0 packets per second")
        self._g.pkts_per_tsc = pps / rte_get_tsc_hz() if pps > 0 else 0.0

    @property
    def pps(self):
        return self._g.pkts_per_tsc * rte_get_tsc_hz()

    @property
    def built(self):
        """Packets built and handed to the port (sent or counted as dropped there)."""
        return self._g.built

    @property
    def nombuf(self):
        """Packets that were due (paced mode) but could not be built: mempool empty."""
        return self._g.nombuf

    @property
    def flow_id(self):
        """The measured flow this generator stamps (None: unmeasured)."""
        return self._g.flow_id if self._g.flow_id >= 0 else None

    @property
    def next_seq(self):
        """The sequence number the next packet gets (= packets stamped so far)."""
        return self._g.seq_next

    @property
    def done(self):
        """A limit (count, duration, bursts) was reached."""
        return bool(self._g.done)

    @property
    def paused(self):
        return bool(self._g.paused)

    @paused.setter
    def paused(self, bint value):
        dv_store_release_int(&self._g.paused, value)

    def restart(self):
        """Start again from zero (counters, limits, field values are kept as they are).
        Only while the generator is in no running PMD's plan."""
        self._g.built = 0
        self._g.nombuf = 0
        self._g.done = 0
        self._g.started = 0
        self._g.bursts_done = 0
        self._g.tokens = 0


@cython.no_gc_clear
cdef class PmdThread:
    """One worker lcore's poll loop. ``max_polls`` assignments at most."""

    def __cinit__(self, unsigned int lcore, int burst_size=32, int max_polls=256):
        eal_check_usable()
        if lcore not in worker_lcores():
            if lcore == rte_get_main_lcore():
                raise PmdError(None, f"lcore {lcore} is the main lcore (the Python thread); "
                               "a PMD needs a worker lcore")
            raise PmdError(None, f"lcore {lcore} is not a worker lcore of this EAL "
                           f"(workers: {worker_lcores()})")
        if not 1 <= burst_size <= DV_PMD_MAX_BURST:
            raise ConfigError(f"burst_size must be 1..{DV_PMD_MAX_BURST}")
        if rte_eal_get_lcore_state(lcore) != WAIT:
            raise PmdStateError(f"lcore {lcore} is busy")
        self._ctx = <dv_pmd_ctx *>calloc(1, sizeof(dv_pmd_ctx))
        if self._ctx is NULL:
            raise MemoryError()
        dv_debug_track(DV_RES_PMD, 1)
        self.stats = Counters(1, sizeof(dv_pmd_stats), "pmd")
        self.poll_stats = Counters(max_polls, sizeof(dv_poll_stats), "poll")
        self._ctx.stats = <dv_pmd_stats *>self.stats.row(0)
        dv_tel_add_pmd(self._ctx, lcore)
        self._ctx.burst_size = burst_size
        self._ctx.sleep_thresh = burst_size // 2 if burst_size > 1 else 1
        self._ctx.tsc_hz = rte_get_tsc_hz()
        self._ctx.stall_tsc = self._ctx.tsc_hz * DV_STALL_US // 1000000
        self._ctx.intr_after_rounds = DEFAULT_INTR_AFTER_ROUNDS
        self._ctx.intr_timeout_ms = DV_INTR_TIMEOUT_MS
        self._ctx.epoll_fd = -1
        self._ctx.wake_fd = -1
        self._open_wait_fds()
        self._ctx.cpu_request = -1
        self._ctx.cpu_ack = -1
        self.lcore = lcore
        self._refs = []
        self._rx_queues = []

    def __dealloc__(self):
        if self._ctx is not NULL:
            dv_tel_forget_pmd(self._ctx)    # its counters go with this object
        # A running lcore keeps using ctx and plan: leak them rather than free under it.
        if self.running and eal_alive():
            return
        if self._plan is not NULL:
            free(self._plan.polls)
            free(self._plan)
            dv_debug_track(DV_RES_PLAN, -1)
        if self._ctx is not NULL:
            self._close_wait_fds()
            free(self._ctx)
            dv_debug_track(DV_RES_PMD, -1)

    @property
    def burst_size(self):
        return self._ctx.burst_size

    @burst_size.setter
    def burst_size(self, int value):
        if not 1 <= value <= DV_PMD_MAX_BURST:
            raise ConfigError(f"burst_size must be 1..{DV_PMD_MAX_BURST}")
        self._ctx.burst_size = value
        self._ctx.sleep_thresh = value // 2 if value > 1 else 1

    @property
    def sleep_max_us(self):
        """Load-based sleep: 0 polls without pause; N sleeps after rounds in which every
        queue moved fewer than half a burst, growing 1 us per idle round up to N us."""
        return self._ctx.sleep_max_us

    @sleep_max_us.setter
    def sleep_max_us(self, int value):
        if not 0 <= value <= MAX_SLEEP_US:
            raise ConfigError(f"sleep_max_us must be 0..{MAX_SLEEP_US} (0: pure polling), "
                              f"got {value}")
        self._ctx.sleep_max_us = value

    cdef int _open_wait_fds(self) except -1:
        cdef epoll_event ev
        self._ctx.epoll_fd = epoll_create1(EPOLL_CLOEXEC)
        self._ctx.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)
        if self._ctx.epoll_fd < 0 or self._ctx.wake_fd < 0:
            raise PmdError(None, "cannot create the PMD's epoll/eventfd (out of file "
                           "descriptors? raise ulimit -n)")
        ev.events = EPOLLIN
        ev.data.u64 = 0
        if epoll_ctl(self._ctx.epoll_fd, EPOLL_CTL_ADD, self._ctx.wake_fd, &ev) != 0:
            raise PmdError(None, "epoll_ctl on the PMD's wake eventfd failed")
        # a vhost-user device coming up (its kick eventfds are new): edge-triggered, never read
        ev.events = EPOLLIN | EPOLLET
        ev.data.u64 = 2
        if epoll_ctl(self._ctx.epoll_fd, EPOLL_CTL_ADD, dv_devices_changed_fd(), &ev) != 0:
            raise PmdError(None, "epoll_ctl on the devices-changed eventfd failed")
        return 0

    cdef void _close_wait_fds(self) noexcept:
        if self._ctx.epoll_fd >= 0:
            close(self._ctx.epoll_fd)
            self._ctx.epoll_fd = -1
        if self._ctx.wake_fd >= 0:
            close(self._ctx.wake_fd)
            self._ctx.wake_fd = -1

    cdef void _wake(self) noexcept:
        """End an interrupt-mode wait now (plan, mode, stop or CPU changed)."""
        cdef uint64_t one = 1
        if self._ctx.wake_fd >= 0:
            write(self._ctx.wake_fd, &one, 8)

    def release(self):
        """Close the PMD's epoll and wake descriptors (Pmd.close; the lcore is stopped).
        Refused while running."""
        if self.running:
            raise PmdStateError(f"lcore {self.lcore} is running: stop it first")
        self._close_wait_fds()

    @property
    def mode(self):
        """"poll" (with sleep_max_us) or "interrupt": after ``interrupt_after_rounds``
        empty rounds, wait for a guest's kick on the vhost-user rx queues (epoll)."""
        return "interrupt" if self._ctx.mode == DV_MODE_INTERRUPT else "poll"

    @mode.setter
    def mode(self, str value):
        if value not in ("poll", "interrupt"):
            raise ConfigError(f"mode must be 'poll' or 'interrupt', got {value!r}")
        if value == "interrupt":
            for port, queue in self._rx_queues:
                self._check_interruptible(port, queue)
        self._ctx.mode = DV_MODE_INTERRUPT if value == "interrupt" else DV_MODE_POLL
        self._wake()

    @property
    def interrupt_after_rounds(self):
        return self._ctx.intr_after_rounds

    @interrupt_after_rounds.setter
    def interrupt_after_rounds(self, int value):
        if not 1 <= value <= 1000000:
            raise ConfigError(f"interrupt_after_rounds must be 1..1000000 empty poll rounds, "
                              f"got {value}")
        self._ctx.intr_after_rounds = value

    @property
    def interrupt_timeout_ms(self):
        return self._ctx.intr_timeout_ms

    @interrupt_timeout_ms.setter
    def interrupt_timeout_ms(self, int value):
        if not 1 <= value <= DV_INTR_TIMEOUT_MS_MAX:
            raise ConfigError(f"interrupt_timeout_ms must be 1..{DV_INTR_TIMEOUT_MS_MAX}, "
                              f"got {value}")
        self._ctx.intr_timeout_ms = value

    def _check_interruptible(self, Port port, int queue):
        if port.c_port().kind != DV_KIND_VHOST and not port.c_port().rx_intr:
            raise ConfigError(
                f"interrupt mode: rx queue {queue} of port {port.name!r} has no notification "
                "to wake the PMD: open it with rx_interrupts=True (virtio-user: its vring's "
                "call eventfd), or poll it (sleep_max_us saves the CPU), or give it a PMD "
                "of its own")

    @property
    def epoch(self):
        return self._epoch

    def set_plan(self, list assignments, double timeout_s=5.0):
        """Replace what the lcore polls. ``assignments``: list of PlanEntry.
        Returns after
        the lcore has picked the new plan up (when running), so ports and generators no
        longer in it may be closed."""
        eal_check_usable()
        cdef dv_plan *plan = <dv_plan *>calloc(1, sizeof(dv_plan))
        if plan is NULL:
            raise MemoryError()
        cdef Py_ssize_t n = len(assignments), i
        plan.polls = <dv_poll *>calloc(n if n else 1, sizeof(dv_poll))
        if plan.polls is NULL:
            free(plan)
            raise MemoryError()
        cdef Port port, out_port
        cdef Generator gen
        rx_queues = []
        cdef FlowTable flows
        cdef int uses
        refs = []
        try:
            for i, (engine, p, queue, out_p, out_queue, g, row, ft) in enumerate(assignments):
                if engine not in _ENGINES:
                    raise ConfigError(f"unknown engine {engine!r}; known: {', '.join(_ENGINES)}")
                plan.polls[i].engine, uses = _ENGINES[engine]
                port = p
                if port.c_port() is NULL or port._state == PORT_CLOSED:
                    raise PmdStateError(f"port {port.name!r} is closed")
                if not 0 <= queue < port.c_port().n_queues:
                    raise ConfigError(f"queue {queue} out of range for port {port.name!r}")
                self._require_owner(port, queue, "rx" if uses & DV_USES_RX else "tx")
                if uses & DV_USES_RX:
                    if self._ctx.mode == DV_MODE_INTERRUPT:
                        self._check_interruptible(port, queue)
                    rx_queues.append((port, queue))
                if not 0 <= row < self.poll_stats.rows:
                    raise ConfigError("poll statistics row out of range")
                plan.polls[i].port = port.c_port()
                plan.polls[i].queue = queue
                plan.polls[i].pst = <dv_poll_stats *>self.poll_stats.row(row)
                refs.append(port)
                if uses & DV_USES_TX_OUT:
                    out_port = out_p
                    if out_port.c_port() is NULL or out_port._state == PORT_CLOSED:
                        raise PmdStateError(f"port {out_port.name!r} is closed")
                    if not 0 <= out_queue < out_port.c_port().n_queues:
                        raise ConfigError(f"queue {out_queue} out of range for port {out_port.name!r}")
                    self._require_owner(out_port, out_queue, "tx")
                    plan.polls[i].out_port = out_port.c_port()
                    plan.polls[i].out_queue = out_queue
                    refs.append(out_port)
                if uses & DV_USES_GEN:
                    gen = g
                    plan.polls[i].gen = gen._g
                    refs.append(gen)
                if ft is not None:
                    flows = ft
                    if not uses & DV_USES_RX:
                        raise ConfigError(f"the {engine} engine receives nothing to account")
                    if flows.writer != self.lcore:
                        raise PmdStateError(f"the flow table of {port.name!r} queue {queue} is "
                                            f"not claimed by lcore {self.lcore} (FlowTable.claim first)")
                    plan.polls[i].flows = flows.c_table()
                    refs.append(flows)
            plan.n_polls = n
            self._epoch += 1
            plan.epoch = self._epoch
        except BaseException:
            free(plan.polls)
            free(plan)
            raise
        dv_debug_track(DV_RES_PLAN, 1)
        self._swap(plan, timeout_s)
        self._refs = refs
        self._rx_queues = rx_queues

    def _require_owner(self, Port port, int queue, str direction):
        # The owner field is the contract: a plan only polls queues this lcore owns.
        if port.owner(queue, direction) != self.lcore:
            raise PmdStateError(f"{direction} queue {queue} of port {port.name!r} is not "
                                f"owned by lcore {self.lcore} (Port.claim first)")

    cdef int _swap(self, dv_plan *plan, double timeout_s) except -1:
        cdef dv_plan *old = self._plan
        cdef uint64_t want = plan.epoch
        dv_store_release_ptr(<void **>&self._ctx.plan, plan)
        self._plan = plan
        self._wake()
        if self.running:
            deadline = time.monotonic() + timeout_s
            while dv_load_acquire_u64(&self._ctx.ack_epoch) < want:
                if rte_eal_get_lcore_state(self.lcore) != RUNNING:
                    break
                if time.monotonic() > deadline:
                    # Never free a plan the lcore may still read: leak the old one.
                    raise PmdError(None, f"lcore {self.lcore} did not pick up the new plan "
                                   f"within {timeout_s:g} s; the old plan is kept in memory")
                time.sleep(0.0002)
        if old is not NULL:
            free(old.polls)
            free(old)
            dv_debug_track(DV_RES_PLAN, -1)
        return 0

    def start(self):
        """Launch the poll loop on the lcore."""
        eal_check_usable()
        if self.running:
            return
        if self._ctx.epoll_fd < 0:
            raise PmdStateError(f"the PMD on lcore {self.lcore} was released")
        if rte_eal_get_lcore_state(self.lcore) != WAIT:
            raise PmdStateError(f"lcore {self.lcore} is busy with another function")
        dv_store_release_int(&self._ctx.stop, 0)
        self._ctx.ack_epoch = 0
        cdef int rc = rte_eal_remote_launch(dv_pmd_main, self._ctx, self.lcore)
        if rc != 0:
            raise PmdError(-rc if rc < 0 else None, f"rte_eal_remote_launch on lcore {self.lcore} failed",
                           "rte_eal_remote_launch")
        self.running = True

    def stop(self, double timeout_s=5.0):
        """Stop the poll loop (returns once the lcore is idle again)."""
        if not self.running:
            return
        dv_store_release_int(&self._ctx.stop, 1)
        self._wake()
        deadline = time.monotonic() + timeout_s
        while rte_eal_get_lcore_state(self.lcore) != WAIT:
            if time.monotonic() > deadline:
                raise PmdError(None, f"lcore {self.lcore} did not stop within {timeout_s:g} s")
            time.sleep(0.0005)
        cdef unsigned int lc = self.lcore
        with nogil:
            rte_eal_wait_lcore(lc)
        self.running = False

    def request_cpu(self, int cpu, double timeout_s=5.0):
        """Pin the lcore's thread to ``cpu`` (done by the lcore itself between rounds;
        while stopped, at its next round). Returns once applied when running."""
        dv_store_release_int(&self._ctx.cpu_request, cpu)
        self._wake()
        if not self.running:
            return
        deadline = time.monotonic() + timeout_s
        while dv_load_acquire_int(&self._ctx.cpu_ack) != cpu:
            if time.monotonic() > deadline:
                raise PmdError(None, f"lcore {self.lcore} did not move to CPU {cpu} within "
                               f"{timeout_s:g} s")
            time.sleep(0.0002)

    @property
    def cpu_request(self):
        return self._ctx.cpu_request

    @property
    def cpu_ack(self):
        return self._ctx.cpu_ack
