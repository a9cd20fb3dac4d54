"""Address bounds of :class:`~convhw.gateware.descriptor_fetcher.DescriptorFetcher`: it reads only
the descriptor list it was started on, in order, and nothing after the list has ended.

``start``, ``abort``, ``list_addr``, the entries' ``ready`` and the memory's data and errors
free (a memory that answers only beats it was asked for, with ``last`` on each command's last,
in order, at any pace); the next START only after the list has ended (its ending entry taken,
or ABORT) with no entry waiting, as the list controller does. Properties: the ``k``-th read
command after a START is of descriptor ``k``, at ``list_addr + 128 * k`` (the ``list_addr`` of
that START), one whole descriptor long; none while the fetcher is not busy, and none after an
ABORT or after the entry that ends the list (``LAST`` or a code) has been handed on, until the
next START. (Before that it may ask for up to ``depth`` descriptors past the end: it has not
read the end yet.) Bounded model checking from reset.
"""

from __future__ import annotations

from amaranth.hdl import Assert, Assume, Cover, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In

from .. import timing
from ..config import EngineConfig
from ..descriptor import JOB_DESCRIPTOR
from ..gateware.descriptor_fetcher import DescriptorFetcher
from .common import no_reset

__all__ = ["FetcherHarness"]


class FetcherHarness(wiring.Component):
    """The descriptor fetcher of ``config`` on a memory of ``addr_width`` address bits."""

    def __init__(self, config: EngineConfig, *, addr_width: int = 13,
                 depth: int = timing.FETCH_DEPTH, skew: int = 0) -> None:
        self.dut = DescriptorFetcher(config, addr_width, depth=depth)
        self.map_memories = True
        self._skew = skew           # (tests: expect descriptor k + skew, a false property)
        super().__init__({
            "start": In(1), "abort": In(1), "list_addr": In(addr_width),
            "read_cmd_ready": In(1),
            "read_data": In(stream.Signature(self.dut.memory.read_data.payload.shape())),
            "jobs_ready": In(1),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        no_reset(m)
        m.submodules.dut = dut = self.dut
        aw = len(self.list_addr)
        size = JOB_DESCRIPTOR.size
        beats = size * 8 // len(self.read_data.payload.data)
        m.d.comb += [dut.start.eq(self.start), dut.abort.eq(self.abort),
                     dut.list_addr.eq(self.list_addr),
                     dut.memory.read_cmd.ready.eq(self.read_cmd_ready),
                     dut.jobs.ready.eq(self.jobs_ready)]
        rd = dut.memory.read_data
        m.d.comb += [rd.valid.eq(self.read_data.valid), rd.payload.eq(self.read_data.payload),
                     self.read_data.ready.eq(rd.ready)]
        cmd = dut.memory.read_cmd
        issue = cmd.valid & cmd.ready
        started = self.start & ~dut.busy

        # The memory: beats only for commands, `last` on each command's last beat.
        outstanding = Signal(8)
        beat_index = Signal(range(beats))
        beat_in = rd.valid & rd.ready
        m.d.sync += outstanding.eq(outstanding + issue * beats - beat_in)
        m.d.comb += [Assume(~self.read_data.valid | (outstanding != 0)),
                     Assume(~self.read_data.valid
                            | (self.read_data.payload.last == (beat_index == beats - 1))),
                     Assume(~cmd.valid | ~self.read_cmd_ready | (outstanding < 200))]
        with m.If(beat_in):
            m.d.sync += beat_index.eq(Mux(beat_index == beats - 1, 0, beat_index + 1))

        # The list as started: its address, the commands issued since, and whether it has
        # ended (ABORT, or the entry with LAST or a code handed on).
        base = Signal(aw)
        issued = Signal(8)
        ended = Signal()
        taken = dut.jobs.valid & dut.jobs.ready
        with m.If(started):
            m.d.sync += [base.eq(self.list_addr), issued.eq(0), ended.eq(self.abort)]
        with m.Else():
            with m.If(issue):
                m.d.sync += issued.eq(issued + 1)
            with m.If(self.abort | taken & (dut.jobs.payload.descriptor.last
                                            | (dut.jobs.payload.code != 0))):
                m.d.sync += ended.eq(1)

        # The list controller starts the next list only after this one has ended (its last
        # entry taken, or ABORT) and with no entry waiting.
        fresh = Signal(init=1)
        with m.If(started):
            m.d.sync += fresh.eq(0)
        m.d.comb += Assume(~started | (fresh | ended) & ~dut.jobs.valid)

        with m.If(cmd.valid):
            m.d.comb += [
                Assert(dut.busy & ~ended),
                Assert(cmd.payload.addr == (base + (issued + self._skew) * size)[:aw]),
                Assert(cmd.payload.len == beats - 1),
            ]
        m.d.comb += [Cover(issue & (issued == 3)),
                     Cover(taken & dut.jobs.payload.descriptor.last & (issued > 2))]
        return m
