"""The issuer's side of a memory port (:class:`convhw.gateware.memory_port.MemoryPortSignature`)
in cocotb, for the bus-adapter benches: a source per command/data stream and a sink per
response stream, each with its own pause inserter, and byte-level ``read``/``write`` that cut a
range into legal bursts (:func:`convhw.gateware.memory_port.split_bursts`) with byte strobes.

The streams follow the timing convention of :mod:`tb`: inputs are driven at the falling edge;
one nanosecond later, when the DUT's combinational answer to them has settled, ``ready``
(sources) or ``valid`` (sinks) is read, which is what the next rising edge will see: the
transfer happens there if both are high. A payload is the packed vector of the Verilog port
(``port__read_cmd__payload``), packed and unpacked with the port's layouts
(:func:`convhw.sim_memory.pack`, :func:`convhw.sim_memory.unpack`).
"""

from __future__ import annotations

from collections import deque

import cocotb
from cocotb.triggers import Event, FallingEdge, Timer

from convhw.gateware.memory_port import MemoryPortSignature, split_bursts
from convhw.sim_memory import pack, unpack

from tb import Inserter

__all__ = ["MemoryPort", "StreamSink", "StreamSource"]


class StreamSource:
    """Drives ``<prefix>__valid``/``__payload`` from a queue of integers, pausing (``valid``
    low between transfers) when ``pause`` says so. ``cycles`` records the simulation time (ns)
    of each transfer's edge."""

    def __init__(self, dut, prefix: str, pause: Inserter | None = None) -> None:
        self.clk = dut.clk
        self.valid = getattr(dut, f"{prefix}__valid")
        self.ready = getattr(dut, f"{prefix}__ready")
        self.payload = getattr(dut, f"{prefix}__payload")
        self.pause = pause or Inserter.never()
        self.queue: deque[int] = deque()
        self.times: list[float] = []
        self.valid.value = 0
        self.payload.value = 0
        self.idle = Event()
        self.idle.set()

    def send(self, value: int) -> None:
        self.queue.append(value)
        self.idle.clear()

    async def run(self) -> None:
        current = None
        while True:
            await FallingEdge(self.clk)
            if current is None and self.queue and not next(self.pause):
                current = self.queue.popleft()
                self.payload.value = current
                self.valid.value = 1
            elif current is None:
                self.valid.value = 0
            await Timer(1, unit="ns")
            if current is not None and int(self.ready.value):
                current = None
                self.times.append(cocotb.utils.get_sim_time("ns"))
                if not self.queue:
                    self.idle.set()


class StreamSink:
    """Takes transfers from ``<prefix>__valid``/``__payload`` into a queue, with ``ready`` low
    when ``pause`` says so."""

    def __init__(self, dut, prefix: str, pause: Inserter | None = None) -> None:
        self.clk = dut.clk
        self.valid = getattr(dut, f"{prefix}__valid")
        self.ready = getattr(dut, f"{prefix}__ready")
        self.payload = getattr(dut, f"{prefix}__payload")
        self.pause = pause or Inserter.never()
        self.queue: deque[int] = deque()
        self.times: list[float] = []
        self.ready.value = 0
        self.event = Event()

    async def run(self) -> None:
        while True:
            await FallingEdge(self.clk)
            ready = not next(self.pause)
            self.ready.value = ready
            await Timer(1, unit="ns")
            if ready and int(self.valid.value):
                self.queue.append(int(self.payload.value))
                self.times.append(cocotb.utils.get_sim_time("ns"))
                self.event.set()

    async def recv(self) -> int:
        while not self.queue:
            self.event.clear()
            await self.event.wait()
        return self.queue.popleft()


class MemoryPort:
    """The five streams of the port ``port`` of ``dut``, and byte-level transfers over them.

    Parameters
    ----------
    dut : cocotb handle
    data_width : int
    pauses : dict, optional
        An :class:`~tb.Inserter` per stream name (``read_cmd``, ``read_data``, ...); streams
        not named never pause.
    """

    NAMES = ("read_cmd", "read_data", "write_cmd", "write_data", "write_resp")

    def __init__(self, dut, data_width: int, pauses: dict[str, Inserter] | None = None,
                 prefix: str = "port") -> None:
        self.sig = MemoryPortSignature(data_width, len(getattr(dut, f"{prefix}__read_cmd__"
                                                                    f"payload")) - 8)
        self.beat = data_width // 8
        pauses = pauses or {}
        self.read_cmd = StreamSource(dut, f"{prefix}__read_cmd", pauses.get("read_cmd"))
        self.write_cmd = StreamSource(dut, f"{prefix}__write_cmd", pauses.get("write_cmd"))
        self.write_data = StreamSource(dut, f"{prefix}__write_data", pauses.get("write_data"))
        self.read_data = StreamSink(dut, f"{prefix}__read_data", pauses.get("read_data"))
        self.write_resp = StreamSink(dut, f"{prefix}__write_resp", pauses.get("write_resp"))

    def start(self) -> None:
        for stream in (self.read_cmd, self.write_cmd, self.write_data, self.read_data,
                       self.write_resp):
            cocotb.start_soon(stream.run())

    def set_pauses(self, pauses: dict[str, Inserter]) -> None:
        for name in self.NAMES:
            getattr(self, name).pause = pauses.get(name) or Inserter.never()

    async def write(self, address: int, content: bytes) -> list[bool]:
        """Write ``content`` at the byte ``address`` (any alignment; bytes outside it are
        masked off with ``strb``); returns the error flag of each burst's response."""
        bursts = split_bursts(address, len(content), self.sig.data_width)
        end = address + len(content)
        for burst in bursts:
            self.write_cmd.send(pack(self.sig.cmd_layout, addr=burst.addr, len=burst.len))
            for i in range(burst.beats):
                base = burst.addr + i * self.beat
                data = strb = 0
                for lane in range(self.beat):
                    if address <= base + lane < end:
                        data |= content[base + lane - address] << 8 * lane
                        strb |= 1 << lane
                self.write_data.send(pack(self.sig.write_data_layout, data=data, strb=strb,
                                          last=i == burst.beats - 1))
        errors = []
        for _ in bursts:
            errors.append(bool(unpack(self.sig.write_resp_layout,
                                      await self.write_resp.recv())["error"]))
        return errors

    async def read(self, address: int, length: int) -> tuple[bytes, bool]:
        """``length`` bytes from ``address`` and whether any beat had ``error``; checks
        ``last`` on every beat."""
        bursts = split_bursts(address, length, self.sig.data_width)
        for burst in bursts:
            self.read_cmd.send(pack(self.sig.cmd_layout, addr=burst.addr, len=burst.len))
        raw = bytearray()
        error = False
        for burst in bursts:
            for i in range(burst.beats):
                beat = unpack(self.sig.read_data_layout, await self.read_data.recv())
                assert beat["last"] == (i == burst.beats - 1), \
                    f"beat {i} of the {burst.beats}-beat read at {burst.addr:#x}: last " \
                    f"{beat['last']}"
                error |= bool(beat["error"])
                raw += beat["data"].to_bytes(self.beat, "little")
        start = address - (bursts[0].addr if bursts else address)
        return bytes(raw[start:start + length]), error
