"""How tensors lie in the engine's memory.

Every activation tensor (a layer's input or output) is stored **channels-last**, batch element
by batch element: ``N x D x H x W x Cp`` elements, ``Cp`` being the channel count rounded up to a
multiple of :func:`channel_align` (``lcm(rows, cols)``), and each pixel's bytes rounded up to a
whole memory beat. So:

* one input-buffer word (``rows`` consecutive channels of one pixel) is one contiguous run of
  bytes, and a pixel's channels ``[c0, c0 + k*rows)`` are a run too: the engine fetches a
  window row as bursts without any host re-arrangement;
* an output-channel chunk of ``cols`` channels of one pixel is one run, written with byte
  strobes, so the output of one layer is the input of the next as it stands;
* the padding channels ``[C, Cp)`` must hold zeros: the engine reads them as lanes whose
  weights are zero anyway (so their value does not change a result, but zero keeps an int8
  tensor's bytes defined), and never writes them. Tensors are allocated zeroed.

Elements are little-endian two's complement of :attr:`EngineConfig.input_bytes` bytes (inputs
and requantised results) or :attr:`EngineConfig.raw_bytes` (raw ``acc + bias`` results). 1-D and
2-D tensors are 3-D ones with unit leading spatial dimensions.

Weights are not activations: the compiler stores them in the engine's own order (weight-buffer
words, :func:`weight_block`), written once per model.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np

from ..config import EngineConfig

__all__ = ["StridedView", "TensorLayout", "channel_align", "pack_elements", "unpack_elements"]


def channel_align(config: EngineConfig) -> int:
    """The multiple an activation tensor's channel count is rounded up to in memory."""
    return math.lcm(config.rows, config.cols)


def pack_elements(values: np.ndarray, element_bytes: int) -> np.ndarray:
    """Signed integers as little-endian two's complement bytes (``uint8``, ``element_bytes``
    per value, in order)."""
    values = np.asarray(values, dtype=np.int64)
    dtype = {1: "<i1", 2: "<i2", 4: "<i4", 8: "<i8"}[element_bytes]
    return values.astype(dtype).reshape(-1).view(np.uint8)


def unpack_elements(data: np.ndarray, element_bytes: int) -> np.ndarray:
    """The inverse of :func:`pack_elements`, as int64."""
    dtype = {1: "<i1", 2: "<i2", 4: "<i4", 8: "<i8"}[element_bytes]
    return np.ascontiguousarray(data, dtype=np.uint8).view(dtype).astype(np.int64)


@dataclasses.dataclass(frozen=True)
class TensorLayout:
    """A batched activation tensor ``(N, C, *spatial)`` in memory (see the module docs).

    Parameters
    ----------
    shape : tuple of int
        ``(N, C, *spatial)`` with 1 to 3 spatial dimensions.
    element_bytes : int
        1, 2, 4 or 8.
    channel_align : int
        Channels are stored rounded up to a multiple of this.
    beat_bytes : int
        Pixels are stored rounded up to a multiple of this many bytes.
    unsigned : bool
        Whether :meth:`unpack` reads the elements as unsigned (quint8 results of the float32
        output processing) rather than two's complement.
    """

    shape: tuple[int, ...]
    element_bytes: int
    channel_align: int = 1
    beat_bytes: int = 1
    unsigned: bool = False

    def __post_init__(self) -> None:
        shape = tuple(int(s) for s in self.shape)
        if not 3 <= len(shape) <= 5 or min(shape) < 1:
            raise ValueError(f"shape must be (N, C, *spatial) with 1 to 3 spatial dimensions "
                             f"of at least 1, not {self.shape!r}")
        object.__setattr__(self, "shape", shape)
        if self.element_bytes not in (1, 2, 4, 8):
            raise ValueError(f"element_bytes must be 1, 2, 4 or 8, not {self.element_bytes!r}")

    @classmethod
    def for_engine(cls, shape, config: EngineConfig, element_bytes: int | None = None
                   ) -> TensorLayout:
        """The layout ``config``'s engine reads and writes (element bytes: the input's unless
        given)."""
        return cls(tuple(shape), config.input_bytes if element_bytes is None else element_bytes,
                   channel_align(config), config.beat_bytes)

    @property
    def batch(self) -> int:
        return self.shape[0]

    @property
    def channels(self) -> int:
        return self.shape[1]

    @functools.cached_property
    def spatial(self) -> tuple[int, int, int]:
        """``(D, H, W)``, unit leading dimensions for 1-D and 2-D tensors."""
        return (1,) * (5 - len(self.shape)) + self.shape[2:]

    @functools.cached_property
    def padded_channels(self) -> int:
        return -(-self.channels // self.channel_align) * self.channel_align

    @functools.cached_property
    def pixel_pitch(self) -> int:
        """Bytes from one pixel to the next along x."""
        raw = self.padded_channels * self.element_bytes
        return -(-raw // self.beat_bytes) * self.beat_bytes

    @functools.cached_property
    def row_pitch(self) -> int:
        return self.spatial[2] * self.pixel_pitch

    @functools.cached_property
    def plane_pitch(self) -> int:
        return self.spatial[1] * self.row_pitch

    @functools.cached_property
    def batch_pitch(self) -> int:
        return self.spatial[0] * self.plane_pitch

    @functools.cached_property
    def size(self) -> int:
        """Bytes of the whole tensor."""
        return self.batch * self.batch_pitch

    @property
    def payload(self) -> int:
        """Bytes of its elements alone (no padding channels or bytes): what moving the tensor
        once costs at least."""
        return math.prod(self.shape) * self.element_bytes

    def offset(self, n: int, channel: int, z: int = 0, y: int = 0, x: int = 0) -> int:
        """Byte offset of one element."""
        return (n * self.batch_pitch + z * self.plane_pitch + y * self.row_pitch
                + x * self.pixel_pitch + channel * self.element_bytes)

    def pack(self, tensor) -> np.ndarray:
        """``tensor`` (of :attr:`shape`) as the tensor's bytes in memory."""
        tensor = np.asarray(tensor)
        if tensor.shape != self.shape:
            raise ValueError(f"tensor must have shape {self.shape}, not {tensor.shape}")
        d, h, w = self.spatial
        t = tensor.reshape(self.batch, self.channels, d, h, w).transpose(0, 2, 3, 4, 1)
        pixels = np.zeros((self.batch, d, h, w, self.pixel_pitch), dtype=np.uint8)
        data = pack_elements(t, self.element_bytes).reshape(self.batch, d, h, w, -1)
        pixels[..., :data.shape[-1]] = data
        return pixels.reshape(-1)

    def unpack(self, data) -> np.ndarray:
        """The tensor (int64, of :attr:`shape`) from its bytes in memory (:attr:`unsigned`
        elements as such)."""
        data = np.asarray(data, dtype=np.uint8)
        if data.size != self.size:
            raise ValueError(f"data must be {self.size} bytes, not {data.size}")
        d, h, w = self.spatial
        pixels = data.reshape(self.batch, d, h, w, self.pixel_pitch)
        used = pixels[..., :self.channels * self.element_bytes]
        values = unpack_elements(used.reshape(-1), self.element_bytes)
        if self.unsigned:
            values &= (1 << (8 * self.element_bytes)) - 1
        values = values.reshape(self.batch, d, h, w, self.channels).transpose(0, 4, 1, 2, 3)
        return values.reshape(self.shape)


@dataclasses.dataclass(frozen=True)
class StridedView:
    """Every ``strides[d]``-th pixel of ``base`` along each spatial dimension ``d`` (z, y, x),
    from the first: the tensor a layer reads when it reads no other pixel (a 1x1 convolution
    with stride 2 reads one pixel of four). It is ``base`` with its pitches multiplied by the
    strides and its spatial sizes divided (rounded up): what a descriptor's window needs, so
    that the engine's window holds only the pixels read. The tensor in memory is ``base``."""

    base: TensorLayout
    strides: tuple[int, int, int]

    @functools.cached_property
    def spatial(self) -> tuple[int, int, int]:
        return tuple(-(-n // s) for n, s in zip(self.base.spatial, self.strides))

    @property
    def shape(self) -> tuple[int, ...]:
        dims = len(self.base.shape) - 2
        return (*self.base.shape[:2], *self.spatial[3 - dims:])

    @property
    def element_bytes(self) -> int:
        return self.base.element_bytes

    @property
    def batch_pitch(self) -> int:
        return self.base.batch_pitch

    @property
    def pixel_pitch(self) -> int:
        return self.base.pixel_pitch * self.strides[2]

    @property
    def row_pitch(self) -> int:
        return self.base.row_pitch * self.strides[1]

    @property
    def plane_pitch(self) -> int:
        return self.base.plane_pitch * self.strides[0]
