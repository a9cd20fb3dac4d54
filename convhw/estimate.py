"""``estimate``: how long one layer takes on the list engine, without simulating the gateware.

The layer is lowered into a descriptor list by :class:`~convhw.compiler.lower.ListBuilder` and
placed in memory as :func:`convhw.compiler.image.plan` places it (input, output, weight image,
parameter image, from ``0x1000`` up; where the list lies does not change the timing);
:func:`convhw.compiler.cycles.list_cycles` then gives the cycles from START to DONE for the
memory (a :class:`~convhw.memory_model.MemoryModel` without stalls; exact against the RTL's
CYCLES register, see its documentation).

Example::

    >>> import convhw
    >>> e = convhw.estimate(convhw.ConvSpec(2, 16, 16, 3, padding=1), (1, 16, 8, 8))
    >>> e.cycles, round(e.efficiency, 3)   # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import functools

from .compiler.cycles import list_cycles, list_cycles_bound
from .compiler.lower import Allocator, ListBuilder
from .compiler.packing import packing_for
from .config import EngineConfig
from .memory_model import MemoryModel
from .spec import ConvSpec

__all__ = ["Estimate", "estimate"]


@dataclasses.dataclass(frozen=True)
class Estimate:
    """What :func:`estimate` finds for a layer.

    Attributes
    ----------
    cycles : int
        START to DONE of the layer's list (the CYCLES register).
    busy_cycles : int
        The cycles in which the compute core is busy (the BUSY_CYCLES register): the layer's
        time if every load, result write and hand-over between jobs were hidden.
    jobs : int
        Jobs in the list.
    useful_macs : int
        Multiply-accumulates that touch real data (:meth:`ConvSpec.useful_macs`).
    bytes_read, bytes_written : int
        Bytes on the memory bus, whole beats (descriptors, parameters, windows, weights;
        results).
    rows, cols : int
        The array the efficiency is relative to.
    exact : bool
        Whether ``cycles`` is the exact figure (:func:`~convhw.compiler.cycles.list_cycles`)
        or a lower bound (:func:`~convhw.compiler.cycles.list_cycles_bound`, whose bytes are
        the traffic the jobs need: the bus moves whole beats, as many or more).
    """

    cycles: int
    busy_cycles: int
    jobs: int
    useful_macs: int
    bytes_read: int
    bytes_written: int
    rows: int
    cols: int
    exact: bool = True

    @property
    def bytes_moved(self) -> int:
        """Bytes read and written."""
        return self.bytes_read + self.bytes_written

    @property
    def efficiency(self) -> float:
        """Useful MACs over what the array could do in the time: ``useful_macs / (rows * cols
        * cycles)``."""
        return self.useful_macs / (self.rows * self.cols * self.cycles)

    @property
    def compute_efficiency(self) -> float:
        """The efficiency of the datapath alone: ``useful_macs / (rows * cols * busy_cycles)``
        (what is left of :attr:`efficiency` once the memory system hides everything)."""
        return self.useful_macs / (self.rows * self.cols * self.busy_cycles)

    @property
    def macs_per_cycle(self) -> float:
        return self.useful_macs / self.cycles


def estimate(spec: ConvSpec, input_shape, *, config: EngineConfig | None = None,
             memory: MemoryModel | None = None, requantize: bool = False,
             relu: bool = False, exact: bool = True, pack_taps: bool = True) -> Estimate:
    """The cycles, work and traffic of one layer on the list engine (see the module
    documentation).

    Parameters
    ----------
    spec : ConvSpec
    input_shape : sequence of int
        ``(N, C, *spatial)`` or ``(C, *spatial)``.
    config : EngineConfig, optional
        The engine (default ``EngineConfig()``), with either bus (AXI4 or Wishbone).
    memory : MemoryModel, optional
        The memory behind the master port (default ``MemoryModel()``), without stalls.
    requantize, relu : bool
        The layer's output stage: int8 results (else raw 32-bit ones), ReLU.
    exact : bool
        False: ``cycles`` is a lower bound (the larger of the busy cycles and the traffic at
        the memory's rate), without replaying the engine: 25-100 times faster, a few percent
        low on the reference layers. Design-space sweeps (:mod:`convhw.explore`) screen
        with it.
    pack_taps : bool
        Model the layer as the simulated devices run it when the host writes its input: a
        low-channel layer with its taps packed into the rows (x taps, or im2col over the
        innermost dimensions, whichever :func:`convhw.compiler.packing.packing_for` finds
        fastest behind ``memory``; the input read is the packed one).
        False: as written (what a list's later layer, or a serial board, runs).
    """
    if not isinstance(spec, ConvSpec):
        raise TypeError(f"spec must be a ConvSpec, not {spec!r}")
    config = EngineConfig() if config is None else config
    if not isinstance(config, EngineConfig):
        raise TypeError(f"config must be an EngineConfig, not {config!r}")
    shape = tuple(input_shape)
    useful_macs = spec.useful_macs(shape)
    if pack_taps:
        packing = packing_for(spec, shape, config, memory)
        if packing is not None:
            spec, shape = packing.spec, packing.input_shape(shape)
    memory = MemoryModel() if memory is None else memory
    args = (spec, shape, config, memory, bool(requantize), bool(relu), bool(exact))
    try:
        hash(args)
    except TypeError:                    # (a memory model with unhashable stalls)
        modelled = _modelled.__wrapped__
    else:
        modelled = _modelled
    cycles, busy, jobs, read, written = modelled(*args)
    return Estimate(cycles=cycles, busy_cycles=busy, jobs=jobs, useful_macs=useful_macs,
                    bytes_read=read, bytes_written=written, rows=config.rows,
                    cols=config.cols, exact=exact)


# Kept: :func:`~convhw.compiler.packing.packing_for` models a stem as written among its
# packings, and the estimate of the layer then models the one it chose again (in a sweep of
# configurations, a 224x224 stem's lowering was the larger part of each configuration's time).
@functools.lru_cache(maxsize=1024)
def _modelled(spec: ConvSpec, shape: tuple, config: EngineConfig, memory, requantize: bool,
              relu: bool, exact: bool) -> tuple[int, int, int, int, int]:
    builder = ListBuilder(config)
    in_layout, out_layout = builder.layout(spec, shape, requantize)
    allocator = Allocator()
    input_address = allocator.alloc(in_layout.size)
    output_address = allocator.alloc(out_layout.size)
    lowering = builder.lower(spec, shape, requantize=requantize)
    weight_address = allocator.alloc(lowering.weight_bytes)
    params_address = allocator.alloc(lowering.params_bytes)
    record = builder.add_layer(spec, shape, input_addr=input_address,
                               output_addr=output_address, weight_addr=weight_address,
                               params_addr=params_address, requantize=requantize, relu=relu,
                               lowering=lowering)
    timing = (list_cycles if exact else list_cycles_bound)(builder, config, memory)
    return (timing.cycles, timing.busy_cycles, len(record.descriptors), timing.bytes_read,
            timing.bytes_written)
