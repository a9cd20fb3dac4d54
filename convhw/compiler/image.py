"""A whole memory image of a descriptor list: the input tensor, every layer's weight and
parameter images and output tensor, and the list, placed by an
:class:`~convhw.compiler.lower.Allocator` in a :class:`~convhw.compiler.list_model.Memory`.

This is the host's side of a list run in one place, for the tests, the benchmarks and the NumPy
model; a device writes the same bytes at the same addresses through its transport.
"""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np

from .. import golden
from ..descriptor import JOB_DESCRIPTOR
from .list_model import Memory, float_requantize
from .lower import ALIGN, Allocator, ListBuilder, params_image, weight_image

__all__ = ["Layer", "ListImage", "ListPlan", "ResidentImages", "build", "plan", "reference"]


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
    #: Keeps the layer's weight and parameter images in device memory from one run to the
    #: next (:class:`ResidentImages`): any hashable object that stands for these operands (the
    #: caller promises that the same key comes with the same weight, bias and output
    #: processing); None: written with every run.
    resident_key: object = None

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
    #: Bytes of weight and parameter images (and of the list) already in device memory
    #: (:class:`ResidentImages`), not among ``writes``.
    resident_bytes: int = 0

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


class ResidentImages:
    """Weight and parameter images kept in device memory across list runs, placed downwards
    from ``top`` (the device memory's end) while each run's tensors are placed upwards from the
    bottom: a model whose weights fit uploads them once. A run whose layers all have a key keeps
    its descriptor list there too (found again by the digest of its bytes).

    A layer takes part through its :attr:`Layer.resident_key`; its images are found again under
    that key together with everything their bytes depend on besides the operands (the spec,
    the input's shape, the output processing's kind, the input zero point). A run's new images
    are *pending* until :meth:`commit` (its writes done and the list run): a run that fails
    leaves none behind that were never written.

    The first ``TOKEN_BYTES`` below ``top`` hold a random token written with the first images:
    a device whose memory was lost (a reset board, a new bitstream) no longer shows it, and the
    host then uploads everything again (:meth:`token_write`, :meth:`check_token`)."""

    TOKEN_BYTES = 64

    def __init__(self, top: int, align: int = ALIGN) -> None:
        if top < 2 * self.TOKEN_BYTES:
            raise ValueError(f"top must leave room for the token, not {top!r}")
        self.top = top
        self._align = align
        self._entries: dict = {}
        self._pending: dict = {}
        self._low = self._committed_low = self.token_address
        self._token: bytes | None = None
        self._token_written = False

    @property
    def token_address(self) -> int:
        return self.top - self.TOKEN_BYTES

    @property
    def low(self) -> int:
        """The lowest byte of the region (pending images included): a run's own allocations
        must end at or below it."""
        return self._low

    @property
    def resident(self) -> int:
        """Images kept (committed)."""
        return len(self._entries)

    @staticmethod
    def key(layer: Layer, shape: tuple) -> tuple:
        return (layer.resident_key, layer.spec, tuple(shape), layer.eight_bit,
                layer.float_requantize is not None, layer.input_zero)

    @property
    def pending(self) -> int:
        """Images placed by the run being planned, not yet committed."""
        return len(self._pending)

    def find(self, key) -> tuple[int, int] | None:
        return self._entries.get(key) or self._pending.get(key)

    def reserve(self, key, *sizes: int, align: int | None = None) -> tuple[int, ...]:
        """Addresses for new blocks of ``sizes`` bytes kept under ``key`` (pending), each at a
        multiple of ``align`` (the region's alignment when None)."""
        align = max(align or self._align, self._align)
        addresses, low = [], self._low
        for size in sizes:
            low = (low - size) // align * align
            addresses.append(low)
        if low < 0:
            raise MemoryError(f"device memory is full: {sum(sizes)} bytes of images do not "
                              f"fit below {self._low:#x}")
        self._pending[key] = tuple(addresses)
        self._low = low
        return tuple(addresses)

    def token_write(self) -> tuple[int, np.ndarray] | None:
        """The token's write when it is not in device memory yet (None when it is)."""
        if self._token_written:
            return None
        if self._token is None:
            import secrets
            self._token = secrets.token_bytes(16)
        data = np.zeros(self.TOKEN_BYTES, np.uint8)
        data[:len(self._token)] = np.frombuffer(self._token, np.uint8)
        return self.token_address, data

    def check_token(self, data) -> bool:
        """Whether ``data`` (the token's bytes read from device memory) shows the images are
        still there; when not, every image is forgotten."""
        if not self._entries:
            return True
        intact = bytes(np.asarray(data, np.uint8)[:len(self._token)]) == self._token
        if not intact:
            self.clear()
        return intact

    def commit(self) -> None:
        self._entries.update(self._pending)
        self._pending.clear()
        self._committed_low = self._low
        if self._token is not None:
            self._token_written = True

    def discard(self) -> None:
        self._pending.clear()
        self._low = self._committed_low

    def clear(self) -> None:
        """Forget every image (the next run writes what it needs anew)."""
        self._entries.clear()
        self._pending.clear()
        self._low = self._committed_low = self.token_address
        self._token = None
        self._token_written = False


def plan(config, x, layers, *, chain=True, base: int = 0x1000,
         resident: ResidentImages | None = None) -> ListPlan:
    """Place ``x``, every layer's images and output, and the list, from ``base`` up; with
    ``chain`` each layer reads the previous layer's output (which must then be requantised),
    otherwise ``x``. With ``resident``, the images of layers with a ``resident_key`` go into
    (or are found in) it instead and only new ones are written."""
    x = np.asarray(x)
    builder = ListBuilder(config)
    allocator = Allocator(base)
    shape = tuple(x.shape)
    in_layout, _ = builder.layout(layers[0].spec, shape, layers[0].eight_bit)
    input_address = allocator.alloc(in_layout.size)
    writes = [(input_address, in_layout.pack(x))]
    address, outputs, records = input_address, [], []
    resident_bytes = 0
    for layer in layers:
        requantize = layer.eight_bit
        _, out_layout = builder.layout(layer.spec, shape, requantize)
        output_address = allocator.alloc(out_layout.size)
        # The images' sizes are known once the layer is lowered (which does not depend on
        # the addresses): lower it, place the images, then add it.
        lowering = builder.lower(layer.spec, shape, requantize=requantize,
                                 input_zero=layer.input_zero)
        key = (ResidentImages.key(layer, shape)
               if resident is not None and layer.resident_key is not None else None)
        found = resident.find(key) if key is not None else None
        if found is not None:
            weight_address, params_address = found
        elif key is not None:
            weight_address, params_address = resident.reserve(key, lowering.weight_bytes,
                                                              lowering.params_bytes)
        else:
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
        if found is not None:
            resident_bytes += lowering.weight_bytes + lowering.params_bytes
        else:
            multipliers, shifts = layer.requantize or (None, None)
            writes.append((weight_address, weight_image(record, layer.weight, config)))
            writes.append((params_address, params_image(record, config, layer.bias,
                                                        multipliers, shifts, float_bias,
                                                        float_multipliers)))
        outputs.append(output_address)
        records.append(record)
        if chain:
            address, shape = output_address, record.output.shape
    data = builder.encode()
    # The list is kept too when every layer's images are: its bytes (which hold no address of
    # their own) are found again by their digest, the same for the same layers, shapes and
    # tensor addresses.
    list_key = (("list", hashlib.sha256(data.tobytes()).digest())
                if resident is not None and all(layer.resident_key is not None
                                                 for layer in layers) else None)
    found = resident.find(list_key) if list_key is not None else None
    if found is not None:
        list_address = found[0]
        resident_bytes += data.size
    else:
        if list_key is not None:
            (list_address,) = resident.reserve(list_key, data.size, align=JOB_DESCRIPTOR.size)
        else:
            list_address = allocator.alloc(data.size, JOB_DESCRIPTOR.size)
        writes.append((list_address, data))
    if resident is not None and resident.pending:
        token = resident.token_write()
        if token is not None:
            writes.append(token)
    return ListPlan(writes, list_address, input_address, outputs, records, builder,
                    allocator.end, resident_bytes)


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
