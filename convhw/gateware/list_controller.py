"""``ListController``: runs a descriptor list's jobs through the engine's stages in the order
docs/memory.md's bank table allows, and reports how the list ended.

Stages, each behind a command stream (the job: its decoded descriptor, index and slot) and a
``done`` stream (``error``), each taking its commands in order:

* **load** (three loaders: the input window, the weights, the column parameters): the
  controller takes the jobs from the :class:`~convhw.gateware.descriptor_fetcher.
  DescriptorFetcher` in order and, per job, commands the loads it asks for (the column
  parameters always), once the bank a load fills is no longer read by an earlier job (counted
  per bank: jobs taken minus jobs that finished computing), and for a ``WAIT`` job once every
  earlier job has finished (its drain answered, so its results are in memory): the loads of a
  job that reads an earlier job's results must not overtake those writes;
* **compute**: the job at the head of the compute queue starts when its loads are done (their
  ``done`` transfers, consumed here in order) and, if it starts a tile (not ``ACCUMULATE``), no
  drain of its accumulator bank is pending; ``compute_flush`` cancels a running job (no
  ``done`` follows);
* **drain** (``WRITE_OUTPUT`` jobs): after the job's compute, one drain at a time, so that a
  failing drain has no later drain's writes after it.

At most ``slots`` jobs are in flight (taken and not retired); a job's ``slot`` is its index
modulo ``slots``, so per-job state (the column parameters) can live in a ``slots``-entry memory.

Errors: a fetcher entry with a code, a load or drain ``done`` with ``error`` (``READ_ERROR``,
``WRITE_ERROR``) or a compute ``done`` with ``error`` (``WINDOW_MISS``) fail their job; the
controller then takes no new jobs, lets every earlier job finish (computes and drains), skips
the later ones it had taken (their loads are waited for, nothing else), and reports the lowest
failing job's index and code. ``abort`` stops taking jobs, cancels the running compute, skips
everything queued, waits for the loads and the drain in progress to answer (a bus transaction
cannot be abandoned), and reports ``ABORTED`` with the index of the oldest job not finished.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .. import timing
from ..config import EngineConfig
from ..registers import ErrorCode
from .descriptor_fetcher import descriptor_layout
from .head_read_fifo import HeadReadFifo

__all__ = ["ListController"]

_INDEX_BITS = 16
_DONE = data.StructLayout({"error": 1})


class ListController(wiring.Component):
    """See the module documentation.

    Parameters
    ----------
    config : EngineConfig
    slots : int
        Jobs in flight at most, a power of two from 2 to 16.

    Attributes
    ----------
    start, abort : In(1)
        Pulses from the control registers (``start`` is ignored while busy).
    fetch_start, fetch_abort : Out(1)
        To the descriptor fetcher; ``fetch_busy`` In from it.
    jobs : In(stream)
        The fetcher's entries (``descriptor``, ``index``, ``code``).
    input_load, weight_load, params_load, compute, drain : Out(stream of job_layout)
    input_done, weight_done, params_done, compute_done, drain_done : In(stream of {error})
    compute_flush : Out(1)
    busy, done, error : Out(1)
        ``done`` and ``error`` hold from the end of a list to the next start.
    code : Out(8)
    error_job : Out(16)
    cycles : Out(32)
        Cycles from the start of the list to its end (counting while busy).
    core_busy : In(1)
        The compute core is busy with a job.
    busy_cycles : Out(32)
        The cycles of the list in which ``core_busy`` was high.
    irq : Out(1)
        Set when a job with ``IRQ`` finishes and when the list ends; ``irq_clear`` clears it.
    """

    def __init__(self, config: EngineConfig, *, slots: int = timing.LIST_SLOTS):
        if not isinstance(config, EngineConfig):
            raise TypeError(f"config must be an EngineConfig, not {config!r}")
        if not isinstance(slots, int) or slots not in (2, 4, 8, 16):
            raise ValueError(f"slots must be 2, 4, 8 or 16, not {slots!r}")
        self._config = config
        self._slots = slots
        entry = data.StructLayout({"descriptor": descriptor_layout(), "index": _INDEX_BITS,
                                   "code": 8})
        job = self.job_layout
        done = stream.Signature(_DONE)
        super().__init__({
            "start": In(1), "abort": In(1),
            "fetch_start": Out(1), "fetch_abort": Out(1), "fetch_busy": In(1),
            "jobs": In(stream.Signature(entry)),
            "input_load": Out(stream.Signature(job)), "input_done": In(done),
            "weight_load": Out(stream.Signature(job)), "weight_done": In(done),
            "params_load": Out(stream.Signature(job)), "params_done": In(done),
            "compute": Out(stream.Signature(job)), "compute_done": In(done),
            "compute_flush": Out(1),
            "drain": Out(stream.Signature(job)), "drain_done": In(done),
            "busy": Out(1), "done": Out(1), "error": Out(1),
            "code": Out(8), "error_job": Out(_INDEX_BITS), "cycles": Out(32),
            "core_busy": In(1), "busy_cycles": Out(32),
            "irq": Out(1), "irq_clear": In(1),
        })

    @property
    def job_layout(self) -> data.StructLayout:
        return data.StructLayout({"descriptor": descriptor_layout(), "index": _INDEX_BITS,
                                  "slot": range(self._slots)})

    @property
    def slots(self) -> int:
        return self._slots

    def elaborate(self, platform) -> Module:
        m = Module()
        config, slots = self._config, self._slots
        job_layout = self.job_layout
        half_weights = config.weight_depth // 2

        running = Signal()           # between start and the end of the list
        taking = Signal()            # jobs are still taken from the fetcher
        aborting = Signal()
        failed = Signal()
        fail_index = Signal(_INDEX_BITS)
        fail_code = Signal(8)
        # Which queued jobs the failure skips (see `skipping`): bit 0 those in the compute
        # queue, bit 1 those in the drain queue.
        fail_scope = Signal(2)
        in_flight = Signal(range(slots + 1))
        readers_in = [Signal(range(slots + 1), name=f"input_readers{b}") for b in range(2)]
        readers_w = [Signal(range(slots + 1), name=f"weight_readers{b}") for b in range(2)]
        drains = [Signal(range(slots + 1), name=f"drains_pending{b}") for b in range(2)]

        # Failures reported in this cycle, by stage: the lowest index wins.
        reports = []
        # A failure report registered but not yet in `failed` (below): while one is, no job
        # is taken and no compute or drain starts, so that none behind the failing job does.
        report_pending = Signal()

        # A job is skipped after a failure of an earlier job, or on abort. Jobs pass the
        # stages in index order, so which of the queued jobs come after the failing one follows
        # from the stage that reports it, without comparing indices (a 16-bit comparison of the
        # compute queue's head with the failure index, on the way to the queue's read enable,
        # was the list engine's critical path on the ECP5): a failure in the take stage comes
        # after every queued job; one at the head of the compute queue retires that job as it
        # is reported, so it comes before every job still in the compute queue and after every
        # job in the drain queue; one at the head of the drain queue likewise, before all
        # others. A later failure replaces it only with a lower index (below), its scope too.
        TAKE, COMPUTE, DRAIN = 0b00, 0b01, 0b11

        def report(index, code, scope):
            valid = Signal(name=f"report{len(reports)}_valid")
            idx = Signal(_INDEX_BITS, name=f"report{len(reports)}_index")
            cod = Signal(8, name=f"report{len(reports)}_code")
            reports.append((valid, idx, cod, scope))
            return [valid.eq(1), idx.eq(index), cod.eq(code)]

        def skipping(queue):
            """Whether the job at the head of ``queue`` (0: compute, 1: drain) is skipped."""
            return aborting | (failed & fail_scope[queue])

        # -- load stage -----------------------------------------------------------------------
        # Queues whose read enables, the ends of the stages' decisions, load only pointers
        # (HeadReadFifo; the ULX3S build's critical path was the compute queue's read enable
        # reaching an output register of a descriptor's width).
        m.submodules.compute_queue = cq = HeadReadFifo(
            width=len(Signal(job_layout).as_value()) + 3, depth=slots)
        m.submodules.drain_queue = dq = HeadReadFifo(
            width=len(Signal(job_layout).as_value()), depth=slots)

        head = self.jobs.payload
        desc = head.descriptor
        w_bank = desc.weight_base >= half_weights
        clear = Signal()
        m.d.comb += clear.eq(
            (~desc.load_input | (readers_in[0] == 0) & ~desc.input_bank
             | (readers_in[1] == 0) & desc.input_bank)
            & (~desc.load_weights | (readers_w[0] == 0) & ~w_bank
               | (readers_w[1] == 0) & w_bank))
        issuing = Signal(job_layout, reset_less=True)
        pending = Signal(3)          # input, weights, params commands not yet taken
        take = Signal()              # a job is taken (or a failing entry consumed) this cycle
        take_job = Signal()          # ... and it is a job that goes on
        m.d.comb += [
            take.eq(running & taking & self.jobs.valid & (pending == 0) & ~report_pending
                    & ((head.code != 0)
                       | (clear & (in_flight < slots) & (~desc.wait | (in_flight == 0))))),
            take_job.eq(take & (head.code == 0)),
            # Once no more jobs are taken (after LAST, a failure or an abort), whatever is
            # still offered is dropped, so that the stages in front of the controller empty.
            self.jobs.ready.eq(take | (running & ~taking)),
        ]
        # The job being issued follows the head while nothing is pending, and so holds the job
        # taken once its commands are: its ~1,000 flip-flops' enable is then decided from
        # registers alone, not by the take decision (on the ULX3S the path from the checked
        # job through that decision to these enables was 18.2 ns, 9.6 of it routing).
        with m.If(pending == 0):
            m.d.sync += [
                issuing.descriptor.eq(desc), issuing.index.eq(head.index),
                issuing.slot.eq(head.index[:(slots - 1).bit_length()]),
            ]
        with m.If(take):
            with m.If(head.code != 0):
                m.d.comb += report(head.index, head.code, TAKE)
                m.d.sync += taking.eq(0)
            with m.Else():
                m.d.sync += pending.eq(Cat(desc.load_input, desc.load_weights, 1))
                with m.If(desc.last):
                    m.d.sync += taking.eq(0)
        streams = (self.input_load, self.weight_load, self.params_load)
        for i, out in enumerate(streams):
            m.d.comb += [out.valid.eq(pending[i]), out.payload.eq(issuing)]
            with m.If(out.valid & out.ready):
                m.d.sync += pending[i].eq(0)
        # The job enters the compute queue when it is taken, with what it loads.
        m.d.comb += [
            cq.w_data.eq(Cat(head.descriptor, head.index,
                             head.index[:(slots - 1).bit_length()],
                             desc.load_input, desc.load_weights, 1)),
            cq.w_en.eq(take_job),
        ]

        # -- compute stage --------------------------------------------------------------------
        c_job = Signal(job_layout)
        c_needs = Signal(3)
        m.d.comb += Cat(c_job, c_needs).eq(cq.r_data)
        got = Signal(3)              # load dones consumed for the head job
        load_error = Signal()
        dones = (self.input_done, self.weight_done, self.params_done)
        c_desc = c_job.descriptor
        c_w_bank = c_desc.weight_base >= half_weights
        compute_retire = Signal()    # the head job leaves the compute stage this cycle
        to_drain = Signal()
        running_job = Signal()
        # Several loads may answer in one cycle: their errors are gathered before they are kept
        # (one assignment per stream would keep only the last stream's).
        for i, done in enumerate(dones):
            m.d.comb += done.ready.eq(cq.r_rdy & c_needs[i] & ~got[i] & ~running_job)
            with m.If(done.valid & done.ready):
                m.d.sync += got[i].eq(1)
        new_error = Cat(*(d.valid & d.ready & d.payload.error for d in dones)).any()
        m.d.sync += load_error.eq(load_error | new_error)
        loaded = Signal()
        m.d.comb += loaded.eq(cq.r_rdy & ((got | ~c_needs) == 0b111))
        acc_free = Signal()
        m.d.comb += acc_free.eq(c_desc.accumulate | ((drains[0] == 0) & ~c_desc.acc_bank)
                                | ((drains[1] == 0) & c_desc.acc_bank))
        m.d.comb += [self.compute.payload.eq(c_job), self.compute_done.ready.eq(running_job)]
        with m.If(loaded & ~running_job & ~report_pending):
            with m.If(load_error | skipping(0)):
                with m.If(load_error & ~skipping(0)):
                    m.d.comb += report(c_job.index, ErrorCode.READ_ERROR, COMPUTE)
                m.d.comb += compute_retire.eq(1)
            with m.Elif(acc_free):
                m.d.comb += self.compute.valid.eq(1)
                with m.If(self.compute.ready):
                    m.d.sync += running_job.eq(1)
        with m.If(running_job):
            with m.If(aborting):
                m.d.comb += [self.compute_flush.eq(1), compute_retire.eq(1)]
                m.d.sync += running_job.eq(0)
            with m.Elif(self.compute_done.valid):
                m.d.sync += running_job.eq(0)
                m.d.comb += compute_retire.eq(1)
                with m.If(self.compute_done.payload.error):
                    m.d.comb += report(c_job.index, ErrorCode.WINDOW_MISS, COMPUTE)
                with m.Elif(c_desc.write_output & ~skipping(0)):
                    m.d.comb += to_drain.eq(1)
        with m.If(compute_retire):
            m.d.sync += [got.eq(0), load_error.eq(0)]
        m.d.comb += [cq.r_en.eq(compute_retire), dq.w_data.eq(c_job), dq.w_en.eq(to_drain)]

        # -- drain stage -------------------------------------------------------------------
        d_job = Signal(job_layout)
        m.d.comb += d_job.eq(dq.r_data)
        draining = Signal()
        drain_retire = Signal()
        drain_irq = Signal()
        m.d.comb += [self.drain.payload.eq(d_job), self.drain_done.ready.eq(draining)]
        with m.If(dq.r_rdy & ~draining & ~report_pending):
            with m.If(skipping(1)):
                m.d.comb += drain_retire.eq(1)
            with m.Else():
                m.d.comb += self.drain.valid.eq(1)
                with m.If(self.drain.ready):
                    m.d.sync += draining.eq(1)
        with m.If(draining & self.drain_done.valid):
            m.d.sync += draining.eq(0)
            m.d.comb += drain_retire.eq(1)
            with m.If(self.drain_done.payload.error):
                m.d.comb += report(d_job.index, ErrorCode.WRITE_ERROR, DRAIN)
            with m.Else():
                m.d.comb += drain_irq.eq(d_job.descriptor.irq)
        m.d.comb += dq.r_en.eq(drain_retire)

        # -- counters ----------------------------------------------------------------------
        # A job leaves for good when it leaves the compute stage without a drain, or its drain
        # is over.
        finished = Signal(range(3))
        m.d.comb += finished.eq((compute_retire & ~to_drain) + drain_retire)
        m.d.sync += in_flight.eq(in_flight + take_job - finished)
        for b in range(2):
            m.d.sync += [
                readers_in[b].eq(readers_in[b] + (take_job & (desc.input_bank == b))
                                 - (compute_retire & (c_desc.input_bank == b))),
                readers_w[b].eq(readers_w[b] + (take_job & (w_bank == b))
                                - (compute_retire & (c_w_bank == b))),
                drains[b].eq(drains[b] + (to_drain & (c_desc.acc_bank == b))
                             - (drain_retire & (d_job.descriptor.acc_bank == b))),
            ]

        # -- failures: keep the lowest index ---------------------------------------------------
        # The reports are registered, then reduced pairwise to the lowest index one level per
        # cycle: compared in the cycle they are made, or in one chain, they would run the
        # stages' decisions through several 16-bit comparisons in one path (the list engine's
        # critical path on the ECP5). The stages hold while any report is on its way
        # (`report_pending`); failures are rare, the cycles they cost do not matter.
        level = []
        for i, (valid, idx, cod, scope) in enumerate(reports):
            r = (Signal(name=f"report{i}_valid_r"),
                 Signal(_INDEX_BITS, name=f"report{i}_index_r"),
                 Signal(8, name=f"report{i}_code_r"), scope)
            m.d.sync += [r[0].eq(valid), r[1].eq(idx), r[2].eq(cod)]
            level.append(r)
        # The next value of every valid flag in transit: `report_pending` is their OR,
        # registered, rather than the OR of the flags (the same signal in every cycle): it gates
        # the compute and drain stages' starts, and the OR after the flags was the start of the
        # list engine's critical path on the ECP5 (report1_valid_r -> the compute stage's
        # decision -> the compute core's start, 7 levels, 12.6 ns at 79.3 MHz).
        next_in_transit = [valid for valid, _, _, _ in reports]
        depth = 0
        while len(level) > 1:
            depth += 1
            reduced = []
            for i in range(0, len(level), 2):
                if i + 1 == len(level):
                    reduced.append(level[i])
                    continue
                (va, ia, ca, sa), (vb, ib, cb, sb) = level[i], level[i + 1]
                r = (Signal(name=f"lowest{depth}_{i // 2}_valid"),
                     Signal(_INDEX_BITS, name=f"lowest{depth}_{i // 2}_index"),
                     Signal(8, name=f"lowest{depth}_{i // 2}_code"),
                     Signal(2, name=f"lowest{depth}_{i // 2}_scope"))
                with m.If(vb & (~va | (ib < ia))):
                    m.d.sync += [r[0].eq(1), r[1].eq(ib), r[2].eq(cb), r[3].eq(sb)]
                with m.Else():
                    m.d.sync += [r[0].eq(va), r[1].eq(ia), r[2].eq(ca), r[3].eq(sa)]
                next_in_transit.append(va | vb)
                reduced.append(r)
            level = reduced
        m.d.sync += report_pending.eq(Cat(*next_in_transit).any())
        best_valid, best_index, best_code, best_scope = level[0]
        with m.If(best_valid & ~aborting & (~failed | (best_index < fail_index))):
            m.d.sync += [failed.eq(1), fail_index.eq(best_index), fail_code.eq(best_code),
                         fail_scope.eq(best_scope), taking.eq(0)]
            # The fetcher stops and drops what it prefetched.
            m.d.comb += self.fetch_abort.eq(~failed)

        # -- start, abort, end -----------------------------------------------------------------
        compute_irq = Signal()
        m.d.comb += compute_irq.eq(compute_retire & ~to_drain & c_desc.irq & ~aborting
                                   & ~load_error & ~skipping(0))
        idle = Signal()
        m.d.comb += idle.eq(running & ~taking & (pending == 0) & (in_flight == 0)
                            & ~self.fetch_busy & ~take & ~report_pending)
        m.d.comb += self.busy.eq(running)
        with m.If(running):
            m.d.sync += self.cycles.eq(self.cycles + 1)
            with m.If(self.core_busy):
                m.d.sync += self.busy_cycles.eq(self.busy_cycles + 1)
        with m.If(self.irq_clear):
            m.d.sync += self.irq.eq(0)
        with m.If(compute_irq | drain_irq):
            m.d.sync += self.irq.eq(1)
        with m.If(self.start & ~running):
            # START with ABORT in the same write is a list aborted before its first job: it
            # ends at once, ABORTED at job 0, and fetches nothing.
            m.d.comb += self.fetch_start.eq(~self.abort)
            m.d.sync += [running.eq(1), taking.eq(~self.abort), aborting.eq(self.abort),
                         failed.eq(self.abort), fail_index.eq(0),
                         fail_code.eq(Mux(self.abort, ErrorCode.ABORTED, 0)), self.done.eq(0),
                         self.error.eq(0), self.code.eq(0), self.error_job.eq(0),
                         self.cycles.eq(0), self.busy_cycles.eq(0)]
        with m.If(self.abort & running & ~aborting):
            m.d.comb += self.fetch_abort.eq(1)
            oldest = Signal(_INDEX_BITS)
            m.d.comb += oldest.eq(self.jobs.payload.index)
            with m.If(dq.r_rdy):
                m.d.comb += oldest.eq(d_job.index)
            with m.Elif(cq.r_rdy):
                m.d.comb += oldest.eq(c_job.index)
            m.d.sync += [aborting.eq(1), taking.eq(0), fail_index.eq(oldest),
                         fail_code.eq(ErrorCode.ABORTED), failed.eq(1)]
        with m.If(idle & ~self.start):
            m.d.sync += [running.eq(0), self.done.eq(1), self.error.eq(failed),
                         self.code.eq(fail_code), self.error_job.eq(fail_index),
                         self.irq.eq(1)]
        # After an abort the fetcher empties its own queue; entries it still offers are ignored.
        return m
