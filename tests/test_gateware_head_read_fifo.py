"""HeadReadFifo against Amaranth's SyncFIFOBuffered, cycle for cycle, and its read enable's
reach."""

import gc
import random
import re
import warnings

import pytest
from amaranth.back import rtlil
from amaranth.hdl import Module, UnusedElaboratable
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.sim import Simulator

from convhw.gateware.head_read_fifo import HeadReadFifo

from .helpers import exactly


@pytest.mark.parametrize("depth", [2, 3, 4, 5])
@pytest.mark.parametrize("seed", [1, 2])
def test_head_read_fifo_matches_sync_fifo_buffered(depth, seed):
    """Random writes and reads (a write only while ``w_rdy``, as a user must; a read attempted
    whatever ``r_rdy``): every output equal in every cycle, ``r_data`` while ``r_rdy``."""
    rng = random.Random(seed * 100 + depth)
    m = Module()
    m.submodules.ours = ours = HeadReadFifo(width=12, depth=depth)
    m.submodules.ref = ref = SyncFIFOBuffered(width=12, depth=depth)
    cycles = 600
    seen = {"reads": 0, "full": 0}

    async def bench(ctx):
        for cycle in range(cycles):
            # Phases of mostly writing and mostly reading, so that the queue fills and empties.
            writing = 0.8 if (cycle // 40) % 2 == 0 else 0.3
            w_en = int(rng.random() < writing)
            r_en = int(rng.random() < 1.1 - writing)
            data = rng.getrandbits(12)
            for fifo in (ours, ref):
                ctx.set(fifo.w_data, data)
                ctx.set(fifo.r_en, r_en)
            w_rdy = ctx.get(ref.w_rdy)
            for fifo in (ours, ref):
                ctx.set(fifo.w_en, w_en & w_rdy)
            state = [(ctx.get(f.w_rdy), ctx.get(f.r_rdy), ctx.get(f.level)) for f in (ours, ref)]
            assert state[0] == state[1], f"seed {seed}, depth {depth}, cycle {cycle}: {state}"
            if ctx.get(ref.r_rdy):
                assert ctx.get(ours.r_data) == ctx.get(ref.r_data), \
                    f"seed {seed}, depth {depth}, cycle {cycle}"
                seen["reads"] += r_en
            seen["full"] += not w_rdy
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    # The sequence exercised both ends: reads of data, and a queue that refused writes.
    assert seen["reads"] > 100 and seen["full"] > 10, seen


def test_head_read_fifo_enables_reach_no_wide_register():
    """The reason for the component: the head is read from the store without a clock (in
    SyncFIFOBuffered the read enable is the clock enable of an entry-wide output register),
    and the store is written from a staging register that loads every cycle: no multiplexer
    of an entry's width (a register's enable) exists, and the one wide flip-flop is that
    staging register. What the enables load is pointers and counts."""
    fifo = HeadReadFifo(width=64, depth=4)
    cells = re.findall(r"cell (\$\w+) \S+\n((?:    parameter .*\n)*)", rtlil.convert(fifo))
    reads = [params for kind, params in cells if kind == "$memrd_v2"]
    assert len(reads) == 1 and "CLK_ENABLE 0" in reads[0]

    def widths(kind):
        return [int(re.search(r"\\(?:Y_)?WIDTH (\d+)", params).group(1))
                for k, params in cells if k == kind]
    assert sorted(widths("$dff"))[-2:] == [3, 64], widths("$dff")
    assert max(widths("$mux")) <= 3, widths("$mux")


@pytest.mark.parametrize("kwargs, message", [
    ({"width": 0, "depth": 4}, "width must be a positive int, not 0"),
    ({"width": 8, "depth": 1}, "depth must be an int of at least 2, not 1"),
    ({"width": 8, "depth": True}, "depth must be an int of at least 2, not True"),
])
def test_head_read_fifo_arguments(kwargs, message):
    with warnings.catch_warnings():
        # The refused object exists (Amaranth counts it at creation) and is never elaborated.
        warnings.simplefilter("ignore", UnusedElaboratable)
        with pytest.raises(ValueError, match=exactly(message)):
            HeadReadFifo(**kwargs)
        gc.collect()
