"""``ReadArbiter``: several read clients (the descriptor fetcher, the input and weight loaders,
the column-parameter loader) on the read half of one memory port.

Commands are granted round-robin, one per cycle at most; the granted client's number goes into
a tag queue, and since the port returns read beats in command order (see
:mod:`convhw.gateware.memory_port`), each beat goes to the client at the head of the queue, which
is popped with the command's ``last`` beat. The queue's depth bounds the commands in flight:
with ``depth`` commands outstanding the arbiter grants no more, so a memory with a long latency
needs a depth of about its latency divided by a command's beats to stay busy.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from .memory_port import MemoryPortSignature

__all__ = ["ReadArbiter", "ReadClientSignature"]


class ReadClientSignature(wiring.Signature):
    """The read half of :class:`~convhw.gateware.memory_port.MemoryPortSignature`, seen from
    the client: ``read_cmd`` out, ``read_data`` in, with the same layouts and contract."""

    def __init__(self, data_width: int = 64, addr_width: int = 32) -> None:
        port = MemoryPortSignature(data_width, addr_width)
        self._port = port
        super().__init__({
            "read_cmd": Out(stream.Signature(port.cmd_layout)),
            "read_data": In(stream.Signature(port.read_data_layout)),
        })

    @property
    def data_width(self) -> int:
        return self._port.data_width

    @property
    def addr_width(self) -> int:
        return self._port.addr_width

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._port == self._port

    def __repr__(self) -> str:
        return f"ReadClientSignature({self.data_width}, {self.addr_width})"


class ReadArbiter(wiring.Component):
    """Round-robin arbiter of ``clients`` read clients onto one read port.

    Parameters
    ----------
    clients : int
        Number of clients, 1..16.
    data_width, addr_width : int
        Of the memory port.
    depth : int
        Commands in flight at most (the tag queue's depth), 1..256.

    Attributes
    ----------
    clients : In(ReadClientSignature).array(clients)
        Client ``i``'s commands in, its read beats out.
    port : Out(ReadClientSignature)
        To the memory port's read half.
    """

    def __init__(self, clients: int, data_width: int = 64, addr_width: int = 32, *,
                 depth: int = 8) -> None:
        for name, value, low, high in (("clients", clients, 1, 16), ("depth", depth, 1, 256)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} must be an integer from {low} to {high}, not {value!r}")
            if not low <= value <= high:
                raise ValueError(f"{name} must be an integer from {low} to {high}, "
                                 f"not {value!r}")
        self._count = clients
        self._depth = depth
        signature = ReadClientSignature(data_width, addr_width)
        super().__init__({
            "clients": In(signature).array(clients),
            "port": Out(signature),
        })

    @property
    def depth(self) -> int:
        return self._depth

    def elaborate(self, platform) -> Module:
        m = Module()
        count = self._count
        m.submodules.tags = tags = fifo.SyncFIFOBuffered(width=max(1, (count - 1).bit_length()),
                                                         depth=self._depth)

        # -- commands: round robin, starting after the last client granted ------------------
        last_grant = Signal(range(count), init=count - 1)
        grant = Signal(range(count))
        any_valid = Signal()
        # The first valid client after `last_grant`, cyclically: scan the clients in priority
        # order; the last assignment wins, so list them from lowest to highest priority.
        for offset in reversed(range(1, count + 1)):
            for previous in range(count):
                candidate = (previous + offset) % count
                with m.If((last_grant == previous) & self.clients[candidate].read_cmd.valid):
                    m.d.comb += [grant.eq(candidate), any_valid.eq(1)]
        port = self.port
        m.d.comb += [
            port.read_cmd.valid.eq(any_valid & tags.w_rdy),
            tags.w_data.eq(grant),
            tags.w_en.eq(port.read_cmd.valid & port.read_cmd.ready),
        ]
        for i, client in enumerate(self.clients):
            with m.If(grant == i):
                m.d.comb += port.read_cmd.payload.eq(client.read_cmd.payload)
            m.d.comb += client.read_cmd.ready.eq(
                any_valid & (grant == i) & tags.w_rdy & port.read_cmd.ready)
        with m.If(port.read_cmd.valid & port.read_cmd.ready):
            m.d.sync += last_grant.eq(grant)

        # -- beats: to the client at the head of the tag queue ------------------------------
        head = tags.r_data
        for i, client in enumerate(self.clients):
            m.d.comb += [
                client.read_data.payload.eq(port.read_data.payload),
                client.read_data.valid.eq(port.read_data.valid & tags.r_rdy & (head == i)),
            ]
            with m.If(head == i):
                m.d.comb += port.read_data.ready.eq(tags.r_rdy & client.read_data.ready)
        m.d.comb += tags.r_en.eq(port.read_data.valid & port.read_data.ready
                                 & port.read_data.payload.last)
        return m
