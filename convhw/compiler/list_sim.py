"""The list engine's timing, cycle by cycle, without data: the machinery of
:func:`convhw.compiler.cycles.list_cycles`.

Each class below replays one block of :class:`~convhw.gateware.list_engine.ListEngine` at the
level of its handshakes and of the registers that decide them (valid, ready, counters, queue
levels), never its data: the descriptor fetcher, the job checker, the list controller, the read
arbiter and its tag queue, the three input loaders (walker, splitter, gearbox), the compute
core (a job's datapath takes :func:`~convhw.compiler.cycles.job_cycles` cycles), the output
writer (setup, reader, output pipeline, walker, command issuer, packer, responder), and the
memory master with the memory of a :class:`~convhw.memory_model.MemoryModel` behind it, as
``config.bus`` chooses: :class:`Axi4Bus` (the AXI4 master's skid buffers, the rules of
:func:`convhw.sim_memory.axi4_slave`) or :class:`WishboneBus` (the Wishbone master's bus
cycles, the rules of :func:`convhw.sim_memory.wishbone_slave`); everything else is the same for
both. Every step of a cycle first evaluates what the gateware computes combinationally from its
registers, in the order the signals depend on each other, then updates the registers. The block
sizes and latencies come from :func:`convhw.timing.list_timing`.

The model is exact (equal to the RTL's CYCLES, see :mod:`convhw.compiler.cycles`) for the AXI4
and the Wishbone list engine with their default sizes (``slots``, queue depths, the Wishbone
master's ``read_buffer``) on lists that run without errors; each block's class says which part
of the gateware it follows. A stretch of cycles in which nothing changes (everything waiting
for a job's datapath) is skipped to the next cycle in which a timer runs out, which gives the
same result faster.

This module imports no Amaranth.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from ..timing import ListTimingConstants

#: The memory port's rules (:mod:`convhw.gateware.memory_port`): no burst crosses 4 KiB or has
#: more than 256 beats.
BOUNDARY = 4096
MAX_BEATS = 256


# -- queues ----------------------------------------------------------------------------------------

class BufferedFifo:
    """Amaranth's ``SyncFIFOBuffered`` (depth >= 2): a queue of ``depth - 1`` and an output
    register; an entry written into an empty queue is readable two cycles later."""

    def __init__(self, depth: int) -> None:
        assert depth >= 2
        self.depth = depth
        self.inner = deque()
        self.out = None
        self.has_out = False

    @property
    def w_rdy(self) -> bool:
        return len(self.inner) != self.depth - 1

    @property
    def r_rdy(self) -> bool:
        return self.has_out

    @property
    def level(self) -> int:
        return len(self.inner) + self.has_out

    def step(self, w_en: bool, w_data, r_en: bool) -> None:
        do_write = w_en and self.w_rdy
        if self.inner and (not self.has_out or r_en):
            self.out, self.has_out = self.inner.popleft(), True
        elif r_en:
            self.out, self.has_out = None, False
        if do_write:
            self.inner.append(w_data)


class Fifo:
    """Amaranth's ``SyncFIFO``: an entry written is readable in the next cycle."""

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.items = deque()

    @property
    def w_rdy(self) -> bool:
        return len(self.items) != self.depth

    @property
    def r_rdy(self) -> bool:
        return bool(self.items)

    @property
    def head(self):
        return self.items[0]

    def step(self, w_en: bool, w_data, r_en: bool) -> None:
        do_write = w_en and self.w_rdy
        if r_en and self.items:
            self.items.popleft()
        if do_write:
            self.items.append(w_data)


class Skid:
    """:class:`~convhw.gateware.skid_buffer.SkidBuffer`: an output register and a skid
    register; ``i_ready`` while the skid register is empty."""

    def __init__(self) -> None:
        self.o = None
        self.skid = None

    @property
    def i_ready(self) -> bool:
        return self.skid is None

    @property
    def o_valid(self) -> bool:
        return self.o is not None

    def step(self, i_item, o_ready: bool) -> None:
        """``i_item``: the input's payload if valid, else None."""
        if self.o is None or o_ready:
            if self.skid is not None:
                self.o, self.skid = self.skid, None
            else:
                self.o = i_item
        elif i_item is not None and self.skid is None:
            self.skid = i_item


# -- the memory and the master ---------------------------------------------------------------------

class Memory:
    """:func:`convhw.sim_memory.axi4_slave` with a :class:`MemoryModel` without stalls, at the
    level of beats."""

    def __init__(self, model, beat: int) -> None:
        self.beat = beat
        self.latency = model.latency
        self.rate = model.bytes_per_cycle
        self.cap = model.cap(beat)
        self.credit = self.cap
        self.reads = deque()        # [due, beats left, client]
        self.r_out = None           # (client, last)
        self.writes = deque()       # beats per write burst, addresses received
        self.wbeats = 0
        self.bresps = deque()       # due cycles
        self.b_out = False
        self.wready = True

    def step(self, cycle, *, ar, r_taken, aw, w_taken, b_taken) -> None:
        """End ``cycle``: ``ar``/``aw`` the bursts (beats, client) whose address moved;
        ``r_taken``, ``w_taken``, ``b_taken`` whether a beat or response moved."""
        moved = bool(self.r_out is not None and r_taken) + bool(self.wready and w_taken)
        self.credit = min(self.cap, self.credit - moved * self.beat + self.rate)
        if self.r_out is not None and r_taken:
            self.r_out = None
        if self.b_out and b_taken:
            self.b_out = False
        if ar is not None:
            self.reads.append([cycle + self.latency, ar[0], ar[1]])
        if aw is not None:
            self.writes.append(aw)
        if self.wready and w_taken:
            self.wbeats += 1
        while self.writes and self.wbeats >= self.writes[0]:
            self.wbeats -= self.writes.popleft()
            self.bresps.append(cycle + self.latency)
        if self.r_out is None and self.reads and self.reads[0][0] <= cycle + 1 \
                and self.credit >= self.beat:
            burst = self.reads[0]
            burst[1] -= 1
            self.r_out = (burst[2], burst[1] == 0)
            if burst[1] == 0:
                self.reads.popleft()
        if not self.b_out and self.bresps and self.bresps[0] <= cycle + 1:
            self.bresps.popleft()
            self.b_out = True
        reserved = self.beat if self.r_out is not None else 0
        self.wready = self.credit - reserved >= self.beat


class Axi4Bus:
    """:class:`~convhw.gateware.axi4.Axi4Master` (a skid buffer on each of its five channels)
    and the AXI4 :class:`Memory` behind it, seen from the memory port.

    The bus classes share one interface, which :class:`ListSim` drives: in a cycle it first
    asks what the port's outputs are (``read_data``: the ``last`` flag of the read beat
    offered, or None; ``write_resp``: a write response offered; ``write_data_ready``) and,
    given both commands' ``valid``, whether each is taken (``read_cmd_ready``,
    ``write_cmd_ready``); then :meth:`step` ends the cycle."""

    def __init__(self, model, t: ListTimingConstants) -> None:
        self.beat = t.beat_bytes
        self.memory = Memory(model, self.beat)
        self.ar, self.aw, self.w, self.r, self.b = (Skid() for _ in range(5))
        self.bytes_read = 0
        self.bytes_written = 0
        self.log = None

    def read_cmd_ready(self, read_valid: bool, write_valid: bool) -> bool:
        return self.ar.i_ready

    def write_cmd_ready(self, read_valid: bool, write_valid: bool) -> bool:
        return self.aw.i_ready

    @property
    def read_data(self):
        return self.r.o[1] if self.r.o_valid else None

    @property
    def write_data_ready(self) -> bool:
        return self.w.i_ready

    @property
    def write_resp(self) -> bool:
        return self.b.o_valid

    def timers(self) -> list:
        """Cycles in which a timer of the memory runs out (it decides at the end of a cycle
        what it presents in the next)."""
        mem = self.memory
        times = []
        if mem.reads:
            times.append(mem.reads[0][0] - 1)
        if mem.bresps:
            times.append(mem.bresps[0] - 1)
        return times

    def step(self, c: int, *, read_cmd, write_cmd, write_data: bool, read_ready: bool,
             resp_ready: bool) -> None:
        """End cycle ``c``: ``read_cmd`` the read command offered ((beats, client), or None),
        ``write_cmd`` the write command offered (beats, or None),
        ``write_data`` a write beat offered, ``read_ready`` and ``resp_ready`` the port's
        readies."""
        mem = self.memory
        ar_out = self.ar.o
        aw_out = self.aw.o
        w_taken = self.w.o_valid
        if w_taken and mem.wready:
            self.bytes_written += self.beat
        r_taken = self.r.i_ready
        if mem.r_out is not None and r_taken:
            self.bytes_read += self.beat
        b_taken = self.b.i_ready
        r_in = mem.r_out
        b_in = True if mem.b_out else None
        w_ready_mem = mem.wready
        if self.log is not None:
            if ar_out is not None:
                self.log.append((c, "ar", ar_out))
            if mem.r_out is not None and r_taken:
                self.log.append((c, "r", mem.r_out))
            if w_taken and mem.wready:
                self.log.append((c, "w", None))
            if aw_out is not None:
                self.log.append((c, "aw", aw_out))
            if mem.b_out and b_taken:
                self.log.append((c, "b", None))
        mem.step(c, ar=ar_out, r_taken=r_taken, aw=aw_out, w_taken=w_taken, b_taken=b_taken)
        self.ar.step(read_cmd, True)
        self.r.step(r_in, read_ready)
        self.w.step(True if write_data else None, w_ready_mem)
        self.aw.step(write_cmd, True)
        self.b.step(b_in, resp_ready)


class WishboneBus:
    """:class:`~convhw.gateware.wishbone_master.WishboneMaster` (its command arbitration, beat
    registers, write-data skid buffer, read-answer FIFO of ``read_buffer`` beats and write
    response register) and :func:`convhw.sim_memory.wishbone_slave` with a
    :class:`MemoryModel` without stalls (``STALL`` in a cycle that starts with less than a
    beat's bytes of credit; each beat answered ``latency`` cycles after its acceptance, in
    order, one answer per cycle), at the level of beats. One bus cycle per command: the
    master takes a command only while ``CYC`` is low, so commands never overlap, and ``CYC``
    is low for a cycle between them. Same interface as :class:`Axi4Bus`."""

    def __init__(self, model, t: ListTimingConstants) -> None:
        beat = self.beat = t.beat_bytes
        self.depth = t.read_buffer
        # the master
        self.busy = False               # CYC
        self.we = False
        self.to_issue = 0
        self.to_answer = 0
        self.reserved = 0
        self.served_write = False
        self.resp_valid = False
        self.stb = False
        self.wdata = Skid()
        self.rfifo = BufferedFifo(self.depth + 1)       # entries: the beat's last flag
        # the slave
        self.latency = model.latency
        self.rate = model.bytes_per_cycle
        self.cap = model.cap(beat)
        self.credit = self.cap
        self.stall = False
        self.ack = False
        self.pending = deque()          # due cycles of the beats accepted, not yet answered
        self.bytes_read = 0
        self.bytes_written = 0
        self.log = None

    def _pick(self, read_valid: bool, write_valid: bool) -> tuple:
        pick_write = (write_valid and not self.resp_valid
                      and (not read_valid or not self.served_write))
        pick_read = read_valid and not pick_write
        return pick_read, pick_write

    def read_cmd_ready(self, read_valid: bool, write_valid: bool) -> bool:
        return not self.busy and self._pick(read_valid, write_valid)[0]

    def write_cmd_ready(self, read_valid: bool, write_valid: bool) -> bool:
        return not self.busy and self._pick(read_valid, write_valid)[1]

    @property
    def read_data(self):
        return self.rfifo.out if self.rfifo.r_rdy else None

    @property
    def write_data_ready(self) -> bool:
        return self.wdata.i_ready

    @property
    def write_resp(self) -> bool:
        return self.resp_valid

    def timers(self) -> list:
        return [self.pending[0] - 1] if self.pending else []

    def step(self, c: int, *, read_cmd, write_cmd, write_data: bool, read_ready: bool,
             resp_ready: bool) -> None:
        pick_read, pick_write = self._pick(read_cmd is not None, write_cmd is not None)
        accept = not self.busy and (pick_read or pick_write)
        # -- the beat registers ----------------------------------------------------------------
        advance = not self.stb or not self.stall
        if accept:
            cur_we = pick_write
            beats = write_cmd if pick_write else read_cmd[0]
            cur_left = beats - 1
        else:
            cur_we = self.we
            cur_left = self.to_issue - 1
        more = accept or (self.busy and self.to_issue != 0)
        issue = more and (self.wdata.o_valid if cur_we else self.reserved < self.depth)
        wdata_taken = advance and more and cur_we
        # -- the slave's view: a beat accepted, an answer ---------------------------------------
        moved = self.busy and self.stb and not self.stall
        answer = self.busy and self.ack
        if moved:
            if self.we:
                self.bytes_written += self.beat
            else:
                self.bytes_read += self.beat
        if self.log is not None:
            if moved:
                self.log.append((c, "beat", self.we))
            if answer:
                self.log.append((c, "ack", self.to_answer == 1))
        taken = self.rfifo.r_rdy and read_ready
        # -- the slave's registers -------------------------------------------------------------
        self.credit = min(self.cap, self.credit - moved * self.beat + self.rate)
        if not self.busy:
            self.pending.clear()
        elif moved:
            self.pending.append(c + self.latency)
        self.ack = bool(self.pending) and self.pending[0] <= c + 1
        if self.ack:
            self.pending.popleft()
        self.stall = self.credit < self.beat
        # -- the master's registers ------------------------------------------------------------
        self.rfifo.step(answer and not self.we, self.to_answer == 1, taken)
        self.reserved += (advance and issue and not cur_we) - taken
        if resp_ready and self.resp_valid:
            self.resp_valid = False
        if answer:
            if self.to_answer == 1:
                self.busy = False
                if self.we:
                    self.resp_valid = True
            self.to_answer -= 1
        if accept:
            self.busy = True
            self.we = self.served_write = pick_write
            self.to_issue = self.to_answer = beats
        if advance:
            self.stb = issue
            if issue:
                self.to_issue = cur_left
        self.wdata.step(True if write_data else None, wdata_taken)


BUSES = {"axi4": Axi4Bus, "wishbone": WishboneBus}


# -- descriptors -----------------------------------------------------------------------------------

def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass
class Range:
    """A byte range a loader's walker emits (its ``ranges`` and ``runs`` queue entries)."""

    addr: int
    size: int
    gap: int            # walker cycles spent before this range (segment or plane changes)
    last: bool          # the command's last


def window_ranges(d: dict, word: int) -> list[Range]:
    """The ranges an :class:`~convhw.gateware.input_loader.InputLoader` walker emits for the
    window load of the descriptor ``d`` (all fields), buffer words of ``word`` bytes, in order,
    with the cycles it spends between them: one per pixel, or per x segment when the pixels
    are contiguous."""
    run = d["IN_CHUNKS"] * word
    pitch = {"Z": d["INPUT_PLANE_PITCH"], "Y": d["INPUT_ROW_PITCH"],
             "X": d["INPUT_PIXEL_PITCH"]}
    contiguous = pitch["X"] == run
    segments = {a: [(d[f"{a}_SEG{s}_START"], d[f"{a}_SEG{s}_LEN"]) for s in (0, 1)
                    if d[f"{a}_SEG{s}_LEN"]] for a in "ZYX"}
    return _walk(d["INPUT_ADDR"], pitch, segments, run, contiguous)


def _walk(base, pitch, segments, run, contiguous) -> list[Range]:
    ranges = []
    gap = 0
    for zs, zl in segments["Z"]:
        for z in range(zs, zs + zl):
            if ranges:
                gap = 2         # PLANE and ROW
            for yi, (ys, yl) in enumerate(segments["Y"]):
                if yi and ranges:
                    gap = max(gap, 1)       # ROW
                for y in range(ys, ys + yl):
                    row = base + z * pitch["Z"] + y * pitch["Y"]
                    for xs, xl in segments["X"]:
                        if contiguous:
                            ranges.append(Range(row + xs * pitch["X"], xl * run, gap, False))
                            gap = 0
                        else:
                            for x in range(xs, xs + xl):
                                ranges.append(Range(row + x * pitch["X"], run, gap, False))
                                gap = 0
    if not ranges:
        raise NotImplementedError("list_cycles does not model a load of zero words (the "
                                  "compiler never emits one)")
    ranges[-1].last = True
    return ranges


def block_ranges(addr: int, words: int, word: int) -> list[Range]:
    """One "pixel" of ``words`` words: a weight or parameter load."""
    return [Range(addr, words * word, 0, True)]


# -- the input loader ------------------------------------------------------------------------------

class Loader:
    """:class:`~convhw.gateware.input_loader.InputLoader`: walker, splitter, gearbox, done."""

    def __init__(self, t: ListTimingConstants, word: int, queue_depth: int,
                 start: int) -> None:
        self.t = t
        self.start = start          # cycles from taking a command to its first range
        self.beat = t.beat_bytes
        self.word = word
        self.page_beats = BOUNDARY // self.beat
        self.most = min(MAX_BEATS, self.page_beats)
        # walker
        self.ranges = deque()
        self.ready_at = 0
        self.range_queue = BufferedFifo(t.range_queue)
        self.run_queue = BufferedFifo(queue_depth)
        # splitter
        self.s_busy = False
        self.s_left = 0
        self.s_cap = 0
        self.s_page_left = 0
        self.cmd = None             # beats of the read command offered (a register)
        # gearbox
        self.active = False
        self.need = 0
        self.size_left = 0
        self.one_left = False
        self.range_last = False
        self.end_d1 = False
        self.done_valid = False

    @property
    def command_ready(self) -> bool:
        return not self.ranges

    @property
    def idle(self) -> bool:
        """Nothing to do: a cycle without a command changes nothing."""
        return not (self.ranges or self.range_queue.level or self.run_queue.level
                    or self.s_busy or self.cmd is not None or self.active or self.end_d1
                    or self.done_valid)

    def comb(self) -> None:
        """The gearbox's decisions of this cycle (``accept`` is ``read_data.ready``)."""
        word = self.word
        can_end = not self.end_d1 and not self.done_valid
        emit = self.active and self.need <= 0 and (not (self.one_left and self.range_last)
                                                   or can_end)
        emit_last = emit and self.one_left
        self.emit, self.emit_last = emit, emit_last
        self.end_emit = emit_last and self.range_last
        finishing = not self.active or emit_last
        self.load_run = finishing and self.run_queue.r_rdy
        if self.load_run:
            self.accept = True
        elif self.active and not emit_last:
            self.accept = self.need > -word if emit else self.need > 0
        else:
            self.accept = False

    def step(self, cycle: int, *, command, cmd_taken: bool, beat: bool,
             done_ready: bool) -> None:
        """End ``cycle``: ``command`` the ranges of a command taken in it (or None);
        ``cmd_taken``: the read command offered was granted; ``beat``: a beat was taken;
        ``done_ready``: the done queue had room."""
        if command is None and self.idle:
            return
        # -- walker: a range per cycle, after the command's start and the segment changes ----
        push = None
        if self.ranges and cycle >= self.ready_at and self.range_queue.w_rdy \
                and self.run_queue.w_rdy:
            push = self.ranges.popleft()
            if self.ranges:
                self.ready_at = cycle + 1 + self.ranges[0].gap
        if command is not None:
            self.ranges = deque(command)
            self.ready_at = cycle + self.start
        # -- splitter -------------------------------------------------------------------------
        free = self.cmd is None or cmd_taken
        advance = self.s_busy and free
        last = self.s_left <= self.s_cap
        if cmd_taken:
            self.cmd = None
        load_range = (not self.s_busy or (advance and last)) and self.range_queue.r_rdy
        if advance:
            self.cmd = self.s_left if last else self.s_cap
            self.s_left -= self.s_cap
            if last:
                self.s_busy = False
            elif self.s_page_left <= self.most:
                self.s_page_left = self.page_beats
                self.s_cap = self.most
            else:
                self.s_page_left -= self.most
                self.s_cap = min(self.s_page_left, self.most)
        if load_range:
            head = self.range_queue.out
            start_beat = head.addr // self.beat % self.page_beats
            self.s_busy = True
            self.s_page_left = self.page_beats - start_beat
            self.s_cap = min(self.s_page_left, self.most)
            self.s_left = _ceil_div(head.addr % self.beat + head.size, self.beat)
        # -- gearbox --------------------------------------------------------------------------
        run = self.run_queue.out
        word, bt = self.word, self.beat
        take = self.accept and beat
        if self.emit:
            new_one_left = self.size_left == 2 * word
            self.size_left -= word
            self.one_left = new_one_left
        if self.load_run:
            self.active = True
            self.need = run.addr % bt + word - (bt if take else 0)
            self.size_left = run.size
            self.one_left = run.size == word
            self.range_last = run.last
        elif self.emit_last:
            self.active = False
        else:
            self.need += (word if self.emit else 0) - (bt if take else 0)
        if self.end_d1:
            self.done_valid = True
        elif done_ready:
            self.done_valid = False
        self.end_d1 = self.end_emit
        self.range_queue.step(push is not None, push, load_range)
        self.run_queue.step(push is not None, push, self.load_run)


# -- the output writer -----------------------------------------------------------------------------

@dataclass
class Tile:
    """A drain command's geometry, as :class:`~convhw.gateware.output_writer.OutputWriter`
    sees it."""

    entries: list          # per entry: (run_end, job_last)
    runs: list             # per run: (start address, size in bytes)
    group_bytes: int       # an entry's result bytes


def drain_tile(d: dict, config) -> Tile:
    oc = min(d["OUT_CHANNELS"], config.cols)
    entry = oc * (config.input_bytes if d["REQUANTIZE"] or d.get("FLOAT_REQUANTIZE")
                  else config.raw_bytes)
    lens = [d[f"{a}_OUT_LEN"] for a in "ZYX"]
    starts = [d[f"{a}_OUT_START"] for a in "ZYX"]
    pitches = [d["OUTPUT_PLANE_PITCH"], d["OUTPUT_ROW_PITCH"], d["OUTPUT_PIXEL_PITCH"]]
    contiguous = pitches[2] == entry
    base = d["OUTPUT_ADDR"] + sum(s * p for s, p in zip(starts, pitches))
    entries, runs = [], []
    for z in range(lens[0]):
        for y in range(lens[1]):
            row = base + z * pitches[0] + y * pitches[1]
            if contiguous:
                runs.append((row, lens[2] * entry))
            for x in range(lens[2]):
                entries.append((not contiguous or x == lens[2] - 1, False))
                if not contiguous:
                    runs.append((row + x * pitches[2], entry))
    entries[-1] = (entries[-1][0], True)
    return Tile(entries, runs, entry)


class Writer:
    """:class:`~convhw.gateware.output_writer.OutputWriter` (one group per entry: ``lanes``
    = ``cols``)."""

    def __init__(self, t: ListTimingConstants) -> None:
        self.t = t
        beat = self.beat = t.beat_bytes
        self.page_beats = BOUNDARY // beat
        # setup
        self.setup = "IDLE"
        self.setup_wait = 0
        self.tile = None
        self.taken = [False, False, False]       # reader issue, parameters, walker
        # reader
        self.r_entries = deque()
        self.credit = 0
        self.delay = deque([None] * t.acc_read_latency)
        self.read_fifo = Fifo(t.acc_read_latency + 2)
        self.next_full = False
        self.cur_full = False
        # pipeline: its stages (never stalled), its buffer and credits; the packer's format
        # skid buffer
        self.stages = [None] * t.output_stages
        self.p_buffer = Fifo(t.output_credits)
        self.p_held = 0
        self.p_room = True
        self.f_skid = Skid()
        # walker
        self.w_runs = deque()
        self.room = False
        self.v1 = None
        self.v2 = None
        self.runs_c = BufferedFifo(t.writer_runs)
        self.runs_d = BufferedFifo(t.writer_runs)
        # issuer
        self.issuer = "EMIT"
        self.cur = None
        self.have = False
        self.i_bursts = 0
        self.cmd = None                   # write command offered: beats
        self.jobs = BufferedFifo(t.writer_jobs)
        # packer
        self.piece = 0
        self.p_left = 0
        self.p_last = False
        self.p_run = False
        self.p_flush = False
        self.p_offset = 0
        self.wd_valid = False
        # responder
        self.responses = 0
        self.pending = False
        self.done_valid = False

    @property
    def command_ready(self) -> bool:
        return self.setup == "IDLE"

    @property
    def idle(self) -> bool:
        """Nothing to do: a cycle without a command changes nothing."""
        return (self.setup == "IDLE" and self.room and not self.r_entries and not self.credit
                and self.delay.count(None) == len(self.delay) and not self.read_fifo.r_rdy
                and self.stages.count(None) == len(self.stages) and not self.p_held
                and self.f_skid.o is None
                and self.f_skid.skid is None and not self.w_runs and self.v1 is None
                and self.v2 is None and not self.runs_c.level and not self.runs_d.level
                and self.issuer == "EMIT" and not self.have and self.cmd is None
                and not self.jobs.level and not self.wd_valid and not self.p_flush
                and not self.p_run and not self.pending and not self.done_valid
                and not self.next_full and not self.cur_full and self.piece == 0)

    def comb(self) -> None:
        """The responder's decision of this cycle: ``resp_ready`` (``write_resp.ready``)."""
        self.complete = self.jobs.r_rdy and self.responses == self.jobs.out
        self.resp_ready = not self.pending and not self.complete

    def step(self, cycle: int, *, command, cmd_taken: bool, w_ready: bool, resp: bool,
             done_ready: bool) -> None:
        if command is None and self.idle:
            return
        t, beat = self.t, self.beat
        # -- setup ----------------------------------------------------------------------------
        prepared = self.setup == "HOLD"
        tile = self.tile
        take_i = prepared and not self.taken[0] and (not self.r_entries
                                                       or len(self.r_entries) == 1
                                                       and self._issue_now())
        take_p = prepared and not self.taken[1] and not self.next_full
        take_w = prepared and not self.taken[2] and not self.w_runs
        # -- reader ---------------------------------------------------------------------------
        issue = bool(self.r_entries) and self.credit < self.read_fifo.depth
        issued = self.r_entries.popleft() if issue else None
        pipe_advance = self.p_room
        feed_valid = self.read_fifo.r_rdy and self.cur_full
        feed = feed_valid and pipe_advance
        pop = feed
        fed = self.read_fifo.head if feed else None
        job_fed = feed and fed[1]
        self.credit += issue - pop
        if take_i:
            self.r_entries = deque(tile.entries)
        arriving = self.delay.pop()
        self.delay.appendleft(issued)
        self.read_fifo.step(arriving is not None, arriving, pop)
        if job_fed:
            self.cur_full = False
        if self.next_full and (not self.cur_full or job_fed):
            self.cur_params = self.next_params
            self.cur_full, self.next_full = True, False
        if take_p:
            self.next_full = True
            self.next_params = tile
        # the group entering the pipeline: (bytes, single, run_end)
        group = None
        if feed:
            size = self.cur_params.group_bytes
            group = (size, size <= beat, fed[0])
        # -- packer (reads the format skid buffer's output) -----------------------------------
        out = self.f_skid.o
        data_free = not self.wd_valid or w_ready
        head_d = self.runs_d.out
        if out is not None:
            first_piece = self.piece == 0
            piece_left = out[0] if first_piece else self.p_left
            last_piece = out[1] if first_piece else self.p_last
            run_end = last_piece and out[2]
            offset_now = self.p_offset if self.p_run else head_d["offset"]
            total = (offset_now + piece_left % (2 * beat)) % (2 * beat)
            full = not last_piece or total >= beat
            emit = full or run_end
        accept = (data_free and not self.p_flush and out is not None
                  and (self.p_run or self.runs_d.r_rdy))
        runs_d_pop = accept and not self.p_run
        out_ready = accept and last_piece if out is not None else False
        if w_ready:
            self.wd_valid = False
        if accept:
            self.piece = 0 if last_piece else self.piece + 1
            self.p_left = piece_left - beat
            self.p_last = piece_left <= 2 * beat
            if emit:
                self.wd_valid = True
            self.p_offset = total % beat if last_piece else offset_now
            if run_end:
                if total > beat:
                    self.p_flush = self.p_run = True
                else:
                    self.p_run = False
            else:
                self.p_run = True
        elif self.p_flush and data_free:
            self.wd_valid = True
            self.p_flush = self.p_run = False
        # -- pipeline -------------------------------------------------------------------------
        gave = self.p_buffer.r_rdy and self.f_skid.i_ready
        f_in = self.p_buffer.head if self.p_buffer.r_rdy else None
        self.f_skid.step(f_in, out_ready)
        self.p_buffer.step(self.stages[-1] is not None, self.stages[-1], gave)
        self.stages = [group] + self.stages[:-1]
        self.p_held += (group is not None) - gave
        self.p_room = self.p_held != t.output_credits
        # -- walker ---------------------------------------------------------------------------
        emit_run = bool(self.w_runs) and self.room
        self.room = (self.runs_c.level <= self.runs_c.depth - 5
                     and self.runs_d.level <= self.runs_d.depth - 5)
        record = self.v2
        self.v2 = self.v1
        self.v1 = None
        if emit_run:
            start, size = self.w_runs.popleft()
            beats = _ceil_div(start % beat + size, beat)
            to_page = self.page_beats - start // beat % self.page_beats
            limit = min(to_page, MAX_BEATS)
            self.v1 = dict(beats=beats, to_page=to_page, limit=limit, single=beats <= limit,
                           job_last=not self.w_runs, offset=start % beat)
        if take_w:
            self.w_runs = deque(tile.runs)
        # -- issuer ---------------------------------------------------------------------------
        cmd_free = self.cmd is None or cmd_taken
        if cmd_taken:
            self.cmd = None
        load = False
        jobs_w = None
        cur = self.cur
        if self.issuer == "EMIT":
            step = self.have and cmd_free and (not (cur["single"] and cur["job_last"])
                                               or self.jobs.w_rdy)
            if step:
                self.cmd = cur["beats"] if cur["single"] else cur["limit"]
                self.i_bursts += 1
                if cur["single"]:
                    if cur["job_last"]:
                        jobs_w = self.i_bursts
                        self.i_bursts = 0
                    load = True
                else:
                    self.issuer = "ADVANCE"
            elif not self.have:
                load = True
        elif self.issuer == "ADVANCE":
            cur["beats"] -= cur["limit"]
            cur["to_page"] = (self.page_beats if cur["to_page"] == cur["limit"]
                              else cur["to_page"] - cur["limit"])
            self.issuer = "LIMIT"
        elif self.issuer == "LIMIT":
            cur["limit"] = min(cur["to_page"], MAX_BEATS)
            self.issuer = "CHECK"
        else:
            cur["single"] = cur["beats"] <= cur["limit"]
            self.issuer = "EMIT"
        if load:
            self.have = self.runs_c.r_rdy
            self.cur = dict(self.runs_c.out) if self.runs_c.r_rdy else None
        self.runs_c.step(record is not None, record, load)
        self.runs_d.step(record is not None, record, runs_d_pop)
        # -- responder ------------------------------------------------------------------------
        if resp and self.resp_ready:
            self.responses += 1
        done_moved = self.done_valid and done_ready
        if done_ready:
            self.done_valid = False
        jobs_r = self.complete and not self.pending
        if jobs_r:
            self.done_valid = True
            self.responses = 0
            self.pending = True
        if done_moved:
            self.pending = False
        self.jobs.step(jobs_w is not None, jobs_w, jobs_r)
        # -- setup, last (its state is read above) ------------------------------------------
        if self.setup == "IDLE":
            if command is not None:
                self.tile = command
                self.setup = "CALC"
                self.setup_wait = t.writer_setup - 1
        elif self.setup != "HOLD":
            self.setup_wait -= 1
            if self.setup_wait == 0:
                self.setup = "HOLD"
                self.taken = [False, False, False]
        else:
            self.taken = [a or b for a, b in zip(self.taken, (take_i, take_p, take_w))]
            if all(self.taken):
                self.setup = "IDLE"

    def _issue_now(self) -> bool:
        return self.credit < self.read_fifo.depth



# -- the state, for skipping idle stretches --------------------------------------------------------

_STATIC = {"t", "config", "d", "compute_cycles", "starts", "busy_cycles", "log", "bytes_read",
           "bytes_written",
           "page_beats", "most", "beat", "word", "latency", "rate", "cap", "depth", "count",
           "cycles", "slots"}
#: Queues of a command's items that are only ever consumed (or replaced whole).
_CONSUMED = {"ranges", "r_entries", "w_runs"}


def _state(value):
    """Everything that changes in a simulation, as a comparable value."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, (list, tuple, deque)):
        return tuple(_state(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _state(v)) for k, v in value.items()))
    if isinstance(value, Tile):
        return id(value)
    if isinstance(value, Range):
        return (value.addr, value.size, value.gap, value.last)
    return tuple((k, (id(v), len(v)) if k in _CONSUMED else _state(v))
                 for k, v in vars(value).items() if k not in _STATIC)


# -- the front: fetcher, checker -------------------------------------------------------------------

class Fetcher:
    """:class:`~convhw.gateware.descriptor_fetcher.DescriptorFetcher` (a list that ends with
    ``LAST``, no errors)."""

    def __init__(self, t: ListTimingConstants, count: int) -> None:
        self.depth = t.fetch_depth
        self.count = count
        self.running = True
        self.stopped = False
        self.in_flight = 0
        self.waiting = 0
        self.checking = False
        self.received = 0
        self.queue = BufferedFifo(self.depth)

    @property
    def cmd_valid(self) -> bool:
        return self.running and not self.stopped and self.in_flight + self.waiting < self.depth

    @property
    def busy(self) -> bool:
        return self.running or self.in_flight != 0 or self.checking

    def step(self, *, issue: bool, complete: bool, jobs_ready: bool) -> None:
        push = self.checking and not self.stopped
        popped = self.queue.r_rdy and jobs_ready
        self.in_flight += issue - self.checking
        self.waiting += push - popped
        index = self.received
        if self.checking:
            self.received += 1
            if not self.stopped and index == self.count - 1:
                self.stopped, self.running = True, False
        self.queue.step(push, index, jobs_ready)
        self.checking = complete


class Checker:
    """:class:`~convhw.gateware.job_checker.JobChecker`: an entry is offered ``checker``
    cycles after it is taken."""

    def __init__(self, t: ListTimingConstants) -> None:
        self.cycles = t.checker
        self.entry = None
        self.decide_at = 0

    @property
    def ready(self) -> bool:
        return self.entry is None

    def valid(self, cycle: int) -> bool:
        return self.entry is not None and cycle >= self.decide_at

    @property
    def busy(self) -> bool:
        return self.entry is not None

    def step(self, cycle: int, *, offered, taken: bool) -> None:
        if self.entry is None:
            if offered is not None:
                self.entry, self.decide_at = offered, cycle + self.cycles
        elif taken:
            self.entry = None


# -- the list --------------------------------------------------------------------------------------

class ListSim:
    """The list engine on a list of descriptors (see the module documentation)."""

    def __init__(self, descriptors: list, config, memory, t: ListTimingConstants,
                 compute_cycles: list) -> None:
        self.d = descriptors
        self.config = config
        self.t = t
        self.compute_cycles = compute_cycles
        self.bus = BUSES[config.bus](memory, t)
        self.fetcher = Fetcher(t, len(descriptors))
        self.checker = Checker(t)
        self.loaders = [Loader(t, t.input_word, t.loader_queue, t.loader_start),
                        Loader(t, t.weight_word, t.loader_queue, t.block_loader_start),
                        Loader(t, t.params_word, t.params_queue, t.block_loader_start)]
        self.writer = Writer(t)
        self.tags = BufferedFifo(t.arbiter_depth)
        self.last_grant = 3
        slots = self.slots = t.slots
        # controller
        self.taking = True
        self.pending = [False, False, False]
        self.issuing = None
        self.in_flight = 0
        self.readers_in = [0, 0]
        self.readers_w = [0, 0]
        self.drains = [0, 0]
        self.cq = BufferedFifo(slots)
        self.dq = BufferedFifo(slots)
        self.got = [False, False, False]
        self.running_job = False
        self.draining = False
        self.done_queues = [BufferedFifo(slots + 1) for _ in range(3)]
        # compute: busy until the job's pipeline is idle; then its last sums reach the
        # accumulator for `job_drain` cycles more (tails: (after, until, bank, fir) of the
        # last jobs), while the next job may run
        self.computing = False
        self.started = False
        self.busy_until = -1
        self.tails = deque(maxlen=2)
        # results
        self.starts = []
        self.busy_cycles = 0         # BUSY_CYCLES: the core is busy after each start

    @property
    def bytes_read(self) -> int:
        return self.bus.bytes_read

    @property
    def bytes_written(self) -> int:
        return self.bus.bytes_written

    def _needs(self, d) -> tuple:
        return (bool(d["LOAD_INPUT"]), bool(d["LOAD_WEIGHTS"]), True)

    def _wbank(self, d) -> int:
        return int(d["WEIGHT_BASE"] >= self.config.weight_depth // 2)

    def run(self, limit: int = 1 << 40, *, skip: bool = True) -> int:
        """Cycles until the list ends (what CYCLES reads). With ``skip``, a stretch in which
        nothing changes (everything waits for a job's datapath, say) is jumped over, to the
        next cycle at which a timer runs out; the result is the same."""
        c = 0
        backoff, check_at = 1, 0
        while c < limit:
            # (worth a look only while a job's datapath has a while to run)
            before = (_state(self) if skip and c >= check_at and self.busy_until - c > 32
                      else None)
            if self.cycle(c):
                return c + 1
            if before is not None:
                jump = 0
                if _state(self) == before:
                    # Cycle c changed nothing: no cycle will until a timer runs out.
                    timer = self._next_timer(c)
                    if timer is None:
                        raise RuntimeError(f"the model is stuck in cycle {c}")
                    jump = max(0, timer - 1 - c)
                    c += jump
                # checks cost time: back off while they find nothing long to skip
                backoff = 1 if jump > 16 else min(2 * backoff, 64)
                check_at = c + backoff
            c += 1
        raise RuntimeError(f"the list did not end within {limit} cycles")

    def _next_timer(self, c: int) -> int | None:
        """The first cycle after ``c`` whose behaviour a timer may change (None: none)."""
        times = [self.busy_until + 1, self.checker.decide_at]
        times += [until + 1 for _, until, _, _ in self.tails]
        times += [loader.ready_at for loader in self.loaders]
        times += self.bus.timers()
        later = [t for t in times if t > c]
        return min(later) if later else None

    def cycle(self, c: int) -> bool:
        """Simulate cycle ``c``; True if the list ends in it."""
        t, cfg = self.t, self.config
        fetcher, checker, writer, loaders = self.fetcher, self.checker, self.writer, self.loaders
        # -- controller: take, the load commands -------------------------------------------
        head = self.d[checker.entry] if checker.valid(c) else None
        take = False
        if head is not None and self.taking and not any(self.pending) \
                and self.in_flight < self.slots:
            needs = self._needs(head)
            clear = ((not needs[0] or self.readers_in[head["INPUT_BANK"]] == 0)
                     and (not needs[1] or self.readers_w[self._wbank(head)] == 0))
            # a WAIT job: only once every earlier job has finished (its writes answered)
            take = clear and (not head["WAIT"] or self.in_flight == 0)
        jobs_ready = take or not self.taking
        commands = [None, None, None]
        for i, loader in enumerate(loaders):
            if self.pending[i] and loader.command_ready:
                commands[i] = self._load_ranges(i, self.d[self.issuing])
        # -- compute stage ----------------------------------------------------------------------
        c_index = self.cq.out if self.cq.r_rdy else None
        c_d = self.d[c_index] if c_index is not None else None
        done_taken = [False, False, False]
        if c_d is not None and not self.running_job:
            for i, need in enumerate(self._needs(c_d)):
                done_taken[i] = need and not self.got[i] and self.done_queues[i].r_rdy
        loaded = c_d is not None and all(g or not n for g, n in zip(self.got, self._needs(c_d)))
        core_busy = c <= self.busy_until
        done_now = self.computing and self.started and not core_busy
        start = False
        retire = to_drain = False
        tails = [(bank, fir) for after, until, bank, fir in self.tails if after < c <= until]
        if loaded and not self.running_job:
            acc_free = c_d["ACCUMULATE"] or self.drains[c_d["ACC_BANK"]] == 0
            beside = all(bank != c_d["ACC_BANK"] and not fir and not c_d["FIR_TAPS"]
                         for bank, fir in tails)
            if acc_free and not self.computing and not core_busy and beside:
                start = True
        if self.running_job and done_now:
            retire = True
            to_drain = bool(c_d["WRITE_OUTPUT"])
        # -- drain stage ------------------------------------------------------------------------
        d_index = self.dq.out if self.dq.r_rdy else None
        drain_cmd = None
        if d_index is not None and not self.draining and writer.command_ready \
                and all(bank != self.d[d_index]["ACC_BANK"] for bank, _ in tails):
            drain_cmd = drain_tile(self.d[d_index], cfg)
        drain_retire = self.draining and writer.done_valid
        # -- end ------------------------------------------------------------------------------
        fetch_busy = fetcher.busy or fetcher.queue.r_rdy or checker.busy
        idle = (not self.taking and not any(self.pending) and self.in_flight == 0
                and not fetch_busy and not take)
        # -- the read side: arbiter, AR, R ------------------------------------------------------
        for loader in loaders:
            loader.comb()
        valid = [fetcher.cmd_valid] + [loader.cmd is not None for loader in loaders]
        grant = None
        for offset in range(1, 5):
            candidate = (self.last_grant + offset) % 4
            if valid[candidate]:
                grant = candidate
                break
        bus = self.bus
        read_valid = grant is not None and self.tags.w_rdy
        write_cmd = writer.cmd
        read_cmd = None
        if read_valid:
            read_cmd = (t.descriptor_beats if grant == 0 else loaders[grant - 1].cmd, grant)
        granted = read_valid and bus.read_cmd_ready(read_valid, write_cmd is not None)
        if granted:
            self.last_grant = grant
        beat_to = None
        r_ready = False
        r_last = bus.read_data
        if r_last is not None and self.tags.r_rdy:
            client = self.tags.out
            r_ready = client == 0 or loaders[client - 1].accept
            if r_ready:
                beat_to = (client, r_last)
        # -- the write side ---------------------------------------------------------------------
        writer.comb()
        resp_moved = bus.write_resp and writer.resp_ready
        w_in_ready = bus.write_data_ready
        cmd_taken = write_cmd is not None and bus.write_cmd_ready(read_valid, True)
        # -- the master and the memory --------------------------------------------------------
        bus.step(c, read_cmd=read_cmd, write_cmd=write_cmd, write_data=writer.wd_valid,
                 read_ready=r_ready, resp_ready=writer.resp_ready)
        # -- the clients ----------------------------------------------------------------------
        offered = fetcher.queue.out if fetcher.queue.r_rdy else None
        head_index = checker.entry
        fetcher.step(issue=granted and grant == 0,
                     complete=beat_to is not None and beat_to[0] == 0 and beat_to[1],
                     jobs_ready=checker.ready)
        for i, loader in enumerate(loaders):
            done_ready = self.done_queues[i].w_rdy
            done_moved = loader.done_valid and done_ready
            loader.step(c, command=commands[i], cmd_taken=granted and grant == i + 1,
                        beat=beat_to is not None and beat_to[0] == i + 1,
                        done_ready=done_ready)
            self.done_queues[i].step(done_moved, True, done_taken[i])
        if beat_to is not None and beat_to[1]:
            self.tags.step(granted, grant, True)
        else:
            self.tags.step(granted, grant, False)
        writer.step(c, command=drain_cmd, cmd_taken=cmd_taken,
                    w_ready=w_in_ready, resp=resp_moved, done_ready=self.draining)
        checker.step(c, offered=offered, taken=jobs_ready and checker.valid(c))
        # -- controller registers --------------------------------------------------------------
        for i in range(3):
            if commands[i] is not None:
                self.pending[i] = False
            if done_taken[i]:
                self.got[i] = True
        if take:
            self.issuing = head_index
            self.pending = list(self._needs(head))
            if head["LAST"]:
                self.taking = False
        if start:
            self.running_job = True
            self.computing, self.started = True, False
            self.busy_until = c + self.compute_cycles[c_index] - t.job_drain
            self.busy_cycles += self.busy_until - c
            self.tails.append((self.busy_until, self.busy_until + t.job_drain,
                               c_d["ACC_BANK"], bool(c_d["FIR_TAPS"])))
            self.starts.append((c_index, c))
        elif self.computing and core_busy:
            self.started = True
        if retire:
            self.running_job = False
            self.computing = self.started = False
            self.got = [False, False, False]
        if drain_cmd is not None:
            self.draining = True
        if drain_retire:
            self.draining = False
        finished = (retire and not to_drain) + drain_retire
        self.in_flight += take - finished
        if take:
            self.readers_in[head["INPUT_BANK"]] += 1
            self.readers_w[self._wbank(head)] += 1
        if retire:
            self.readers_in[c_d["INPUT_BANK"]] -= 1
            self.readers_w[self._wbank(c_d)] -= 1
        if to_drain:
            self.drains[c_d["ACC_BANK"]] += 1
        if drain_retire:
            self.drains[self.d[d_index]["ACC_BANK"]] -= 1
        self.cq.step(take, head_index, retire)
        self.dq.step(to_drain, c_index, drain_retire)
        return idle

    def _load_ranges(self, which: int, d: dict) -> list:
        t = self.t
        if which == 0:
            return window_ranges(d, t.input_word)
        if which == 1:
            return block_ranges(d["WEIGHT_ADDR"], d["WEIGHT_WORDS"], t.weight_word)
        return block_ranges(d["PARAMS_ADDR"], t.cols, t.params_word)
