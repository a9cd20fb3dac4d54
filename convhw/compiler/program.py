"""Lowering a layer onto the engine: tiles, jobs, and the data each job moves.

:func:`compile_layer` splits a :class:`~convhw.spec.ConvSpec` on an input shape into
:class:`Step` s, each one :class:`~convhw.compiler.job.Job` (a register program) and the recipe of
its buffer transfers: which raw input elements go to which input-buffer word, which weights go to
which weight word, and where the results land in the output tensor. The host never pads, never
inserts zeros and never builds im2col columns: an input word is ``rows`` consecutive channels of
one real input pixel, copied as they are.

Tiling:

* batch elements run one after another;
* output channels in chunks of ``cols`` (a chunk's input channels are those of the groups its
  output channels belong to);
* output pixels in tiles whose input window fits the input buffer and whose outputs fit the
  accumulator;
* input channels in runs of chunks whose weights fit the weight buffer; the jobs after the first
  of a run accumulate onto the previous ones, and only the last is read out.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math

import numpy as np

from ..config import EngineConfig
from ..spec import ConvSpec
from ..timing import fir_kernel, fir_read_kernel, fir_takes_stride
from .job import DIMS, Axis, Job, frame, frame_axis

__all__ = ["Step", "Tiling", "compile_layer", "pointwise_view", "tile_layer"]


@dataclasses.dataclass(frozen=True)
class Step:
    """One job and its transfers."""

    job: Job
    batch: int
    oc_start: int                 # output channel of column 0
    oc_count: int                 # output channels computed (the rest of the columns idle)
    ic_start: int                 # input channel of lane 0 of chunk 0
    read_out: bool                # the accumulator holds final sums after this job
    # A kernel cut into runs of taps (EngineConfig.kernel_split): the first tap of the job's
    # part of the kernel per dimension (z, y, x); zeros when the kernel is whole.
    tap_start: tuple[int, int, int] = (0, 0, 0)
    # Which weight block the job reads: (first output channel, first input channel, input
    # chunks, first tap of the run); the steps of one block share its weight-buffer words.
    # Stored, not a property: the list builder looks it up several times for every step of
    # every tiling it ranks.
    block_key: tuple[int, int, int, int] = dataclasses.field(init=False, compare=False,
                                                            repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "block_key", (self.oc_start, self.ic_start,
                                               self.job.in_chunks, self.tap_start))


def _pad3(values, fill):
    values = tuple(values)
    return (fill,) * (DIMS - len(values)) + values


def _needed(spec_axis: dict, transposed: bool, mode: str, start: int, length: int) -> np.ndarray:
    """Sorted global input coordinates an output tile [start, start+length) reads."""
    o = np.arange(start, start + length)[:, None]
    k = np.arange(spec_axis["kernel"])[None, :]
    s, d, p, size = spec_axis["stride"], spec_axis["dilation"], spec_axis["pad_lo"], \
        spec_axis["in_size"]
    if transposed:
        n = o + p - k * d
        g = n // s
        real = (n % s == 0) & (g >= 0) & (g < size)
    else:
        g = o * s + k * d - p
        real = (g >= 0) & (g < size)
        if mode == "circular":
            g, real = g % size, np.ones_like(real)
        elif mode == "reflect":
            g = np.where(g < 0, -g, np.where(g >= size, 2 * (size - 1) - g, g))
            real = np.ones_like(real)
        elif mode == "replicate":
            g, real = np.clip(g, 0, size - 1), np.ones_like(real)
    return np.unique(g[real])


def _segments(needed: np.ndarray) -> tuple[int, int, int, int]:
    """At most two runs of input coordinates covering ``needed``: one hull, or two hulls split
    at the widest gap when that is shorter (a circular tile's wrapped rows)."""
    if needed.size == 0:
        return 0, 0, 0, 0
    lo, hi = int(needed[0]), int(needed[-1])
    if needed.size > 1:
        gaps = np.diff(needed)
        split = int(np.argmax(gaps))
        if gaps[split] > 1:
            a_hi, b_lo = int(needed[split]), int(needed[split + 1])
            if (a_hi - lo + 1) + (hi - b_lo + 1) < hi - lo + 1:
                return lo, a_hi - lo + 1, b_lo, hi - b_lo + 1
    return lo, hi - lo + 1, 0, 0


def _tile_starts(total: int, length: int) -> list[int]:
    return list(range(0, total, length))


def fir_capable(spec: ConvSpec, config: EngineConfig) -> bool:
    """Whether the depthwise (FIR) lane mode can run ``spec``: one input channel per group, a
    forward layer with dilation 1 along x and stride 1 there (or, where the engine takes it,
    :func:`convhw.timing.fir_takes_stride`, any stride with zeros padding: a polyphase FIR),
    and FIR taps the array's rows hold."""
    kernel, stride = spec.kernel_size[-1], spec.stride[-1]
    # (a strided kernel no longer than the stride would hold one tap a phase: one PE per
    # column, as the dense mode, which skips the border outputs besides)
    strided = stride > 1
    return (spec.in_channels == spec.groups and not spec.transposed
            and spec.dilation[-1] == 1
            and (not strided or fir_takes_stride(config) and spec.padding_mode == "zeros"
                 and kernel > stride)
            and fir_kernel(kernel, stride)[1] <= config.rows)


def _fir_reads(spec: ConvSpec, config: EngineConfig, fir: bool) -> int | None:
    """The x kernel whose reads a strided FIR job's windows must hold
    (:func:`convhw.timing.fir_read_kernel`), when ``spec`` runs as one; None otherwise."""
    if (fir and fir_capable(spec, config) and spec.stride[-1] > 1
            and config.kernel_split(spec) is None):
        return fir_read_kernel(spec.kernel_size[-1], spec.stride[-1])
    return None


def pointwise_view(spec: ConvSpec) -> tuple[ConvSpec, tuple[int, int, int]] | None:
    """A forward layer whose kernel is 1 and padding 0 along a dimension it strides reads only
    every ``stride``-th input pixel there: it is the same layer with stride 1 there, on those
    pixels alone. Returns ``(that layer, the strides (z, y, x) that pick the pixels)``, or
    ``None`` if no dimension is such. (The output sizes agree: ``(n - 1) // s + 1`` outputs,
    ``ceil(n / s)`` pixels; :class:`~convhw.compiler.layout.StridedView` is the picked
    input.)"""
    if spec.transposed:
        return None
    picked = [s > 1 and k == 1 and p == (0, 0)
              for s, k, p in zip(spec.stride, spec.kernel_size, spec.padding)]
    if not any(picked):
        return None
    strides = _pad3(tuple(s if v else 1 for s, v in zip(spec.stride, picked)), 1)
    stride = tuple(1 if v else s for s, v in zip(spec.stride, picked))
    return dataclasses.replace(spec, stride=stride), strides


@dataclasses.dataclass(frozen=True)
class Tiling:
    """How :func:`tile_layer` cuts a layer: the output tile's extent per dimension (z, y, x)
    and the most input chunks one job takes. Two tilings equal in these give the same steps
    (``per_dim``, the input window of every tile position, follows from the extents)."""

    lengths: tuple[int, int, int]
    chunks_per_job: int
    per_dim: tuple = dataclasses.field(compare=False, repr=False)


def tile_layer(spec: ConvSpec, input_shape, config: EngineConfig,
               window_limit: int | None = None, *, balanced: bool = False,
               chunk_limit: int | None = None, fir: bool = True) -> Tiling:
    """The tiling :func:`compile_layer` uses (its parameters, which see); raises
    ``ValueError`` when the layer cannot be tiled for ``config``."""
    config.check_layer(spec, input_shape)
    return _tiling(spec, tuple(input_shape), config.rows, config.input_depth,
                   config.acc_depth, config.weight_depth, 1 << config.coord_width,
                   config.kernel_split(spec), window_limit, balanced, chunk_limit,
                   _fir_reads(spec, config, fir))


def kernel_parts(spec: ConvSpec, split) -> list[list[tuple[int, int]]]:
    """Per dimension (z, y, x), the ``(first tap, taps)`` of each part of the kernel along it
    (:meth:`EngineConfig.kernel_split`'s cut, ``split``; one whole part when ``None``)."""
    kernel = _pad3(spec.kernel_size, 1)
    if split is None:
        return [[(0, k)] for k in kernel]
    dim, run = split
    cut = DIMS - spec.dims + dim
    return [[(k0, 1) for k0 in range(k)] if e < cut
            else [(k0, min(run, k - k0)) for k0 in range(0, k, run)] if e == cut
            else [(0, k)] for e, k in enumerate(kernel)]


def _part_axis(axis: tuple, k0: int, taps: int) -> tuple:
    """An axis tuple ``(in_size, kernel, stride, dilation, pad_lo)`` for the part of its kernel
    from tap ``k0``: the same sources, the padding moved by the first tap."""
    in_size, kernel, stride, dilation, pad_lo = axis
    return in_size, taps, stride, dilation, pad_lo - k0 * dilation


# The tiling depends on the engine only through these numbers: a design-space sweep
# (convhw.explore) asks for the same one for every column count, and the compiler for the
# same one under several window limits.
@functools.lru_cache(maxsize=4096)
def _tiling(spec: ConvSpec, input_shape: tuple, rows: int, input_depth: int, acc_depth: int,
            weight_depth: int, coord_limit: int, split, window_limit: int | None,
            balanced: bool, chunk_limit: int | None, fir_reads: int | None = None) -> Tiling:
    # (split: EngineConfig.kernel_split's cut of the kernel, or None; fir_reads: the x
    # kernel a strided FIR job's windows hold, _fir_reads)
    in_size = _pad3(input_shape[-spec.dims:], 1)
    out_size = _pad3(spec.output_size(input_shape[-spec.dims:]), 1)
    axes = [tuple(a.values()) for a in _axes(spec, in_size)]
    parts = kernel_parts(spec, split)
    taps = math.prod(max(t for _, t in p) for p in parts)     # of one job
    # the kernel parts whose reads the windows hold
    read_parts = parts if fir_reads is None else [*parts[:-1], [(0, fir_reads)]]
    # Dimensions longer than the registers' coordinates: each tile along them must have a
    # frame that holds it (convhw.compiler.job.frame_axis).
    long_dims = [d for d, (axis, total) in enumerate(zip(axes, out_size))
                 if max(axis[0], total, axis[4]) >= coord_limit
                 or (not spec.transposed and (total - 1) * axis[2] >= coord_limit)]

    def framed(per_dim, lengths) -> bool:
        for d in long_dims:
            in_size_d, kernel, stride, dilation, pad_lo = axes[d]
            for start, (s0, l0, s1, l1) in per_dim[d].items():
                axis = Axis(in_size=in_size_d, kernel=kernel, stride=stride,
                            dilation=dilation, pad_lo=pad_lo, out_start=start,
                            out_len=min(lengths[d], out_size[d] - start), seg0_start=s0,
                            seg0_len=l0, seg1_start=s1, seg1_len=l1)
                try:
                    frame_axis(axis, spec.transposed, coord_limit)
                except ValueError:
                    return False
        return True

    def windows(lengths):
        """Per dimension, the segments of every tile position (of the kernel's first part
        when it is cut: compile_layer finds the other parts'); and the largest window of any
        part."""
        per_dim, largest = [], 1
        for axis, total, length, along in zip(axes, out_size, lengths, read_parts):
            widest = 0
            for i, (k0, k) in enumerate(along):
                found = {start: _window(_part_axis(axis, k0, k), spec.transposed,
                                        spec.padding_mode, start, min(length, total - start))
                         for start in _tile_starts(total, length)}
                widest = max(widest, max(s[1] + s[3] for s in found.values()))
                if i == 0:
                    per_dim.append(found)
            largest *= widest
        return per_dim, largest

    limit = input_depth if window_limit is None else min(window_limit, input_depth)

    def fits(lengths):
        if math.prod(lengths) > acc_depth:
            return False
        per_dim, largest = windows(lengths)
        return largest <= limit and framed(per_dim, lengths)

    # Largest tile: outer dimensions shrink first, so rows stay whole as long as possible.
    lengths = list(out_size)
    for d in range(DIMS):
        if fits(lengths):
            break
        lo, hi = 1, lengths[d]
        lengths[d] = 1
        if not fits(lengths):
            continue
        while lo < hi:                                  # largest length that fits
            mid = (lo + hi + 1) // 2
            lengths[d] = mid
            lo, hi = (mid, hi) if fits(lengths) else (lo, mid - 1)
        lengths[d] = lo
        if balanced:
            count = -(-out_size[d] // lo)
            lengths[d] = -(-out_size[d] // count)
        break
    if not fits(lengths):
        raise ValueError(f"{spec.op_name} on input {input_shape!r} cannot be tiled for "
                         f"this engine: one output pixel needs more input buffer than its "
                         f"{input_depth} words")
    per_dim, largest_window = windows(lengths)
    chunks_by_buffer = max(1, input_depth // max(1, largest_window))
    chunks_by_weights = weight_depth // (taps * rows)
    if chunks_by_weights < 1:
        raise ValueError(f"{spec.op_name} kernel {spec.kernel_size} needs {taps * rows} weight "
                         f"words per input chunk; the engine's weight buffer holds "
                         f"{weight_depth}")
    # (capped at the layer's input chunks: more than a job can have changes nothing, and
    # equal tilings compare equal)
    per_job = min(chunks_by_buffer, chunks_by_weights, -(-spec.in_channels // rows),
                  chunks_by_buffer if chunk_limit is None else max(1, chunk_limit))
    return Tiling(lengths=tuple(lengths), chunks_per_job=per_job, per_dim=tuple(per_dim))


@functools.lru_cache(maxsize=1 << 16)
def _window(axis: tuple, transposed: bool, mode: str, start: int, length: int) -> tuple:
    """The input segments (:func:`_segments`) of the output run [start, start+length) along
    one axis ``(in_size, kernel, stride, dilation, pad_lo)``."""
    in_size, kernel, stride, dilation, pad_lo = axis
    return _segments(_needed(dict(in_size=in_size, kernel=kernel, stride=stride,
                                  dilation=dilation, pad_lo=pad_lo),
                             transposed, mode, start, length))


def _axes(spec: ConvSpec, in_size) -> list[dict]:
    return [dict(in_size=i, kernel=k, stride=s, dilation=d, pad_lo=p)
            for i, k, s, d, p in zip(
                in_size, _pad3(spec.kernel_size, 1), _pad3(spec.stride, 1),
                _pad3(spec.dilation, 1), _pad3([lo for lo, _ in spec.padding], 0))]


def compile_layer(spec: ConvSpec, input_shape, config: EngineConfig,
                  skip_borders: bool = True, fir: bool = True,
                  window_limit: int | None = None, *, balanced: bool = False,
                  chunk_limit: int | None = None, input_zero: int = 0,
                  job_config: EngineConfig | None = None,
                  tiling: Tiling | None = None) -> list[Step]:
    """Lower ``spec`` on an input of ``input_shape`` to engine steps for ``config``.

    Tiles are as large as the accumulator and the input buffer allow, their window of one
    input chunk at most ``window_limit`` pixels (``input_depth`` when None): a smaller limit
    makes smaller tiles whose windows hold more input chunks at once. With ``balanced``, the
    tiles along the dimension that is split are made as even as their count allows (no short
    last tile). ``chunk_limit`` caps the input chunks of one job (a job's run of input
    channels). ``tiling``: what :func:`tile_layer` returned for these parameters (a caller
    that compares tilings before expanding them); ``window_limit``, ``balanced`` and
    ``chunk_limit`` are then not used.

    Depthwise layers that :func:`fir_capable` accepts run in the array's FIR lane mode (unless
    ``fir`` is False): the array's rows hold the x taps, so ``kernel_x`` of them are busy
    instead of one PE per column. Passes skip border outputs when ``skip_borders`` is set and
    the engine can (``config.border_skipping``). ``input_zero``: the input's zero point, which
    every job carries (``config.activation_offset``; 0 without it). ``job_config``: the
    configuration the jobs carry, if not ``config`` (the list builder tiles for one bank of
    each buffer, :func:`~convhw.compiler.lower.bank_config`, and runs the jobs on the whole
    engine).

    Steps of the same tile and input-channel run in different output-channel chunks share one
    :class:`Job` object (equal jobs: the later stages look them up by value, which an
    identical object answers at once)."""
    if tiling is None:
        tiling = tile_layer(spec, input_shape, config, window_limit, fir=fir, balanced=balanced,
                            chunk_limit=chunk_limit)
    else:
        config.check_layer(spec, input_shape)
    input_zero = config.check_input_zero(input_zero)
    skip_borders = skip_borders and config.border_skipping
    batched = spec.check_input_shape(input_shape)
    batch = input_shape[0] if batched else 1
    in_size = _pad3(tuple(input_shape)[-spec.dims:], 1)
    out_size = _pad3(spec.output_size(tuple(input_shape)[-spec.dims:]), 1)
    axes = _axes(spec, in_size)
    mode = spec.padding_mode
    rows, cols = config.rows, config.cols
    c_group, o_group = spec.in_channels // spec.groups, spec.out_channels // spec.groups
    lengths, per_dim = tiling.lengths, tiling.per_dim
    starts_by_dim = [sorted(d) for d in per_dim]

    split = config.kernel_split(spec)
    use_fir = fir and fir_capable(spec, config) and split is None
    # the job's x kernel (1, or a polyphase FIR's phases) and FIR_TAPS
    fir_kx, fir_taps = fir_kernel(spec.kernel_size[-1], spec.stride[-1])
    # A kernel cut into runs of taps along one dimension: each run a job with that part of
    # the kernel and the padding moved by its first tap, adding to the previous runs' sums.
    along = kernel_parts(spec, split)
    lengths_of = [dict(a) for a in along]              # first tap -> taps, per dimension
    parts = list(itertools.product(*([k0 for k0, _ in a] for a in along)))
    job_config = config if job_config is None else job_config
    jobs: dict = {}         # (tile, first chunk, chunks, FIR lanes) -> its Job
    steps = []
    for n in range(batch):
        for oc0 in range(0, spec.out_channels, cols):
            oc1 = min(oc0 + cols, spec.out_channels)
            g0, g1 = oc0 // o_group, (oc1 - 1) // o_group
            ic_lo, ic_hi = g0 * c_group, (g1 + 1) * c_group
            chunk_lo = ic_lo // rows
            chunk_count = -(-ic_hi // rows) - chunk_lo
            per_job = min(chunk_count, tiling.chunks_per_job)
            # FIR: every column's input channel must be a lane of the same input word.
            fir_job = use_fir and chunk_count == 1
            lanes = tuple((oc // o_group) - chunk_lo * rows if oc < oc1 else 0
                          for oc in range(oc0, oc0 + cols)) if fir_job else ()
            for tile in np.ndindex(*(len(d) for d in per_dim)):
                starts = [d[i] for d, i in zip(starts_by_dim, tile)]
                for c0, part in itertools.product(range(0, chunk_count, per_job), parts):
                    in_chunks = min(per_job, chunk_count - c0)
                    key = (tile, c0, part, in_chunks, fir_job, lanes)
                    job = jobs.get(key)
                    if job is None:
                        job_axes = []
                        for index, (axis, d, start, length, total) in enumerate(
                                zip(axes, per_dim, starts, lengths, out_size)):
                            s0, l0, s1, l1 = d[start]
                            if fir_job and index == DIMS - 1:
                                # the array rows hold the x taps (of each phase)
                                axis = axis | {"kernel": fir_kx}
                            k0 = part[index]
                            taps = lengths_of[index][k0]
                            if taps != axes[index]["kernel"]:       # a part of a cut kernel
                                axis = dict(zip(axis, _part_axis(tuple(axis.values()), k0,
                                                                 taps)))
                                s0, l0, s1, l1 = _window(
                                    tuple(axis.values()), spec.transposed, mode, start,
                                    min(length, total - start))
                            job_axes.append(Axis(out_start=start, out_len=min(length,
                                                                              total - start),
                                                 seg0_start=s0, seg0_len=l0, seg1_start=s1,
                                                 seg1_len=l1, **axis))
                        job = jobs[key] = Job(config=job_config, axes=tuple(job_axes),
                                              transposed=spec.transposed, padding_mode=mode,
                                              in_chunks=in_chunks,
                                              accumulate=c0 > 0 or part != parts[0],
                                              skip_borders=skip_borders,
                                              fir_taps=fir_taps if fir_job else 0,
                                              lanes=lanes,
                                              input_zero=input_zero)
                        frame(job)      # (a job without a frame is refused here, not later)
                    steps.append(Step(job=job, batch=n, oc_start=oc0, oc_count=oc1 - oc0,
                                      ic_start=(chunk_lo + c0) * rows,
                                      read_out=(c0 + in_chunks >= chunk_count
                                                and part == parts[-1]),
                                      tap_start=part))
    return steps


# -- data movement ----------------------------------------------------------------------------

def input_words(step: Step, x: np.ndarray, rows: int) -> np.ndarray:
    """The input-buffer words of ``step``: ``(words, rows)``, pixel-major, chunk innermost,
    copied from the raw batched input ``(N, C, *S)``. Lanes past the last channel are zero."""
    job = step.job
    xb = x[step.batch].reshape(x.shape[1], *_pad3(x.shape[2:], 1))
    coords = []
    for axis in job.axes:
        coords.append(np.concatenate([np.arange(axis.seg0_start, axis.seg0_start + axis.seg0_len),
                                      np.arange(axis.seg1_start,
                                                axis.seg1_start + axis.seg1_len)]))
    channels = step.ic_start + np.arange(job.in_chunks * rows)
    inside = channels < x.shape[1]
    block = np.zeros((len(channels), *(len(c) for c in coords)), dtype=x.dtype)
    block[inside] = xb[np.ix_(channels[inside], *coords)]
    # (C, z, y, x) -> (z, y, x, chunk, lane) -> words
    block = block.reshape(job.in_chunks, rows, *block.shape[1:])
    return block.transpose(2, 3, 4, 0, 1).reshape(-1, rows)


def weight_words(step: Step, spec: ConvSpec, weight: np.ndarray, config: EngineConfig
                 ) -> np.ndarray:
    """The weight-buffer words of ``step``: for each tap, input chunk and array row, the
    ``cols`` weights of that input lane; zero where the lane's input channel is not in the
    column's group (block-diagonal groups) or past the last channel."""
    rows, cols = config.rows, config.cols
    job = step.job
    c_group, o_group = spec.in_channels // spec.groups, spec.out_channels // spec.groups
    ic = step.ic_start + np.arange(job.in_chunks * rows)             # lane -> input channel
    oc = step.oc_start + np.arange(cols)                              # column -> output channel
    real = (ic[:, None] < spec.in_channels) & (oc[None, :] < spec.out_channels)
    same_group = real & (ic[:, None] // c_group == oc[None, :] // o_group)
    icc = np.minimum(ic, spec.in_channels - 1)[:, None]
    occ = np.minimum(oc, spec.out_channels - 1)[None, :]
    if job.fir_taps:
        # Row r holds x-tap r of each column's (single-input-channel) kernel, per (z, y) tap;
        # of a polyphase FIR (x stride s), per (z, y) tap and phase j, x-tap j + r*s.
        kx = spec.kernel_size[-1]
        s = job.axes[-1].stride
        phases = job.axes[-1].kernel
        k = weight.reshape(weight.shape[0], -1, kx)                    # (out, zy taps, kx)
        w = np.zeros((k.shape[1], phases, rows, cols), dtype=np.int64)
        count = step.oc_count
        block = k[step.oc_start:step.oc_start + count].transpose(1, 2, 0)  # (zy, kx, cols)
        for j in range(phases):
            taps = block[:, j::s]
            w[:, j, :taps.shape[1], :count] = taps
        return w.reshape(-1, cols)
    if job.taps != math.prod(weight.shape[2:]):
        # A part of a cut kernel: per dimension, its taps from the step's first.
        dims = weight.ndim - 2
        for d in range(dims):
            start, length = step.tap_start[DIMS - dims + d], job.axes[DIMS - dims + d].kernel
            weight = np.take(weight, range(start, start + length), axis=2 + d)
    kernel = weight.reshape(weight.shape[0], weight.shape[1], -1)     # (.., .., taps)
    if spec.transposed:   # (in, out/groups, k)
        w = kernel[icc, occ % o_group, :]
    else:                 # (out, in/groups, k)
        w = kernel[occ, icc % c_group, :]
    w = np.where(same_group[..., None], w, 0)                         # (lanes, cols, taps)
    w = w.reshape(job.in_chunks, rows, cols, -1).transpose(3, 0, 1, 2)  # taps, chunk, row, col
    return w.reshape(-1, cols)


def output_region(step: Step):
    """Where the accumulator of ``step`` lands in the batched output: (batch, channel slice,
    spatial slices of the 3-D padded view) and the accumulator's (z, y, x) shape."""
    job = step.job
    spatial = tuple(slice(a.out_start, a.out_start + a.out_len) for a in job.axes)
    shape = tuple(a.out_len for a in job.axes)
    return step.batch, slice(step.oc_start, step.oc_start + step.oc_count), spatial, shape
