"""Building descriptor lists and their memory images for tests: tensors, weight and parameter
images placed by an :class:`~convhw.compiler.lower.Allocator`, the list after them."""

from __future__ import annotations

import dataclasses

import numpy as np

from convhw import golden
from convhw.compiler.list_model import Memory
from convhw.compiler.lower import Allocator, ListBuilder, params_image, weight_image


@dataclasses.dataclass
class Layer:
    """One layer of a test list and its operands."""

    spec: object
    weight: np.ndarray
    bias: np.ndarray | None = None
    requantize: tuple | None = None          # (multipliers, shifts) per output channel
    relu: bool = False


@dataclasses.dataclass
class ListImage:
    memory: Memory
    list_address: int
    builder: ListBuilder
    input_address: int
    output_addresses: list
    records: list

    def output(self, index: int = -1) -> np.ndarray:
        record = self.records[index]
        address = self.output_addresses[index]
        return record.output.unpack(self.memory.data[address:address + record.output.size])


def build(config, x, layers, *, memory_size=1 << 24, chain=True, errors=()) -> ListImage:
    """A memory holding ``x``, every layer's images and the list; with ``chain`` each layer reads
    the previous layer's output (which must then be requantised)."""
    builder = ListBuilder(config)
    allocator = Allocator()
    shape = tuple(x.shape)
    in_layout, _ = builder.layout(layers[0].spec, shape, layers[0].requantize is not None)
    memory = Memory(memory_size, errors)
    input_address = allocator.alloc(in_layout.size)
    memory.write(input_address, in_layout.pack(x))
    address, outputs, records = input_address, [], []
    for layer in layers:
        requantize = layer.requantize is not None
        _, out_layout = builder.layout(layer.spec, shape, requantize)
        output_address = allocator.alloc(out_layout.size)
        # The images' sizes are known only after lowering; give them room at the top.
        weight_address = allocator.alloc(1 << 16)
        params_address = allocator.alloc(1 << 12)
        record = builder.add_layer(layer.spec, shape, input_addr=address,
                                   output_addr=output_address, weight_addr=weight_address,
                                   params_addr=params_address, requantize=requantize,
                                   relu=layer.relu)
        assert record.weight_bytes <= 1 << 16 and record.params_bytes <= 1 << 12
        memory.write(weight_address, weight_image(record, layer.weight, config))
        multipliers, shifts = layer.requantize if requantize else (None, None)
        memory.write(params_address, params_image(record, config, layer.bias, multipliers,
                                                  shifts))
        outputs.append(output_address)
        records.append(record)
        if chain:
            address, shape = output_address, record.output.shape
    data = builder.encode()
    list_address = allocator.alloc(data.size)
    memory.write(list_address, data)
    memory.traffic = type(memory.traffic)()          # count only what the engine moves
    return ListImage(memory, list_address, builder, input_address, outputs, records)


def reference(x, layers, chain=True) -> list:
    """Each layer's expected output (golden model, requantised and ReLU'd as asked)."""
    results = []
    for layer in layers:
        y = golden.convolution(layer.spec, x, layer.weight, layer.bias)
        if layer.requantize is not None:
            multipliers, shifts = (np.asarray(v).reshape(-1, *(1,) * layer.spec.dims)
                                   for v in layer.requantize)
            y = golden.requantize(y, multipliers, shifts, relu=layer.relu)
        elif layer.relu:
            y = np.maximum(y, 0)
        results.append(y)
        if chain:
            x = y
    return results
