"""AXI4 and AXI4-Lite signatures, and ``Axi4Master``: the memory port
(:class:`~convhw.gateware.memory_port.MemoryPortSignature`) on an AXI4 bus.

Signatures
----------
:class:`Axi4Signature` and :class:`Axi4LiteSignature` are *flat*: one member per AXI signal,
named as in the AXI specification in lower case (``awaddr``, ``rready``, ...), seen from the
master. A component port ``axi: Out(Axi4Signature(...))`` therefore becomes the Verilog ports
``axi__awaddr`` ... , which cocotbext-axi finds with ``AxiBus.from_prefix(dut, "axi_")`` (its
separator ``_`` after the prefix ``axi_`` gives the double underscore). Only the signals convhw
uses are present: no ``*qos``, ``*region``, ``*user``.

Axi4Master datasheet
--------------------
* Interface type: AXI4 master, one ID (``awid = arid = 0``, so responses come in order),
  ``*burst`` INCR, ``*size`` ``log2(data_width / 8)`` (full-width beats), ``*len`` the command's
  ``len``, ``*lock`` 0, ``*cache`` ``0b0011`` (normal, non-cacheable, bufferable), ``*prot`` 0.
* Read channels: AR and R are decoupled; the adapter does not count outstanding reads (the
  issuer limits them). ``read_data.last`` is ``rlast``; ``read_data.error`` is ``rresp[1]``
  (``SLVERR``, ``DECERR``).
* Write channels: AW and W are decoupled (write data may reach the bus before its address).
  ``wlast`` is ``write_data.last``. Every ``B`` response becomes one ``write_resp`` transfer,
  ``error`` = ``bresp[1]``.
* Timing: a :class:`~convhw.gateware.skid_buffer.SkidBuffer` on each of the five channels, so
  every AXI output and every memory-port output comes from a flip-flop, and no combinational
  path crosses the adapter. Each channel adds one cycle of latency and keeps one transfer per
  cycle when not stalled: a command reaches AR/AW one cycle after its port transfer, an R beat
  reaches ``read_data`` one cycle after its handshake, write data reaches W one cycle after its
  port transfer, and a B response ``write_resp`` one cycle after its handshake.
* The 4 KiB rule and the 256-beat limit are the issuer's duty (see the memory port's contract).
"""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .memory_port import MemoryPortSignature, check_addr_width, check_data_width
from .skid_buffer import SkidBuffer

__all__ = ["BURST_INCR", "CACHE", "RESP_DECERR", "RESP_EXOKAY", "RESP_OKAY", "RESP_SLVERR",
           "Axi4LiteSignature", "Axi4Master", "Axi4Signature"]

#: ``*burst`` of an incrementing burst.
BURST_INCR = 0b01
#: ``*cache`` of the master's transactions: normal, non-cacheable, bufferable.
CACHE = 0b0011
#: ``*resp`` values.
RESP_OKAY, RESP_EXOKAY, RESP_SLVERR, RESP_DECERR = 0b00, 0b01, 0b10, 0b11


def _check_id_width(id_width: object) -> int:
    if not isinstance(id_width, int) or isinstance(id_width, bool):
        raise TypeError(f"id_width must be an integer, not {id_width!r}")
    if not 1 <= id_width <= 32:
        raise ValueError(f"id_width must be an integer from 1 to 32, not {id_width!r}")
    return id_width


class Axi4Signature(wiring.Signature):
    """A full AXI4 bus, seen from the master, flat (one member per AXI signal).

    Parameters
    ----------
    data_width : int
        ``wdata``/``rdata`` width: a power of two from 8 to 1024.
    addr_width : int
        ``awaddr``/``araddr`` width, 12 to 64.
    id_width : int
        ``awid``/``bid``/``arid``/``rid`` width, 1 to 32.

    Members
    -------
    awid, awaddr, awlen, awsize, awburst, awlock, awcache, awprot, awvalid : Out
    awready : In(1)
    wdata, wstrb, wlast, wvalid : Out
    wready : In(1)
    bid, bresp, bvalid : In
    bready : Out(1)
    arid, araddr, arlen, arsize, arburst, arlock, arcache, arprot, arvalid : Out
    arready : In(1)
    rid, rdata, rresp, rlast, rvalid : In
    rready : Out(1)
    """

    def __init__(self, data_width: int, addr_width: int = 32, id_width: int = 1) -> None:
        self._data_width = check_data_width(data_width, low=8, high=1024)
        self._addr_width = check_addr_width(addr_width)
        self._id_width = _check_id_width(id_width)
        members = {}
        for ch in ("aw", "ar"):
            members.update({
                f"{ch}id": Out(id_width), f"{ch}addr": Out(addr_width), f"{ch}len": Out(8),
                f"{ch}size": Out(3), f"{ch}burst": Out(2), f"{ch}lock": Out(1),
                f"{ch}cache": Out(4), f"{ch}prot": Out(3), f"{ch}valid": Out(1),
                f"{ch}ready": In(1),
            })
            if ch == "aw":
                members.update({
                    "wdata": Out(data_width), "wstrb": Out(data_width // 8), "wlast": Out(1),
                    "wvalid": Out(1), "wready": In(1),
                    "bid": In(id_width), "bresp": In(2), "bvalid": In(1), "bready": Out(1),
                })
        members.update({
            "rid": In(id_width), "rdata": In(data_width), "rresp": In(2), "rlast": In(1),
            "rvalid": In(1), "rready": Out(1),
        })
        super().__init__(members)

    @property
    def data_width(self) -> int:
        return self._data_width

    @property
    def addr_width(self) -> int:
        return self._addr_width

    @property
    def id_width(self) -> int:
        return self._id_width

    def __eq__(self, other: object) -> bool:
        return (type(other) is type(self) and other._data_width == self._data_width
                and other._addr_width == self._addr_width and other._id_width == self._id_width)

    def __repr__(self) -> str:
        return f"Axi4Signature({self._data_width}, {self._addr_width}, {self._id_width})"


class Axi4LiteSignature(wiring.Signature):
    """An AXI4-Lite bus, seen from the master, flat, with the same names as
    :class:`Axi4Signature` (no IDs, bursts, lock or cache).

    Parameters
    ----------
    data_width : int
        32 or 64.
    addr_width : int
        12 to 64.

    Members
    -------
    awaddr, awprot, awvalid : Out
    awready : In(1)
    wdata, wstrb, wvalid : Out
    wready : In(1)
    bresp, bvalid : In
    bready : Out(1)
    araddr, arprot, arvalid : Out
    arready : In(1)
    rdata, rresp, rvalid : In
    rready : Out(1)
    """

    def __init__(self, data_width: int = 32, addr_width: int = 32) -> None:
        if not isinstance(data_width, int) or isinstance(data_width, bool):
            raise TypeError(f"data_width must be an integer, not {data_width!r}")
        if data_width not in (32, 64):
            raise ValueError(f"data_width must be 32 or 64, not {data_width!r}")
        self._data_width = data_width
        self._addr_width = check_addr_width(addr_width)
        super().__init__({
            "awaddr": Out(addr_width), "awprot": Out(3), "awvalid": Out(1), "awready": In(1),
            "wdata": Out(data_width), "wstrb": Out(data_width // 8), "wvalid": Out(1),
            "wready": In(1),
            "bresp": In(2), "bvalid": In(1), "bready": Out(1),
            "araddr": Out(addr_width), "arprot": Out(3), "arvalid": Out(1), "arready": In(1),
            "rdata": In(data_width), "rresp": In(2), "rvalid": In(1), "rready": Out(1),
        })

    @property
    def data_width(self) -> int:
        return self._data_width

    @property
    def addr_width(self) -> int:
        return self._addr_width

    def __eq__(self, other: object) -> bool:
        return (type(other) is type(self) and other._data_width == self._data_width
                and other._addr_width == self._addr_width)

    def __repr__(self) -> str:
        return f"Axi4LiteSignature({self._data_width}, {self._addr_width})"


class Axi4Master(wiring.Component):
    """The memory port on an AXI4 bus. See the module documentation for the datasheet.

    Parameters
    ----------
    data_width : int
        A power of two from 32 to 512.
    addr_width : int
        12 to 64.
    id_width : int
        Width of the (constant 0) IDs, 1 to 32.

    Attributes
    ----------
    port : In(MemoryPortSignature(data_width, addr_width))
        From the issuer.
    axi : Out(Axi4Signature(data_width, addr_width, id_width))
        To the slave.
    """

    def __init__(self, data_width: int = 64, addr_width: int = 32, *, id_width: int = 1) -> None:
        port = MemoryPortSignature(data_width, addr_width)
        axi = Axi4Signature(data_width, addr_width, id_width)
        self._data_width = data_width
        self._addr_width = addr_width
        super().__init__({"port": In(port), "axi": Out(axi)})

    @property
    def data_width(self) -> int:
        return self._data_width

    @property
    def addr_width(self) -> int:
        return self._addr_width

    def elaborate(self, platform):
        m = Module()
        port, axi = self.port, self.axi
        sig = port.signature
        size = (sig.beat_bytes - 1).bit_length()

        m.submodules.ar = ar = SkidBuffer(sig.cmd_layout)
        m.submodules.aw = aw = SkidBuffer(sig.cmd_layout)
        m.submodules.w = w = SkidBuffer(sig.write_data_layout)
        m.submodules.r = r = SkidBuffer(sig.read_data_layout)
        m.submodules.b = b = SkidBuffer(sig.write_resp_layout)

        # Commands and write data: port -> skid buffer -> AXI.
        wiring.connect(m, wiring.flipped(port.read_cmd), ar.i)
        wiring.connect(m, wiring.flipped(port.write_cmd), aw.i)
        wiring.connect(m, wiring.flipped(port.write_data), w.i)
        for ch, buf in (("ar", ar), ("aw", aw)):
            m.d.comb += [
                getattr(axi, f"{ch}valid").eq(buf.o.valid),
                buf.o.ready.eq(getattr(axi, f"{ch}ready")),
                getattr(axi, f"{ch}addr").eq(buf.o.payload.addr),
                getattr(axi, f"{ch}len").eq(buf.o.payload.len),
                getattr(axi, f"{ch}size").eq(size),
                getattr(axi, f"{ch}burst").eq(BURST_INCR),
                getattr(axi, f"{ch}cache").eq(CACHE),
            ]
        m.d.comb += [
            axi.wvalid.eq(w.o.valid),
            w.o.ready.eq(axi.wready),
            axi.wdata.eq(w.o.payload.data),
            axi.wstrb.eq(w.o.payload.strb),
            axi.wlast.eq(w.o.payload.last),
        ]

        # Responses: AXI -> skid buffer -> port.
        m.d.comb += [
            r.i.valid.eq(axi.rvalid),
            axi.rready.eq(r.i.ready),
            r.i.payload.data.eq(axi.rdata),
            r.i.payload.last.eq(axi.rlast),
            r.i.payload.error.eq(axi.rresp[1]),
            b.i.valid.eq(axi.bvalid),
            axi.bready.eq(b.i.ready),
            b.i.payload.error.eq(axi.bresp[1]),
        ]
        wiring.connect(m, r.o, wiring.flipped(port.read_data))
        wiring.connect(m, b.o, wiring.flipped(port.write_resp))
        return m
