"""``MemoryPortSignature``: the bus-agnostic request interface between the DMA engines and a
memory bus adapter (:class:`~convhw.gateware.axi4.Axi4Master`,
:class:`~convhw.gateware.wishbone_master.WishboneMaster`).

The port is seen from the issuer (the DMA engine, the bus master's client): it sends commands
and write data and receives read data and write responses. Every channel is an
:mod:`amaranth.lib.stream` stream (``valid``/``ready``/``payload``, a transfer in each cycle
in which both ``valid`` and ``ready`` are high) with a :class:`~amaranth.lib.data.StructLayout`
payload.

Channels
--------
``read_cmd`` (Out): ``addr``, ``len``
    A read burst of ``len + 1`` beats (``len`` is 8 bits, as AXI's ``ARLEN``) from the byte
    address ``addr``, which is aligned to a beat (``data_width // 8`` bytes). Beat ``i`` is the
    data word at ``addr + i * data_width // 8`` (incrementing bursts only).
``read_data`` (In): ``data``, ``last``, ``error``
    One transfer per beat. ``last`` marks the last beat of a command; ``error`` is set on a beat
    whose bus response was an error (AXI ``SLVERR``/``DECERR``, Wishbone ``ERR``); its ``data``
    is then meaningless.
``write_cmd`` (Out): ``addr``, ``len``
    A write burst, addressed as a read burst.
``write_data`` (Out): ``data``, ``strb``, ``last``
    One transfer per beat, in command order: exactly ``len + 1`` beats per write command, the
    last of them with ``last`` set. ``strb`` has one bit per byte lane (bit ``i``: bits
    ``8*i .. 8*i+7`` of ``data``, the byte at ``beat address + i``, little-endian); a byte whose
    bit is clear is left unchanged in memory.
``write_resp`` (In): ``error``
    One transfer per write command, in command order, once every beat of the command has been
    answered by the bus; ``error`` is set if any beat failed.

Contract
--------
The issuer's duties:

* ``addr`` is aligned to ``data_width // 8`` bytes, and a command never crosses a 4 KiB
  boundary (so it has at most ``4096 // (data_width // 8)`` and never more than 256 beats).
  :func:`split_bursts` cuts a byte range into such commands. The adapters do not check this.
* It sends the write data of its write commands in command order, ``len + 1`` beats each. Write
  data may come before, with or after its command; an adapter may wait for the command before
  taking the data (Wishbone) or not (AXI).
* It limits the number of read beats in flight if it must (the AXI adapter does not; the
  Wishbone adapter limits them itself to what its response buffer holds).

The adapter's promises:

* Read beats come back in command order, every beat of every command, also after an error:
  an issuer counting beats (or waiting for ``last``) never hangs on a failed burst.
* Exactly one write response per write command, in command order.
* Reads and writes are independent: their order on the bus is not defined. An issuer that
  needs a read to see a write waits for the write's response first.
* All channels may be stalled by either side for any number of cycles (``ready`` low on an
  ``In`` channel delays the bus as needed; nothing is lost or duplicated).
"""

from __future__ import annotations

from typing import NamedTuple

from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Burst", "MemoryPortSignature", "check_data_width", "split_bursts"]

#: Bytes a command may not cross.
BOUNDARY = 4096
#: Most beats in one command (``len`` is 8 bits).
MAX_BEATS = 256


def _check_int(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    return value


def check_data_width(data_width: object, *, low: int = 32, high: int = 512) -> int:
    """``data_width`` if it is a power of two in ``[low, high]`` bits; raises otherwise."""
    _check_int("data_width", data_width)
    if not (low <= data_width <= high and data_width & (data_width - 1) == 0):
        raise ValueError(f"data_width must be a power of two from {low} to {high}, "
                         f"not {data_width!r}")
    return data_width


def check_addr_width(addr_width: object, *, low: int = 12, high: int = 64) -> int:
    """``addr_width`` if it is an integer in ``[low, high]``; raises otherwise."""
    _check_int("addr_width", addr_width)
    if not low <= addr_width <= high:
        raise ValueError(f"addr_width must be an integer from {low} to {high}, "
                         f"not {addr_width!r}")
    return addr_width


class MemoryPortSignature(wiring.Signature):
    """The DMA engines' memory port, seen from the issuer. See the module documentation for the
    contract.

    Parameters
    ----------
    data_width : int
        Bits per beat: a power of two from 32 to 512.
    addr_width : int
        Bits of a byte address, 12 to 64.

    Members
    -------
    read_cmd : Out(stream.Signature(cmd_layout))
    read_data : In(stream.Signature(read_data_layout))
    write_cmd : Out(stream.Signature(cmd_layout))
    write_data : Out(stream.Signature(write_data_layout))
    write_resp : In(stream.Signature(write_resp_layout))
    """

    def __init__(self, data_width: int = 64, addr_width: int = 32) -> None:
        self._data_width = check_data_width(data_width)
        self._addr_width = check_addr_width(addr_width)
        super().__init__({
            "read_cmd": Out(stream.Signature(self.cmd_layout)),
            "read_data": In(stream.Signature(self.read_data_layout)),
            "write_cmd": Out(stream.Signature(self.cmd_layout)),
            "write_data": Out(stream.Signature(self.write_data_layout)),
            "write_resp": In(stream.Signature(self.write_resp_layout)),
        })

    @property
    def data_width(self) -> int:
        return self._data_width

    @property
    def addr_width(self) -> int:
        return self._addr_width

    @property
    def beat_bytes(self) -> int:
        """Bytes per beat, ``data_width // 8``."""
        return self._data_width // 8

    @property
    def cmd_layout(self) -> data.StructLayout:
        """``addr`` (byte address), ``len`` (beats - 1)."""
        return data.StructLayout({"addr": self._addr_width, "len": 8})

    @property
    def read_data_layout(self) -> data.StructLayout:
        return data.StructLayout({"data": self._data_width, "last": 1, "error": 1})

    @property
    def write_data_layout(self) -> data.StructLayout:
        return data.StructLayout({"data": self._data_width, "strb": self._data_width // 8,
                                  "last": 1})

    @property
    def write_resp_layout(self) -> data.StructLayout:
        return data.StructLayout({"error": 1})

    def __eq__(self, other: object) -> bool:
        return (type(other) is type(self) and other._data_width == self._data_width
                and other._addr_width == self._addr_width)

    def __repr__(self) -> str:
        return f"MemoryPortSignature({self._data_width}, {self._addr_width})"


class Burst(NamedTuple):
    """One legal command: ``beats`` beats from the byte address ``addr``."""

    addr: int
    beats: int

    @property
    def len(self) -> int:
        """The command's ``len`` field, ``beats - 1``."""
        return self.beats - 1


def split_bursts(addr: int, size: int, data_width: int = 64, *,
                 max_beats: int = MAX_BEATS) -> list[Burst]:
    """The commands that cover the bytes ``[addr, addr + size)``: whole beats, none crossing a
    4 KiB boundary, at most ``max_beats`` beats each, in address order.

    An unaligned range is widened to whole beats (the caller masks the extra bytes of a write
    with ``strb``). ``size`` 0 gives no command.

    Examples
    --------
    >>> split_bursts(0xFF8, 24, 64)
    [Burst(addr=4088, beats=1), Burst(addr=4096, beats=2)]
    """
    check_data_width(data_width)
    for name, value in (("addr", addr), ("size", size)):
        if _check_int(name, value) < 0:
            raise ValueError(f"{name} must be a non-negative integer, not {value!r}")
    if not isinstance(max_beats, int) or isinstance(max_beats, bool) \
            or not 1 <= max_beats <= MAX_BEATS:
        raise ValueError(f"max_beats must be an integer from 1 to {MAX_BEATS}, "
                         f"not {max_beats!r}")
    step = data_width // 8
    start = addr - addr % step
    end = -(-(addr + size) // step) * step
    bursts = []
    while start < end:
        page_end = (start // BOUNDARY + 1) * BOUNDARY
        beats = min((min(end, page_end) - start) // step, max_beats)
        bursts.append(Burst(start, beats))
        start += beats * step
    return bursts
