"""``HeadReadFifo``: a shallow first-in, first-out queue whose read enable drives only its
pointers, with the timing of Amaranth's ``SyncFIFOBuffered``.

Amaranth's ``SyncFIFOBuffered`` keeps its head in an output register whose clock enable is
the read enable. For a wide entry (the list controller's queues hold a 128-byte descriptor
and more) that enable fans out to a few hundred flip-flops, and where the read enable is the
end of a deep combinational decision the net is the design's critical path: on the ULX3S
build of the list engine the compute queue's read enable reached its output register's
clock enables 8.9 ns of routing away (18.2 ns in all, against 16.7 ns at 60 MHz).

Here the head is read combinationally from the store (flip-flops or distributed RAM, by the
tool's choice) at the read pointer, so the read enable loads only the read pointer and the
level: a few flip-flops beside the logic that decides. The price is a multiplexer between the
store and the head's users instead of a register.

The cycle behaviour is ``SyncFIFOBuffered``'s, cycle for cycle (the list engine's cycle model
replays that queue, :class:`convhw.compiler.list_sim.BufferedFifo`): an entry written into
an empty queue is readable two cycles later, and an entry is at the head from two cycles
after its write or the cycle after the read of the entry before it, whichever is later;
``w_rdy`` falls when
``depth - 1`` entries are not yet at the head. The write is counted one cycle late, which
is where the extra cycle of latency comes from; the data reaches the store in that cycle,
from a staging register (below).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["HeadReadFifo"]


class HeadReadFifo(wiring.Component):
    """A queue of ``depth`` entries of ``width`` bits with ``SyncFIFOBuffered``'s interface
    (``w_data``, ``w_en``, ``w_rdy``; ``r_data``, ``r_en``, ``r_rdy``; ``level``) and timing.

    Parameters
    ----------
    width : int
        Bits per entry.
    depth : int
        Entries, at least 2.
    """

    def __init__(self, *, width: int, depth: int) -> None:
        if not isinstance(width, int) or isinstance(width, bool) or width < 1:
            raise ValueError(f"width must be a positive int, not {width!r}")
        if not isinstance(depth, int) or isinstance(depth, bool) or depth < 2:
            raise ValueError(f"depth must be an int of at least 2, not {depth!r}")
        self._width = width
        self._depth = depth
        super().__init__({
            "w_data": In(width),
            "w_en": In(1),
            "w_rdy": Out(1),
            "r_data": Out(width),
            "r_en": In(1),
            "r_rdy": Out(1),
            "level": Out(range(depth + 1)),
        })

    @property
    def width(self) -> int:
        return self._width

    @property
    def depth(self) -> int:
        return self._depth

    def elaborate(self, platform) -> Module:
        m = Module()
        depth = self._depth
        m.submodules.store = store = Memory(shape=self._width, depth=depth, init=[])
        w_port = store.write_port()
        r_port = store.read_port(domain="comb")
        produce = Signal(range(depth))
        consume = Signal(range(depth))
        # Entries written and not yet read (`stored`) and, of those, the ones at the head's
        # disposal (`visible`): an entry becomes visible the cycle after its write is counted,
        # and its write is counted the cycle after it happens.
        stored = Signal(range(depth + 1))
        visible = Signal(range(depth + 1))
        written = Signal()          # an entry was written in the previous cycle

        # `SyncFIFOBuffered`'s inner queue holds the entries not yet in its output register:
        # those of `stored` that are not the visible head.
        waiting = Signal(range(depth + 1))
        m.d.comb += waiting.eq(stored - (visible != 0))
        do_write = Signal()
        do_read = Signal()
        # The entry reaches the store a cycle after its write, from flip-flops: the store's
        # write enable (a few hundred write-enable pins of distributed RAM for a wide entry)
        # is then a flip-flop's output, not the end of the writer's decision (on the ECP5 the
        # list controller's take decision to the compute queue's write enables was the 8x8
        # list engine's critical path, 14.6 ns, 12.0 of them routing). The staging register
        # loads every cycle: no enable reaches it either. It costs nothing in latency: the
        # entry becomes visible only in the cycle after that anyway.
        staged = Signal(self._width, reset_less=True)
        m.d.comb += [
            self.w_rdy.eq(waiting != depth - 1),
            self.r_rdy.eq(visible != 0),
            self.level.eq(stored),
            do_write.eq(self.w_en & self.w_rdy),
            do_read.eq(self.r_en & self.r_rdy),
            w_port.addr.eq(produce),
            w_port.data.eq(staged),
            w_port.en.eq(written),
            r_port.addr.eq(consume),
            self.r_data.eq(r_port.data),
        ]
        m.d.sync += [
            staged.eq(self.w_data),
            written.eq(do_write),
            stored.eq(stored + do_write - do_read),
            visible.eq(visible + written - do_read),
        ]
        with m.If(written):
            m.d.sync += produce.eq(Mux(produce == depth - 1, 0, produce + 1))
        with m.If(do_read):
            m.d.sync += consume.eq(Mux(consume == depth - 1, 0, consume + 1))
        return m
