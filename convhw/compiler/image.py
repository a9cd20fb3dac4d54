"""A whole memory image of a descriptor list: the input tensor, every layer's weight and
parameter images and output tensor, and the list, placed by an
:class:`~convhw.compiler.lower.Allocator` in a :class:`~convhw.compiler.list_model.Memory`.

This is the host's side of a list run in one place, for the tests, the benchmarks and the NumPy
model; a device writes the same bytes at the same addresses through its transport.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .. import golden
from ..descriptor import JOB_DESCRIPTOR
from .list_model import Memory, float_requantize
from .lower import Allocator, ListBuilder, params_image, weight_image

__all__ = ["Layer", "ListImage", "ListPlan", "build", "plan", "reference"]


@dataclasses.dataclass
class Layer:
    """One layer of a test list and its operands."""

    spec: object
    weight: np.ndarray
    bias: np.ndarray | None = None
    requantize: tuple | None = None          # (multipliers, shifts) per output channel
    relu: bool = False
    #: The input's zero point (``EngineConfig.activation_offset``: the engine multiplies
    #: ``x - input_zero``, and padding is ``input_zero``); 0 without it.
    input_zero: int = 0
    #: The float32 output processing (``EngineConfig.float_output``): ``(bias terms,
    #: multipliers, output zero point)``, float32 per output channel and an int (``bias``
    #: above, an integer, is added to the sums before it: qnnpack's rounded bias).
    float_requantize: tuple | None = None

    @property
    def eight_bit(self) -> bool:
        """Whether the results are 8-bit (requantised either way)."""
        return self.requantize is not None or self.float_requantize is not None


@dataclasses.dataclass
class ListPlan:
    """Where everything of a list run lies in device memory, and the bytes the host writes
    there (``writes``: ``(address, uint8 array)`` in order: the input, then per layer its
    weight and parameter images, then the list). Output tensors are left as the memory holds
    them (allocated zeroed)."""

    writes: list
    list_address: int
    input_address: int
    output_addresses: list
    records: list
    builder: ListBuilder
    end: int                                  # first byte above everything placed

    def unpack(self, index: int, data) -> np.ndarray:
        """Layer ``index``'s output tensor from its bytes."""
        return self.records[index].output.unpack(data)


@dataclasses.dataclass
class ListImage:
    """A :class:`ListPlan` written into a :class:`~convhw.compiler.list_model.Memory`."""

    memory: Memory
    plan: ListPlan

    @property
    def list_address(self) -> int:
        return self.plan.list_address

    @property
    def input_address(self) -> int:
        return self.plan.input_address

    @property
    def records(self) -> list:
        return self.plan.records

    @property
    def builder(self) -> ListBuilder:
        return self.plan.builder

    def output(self, index: int = -1) -> np.ndarray:
        record = self.plan.records[index]
        address = self.plan.output_addresses[index]
        return record.output.unpack(self.memory.data[address:address + record.output.size])


def plan(config, x, layers, *, chain=True, base: int = 0x1000) -> ListPlan:
    """Place ``x``, every layer's images and output, and the list, from ``base`` up; with
    ``chain`` each layer reads the previous layer's output (which must then be requantised),
    otherwise ``x``."""
    x = np.asarray(x)
    builder = ListBuilder(config)
    allocator = Allocator(base)
    shape = tuple(x.shape)
    in_layout, _ = builder.layout(layers[0].spec, shape, layers[0].eight_bit)
    input_address = allocator.alloc(in_layout.size)
    writes = [(input_address, in_layout.pack(x))]
    address, outputs, records = input_address, [], []
    for layer in layers:
        requantize = layer.eight_bit
        _, out_layout = builder.layout(layer.spec, shape, requantize)
        output_address = allocator.alloc(out_layout.size)
        # The images' sizes are known once the layer is lowered (which does not depend on
        # the addresses): lower it, place the images, then add it.
        lowering = builder.lower(layer.spec, shape, requantize=requantize,
                                 input_zero=layer.input_zero)
        weight_address = allocator.alloc(lowering.weight_bytes)
        params_address = allocator.alloc(lowering.params_bytes)
        float_bias = float_multipliers = output_zero = None
        if layer.float_requantize is not None:
            float_bias, float_multipliers, output_zero = config.check_float_requantize(
                layer.spec.out_channels, *layer.float_requantize)
        record = builder.add_layer(layer.spec, shape, input_addr=address,
                                   output_addr=output_address, weight_addr=weight_address,
                                   params_addr=params_address, requantize=requantize,
                                   relu=layer.relu, input_zero=layer.input_zero,
                                   output_zero=output_zero, lowering=lowering)
        multipliers, shifts = layer.requantize or (None, None)
        writes.append((weight_address, weight_image(record, layer.weight, config)))
        writes.append((params_address, params_image(record, config, layer.bias, multipliers,
                                                    shifts, float_bias, float_multipliers)))
        outputs.append(output_address)
        records.append(record)
        if chain:
            address, shape = output_address, record.output.shape
    data = builder.encode()
    list_address = allocator.alloc(data.size, JOB_DESCRIPTOR.size)
    writes.append((list_address, data))
    return ListPlan(writes, list_address, input_address, outputs, records, builder,
                    allocator.end)


def build(config, x, layers, *, memory_size=1 << 24, chain=True, errors=()) -> ListImage:
    """:func:`plan` written into a new memory of ``memory_size`` bytes (``errors``: its bus
    error ranges). The memory's traffic counters start at 0 after the host's writes."""
    placed = plan(config, x, layers, chain=chain)
    memory = Memory(memory_size, errors)
    for address, data in placed.writes:
        memory.write(address, data)
    return ListImage(memory, placed)


def reference(x, layers, chain=True) -> list:
    """Each layer's expected output (golden model, requantised and ReLU'd as asked): the
    convolution of ``x - input_zero`` in the layer's padding mode (zeros padding of
    ``x - input_zero`` is padding ``x`` with its zero point, as the engine does)."""
    results = []
    for layer in layers:
        operand = np.asarray(x, dtype=np.int64) - layer.input_zero if layer.input_zero else x
        y = golden.convolution(layer.spec, operand, layer.weight, layer.bias)
        if layer.float_requantize is not None:
            f32_bias, f32_mult, output_zero = layer.float_requantize
            channels = layer.spec.out_channels
            bits = [np.asarray(v, np.float32).reshape(channels).view(np.uint32)
                    for v in (f32_bias, f32_mult)]
            moved = np.moveaxis(np.asarray(y), -layer.spec.dims - 1, -1)
            flat = float_requantize(moved.reshape(-1, channels), *bits, output_zero,
                                    layer.relu)
            y = np.moveaxis(flat.reshape(moved.shape), -1, -layer.spec.dims - 1)
        elif layer.requantize is not None:
            multipliers, shifts = (np.asarray(v).reshape(-1, *(1,) * layer.spec.dims)
                                   for v in layer.requantize)
            y = golden.requantize(y, multipliers, shifts, relu=layer.relu)
        elif layer.relu:
            y = np.maximum(y, 0)
        results.append(y)
        if chain:
            x = y
    return results
