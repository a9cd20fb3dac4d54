"""A Wishbone B4 pipelined memory slave for the benches of the bus masters that speak it
(the ``wishbone_master`` adapter, the list engine's ``mem`` port).

cocotbext-wishbone 2.0.1's slave takes one access at a time (it waits for its own ACK before it
looks at ``STB`` again), so it cannot serve a pipelined master that presents a beat every cycle,
and it answers from a data generator, not a memory. :class:`PipelinedSlave` serves a
:class:`convhw.sim_memory.SparseMemory`, accepts a beat in every cycle with
``CYC & STB & ~STALL``, answers each after a latency, in order, with ``ERR`` in address ranges,
inserts random ``STALL`` and answer delays, and checks the burst tags (incrementing bursts
only, ``BTE`` 0, no beat after an end-of-burst tag in the same cycle of ``CYC``).

It follows the timing convention of :mod:`tb`: its outputs change at the falling edge; one
nanosecond later it reads the master's (registered) outputs of that cycle.
"""

from __future__ import annotations

from collections import deque

from cocotb.triggers import FallingEdge, Timer

from convhw.sim_memory import SparseMemory

from tb import Inserter

__all__ = ["CTI_END", "CTI_INCR", "PipelinedSlave"]

CTI_INCR, CTI_END = 0b010, 0b111


class PipelinedSlave:
    """A Wishbone B4 pipelined memory slave on the ``<prefix>__*`` ports.

    Parameters
    ----------
    dut : cocotb handle
    memory : SparseMemory
        What it serves; :attr:`memory` may be replaced between accesses.
    data_width : int
        Bits of ``DAT_R``/``DAT_W``; ``ADR`` counts words of this width.
    latency : int
        Cycles from a beat's acceptance to its answer, at least 1.
    stall, delay : Inserter, optional
        When ``STALL`` is high; when a due answer waits one more cycle.
    errors : list of (start, end)
        Byte ranges answered with ``ERR`` (not written; reads give 0); a beat is answered with
        ``ERR`` if it starts in one.
    prefix : str
        The port's name in the Verilog top.
    """

    def __init__(self, dut, memory: SparseMemory, *, data_width: int, latency: int = 1,
                 stall: Inserter | None = None, delay: Inserter | None = None,
                 errors=(), prefix: str = "bus") -> None:
        self.clk = dut.clk
        self.beat = data_width // 8
        self.h = {name: getattr(dut, f"{prefix}__{name}") for name in
                  ("cyc", "stb", "we", "adr", "dat_w", "sel", "cti", "bte", "dat_r", "ack",
                   "err", "stall")}
        self.memory = memory
        self.latency = latency
        self.stall = stall or Inserter.never()
        self.delay = delay or Inserter.never()
        self.errors = list(errors)
        self.violations: list[str] = []
        self.beats = 0
        for name in ("dat_r", "ack", "err", "stall"):
            self.h[name].value = 0

    async def run(self) -> None:
        h = self.h
        pending = deque()          # [due cycle, error, data]
        cycle = 0
        expect = None
        ended = False
        while True:
            await FallingEdge(self.clk)
            cycle += 1
            # Outputs of this cycle.
            answer = None
            if pending and pending[0][0] <= cycle and not next(self.delay):
                answer = pending.popleft()
            h["ack"].value = answer is not None and not answer[1]
            h["err"].value = answer is not None and answer[1]
            h["dat_r"].value = answer[2] if answer is not None else 0
            stalled = next(self.stall)
            h["stall"].value = stalled
            await Timer(1, unit="ns")
            # The master's registered outputs of this cycle.
            if not int(h["cyc"].value):
                if pending:
                    self.violations.append(f"cycle {cycle}: CYC dropped with {len(pending)} "
                                           f"beats unanswered")
                pending.clear()
                expect, ended = None, False
                continue
            if not int(h["stb"].value) or stalled:
                continue
            adr, cti = int(h["adr"].value), int(h["cti"].value)
            if int(h["bte"].value) != 0 or ended or (expect is not None and adr != expect) \
                    or cti not in (CTI_INCR, CTI_END):
                self.violations.append(f"cycle {cycle}: beat at word {adr:#x}, cti {cti:#05b}, "
                                       f"bte {int(h['bte'].value)}, expected word {expect}, "
                                       f"after end of burst: {ended}")
            expect = adr + 1 if cti == CTI_INCR else None
            ended = cti == CTI_END
            address = adr * self.beat
            error = any(start <= address < end for start, end in self.errors)
            data = 0
            if not error:
                if int(h["we"].value):
                    self.memory.write_word(address, int(h["dat_w"].value), self.beat,
                                           int(h["sel"].value))
                else:
                    data = self.memory.read_word(address, self.beat)
            pending.append([cycle + self.latency, error, data])
            self.beats += 1
