"""The exact cycle models: of one job (what the host-fed engine's CYCLES register reads), and
of a whole descriptor list on the list engine (what its CYCLES register reads).

One job: :func:`job_cycles`
---------------------------
The model replays, pass by pass, the rules the gateware follows (all times in cycles, 0 being the
cycle the controller starts the job's datapath):

* the controller checks the registers for ``check`` cycles first; the datapath then needs
  ``setup`` cycles, plus ``setup_unit_stride`` per dimension of stride 1,
  ``setup_shift_stride`` per dimension whose stride is another power of two and
  ``setup_stride`` per other dimension (its divisions by the stride), before the pass
  sequencer looks at its first candidate pass;
* the sequencer looks at one candidate per cycle (:func:`~convhw.compiler.job.candidates`) and
  holds an emitted one until the streamer takes it;
* the loader begins to load an emitted pass when it is idle (``rows + 1`` cycles after it
  began the previous load), its previous pass has been taken by the streamer (the cycle after
  at the earliest) and the pass's weight bank is free: the bank's previous pass entered the
  array completely at least ``guard + 1`` cycles earlier (``pass_end``); it loads ``rows``
  weight words and offers the pass ``offer`` cycles after beginning (``rows + 1``: FIR mode,
  and every pass without the deep pipeline); with the deep pipeline a dense pass is instead
  offered as soon as the sequencer emits it and taken ``spacing`` cycles after the previous
  take at the earliest, and its load follows (:func:`convhw.timing.weight_take_spacing`);
* the streamer takes a pass when it is offered and the previous pass is at its last element
  (so passes follow each other without a bubble), and emits one element per cycle; each
  element reaches the array input ``streamer_latency + read`` cycles after leaving the
  counters;
* the job ends when the sequencer is done, the loader and streamer are idle and the last
  element has drained through the array into the accumulator (``drain`` cycles).

:func:`convhw.timing.job_timing` gives the constants for a configuration, from the same
functions the gateware takes its latencies from; the gateware tests check that this model equals
the RTL's counter on every job. In the list engine, ``job_cycles`` is exactly the time a
job's datapath (``ComputeCore``) is busy, with the constants of ``job_timing(config,
banked=True)``: its controller does not check the registers again (the job checker has), so
``check`` is 1 (2 with the deep pipeline, the start going through a register); the rest is
the same.

A list: :func:`list_cycles`
---------------------------
The list engine overlaps a job's compute with the next jobs' descriptor fetches and loads and
the previous jobs' drains, all on one memory; how they interleave depends on the memory's
latency and bandwidth cycle by cycle. So :func:`list_cycles` replays the whole engine at the
level of its handshakes (:mod:`convhw.compiler.list_sim`): descriptor fetches of 128 bytes
(two in flight), the job checker (35 cycles per job), the controller's slots, bank rules and
``WAIT`` (a job taken only once every earlier one has finished),
the read arbiter's round robin and its 16 commands in flight, each loader's walker (16 cycles
per command, then a range per cycle), splitter (bursts cut at 4 KiB and 256 beats) and gearbox
(a word per cycle, a beat when needed), the datapath (:func:`job_cycles` per job, and two cycles
of hand-over), the output writer's setup, accumulator reads, output pipeline, runs, bursts,
strobed beats and write responses, the memory master, and the memory's rules
(:class:`~convhw.memory_model.MemoryModel`: latency, a byte credit shared by reads and writes,
reads first). The master is the one ``config.bus`` chooses: AXI4 (a skid buffer on each of
its five channels, reads and writes on separate channels, any number of reads outstanding,
against :func:`convhw.sim_memory.axi4_slave`) or Wishbone B4 pipelined (one bus cycle per
command, ``CYC`` low for a cycle between commands, reads and writes taken in turn when both
wait, read beats in flight bounded by its read-answer FIFO, a write's response only once
every beat is answered, against :func:`convhw.sim_memory.wishbone_slave`, which stalls a beat
while the credit is short and answers each beat ``latency`` cycles after taking it). The
constants are :func:`convhw.timing.list_timing`'s, most of them read by the gateware too.

Checked against the RTL (``tests/test_list_cycles.py``, and during its development 35 lists
and memories: chained 2- and 3-layer lists with int8 results, strided, depthwise, transposed
and contiguous-row layers with raw results, windows and tile rows split at 4 KiB and at 256
beats, four engine configurations (64-, 32- and 128-bit buses, with and without the deep
pipeline), memories from 1 to 64 bytes per cycle and latencies from 1 to 100): equal to the
RTL's CYCLES in every case. With the Wishbone master likewise (``tests/test_list_cycles.py``,
and during its development 85 lists and memories: chained lists with ``WAIT``, strided,
depthwise, transposed and contiguous-row layers on every memory of 1, 2, 8 and 64 bytes per
cycle with latencies 1, 5 and 20, latencies up to 100 (more read beats in flight than the
master's read-answer FIFO holds), windows and tile rows split at 4 KiB, 32- and 128-bit
buses): equal to the RTL's CYCLES in every case.
Not covered: lists that end with an error or are aborted, a memory with stalls (the model
then gives a lower bound), loads of no words.

This module imports no Amaranth.
"""

from __future__ import annotations

import dataclasses
import functools

from ..descriptor import JOB_DESCRIPTOR
from ..memory_model import MemoryModel
from ..timing import JobTiming, job_timing, list_timing
from .job import Job, candidates, pass_words
from .list_model import _check, _JobError
from .list_sim import ListSim

__all__ = ["JobTiming", "ListTiming", "job_cycles", "list_cycles", "list_cycles_bound", "timing"]


def timing(config) -> JobTiming:
    """The timing constants of the engine built for ``config``
    (:func:`convhw.timing.job_timing`)."""
    return job_timing(config)


def job_cycles(job: Job, constants: JobTiming | None = None) -> int:
    """Cycles the engine's CYCLES register reports for ``job``."""
    return _job_cycles(job, constants if constants is not None else timing(job.config))


# Jobs repeat: across the output-channel chunks of a tile, across the tilings the compiler
# ranks, and between a list's trial lowering and its timing; each replay costs a pass of
# Python per candidate (about a millisecond for a 3x3 job). (A job is about 2 KB with its
# axes: the cache stays within tens of megabytes.)
@functools.lru_cache(maxsize=1 << 14)
def _job_cycles(job: Job, t: JobTiming) -> int:
    rows = t.rows
    cycle = t.setup + sum(t.setup_unit_stride if a.stride == 1
                          else t.setup_shift_stride if a.stride & (a.stride - 1) == 0
                          else t.setup_stride
                          for a in job.axes)   # the sequencer's next candidate
    advanced = cycle                   # when the sequencer moved past its last candidate
    taken = []                         # per pass: cycle the streamer took it
    lengths = []
    pass_end = []                      # per pass: cycle its last element is at the array
    load_done = 0                      # the first cycle the loader is idle again
    offer = t.offer_fir if job.fir_taps else t.offer
    taken_first = bool(t.spacing) and not job.fir_taps
    for desc in candidates(job):
        if desc is None:
            advanced = cycle
            cycle += 1
            continue
        p = len(taken)
        if taken_first:
            # Offered as soon as emitted, taken `spacing` cycles after the previous take at
            # the earliest; its load begins in the cycle after the take or once the loader
            # (`rows` cycles a load) and the bank are free, which the spacing puts within
            # weight_take_lead cycles; its last row is written `rows + 2` cycles after.
            take = cycle if p == 0 else max(cycle, taken[p - 1] + t.spacing,
                                            taken[p - 1] + lengths[p - 1])
            begin = max(take + 1, load_done) if p < 2 else max(
                take + 1, load_done, pass_end[p - 2] + 1 + t.guard)
            load_done = begin + rows
            (_, nz, _), (_, ny, _), (_, nx, _) = desc.axes
            count = nz * ny * nx
            taken.append(take)
            lengths.append(count)
            pass_end.append(take + count + t.streamer_latency + t.read)
            advanced = take
            cycle = take + 1
            continue
        # The loader is idle (done writing the previous pass's rows, whose pass the streamer
        # has taken: the sequencer has moved on from it) and the bank is free.
        begin = max(cycle, load_done) if p < 2 else max(cycle, load_done,
                                                         pass_end[p - 2] + 1 + t.guard)
        offered = begin + offer
        load_done = begin + rows + 1
        take = offered if p == 0 else max(offered, taken[p - 1] + lengths[p - 1])
        # (FIR mode: a row of outputs and fir_taps - 1 more words, less the words each row
        # shares with the next, or the padding between joined rows)
        count = pass_words(job, desc)
        taken.append(take)
        lengths.append(count)
        pass_end.append(take + count + t.streamer_latency + t.read)
        advanced = take
        cycle = take + 1
    last_output = pass_end[-1] - t.read if pass_end else 0
    run_end = max(advanced + 2, last_output + 1)
    if taken_first and taken:
        run_end = max(run_end, load_done + 3)     # (the loader's last write)
    return t.check + run_end + t.drain


# -- a whole list -------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ListTiming:
    """What :func:`list_cycles` finds for a list.

    Attributes
    ----------
    cycles : int
        What the list engine's CYCLES register reads at the end of the list (START to DONE).
    compute_cycles : tuple of int
        Per job, the cycles its datapath is busy (:func:`job_cycles`).
    compute_starts : tuple of int
        Per job, the cycle (from the list's first) in which its datapath starts.
    busy_cycles : int
        What BUSY_CYCLES reads at the end of the list: the cycles in which the compute core is
        busy (from the cycle after each job's start until its pipeline is idle; the last sums
        of a job still reaching the accumulator are not counted).
    bytes_read, bytes_written : int
        Bytes moved on the memory bus (descriptors, including the ones fetched ahead past
        the last, weights, parameters, windows; results, whole beats).
    """

    cycles: int
    compute_cycles: tuple
    compute_starts: tuple
    busy_cycles: int
    bytes_read: int
    bytes_written: int

    @property
    def bytes_moved(self) -> int:
        return self.bytes_read + self.bytes_written


def _descriptors(source) -> list[dict]:
    """The descriptors of a ListPlan, a ListBuilder or a sequence of field dicts, every field
    present."""
    if hasattr(source, "builder"):
        source = source.builder
    if hasattr(source, "descriptors") and callable(source.descriptors):
        source = source.descriptors()
    return [JOB_DESCRIPTOR.decode(JOB_DESCRIPTOR.encode(d)) for d in source]


def list_cycles_bound(builder, config, memory: MemoryModel | None = None) -> ListTiming:
    """A lower bound of :func:`list_cycles` for the list a
    :class:`~convhw.compiler.lower.ListBuilder` holds, without replaying the engine: the
    larger of the compute core's busy cycles and the bytes moved at the memory's rate (the
    list can finish neither sooner than its datapath nor than its traffic). ``busy_cycles``
    is exact (the BUSY_CYCLES register's figure: each job's compute less the drain the next
    job overlaps); ``bytes_read`` and ``bytes_written`` are the builder's traffic, the bytes
    the jobs need, which the bus's figures equal when every pixel fills whole beats (8 int8
    channels on a 64-bit port) and exceed otherwise; ``cycles`` is the bound: on the
    reference layers 0.3-4 % below the exact figure (the first loads before any compute, the
    hand-overs a job's compute does not hide), and 25-100 times faster to get.
    ``compute_starts`` is empty."""
    memory = MemoryModel() if memory is None else memory
    if not isinstance(memory, MemoryModel):
        raise TypeError(f"memory must be a MemoryModel, not {memory!r}")
    constants = job_timing(config, banked=True)
    compute = []
    index = 0
    # The steps of a tile in every output-channel chunk share one Job (compile_layer): the
    # first descriptor of each goes through the engine's checks and is timed, the others
    # (the same register program at other addresses) take its cycles. A sweep's lists hold
    # tens of thousands of jobs and few distinct programs.
    for record in builder.layers:
        cycles_of: dict = {}
        for step, values in zip(record.steps, record.descriptors):
            cycles = cycles_of.get(id(step.job))
            if cycles is None:
                try:
                    d = JOB_DESCRIPTOR.decode(JOB_DESCRIPTOR.encode(values))
                    cycles = cycles_of[id(step.job)] = job_cycles(_check(config, d),
                                                                  constants)
                except _JobError as error:
                    raise ValueError(f"descriptor {index} fails the engine's checks "
                                     f"({error.code.name})") from None
            compute.append(cycles)
            index += 1
    compute = tuple(compute)
    busy = sum(compute) - len(compute) * list_timing(config).job_drain
    traffic = builder.traffic
    written = traffic.output
    read = traffic.total - written
    cycles = max(busy, -(-(read + written) // memory.bytes_per_cycle))
    return ListTiming(cycles=cycles, compute_cycles=compute, compute_starts=(),
                      busy_cycles=busy, bytes_read=read, bytes_written=written)


def list_cycles(source, config, memory: MemoryModel | None = None) -> ListTiming:
    """The cycles the list engine built for ``config`` (its AXI4 or its Wishbone master, as
    ``config.bus`` says) takes to run a list, START to DONE, against ``memory`` (a
    :class:`~convhw.memory_model.MemoryModel` without stalls; default ``MemoryModel()``).

    ``source`` is a :class:`~convhw.compiler.image.ListPlan`, a
    :class:`~convhw.compiler.lower.ListBuilder` or the descriptors' field values in list
    order (the last with ``LAST``). The list must run without errors. See
    :mod:`convhw.compiler.list_sim` for the model.
    """
    memory = MemoryModel() if memory is None else memory
    if not isinstance(memory, MemoryModel):
        raise TypeError(f"memory must be a MemoryModel, not {memory!r}")
    if memory.stalls is not None:
        raise ValueError("memory must have no stalls: the model is exact only without them")
    if config.bus not in ("axi4", "wishbone"):
        raise ValueError(f"config.bus must be 'axi4' or 'wishbone', not {config.bus!r}")
    descriptors = _descriptors(source)
    if not descriptors or not descriptors[-1].get("LAST"):
        raise ValueError("the list must end with a descriptor with LAST")
    constants = job_timing(config, banked=True)
    compute = []
    for index, d in enumerate(descriptors):
        try:
            job = _check(config, d)
        except _JobError as error:
            raise ValueError(f"descriptor {index} fails the engine's checks "
                             f"({error.code.name}): the model covers lists that run without "
                             f"errors") from None
        if d["LOAD_WEIGHTS"] and not d["WEIGHT_WORDS"]:
            raise ValueError(f"descriptor {index} loads no weight words: empty loads are "
                             f"not modelled")
        compute.append(job_cycles(job, constants))
    sim = ListSim(descriptors, config, memory, list_timing(config), compute)
    cycles = sim.run()
    starts = dict(sim.starts)
    return ListTiming(cycles=cycles, compute_cycles=tuple(compute),
                      compute_starts=tuple(starts[i] for i in range(len(descriptors))),
                      busy_cycles=sim.busy_cycles,
                      bytes_read=sim.bytes_read, bytes_written=sim.bytes_written)
