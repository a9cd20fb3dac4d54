"""Lowering layers to one descriptor list in memory.

:class:`ListBuilder` turns layers (a :class:`~convhw.spec.ConvSpec`, an input shape and where
its tensors lie) into :data:`~convhw.descriptor.JOB_DESCRIPTOR` records that the engine runs on
its own: it fetches each job's input window, weights and column parameters from memory and
writes the results back (:mod:`convhw.compiler.list_model` is the executable specification of
that). The host writes the tensors, the weight and parameter images of each layer
(:func:`weight_image`, :func:`params_image`) and the list once, then starts it.

On-chip buffers are used in two banks each, so that a job's loads can overlap the previous
job's compute and its results can drain while the next tile computes:

* **input**: two banks of ``input_depth / 2`` words; a job names the bank it reads
  (``INPUT_BANK``) and loads it only when the bank does not already hold its window
  (``LOAD_INPUT``);
* **weights**: two banks of ``weight_depth / 2`` words. When all of a layer's weight blocks (one
  per output-channel chunk and input-channel run) fit one bank they are *resident*: each is
  loaded the first time a job uses it and stays for every later tile; consecutive blocks lie in
  alternate banks, since a job that loads weights waits until no job in flight reads the bank
  it loads into. Otherwise each bank is cut into slots of the largest block: a job's block is
  used where a slot holds it, else loaded into the bank the previous job does not read, over
  its slot used longest ago;
* **accumulator**: two banks of ``acc_depth / 2`` entries, one per output tile in flight
  (``ACC_BANK``).

Job order: for each batch element, either *tile-major* (tiles outer, output-channel chunks
inner: an input window is loaded once per tile and serves every chunk) or *chunk-major* (chunks
outer: a chunk's weights serve every tile). Either way the inner loop runs backwards every other
time (serpentine): a tile starts with the chunks whose weight blocks the previous tile ended
with (still in the weight slots when the blocks are not resident), a chunk with the tiles whose
windows the previous chunk ended with (still in the input banks). The tiling (window limit,
input chunks per job, tiles as large as fit or balanced) and the order are chosen among those
that move at most 2% more bytes than the fewest (:attr:`LayerRecord.traffic`) by a rough count
of cycles (:func:`_rough_cycles`: datapath cycles, the first loads and last results that nothing
overlaps, the memory traffic a job's compute does not cover, the jobs' hand-overs). The
input-channel runs of one tile and chunk stay consecutive, the later ones accumulating.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math

import numpy as np

from ..config import EngineConfig
from ..descriptor import DESCRIPTOR_MAGIC, JOB_DESCRIPTOR, column_params
from ..job_format import PaddingMode
from ..spec import ConvSpec
from .job import frame
from .layout import StridedView, TensorLayout, pack_elements
from .program import Step, compile_layer, pointwise_view, tile_layer, weight_words

__all__ = ["Allocator", "LayerRecord", "ListBuilder", "Lowering", "Traffic", "bank_config",
           "params_image", "weight_image"]

_AXES = "ZYX"
#: Kinds of memory traffic the engine makes.
KINDS = ("descriptor", "params", "input", "weight", "output")


@dataclasses.dataclass
class Traffic:
    """Bytes moved between memory and the engine, by kind (reads, except ``output``)."""

    descriptor: int = 0
    params: int = 0
    input: int = 0
    weight: int = 0
    output: int = 0

    @property
    def total(self) -> int:
        return sum(getattr(self, kind) for kind in KINDS)

    def __add__(self, other: Traffic) -> Traffic:
        return Traffic(**{k: getattr(self, k) + getattr(other, k) for k in KINDS})


def bank_config(config: EngineConfig) -> EngineConfig:
    """The engine as one bank of each buffer sees it: the depths a job may use."""
    return dataclasses.replace(config, input_depth=config.input_depth // 2,
                               weight_depth=config.weight_depth // 2,
                               acc_depth=config.acc_depth // 2)


#: The alignment of every block the host places in device memory (a cache line).
ALIGN = 64


class Allocator:
    """Bump allocation of device memory: every block aligned to ``align`` bytes."""

    def __init__(self, base: int = 0x1000, align: int = ALIGN, size: int = 1 << 32) -> None:
        self._next = base
        self._align = align
        self._end = size

    def alloc(self, size: int, align: int | None = None) -> int:
        """``size`` bytes at a multiple of ``align`` (the allocator's alignment when None)."""
        align = self._align if align is None else max(align, self._align)
        address = -(-self._next // align) * align
        if address + size > self._end:
            raise MemoryError(f"device memory is full: {size} bytes do not fit above "
                              f"{address:#x} (end {self._end:#x})")
        self._next = address + max(size, 1)
        return address

    @property
    def end(self) -> int:
        """First byte above every allocation."""
        return self._next


@dataclasses.dataclass(frozen=True)
class WeightBlock:
    """The weight-buffer words of one output-channel chunk and input-channel run."""

    oc_start: int
    ic_start: int
    in_chunks: int
    fir: bool
    words: int
    offset: int          # bytes into the layer's weight image
    tap_start: tuple = (0, 0, 0)   # a part of a cut kernel (Step.tap_start)


@dataclasses.dataclass(frozen=True)
class LayerRecord:
    """One layer of a list: its jobs' descriptors and the images the host writes for it."""

    config: EngineConfig
    spec: ConvSpec
    input_shape: tuple[int, ...]
    input: TensorLayout
    output: TensorLayout
    input_addr: int
    output_addr: int
    weight_addr: int
    params_addr: int
    requantize: bool
    relu: bool
    steps: tuple[Step, ...]
    descriptors: tuple[dict, ...]
    blocks: tuple[WeightBlock, ...]
    weight_bytes: int
    params_bytes: int
    order: str
    traffic: Traffic
    input_zero: int = 0           # the input's zero point (EngineConfig.activation_offset)

    @property
    def minimum_bytes(self) -> int:
        """Each tensor moved once: input, weights and output elements (no padding)."""
        return (self.input.payload + math.prod(self.spec.weight_shape)
                * self.config.weight_bytes + self.output.payload)


@dataclasses.dataclass(frozen=True, eq=False)
class Lowering:
    """How a layer runs, as :meth:`ListBuilder.lower` chose it: tiling, job order (``steps``),
    weight blocks and their placement, and the sizes of its weight and parameter images."""

    spec: ConvSpec
    input_shape: tuple
    requantize: bool
    in_layout: TensorLayout
    out_layout: TensorLayout
    order: str
    steps: tuple
    blocks: dict
    placement: dict | None
    weight_bytes: int
    params_bytes: int
    state: tuple
    input_zero: int = 0
    #: What the jobs' windows are cut from: ``in_layout``, or a :class:`StridedView` of it
    #: for a layer that reads only every stride-th pixel (:func:`pointwise_view`), whose
    #: ``steps`` are then the stride-1 layer's on those pixels.
    window_layout: TensorLayout | StridedView | None = None


class ListBuilder:
    """Builds one descriptor list of consecutive layers for the engine of ``config``.

    The banks' contents are followed from one layer to the next, so a layer's first loads go to
    the banks the previous layer is not computing from.
    """

    def __init__(self, config: EngineConfig, *, skip_borders: bool = True, fir: bool = True):
        if not isinstance(config, EngineConfig):
            raise TypeError(f"config must be an EngineConfig, not {config!r}")
        self._config = config
        self._skip_borders = skip_borders
        self._fir = fir
        self._layers: list[LayerRecord] = []
        self._input_banks = [None, None]     # what each bank holds (a window's key)
        self._next_input = 0
        self._next_weight = 0
        self._next_acc = 0

    @property
    def config(self) -> EngineConfig:
        return self._config

    @property
    def layers(self) -> tuple[LayerRecord, ...]:
        return tuple(self._layers)

    def layout(self, spec: ConvSpec, input_shape, requantize: bool) -> tuple[TensorLayout,
                                                                            TensorLayout]:
        """The input and output tensor layouts of a layer."""
        config = self._config
        shape = tuple(input_shape)
        if not spec.check_input_shape(shape):
            shape = (1, *shape)
        out_shape = spec.output_shape(shape)
        out_bytes = config.input_bytes if requantize else config.raw_bytes
        return (TensorLayout.for_engine(shape, config),
                TensorLayout.for_engine(out_shape, config, out_bytes))

    def lower(self, spec: ConvSpec, input_shape, *, requantize: bool = False,
              input_zero: int = 0) -> Lowering:
        """Choose how the next layer runs (tiling, job order, weight placement) after the
        layers added so far, without adding it: what :meth:`add_layer` does first, for a
        caller that needs the layer's image sizes (:attr:`Lowering.weight_bytes`,
        :attr:`Lowering.params_bytes`) to place it and then passes the result to
        :meth:`add_layer`. The choice does not depend on the addresses (nor on
        ``input_zero``, the input's zero point, which every job carries)."""
        input_addr = output_addr = weight_addr = params_addr = 0
        relu = False            # (a flag of the descriptors: no bearing on the choice)
        config = self._config
        in_layout, out_layout = self.layout(spec, input_shape, requantize)
        banks = bank_config(config)
        config.check_layer(spec, in_layout.shape)
        input_zero = config.check_input_zero(input_zero)
        # A layer that reads only every stride-th pixel along some dimension (a 1x1 kernel
        # with stride 2) runs as the stride-1 layer on a view of those pixels: its windows
        # then hold only what it reads (a quarter of the pixels of a 2-D one).
        view = pointwise_view(spec)
        if view is None:
            run_spec, window_layout = spec, in_layout
        else:
            run_spec, window_layout = view[0], StridedView(in_layout, view[1])
        window_shape = window_layout.shape
        candidates = []
        tried = set()
        for (limit, chunk_limit), balanced in itertools.product(_tilings(run_spec, banks),
                                                                (True, False)):
            try:
                tiling = tile_layer(run_spec, window_shape, banks, limit, balanced=balanced,
                                    chunk_limit=chunk_limit, fir=self._fir)
            except ValueError:
                continue
            # Different limits often give the same tiling (ResNet-18 at 8x8: 74 distinct of
            # 216): rank each once (an equal one later could not win the strict comparison).
            if tiling in tried:
                continue
            tried.add(tiling)
            steps = compile_layer(run_spec, window_shape, banks,
                                  skip_borders=self._skip_borders, fir=self._fir,
                                  input_zero=input_zero, job_config=config, tiling=tiling)
            blocks, offset = _weight_blocks(steps, config)
            previous = None
            for order in ("tile-major", "chunk-major"):
                ordered = _order(steps, order)
                if ordered == previous:    # (one tile or one chunk: the same list, ranked)
                    continue
                previous = ordered
                placement = self._place_resident(blocks, ordered)
                trial = self._assign(ordered, blocks, placement, window_layout, out_layout,
                                     input_addr, output_addr, weight_addr, params_addr,
                                     requantize, relu, commit=False)
                candidates.append((trial[1].total, len(ordered), order, ordered, blocks,
                                   offset, placement, trial[0]))
        best = None
        if candidates:
            # Among the tilings and orders that move at most _BYTES_SLACK more bytes than the
            # fewest, the fastest by a rough count of cycles (_rough_cycles); then fewest
            # bytes, then fewest jobs (each costs a fixed overhead).
            fewest = min(c[0] for c in candidates)
            for total, jobs, order, ordered, blocks, offset, placement, descs in candidates:
                if total > fewest * (1 + _BYTES_SLACK):
                    continue
                score = (_rough_cycles(ordered, descs, config, requantize), total, jobs)
                if best is None or score < best[0]:
                    best = (score, order, ordered, blocks, offset, placement)
        if best is None:
            # No smaller window helps: the plain tiling's error says why.
            compile_layer(run_spec, window_shape, banks, skip_borders=self._skip_borders,
                          fir=self._fir)
            raise AssertionError("unreachable: compile_layer succeeded without a limit")
        _, order, ordered, blocks, offset, placement = best
        return Lowering(
            spec=spec, input_shape=tuple(input_shape), requantize=requantize,
            in_layout=in_layout, out_layout=out_layout, order=order, steps=tuple(ordered),
            blocks=blocks, weight_bytes=offset, placement=placement,
            params_bytes=(_param_chunks(spec, config) * config.cols
                          * column_params(config).size),
            state=self._state(), input_zero=input_zero, window_layout=window_layout)

    def _state(self) -> tuple:
        return (len(self._layers), tuple(self._input_banks), self._next_input,
                self._next_weight, self._next_acc)

    def add_layer(self, spec: ConvSpec, input_shape, *, input_addr: int, output_addr: int,
                  weight_addr: int, params_addr: int, requantize: bool = False,
                  relu: bool = False, input_zero: int = 0, output_zero: int | None = None,
                  lowering: Lowering | None = None) -> LayerRecord:
        """Append the jobs of one layer. ``input_shape`` is ``(N, C, *spatial)`` (or without
        ``N``); the addresses are where the input and output tensors (:meth:`layout`), the
        layer's weight image (:func:`weight_image`, :attr:`LayerRecord.weight_bytes` bytes)
        and its parameter image (:func:`params_image`) lie. ``input_zero``: the input's zero
        point (``EngineConfig.activation_offset``; 0 without it), every descriptor's
        ``INPUT_ZERO``. ``output_zero``: with an int, the results take the float32 output
        processing (``FLOAT_REQUANTIZE``, ``EngineConfig.float_output``; ``requantize`` must be
        set: 8-bit results) with this output zero point (its constants: :func:`params_image`).
        ``lowering``: what :meth:`lower` chose for this layer at this point of
        the list (by default it is chosen here)."""
        if lowering is None:
            lowering = self.lower(spec, input_shape, requantize=requantize,
                                  input_zero=input_zero)
        elif (lowering.spec, lowering.input_shape, lowering.requantize, lowering.input_zero,
              lowering.state) != (spec, tuple(input_shape), requantize, input_zero,
                                  self._state()):
            raise ValueError("lowering was made for another layer or another point of the "
                             "list: pass what lower() returned just before")
        config = self._config
        if output_zero is not None:
            if not requantize:
                raise ValueError("output_zero (the float32 output processing) needs requantize: "
                                 "its results are 8-bit")
            output_zero = config.check_output_zero(output_zero)
        in_layout, out_layout = lowering.in_layout, lowering.out_layout
        if output_zero is not None:      # quint8 results
            out_layout = dataclasses.replace(out_layout, unsigned=True)
        order, ordered, blocks = lowering.order, list(lowering.steps), lowering.blocks
        offset, placement = lowering.weight_bytes, lowering.placement
        descriptors, traffic = self._assign(ordered, blocks, placement,
                                            lowering.window_layout or in_layout, out_layout,
                                            input_addr, output_addr, weight_addr,
                                            params_addr, requantize, relu, commit=True)
        # The engine overlaps a job's loads with earlier jobs' result writes: a layer that
        # reads what an earlier layer of the list wrote waits for those writes first.
        reads = (input_addr, input_addr + in_layout.size)
        if any(reads[0] < r.output_addr + r.output.size and r.output_addr < reads[1]
               for r in self._layers):
            descriptors[0]["WAIT"] = 1
        if output_zero is not None:
            for values in descriptors:
                values.update(FLOAT_REQUANTIZE=1, OUTPUT_ZERO=output_zero)
        record = LayerRecord(
            config=config, spec=spec, input_shape=in_layout.shape, input=in_layout,
            output=out_layout,
            input_addr=input_addr, output_addr=output_addr, weight_addr=weight_addr,
            params_addr=params_addr, requantize=requantize, relu=relu, steps=tuple(ordered),
            descriptors=tuple(descriptors), blocks=tuple(blocks.values()),
            weight_bytes=offset,
            params_bytes=lowering.params_bytes, order=order, traffic=traffic,
            input_zero=lowering.input_zero)
        self._layers.append(record)
        return record

    def _place_resident(self, blocks, steps) -> dict | None:
        """Weight-buffer words of every block when all of them fit the buffer at once, none
        across the middle (a job's weights lie in one bank); None when they do not fit.

        The engine takes a job that loads weights only once no job in flight reads the bank
        it loads into, so blocks alternate between the banks in the order ``steps`` first use
        them, the first in the bank the previous layer did not load last: a block then loads
        while the previous one computes. When they do not fit that way, each bank is filled
        in turn (the first bank first)."""
        half = self._config.weight_depth // 2
        first_use = dict.fromkeys(s.block_key for s in steps)
        # (a dict: ordered, and a membership test in constant time; a layer of many channels
        # has tens of thousands of blocks)
        first_use = list(first_use) + [key for key in blocks if key not in first_use]
        # alternating
        free = {0: 0, 1: 0}
        placement = {}
        bank = self._next_weight
        for key in first_use:
            words = blocks[key].words
            for b in (bank, bank ^ 1):
                if free[b] + words <= half:
                    placement[key] = b * half + free[b]
                    free[b] += words
                    bank = b ^ 1
                    break
            else:
                break
        else:
            return placement
        # in turn
        free = {self._next_weight: 0, self._next_weight ^ 1: 0}
        placement = {}
        for key in first_use:
            block = blocks[key]
            for bank in free:
                if free[bank] + block.words <= half:
                    placement[key] = bank * half + free[bank]
                    free[bank] += block.words
                    break
            else:
                return None
        return placement

    def _assign(self, steps, blocks, placement, in_layout, out_layout, input_addr,
                output_addr, weight_addr, params_addr, requantize, relu, *, commit: bool):
        """Banks and load flags for ``steps`` in this order; the descriptors and their
        traffic. Leaves the builder's state alone unless ``commit``; without it (a trial that
        :meth:`lower` ranks) the descriptors are only each job's (LOAD_INPUT, LOAD_WEIGHTS),
        what :func:`_rough_cycles` reads."""
        config = self._config
        in_banks = list(self._input_banks)
        next_in, next_w, next_acc = self._next_input, self._next_weight, self._next_acc
        half_w = config.weight_depth // 2
        resident = placement is not None
        loaded: set = set()
        # Not resident: each bank is cut into slots of the largest block, each holding the
        # key of the block it was last loaded with; a block is in one slot at most (it is
        # loaded only when no slot holds it). A bank's slots are kept in the order a load
        # takes them: never used (lowest first), then used longest ago first.
        # (Dictionaries, not scans: a bank of small blocks has hundreds of slots, a layer
        # thousands of jobs, and lower() tries dozens of orders.)
        slot_words = max((b.words for b in blocks.values()), default=1)
        per_bank = max(1, half_w // slot_words)
        w_slots = [[None] * per_bank for _ in range(2)]
        holder: dict = {}                   # block key -> (bank, slot)
        lru = [dict.fromkeys(range(per_bank)) for _ in range(2)]
        if resident and steps:
            # The next layer loads first into the bank this one's last job does not read.
            next_w = placement[steps[-1].block_key] // half_w ^ 1
        descriptors = []
        acc_bank = next_acc
        out_bytes = out_layout.element_bytes
        # Per word or per job, the same for every step (the loop runs for every step of
        # every tiling lower() ranks).
        input_word_bytes = config.rows * config.input_bytes
        weight_word_bytes = config.cols * config.weight_bytes
        params_bytes = config.cols * column_params(config).size
        descriptor_bytes = JOB_DESCRIPTOR.size
        input_bytes = weight_bytes = output_bytes = 0
        batch_pitch, element_bytes = in_layout.batch_pitch, in_layout.element_bytes
        for step in steps:
            job = step.job
            # -- input window ----------------------------------------------------------------
            in_base = input_addr + step.batch * batch_pitch + step.ic_start * element_bytes
            key = (in_base, job.in_chunks, job.axes)
            if job.input_words == 0:
                # All of the tile's sources are padding (a transposed layer's output_padding
                # plane): nothing to load, and the banks keep what they hold.
                bank, load_input = next_in, False
            elif key == in_banks[0]:
                bank, load_input = 0, False
            elif key == in_banks[1]:
                bank, load_input = 1, False
            else:
                bank, load_input = next_in, True
                in_banks[bank] = key
                next_in ^= 1
                input_bytes += job.input_words * input_word_bytes
            # -- weights ---------------------------------------------------------------------
            # (a block is known by its key: each has its own words of the weight image)
            w_key = step.block_key
            block = blocks[w_key]
            if resident:
                base = placement[w_key]
                load_weights = w_key not in loaded
                loaded.add(w_key)
            else:
                held = holder.get(w_key)
                if held is not None:
                    (w_bank, slot), load_weights = held, False
                else:
                    # Into the bank the previous job does not read (its load then overlaps
                    # that job), over the slot used longest ago.
                    w_bank, load_weights = next_w, True
                    slot = next(iter(lru[w_bank]))
                    holder.pop(w_slots[w_bank][slot], None)
                    w_slots[w_bank][slot] = w_key
                    holder[w_key] = (w_bank, slot)
                # used now: last in its bank's order
                del lru[w_bank][slot]
                lru[w_bank][slot] = None
                base = w_bank * half_w + slot * slot_words
                next_w = w_bank ^ 1
            if load_weights:
                weight_bytes += block.words * weight_word_bytes
            # -- accumulator -----------------------------------------------------------------
            if not job.accumulate:
                acc_bank, next_acc = next_acc, next_acc ^ 1
            if step.read_out:
                output_bytes += job.acc_entries * step.oc_count * out_bytes
            if not commit:
                descriptors.append((load_input, load_weights))
                continue
            values = _geometry(step)
            in_offset, out_offset = _frame_offsets(job, in_layout, out_layout)
            values.update(
                MAGIC=DESCRIPTOR_MAGIC, LOAD_INPUT=int(load_input),
                LOAD_WEIGHTS=int(load_weights), WRITE_OUTPUT=int(step.read_out),
                INPUT_BANK=bank, ACC_BANK=acc_bank,
                TRANSPOSED=int(job.transposed),
                PADDING_MODE=PaddingMode.from_spec(job.padding_mode),
                ACCUMULATE=int(job.accumulate), SKIP_BORDERS=int(job.skip_borders),
                REQUANTIZE=int(requantize), RELU=int(relu), FIR_TAPS=job.fir_taps,
                IN_CHUNKS=job.in_chunks, OUT_CHANNELS=step.oc_count,
                INPUT_ZERO=job.input_zero,
                INPUT_ADDR=in_base + in_offset, INPUT_PIXEL_PITCH=in_layout.pixel_pitch,
                INPUT_ROW_PITCH=in_layout.row_pitch, INPUT_PLANE_PITCH=in_layout.plane_pitch,
                WEIGHT_ADDR=weight_addr + block.offset, WEIGHT_BASE=base,
                WEIGHT_WORDS=block.words,
                OUTPUT_ADDR=output_addr + out_layout.offset(step.batch, step.oc_start)
                + out_offset,
                OUTPUT_PIXEL_PITCH=out_layout.pixel_pitch,
                OUTPUT_ROW_PITCH=out_layout.row_pitch,
                OUTPUT_PLANE_PITCH=out_layout.plane_pitch,
                PARAMS_ADDR=params_addr + (step.oc_start // config.cols) * config.cols
                * column_params(config).size)
            descriptors.append(values)
        traffic = Traffic(input=input_bytes, weight=weight_bytes, output=output_bytes,
                          descriptor=descriptor_bytes * len(steps),
                          params=params_bytes * len(steps))
        if commit:
            # A layer's output may be the next layer's input: what the banks hold is not
            # carried across layers, only which bank is next.
            self._input_banks = [None, None]
            self._next_input, self._next_weight, self._next_acc = next_in, next_w, next_acc
        return descriptors, traffic

    def descriptors(self, *, irq_every_layer: bool = False) -> list[dict]:
        """Every job's field values, in list order; the last has LAST set."""
        out = []
        for layer in self._layers:
            for i, values in enumerate(layer.descriptors):
                values = dict(values)
                if irq_every_layer and i == len(layer.descriptors) - 1:
                    values["IRQ"] = 1
                out.append(values)
        if out:
            out[-1]["LAST"] = 1
        return out

    def encode(self, **kwargs) -> np.ndarray:
        """The list as bytes (``uint8``), ready to be written at the list address."""
        words = [JOB_DESCRIPTOR.encode(v) for v in self.descriptors(**kwargs)]
        if not words:
            raise ValueError("the list has no layers")
        return np.concatenate(words).view(np.uint8)

    @property
    def traffic(self) -> Traffic:
        total = Traffic()
        for layer in self._layers:
            total = total + layer.traffic
        return total


def _weight_blocks(steps, config: EngineConfig) -> tuple[dict, int]:
    """The distinct weight blocks of ``steps`` by key, with their byte offsets in the layer's
    weight image; and the image's size."""
    blocks, offset = {}, 0
    for step in steps:
        key = step.block_key
        if key not in blocks:
            words = step.job.weight_words
            blocks[key] = WeightBlock(step.oc_start, step.ic_start, step.job.in_chunks,
                                      bool(step.job.fir_taps), words, offset, step.tap_start)
            offset += words * config.cols * config.weight_bytes
    return blocks, offset


#: How many more bytes than the fewest a tiling may move and still be chosen for its cycles.
_BYTES_SLACK = 0.02


def _tilings(spec: ConvSpec, banks: EngineConfig) -> list[tuple[int, int | None]]:
    """The (window limit, chunk limit) pairs :meth:`ListBuilder.add_layer` tries: every
    window limit (:func:`_window_limits`) with the input chunks of a job as many as fit, and
    the whole bank's window with runs of at most 1, 2, 4, ... input chunks (a shorter first
    load)."""
    chunks = -(-spec.in_channels // banks.rows)
    pairs = [(limit, None) for limit in _window_limits(spec, banks)]
    limits = {1 << i for i in range(max(chunks - 1, 0).bit_length())}
    # Runs of equal length: 13 chunks in runs of 8 and 5 leave the short run's compute
    # shorter than the long run's load that it has to hide (DCGAN's 100->512 layer: 296
    # cycles lost per pair of jobs); 7 and 6 do not.
    limits |= {-(-chunks // n) for n in range(2, 5) if n < chunks}
    pairs += [(banks.input_depth, limit) for limit in sorted(limits)]
    return pairs


def _rough_cycles(steps, flags, config: EngineConfig, requantize: bool) -> int:
    """A rough count of a layer's cycles on the list engine behind a memory of
    ``config.beat_bytes`` bytes per cycle: every job's datapath cycles; the first job's loads
    and the last job's results, which nothing overlaps; while a job computes, the next job's
    loads and the previous job's results share the memory, and what they need beyond its
    compute cycles is exposed; a few cycles per job of hand-over. Only to rank tilings of the
    same layer against each other. ``flags``: each job's (LOAD_INPUT, LOAD_WEIGHTS); with
    ``requantize``, 8-bit results."""
    from .cycles import job_cycles, timing
    constants = timing(config)
    beat = max(1, config.beat_bytes)
    # The jobs of a tile repeat for every output-channel chunk: count each once.
    cycles_of: dict = {}
    compute = [cycles_of[s.job] if s.job in cycles_of
               else cycles_of.setdefault(s.job, job_cycles(s.job, constants)) for s in steps]
    loads, results = [], []
    input_word_bytes = config.rows * config.input_bytes
    weight_word_bytes = config.cols * config.weight_bytes
    out_bytes = config.input_bytes if requantize else config.raw_bytes
    for step, (load_input, load_weights) in zip(steps, flags):
        job = step.job
        moved = job.input_words * input_word_bytes if load_input else 0
        moved += job.weight_words * weight_word_bytes if load_weights else 0
        loads.append(moved)
        results.append(job.acc_entries * step.oc_count * out_bytes if step.read_out else 0)
    exposed = (loads[0] + results[-1]) // beat
    for i, cycles in enumerate(compute):
        during = (loads[i + 1] if i + 1 < len(steps) else 0) + (results[i - 1] if i else 0)
        exposed += max(0, during // beat - cycles)
    return sum(compute) + exposed + 3 * len(steps)


def _window_limits(spec: ConvSpec, banks: EngineConfig) -> list[int]:
    """Window sizes (pixels of one input chunk) to tile for: the whole bank (largest tiles,
    input channels split into runs), and smaller ones whose windows hold 2, 4, ... and all
    of a group's input chunks at once."""
    chunks = -(-spec.in_channels // banks.rows)
    counts = sorted({1, chunks} | {1 << i for i in range(chunks.bit_length())})
    return sorted({banks.input_depth // c for c in counts if banks.input_depth // c >= 1},
                  reverse=True)


def _param_chunks(spec: ConvSpec, config: EngineConfig) -> int:
    return -(-spec.out_channels // config.cols)


_GEOMETRY_FIELDS = ("in_size", "kernel", "stride", "dilation", "pad_lo", "out_start", "out_len",
                    "seg0_start", "seg0_len", "seg1_start", "seg1_len")
#: (axis index, job field, descriptor field) of every per-axis descriptor field.
_GEOMETRY_NAMES = tuple((d, field, f"{name}_{field.upper()}") for d, name in enumerate(_AXES)
                        for field in _GEOMETRY_FIELDS)


@functools.lru_cache(maxsize=4096)
def _job_geometry(job) -> tuple:
    # Jobs repeat across output-channel chunks and across the tilings the builder ranks. The
    # descriptor holds the job in its frame (a layer longer than the coordinates: the
    # addresses move by the frame's shifts, _frame_offsets).
    axes = frame(job).job.axes
    return tuple((key, getattr(axes[d], field)) for d, field, key in _GEOMETRY_NAMES)


def _frame_offsets(job, in_layout: TensorLayout, out_layout: TensorLayout) -> tuple[int, int]:
    """Bytes the job's input and output addresses move by for its frame
    (:func:`~convhw.compiler.job.frame`): each dimension's shift times its pitch."""
    framed = frame(job)
    pitches = ((in_layout.plane_pitch, in_layout.row_pitch, in_layout.pixel_pitch),
               (out_layout.plane_pitch, out_layout.row_pitch, out_layout.pixel_pitch))
    return tuple(sum(shift * pitch for shift, pitch in zip(shifts, pitch_zyx))
                 for shifts, pitch_zyx in zip((framed.input_shift, framed.output_shift),
                                              pitches))


def _geometry(step: Step) -> dict:
    """The descriptor's per-axis geometry fields of the step's job."""
    return dict(_job_geometry(step.job))


def _order(steps: list[Step], order: str) -> list[Step]:
    """``steps`` (batch, chunk, tile, run order from :func:`compile_layer`) reordered; the runs
    of one tile and chunk stay consecutive and in order. The inner loop (chunks of a tile, or
    tiles of a chunk) runs backwards every other time, so that what the previous outer step
    used last (weight blocks, or windows) is used first again."""
    tiles: dict = {}
    tile = [tiles.setdefault(step.job.origin, len(tiles)) for step in steps]
    if order == "tile-major":
        def key(i):
            s = steps[i]
            outer = s.batch * len(tiles) + tile[i]
            inner = s.oc_start if outer % 2 == 0 else -s.oc_start
            return s.batch, tile[i], inner, s.ic_start, s.tap_start
    else:
        chunk = {c: n for n, c in enumerate(sorted({s.oc_start for s in steps}))}
        def key(i):
            s = steps[i]
            outer = s.batch * len(chunk) + chunk[s.oc_start]
            inner = tile[i] if outer % 2 == 0 else -tile[i]
            return s.batch, s.oc_start, inner, s.ic_start, s.tap_start
    return [steps[i] for i in sorted(range(len(steps)), key=key)]


# -- images the host writes ------------------------------------------------------------------

def weight_image(record: LayerRecord, weight, config: EngineConfig) -> np.ndarray:
    """The layer's weight blocks as bytes (``uint8``): each block's weight-buffer words, one
    after another; a word is ``cols`` little-endian weights."""
    spec = record.spec
    weight = np.asarray(weight, dtype=np.int64)
    out = np.zeros(record.weight_bytes, dtype=np.uint8)
    for block in record.blocks:
        step = next(s for s in record.steps if s.block_key == (
            block.oc_start, block.ic_start, block.in_chunks, block.tap_start))
        words = weight_words(step, spec, weight, config)
        data = pack_elements(words, config.weight_bytes)
        out[block.offset:block.offset + data.size] = data
    return out


def params_image(record: LayerRecord, config: EngineConfig, bias=None, multipliers=None,
                 shifts=None, float_bias=None, float_multipliers=None) -> np.ndarray:
    """The layer's column parameters as bytes: per output-channel chunk, ``cols``
    :func:`~convhw.descriptor.column_params` records (bias, requantisation multiplier and
    shift, FIR lane; with ``float_output`` the float32 bias term and multiplier of the float32
    output processing, ``float_bias`` and ``float_multipliers``, +0.0 where not given)."""
    fmt = column_params(config)
    if (float_bias is not None or float_multipliers is not None) and not config.float_output:
        raise ValueError("float_bias and float_multipliers need an engine with float_output")

    def bits(values, oc):
        if values is None:
            return 0
        return int(np.asarray(values, dtype=np.float32).reshape(-1)[oc:oc + 1].view(np.uint32)[0])
    spec = record.spec
    cols = config.cols
    chunks = _param_chunks(spec, config)
    lanes = {}
    for step in record.steps:
        if step.job.lanes:
            lanes[step.oc_start] = step.job.lanes
    words = []
    for chunk in range(chunks):
        oc0 = chunk * cols
        for c in range(cols):
            oc = oc0 + c
            real = oc < spec.out_channels
            values = {
                "BIAS": int(bias[oc]) if real and bias is not None else 0,
                "MULT": int(multipliers[oc]) if real and multipliers is not None else 1,
                "SHIFT": int(shifts[oc]) if real and shifts is not None else 0,
                "LANE": lanes[oc0][c] if oc0 in lanes else 0,
            }
            if config.float_output:
                values["F32_BIAS"] = bits(float_bias, oc) if real else 0
                values["F32_MULT"] = bits(float_multipliers, oc) if real else 0
            words.append(fmt.encode(values))
    return np.concatenate(words).view(np.uint8)
