"""Bus-master helpers for simulation testbenches.

The helpers drive a Wishbone B4 classic bus (an interface object with the members of
:class:`convhw.gateware.wishbone.WishboneSignature`: ``cyc stb we adr dat_w sel dat_r ack err``)
through a testbench context that offers only ``ctx.set(signal, value)``, ``ctx.get(signal)`` and
``await ctx.tick()``, with ``ctx.get`` returning settled values of the current cycle. Amaranth's
async testbench context is such a context; a cocotb testbench can reuse the helpers through a
thin adapter offering the same three calls. Addresses are byte addresses, as in the register map
and the driver; the helpers put ``address >> 2`` on ``adr``.

:func:`axil_write` and :func:`axil_read` do the same on an AXI4-Lite bus (the members of
:class:`convhw.gateware.axi4.Axi4LiteSignature`), with optional random pauses.
"""

from __future__ import annotations

import random

__all__ = ["BusError", "BusTimeout", "RandomIdle", "axil_read", "axil_write", "wb_read",
           "wb_transaction", "wb_write"]

#: ``sel`` of a whole-word access.
FULL_WORD = 0b1111


class BusError(Exception):
    """The slave answered an access with ``ERR``."""


class BusTimeout(TimeoutError):
    """The slave answered an access with neither ``ACK`` nor ``ERR`` in time."""


def _word_address(address: int) -> int:
    if not isinstance(address, int) or isinstance(address, bool) or address < 0:
        raise TypeError(f"address must be a non-negative integer, not {address!r}")
    if address % 4:
        raise ValueError(f"address must be a multiple of 4, not {address:#x}")
    return address >> 2


async def wb_transaction(ctx, bus, address: int, *, write: int | None = None,
                         sel: int = FULL_WORD, timeout: int = 100) -> tuple[bool, int]:
    """One classic Wishbone access, starting in the current cycle.

    Returns ``(ack, dat_r)``: ``ack`` is False when the slave answered ``ERR``. On return the
    clock has passed the answering edge and ``cyc``/``stb`` are low, so a following call in the
    same timestep makes a back-to-back access.

    Raises
    ------
    BusTimeout
        If no answer comes within ``timeout`` cycles; the access is then abandoned (``cyc``
        dropped).
    """
    ctx.set(bus.adr, _word_address(address))
    ctx.set(bus.we, write is not None)
    ctx.set(bus.dat_w, 0 if write is None else write)
    ctx.set(bus.sel, sel)
    ctx.set(bus.cyc, 1)
    ctx.set(bus.stb, 1)
    for _ in range(timeout):
        # ACK/ERR seen now is sampled by the master at the coming edge, ending the access.
        ack, err = ctx.get(bus.ack), ctx.get(bus.err)
        if ack and err:
            raise AssertionError(f"the slave answered {address:#x} with both ACK and ERR")
        if ack or err:
            data = ctx.get(bus.dat_r)
            await ctx.tick()
            ctx.set(bus.cyc, 0)
            ctx.set(bus.stb, 0)
            return bool(ack), data
        await ctx.tick()
    ctx.set(bus.cyc, 0)
    ctx.set(bus.stb, 0)
    raise BusTimeout(f"no answer to the access at {address:#x} in {timeout} cycles")


async def wb_write(ctx, bus, address: int, data: int, **kwargs) -> None:
    """Write ``data`` to the byte ``address``; :class:`BusError` on ``ERR``."""
    ack, _ = await wb_transaction(ctx, bus, address, write=data, **kwargs)
    if not ack:
        raise BusError(f"write of {data:#x} to {address:#x} answered with ERR")


async def wb_read(ctx, bus, address: int, **kwargs) -> int:
    """The word at the byte ``address``; :class:`BusError` on ``ERR``."""
    ack, data = await wb_transaction(ctx, bus, address, **kwargs)
    if not ack:
        raise BusError(f"read of {address:#x} answered with ERR")
    return data


class RandomIdle:
    """Random idle cycles between bus accesses, reproducible from a seed.

    Parameters
    ----------
    seed : int
    max_cycles : int
        Each :meth:`wait` idles for 0 to ``max_cycles`` cycles, uniformly.
    """

    def __init__(self, seed: int, max_cycles: int = 3) -> None:
        if not isinstance(max_cycles, int) or max_cycles < 0:
            raise ValueError(f"max_cycles must be a non-negative integer, not {max_cycles!r}")
        self._rng = random.Random(seed)
        self._max = max_cycles

    async def wait(self, ctx) -> int:
        """Idle (``cyc`` low, as left by the helpers) for a random number of cycles; returns it."""
        cycles = self._rng.randint(0, self._max)
        for _ in range(cycles):
            await ctx.tick()
        return cycles


async def axil_write(ctx, axi, address: int, value: int, *, strb: int = FULL_WORD, rng=None,
                     data_first: bool = False) -> int:
    """An AXI4-Lite write; returns BRESP. ``rng`` (a :class:`random.Random`) inserts random
    pauses before each channel; ``data_first`` presents W before AW."""
    pause = (lambda: rng.random() < 0.4) if rng else (lambda: False)
    for channel in (("w", "aw") if data_first else ("aw", "w")):
        while pause():
            await ctx.tick()
        if channel == "aw":
            ctx.set(axi.awaddr, address)
            ctx.set(axi.awvalid, 1)
            await ctx.tick().until(axi.awready)
            ctx.set(axi.awvalid, 0)
        else:
            ctx.set(axi.wdata, value)
            ctx.set(axi.wstrb, strb)
            ctx.set(axi.wvalid, 1)
            await ctx.tick().until(axi.wready)
            ctx.set(axi.wvalid, 0)
    while pause():
        await ctx.tick()
    ctx.set(axi.bready, 1)
    resp, = await ctx.tick().sample(axi.bresp).until(axi.bvalid)
    ctx.set(axi.bready, 0)
    return resp


async def axil_read(ctx, axi, address: int, *, rng=None) -> tuple[int, int]:
    """An AXI4-Lite read; returns ``(RDATA, RRESP)``."""
    ctx.set(axi.araddr, address)
    ctx.set(axi.arvalid, 1)
    await ctx.tick().until(axi.arready)
    ctx.set(axi.arvalid, 0)
    while rng and rng.random() < 0.4:
        await ctx.tick()
    ctx.set(axi.rready, 1)
    data, resp = await ctx.tick().sample(axi.rdata, axi.rresp).until(axi.rvalid)
    ctx.set(axi.rready, 0)
    return data, resp
