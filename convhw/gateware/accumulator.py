"""``Accumulator``: the accumulator memory and its read-add-write.

Every sum that leaves the array is either written to its accumulator entry (the first pass of a
tile, ``init``) or added to it; the host reads the entries back through the OUTPUT window while
the engine is idle.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from .. import timing
from ..config import EngineConfig

__all__ = ["Accumulator", "AccumulatorEntry"]


def AccumulatorEntry(config: EngineConfig) -> data.StructLayout:
    """Where a sum goes: its entry, whether it overwrites the entry, and whether it is written
    at all (a FIR-mode sum that is not an output, or no sum, is not)."""
    return data.StructLayout({
        "addr": unsigned(config.address_width(config.acc_depth)),
        "init": unsigned(1),
        "valid": unsigned(1),
    })


class Accumulator(wiring.Component):
    """``acc_depth`` entries of ``cols`` sums of ``acc_width`` bits, with the read-add-write
    that brings the array's sums into them.

    A sum arrives on ``sum`` in cycle ``T`` (``sum_valid`` high); its :func:`AccumulatorEntry`
    must be on ``entry`` :meth:`lead_for` cycles earlier, so that the entry is read before the
    sum arrives. The entry is written with ``sum`` (``init``) or with its old value plus ``sum``
    (modulo ``2**acc_width``) if both ``entry.valid`` and ``sum_valid`` are high; the write
    takes place in cycle ``T + latency_for(config) - 1`` (``writing`` is high then), so a sum
    may follow the previous one to the same entry in the next cycle. Sums arrive back to back
    and never stall.

    Two forms, by ``config.deep_pipeline``:

    * *deep*: the entry is read in ``T - 2`` through a registered read port and the data is
      registered again (``old``); the new value is added in ``T`` into a register that the
      write port takes in ``T + 1``. The read of ``T - 2`` misses the writes of the three sums
      that arrived in ``T - 3`` to ``T - 1``, which are still in registers in ``T``: the newest
      one for the same entry replaces ``old`` (forwarding). The address comparisons are made a
      cycle ahead and registered, so the adder's cycle holds only a multiplexer and the adder.
    * *shallow*: the entry is read in ``T - 1`` through a port transparent for the write in
      that cycle (the previous sum's), added and written in ``T``.

    While ``busy`` is low the read port serves the host instead: ``host_data`` holds the entry
    at ``host_addr`` :meth:`host_read_latency_for` cycles after the address was presented.

    Parameters
    ----------
    config : EngineConfig
        ``cols``, ``acc_width``, ``acc_depth`` and ``deep_pipeline`` are used.

    Attributes
    ----------
    entry : In(AccumulatorEntry(config))
        The entry of the sum that arrives :meth:`lead_for` cycles later.
    sum : In(data.ArrayLayout(signed(acc_width), cols))
    sum_valid : In(1)
    busy : In(1)
        The datapath owns the read port; low: the host does.
    host_addr : In(address_width(acc_depth))
    host_data : Out(data.ArrayLayout(unsigned(acc_width), cols))
    writing : Out(1)
        An entry is written in this cycle.
    memory : lib.memory.Memory
        The entries; a simulation may read or load them directly.
    """

    def __init__(self, config: EngineConfig) -> None:
        if not isinstance(config, EngineConfig):
            raise TypeError(f"config must be an EngineConfig, not {config!r}")
        self._config = config
        entries = data.ArrayLayout(unsigned(config.acc_width), config.cols)
        super().__init__({
            "entry": In(AccumulatorEntry(config)),
            "sum": In(data.ArrayLayout(signed(config.acc_width), config.cols)),
            "sum_valid": In(1),
            "busy": In(1),
            "host_addr": In(config.address_width(config.acc_depth)),
            "host_data": Out(entries),
            "writing": Out(1),
        })
        self.memory = memory.Memory(shape=entries, depth=config.acc_depth, init=[])

    @property
    def config(self) -> EngineConfig:
        return self._config

    @staticmethod
    def latency_for(config: EngineConfig) -> int:
        """Cycles from a sum's arrival to the end of its write: the adder, and with the deep
        pipeline a register of the new value (:func:`convhw.timing.accumulator_latency`)."""
        return timing.accumulator_latency(config)

    @staticmethod
    def lead_for(config: EngineConfig) -> int:
        """Cycles ``entry`` comes before its sum: the read's, and with the deep pipeline a
        register of the read data (:func:`convhw.timing.accumulator_lead`)."""
        return timing.accumulator_lead(config)

    @staticmethod
    def host_read_latency_for(config: EngineConfig) -> int:
        """Cycles from ``host_addr`` to ``host_data``: the read port's, and with the deep
        pipeline the register of its data
        (:func:`convhw.timing.accumulator_host_read_latency`)."""
        return timing.accumulator_host_read_latency(config)

    def elaborate(self, platform) -> Module:
        m = Module()
        config = self._config
        m.submodules.memory = mem = self.memory
        write = mem.write_port()
        read = mem.read_port(transparent_for=() if config.deep_pipeline else (write,))
        m.d.comb += [read.addr.eq(Mux(self.busy, self.entry.addr, self.host_addr)),
                     self.writing.eq(write.en)]

        # The entry, delayed to the sum's arrival: `tags[-1]` is the arriving sum's.
        tags = [self.entry]
        for i in range(self.lead_for(config)):
            tag = Signal.like(self.entry, name=f"entry_d{i + 1}")
            m.d.sync += tag.eq(tags[-1])
            tags.append(tag)
        arriving = tags[-1]
        arriving_valid = Signal()
        m.d.comb += arriving_valid.eq(arriving.valid & self.sum_valid)

        # (lead, latency, host read latency) of the form built below, which the rest of the
        # engine and the cycle model take from convhw.timing: they must not drift apart.
        form = (2, 2, 2) if config.deep_pipeline else (1, 1, 1)
        assert form == (self.lead_for(config), self.latency_for(config),
                        self.host_read_latency_for(config))
        if config.deep_pipeline:
            old = Signal.like(read.data)
            m.d.sync += old.eq(read.data)
            # The sums written after the read of the arriving one: newest first.
            sums = [(Signal.like(write.data, name=f"sum{i}"),
                     Signal.like(arriving.addr, name=f"sum{i}_addr"),
                     Signal(name=f"sum{i}_valid")) for i in range(3)]
            hits = [Signal(name=f"forward{i}") for i in range(3)]
            # Made for the next sum, one cycle ahead: its entry against those of the arriving
            # sum and of the two before it, which will be sums[0..2] when it arrives.
            upcoming = tags[-2].addr
            ahead = [(arriving.addr, arriving_valid), (sums[0][1], sums[0][2]),
                     (sums[1][1], sums[1][2])]
            m.d.sync += [hit.eq(valid & (addr == upcoming))
                         for hit, (addr, valid) in zip(hits, ahead)]
            base = Signal.like(read.data)
            m.d.comb += base.eq(old)
            for hit, (value, _, _) in reversed(list(zip(hits, sums))):
                with m.If(hit):
                    m.d.comb += base.eq(value)
            total = Signal.like(write.data)
            self._add(m, total, base, arriving.init)
            m.d.sync += [sums[0][0].eq(total), sums[0][1].eq(arriving.addr),
                         sums[0][2].eq(arriving_valid)]
            for newer, older in zip(sums, sums[1:]):
                m.d.sync += [o.eq(n) for o, n in zip(older, newer)]
            m.d.comb += [write.addr.eq(sums[0][1]), write.data.eq(sums[0][0]),
                         write.en.eq(sums[0][2]), self.host_data.eq(old)]
        else:
            total = Signal.like(write.data)
            self._add(m, total, read.data, arriving.init)
            m.d.comb += [write.addr.eq(arriving.addr), write.data.eq(total),
                         write.en.eq(arriving_valid), self.host_data.eq(read.data)]
        return m

    def _add(self, m, total, base, init):
        """``total = sum`` if ``init`` else ``base + sum``, per column, modulo ``2**acc_width``."""
        for c in range(self._config.cols):
            m.d.comb += total[c].eq(Mux(init, self.sum[c], base[c].as_signed() + self.sum[c]))
