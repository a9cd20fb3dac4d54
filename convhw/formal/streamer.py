"""Address bounds of :class:`~convhw.gateware.streamer.Streamer`, the on-chip address
generator: every input-buffer address it gives for a real operand lies inside the job's window
(``W_z * W_y * W_x * in_chunks`` words, ``W = seg0_len + seg1_len``) and every accumulator
address it writes inside the tile (``L_z * L_y * L_x`` entries, ``L = out_len``).

The job's registers are free but constant for the run (the streamer's contract: they hold from
before the first descriptor until it is idle), the descriptors free but for the pass
sequencer's promises: every ``count`` at least 1, every output of a pass inside the tile
(``o_start + (count - 1) * E < out_len``, ``E`` the stride of a transposed job, else 1), and
``chunk`` below ``in_chunks``; the window at most half the input buffer and the tile at most
half the accumulator (the job checker's ``WINDOW_TOO_LARGE`` and tile checks). To keep the
products the solver must match small, tiles and windows are small: ``out_len`` at most
``max_len`` per axis, strides at most ``max_stride``, each segment at most ``max_seg`` long;
everything else (sizes, kernel, dilation, padding, the segments' starts, source coordinates,
modes, transposition, FIR taps) free. Bounded model checking from reset.
"""

from __future__ import annotations

from amaranth.hdl import Assert, Assume, Cover, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In

from ..config import EngineConfig
from ..gateware.job_registers import JobRegisters
from ..gateware.streamer import Streamer, StreamerInput
from ..job_format import DIMS
from .common import no_reset

__all__ = ["StreamerHarness"]


class StreamerHarness(wiring.Component):
    """The streamer of ``config`` with the job and the descriptors of the module
    documentation."""

    def __init__(self, config: EngineConfig, *, max_len: int = 3, max_stride: int = 2,
                 max_seg: int = 2, short: int = 0) -> None:
        self.dut = Streamer(config)
        self._max_len, self._max_stride, self._max_seg = max_len, max_stride, max_seg
        self._short = short
        super().__init__({
            "job": In(JobRegisters(config)),
            "passes": In(stream.Signature(StreamerInput(config))),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        no_reset(m)
        m.submodules.dut = dut = self.dut
        config = dut.config
        job = self.job
        m.d.comb += dut.job.eq(job)
        wiring.connect(m, wiring.flipped(self.passes), dut.passes)

        # The job: constant from the first cycle on.
        first = Signal(init=1)
        job_r = Signal.like(job)
        m.d.sync += [first.eq(0), job_r.eq(job)]
        m.d.comb += Assume(first | (job.as_value() == job_r.as_value()))

        # Small tiles and windows (products the solver can match), and the checker's limits.
        length_bits = self._max_len.bit_length()
        seg_bits = self._max_seg.bit_length() + 1
        stride_bits = self._max_stride.bit_length()
        tile, window = 1, 1
        for d in range(DIMS):
            axis = job.axes[d]
            m.d.comb += [Assume(axis.out_len <= self._max_len),
                         Assume(axis.stride <= self._max_stride),
                         Assume(axis.seg0_len <= self._max_seg),
                         Assume(axis.seg1_len <= self._max_seg)]
            tile = tile * axis.out_len[:length_bits]
            window = window * (axis.seg0_len[:seg_bits - 1] + axis.seg1_len[:seg_bits - 1])
        window = window * job.in_chunks
        tile_entries, window_words = Signal(range(64)), Signal(16)
        m.d.comb += [tile_entries.eq(tile), window_words.eq(window),
                     Assume(tile_entries <= config.acc_depth // 2),
                     Assume(window_words <= config.input_depth // 2)]

        # The pass sequencer's promises.
        desc = self.passes.payload.desc
        with m.If(self.passes.valid):
            for d in range(DIMS):
                axis = desc.axes[d]
                step = Mux(job.transposed, job.axes[d].stride[:stride_bits], 1)
                last = axis.o_start + (axis.count[:length_bits] - 1) * step
                m.d.comb += [Assume(axis.count >= 1), Assume(axis.count <= self._max_len),
                             Assume(last < job.axes[d].out_len)]
            m.d.comb += Assume(desc.chunk < job.in_chunks)

        # -- properties ----------------------------------------------------------------------
        with m.If(dut.out_valid & dut.write):
            m.d.comb += Assert(dut.acc_addr + self._short < tile_entries)
        with m.If(dut.out_valid & ~dut.zero):
            m.d.comb += Assert(dut.in_addr + self._short < window_words)
        m.d.comb += [Cover(dut.out_valid & ~dut.zero & (dut.in_addr != 0)),
                     Cover(dut.out_valid & dut.write & (dut.acc_addr + 1 == tile_entries)
                           & (tile_entries > 4))]
        return m
