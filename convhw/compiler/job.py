"""A job: what the engine computes between one START and its DONE.

A :class:`Job` is the register program of one output tile of one output-channel chunk (``cols``
channels) of one batch element, plus the data the host moves for it: the raw input words of the
tile's input window and the weight words. :func:`passes` is the *address generator's semantics*:
the exact sequence of input-buffer and accumulator addresses the hardware emits, computed here
for the compiler's cycle model, for the NumPy execution model (:func:`execute`) and as the oracle
of the gateware's address generator.

Geometry is always three-dimensional, outermost first (z, y, x); a 1-D or 2-D layer has unit
leading dimensions.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Iterator

import numpy as np

from ..config import EngineConfig
from ..job_format import DIMS
from ..timing import fir_shares_padding, skips_unreached_taps

__all__ = ["DIMS", "Descriptor", "Frame", "Job", "Pass", "descriptors", "execute", "expand",
           "fir_joined", "fir_overlap", "fir_rows", "pass_words", "frame", "frame_axis", "passes"]


@dataclasses.dataclass(frozen=True)
class Axis:
    """One spatial dimension of a job's register program (global coordinates)."""

    in_size: int          # I: input extent of the whole layer
    kernel: int
    stride: int
    dilation: int
    pad_lo: int
    out_start: int        # first output coordinate of the tile
    out_len: int          # output extent of the tile
    seg0_start: int       # the input window: up to two runs of global input coordinates,
    seg0_len: int         # stored one after the other in the input buffer
    seg1_start: int = 0
    seg1_len: int = 0

    @property
    def window(self) -> int:
        return self.seg0_len + self.seg1_len


@dataclasses.dataclass(frozen=True)
class Job:
    """The register program of one job, and the host data that goes with it."""

    config: EngineConfig
    axes: tuple[Axis, Axis, Axis]
    transposed: bool
    padding_mode: str          # ConvSpec.padding_mode; its code is job_format.PaddingMode
    in_chunks: int             # input words per pixel in the buffer (channel chunks of `rows`)
    accumulate: bool           # first pass adds to the accumulator instead of overwriting it
    skip_borders: bool = True  # passes stream only the outputs whose source is a real element
    # Depthwise (FIR) lane mode: array row r holds x-tap r of the kernel, column c multiplies
    # input lane lanes[c]; the x axis has kernel 1 and each row of outputs streams
    # fir_taps - 1 extra input words. 0: dense mode.
    fir_taps: int = 0
    lanes: tuple[int, ...] = ()
    # The input zero point (EngineConfig.activation_offset): the array multiplies
    # x - input_zero for a real input element, 0 for padding and inserted zeros. 0 otherwise.
    input_zero: int = 0

    # Jobs key the compiler's tables (tilings already ranked, cycles already counted): the
    # hash, over the engine's configuration and three axes, is computed once. It is not
    # pickled: a string's hash differs from one process to the next.
    def __hash__(self) -> int:
        try:
            return self.__dict__["_hash"]
        except KeyError:
            value = self.__dict__["_hash"] = hash(tuple(
                getattr(self, field.name) for field in dataclasses.fields(self)))
            return value

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_hash"}

    # Computed once per job (the compiler asks for them for every step of every tiling it
    # ranks); a frozen dataclass keeps them beside its fields, out of its equality and hash.
    @functools.cached_property
    def taps(self) -> int:
        return math.prod(a.kernel for a in self.axes)

    @functools.cached_property
    def origin(self) -> tuple[int, ...]:
        """The tile's first output coordinate per dimension (z, y, x)."""
        return tuple(a.out_start for a in self.axes)

    @functools.cached_property
    def acc_entries(self) -> int:
        return math.prod(a.out_len for a in self.axes)

    @functools.cached_property
    def input_words(self) -> int:
        return math.prod(a.window for a in self.axes) * self.in_chunks

    @functools.cached_property
    def weight_words(self) -> int:
        return self.taps * self.in_chunks * self.config.rows


@dataclasses.dataclass(frozen=True)
class Pass:
    """One pass: a kernel tap and an input-channel chunk streamed over a set of outputs."""

    tap: int                  # flat tap index (raster over kz, ky, kx)
    chunk: int
    init: bool                # overwrite the accumulator (first pass of a phase) instead of add
    in_addr: np.ndarray       # input-buffer word per cycle, -1 for a zero operand
    acc_addr: np.ndarray      # accumulator entry per cycle
    write: np.ndarray | None = None   # FIR mode: whether the cycle's sum is an output
    # FIR mode: the row tag of each element's word and of the output its sum makes
    # (fir_joined); a PE multiplies a word into a sum only when the two are equal
    word_row: np.ndarray | None = None
    sum_row: np.ndarray | None = None

    @property
    def cycles(self) -> int:
        return len(self.acc_addr)


# -- the register frame ----------------------------------------------------------------------
#
# A job's coordinates are the layer's: an input or output longer than the registers' coordinate
# width (``2**coord_width``, 65,536 by default: 4 s of 16 kHz audio) has tiles whose
# coordinates do not fit them, and a run of a cut kernel (EngineConfig.kernel_split) past its
# first taps has a negative padding. Such a job is programmed in a frame of its own along that axis:
# input coordinates less ``input_shift``, outputs less ``output_shift``, the padding changed so
# that every output reads the same sources, and the input size the layer's less the shift
# (capped below the limit where the tile reads nowhere near the end). The input and output
# addresses move by the shifts (the list engine's descriptors), and the computation is the
# same pass for pass (tests/test_frame.py holds :func:`passes` of both equal).


@dataclasses.dataclass(frozen=True)
class Frame:
    """A job as its registers hold it (:attr:`job`), and per dimension (z, y, x) how far its
    input and output coordinates were moved."""

    job: Job
    input_shift: tuple[int, int, int]
    output_shift: tuple[int, int, int]


def frame_axis(axis: Axis, transposed: bool, limit: int) -> tuple[Axis, int, int]:
    """``axis`` in a frame whose coordinates stay below ``limit``: ``(axis, input shift,
    output shift)``. An axis whose coordinates are below ``limit`` already keeps them (shifts
    0). Raises ``ValueError`` when no frame holds the tile (a tile too long for the
    registers: the tiler keeps tiles shorter)."""
    o0, s, p = axis.out_start, axis.stride, axis.pad_lo
    o_end = o0 + axis.out_len
    seg_end = max(axis.seg0_start + axis.seg0_len, axis.seg1_start + axis.seg1_len)
    # (a negative padding: a run of a cut kernel past its first taps, EngineConfig.kernel_split)
    if (max(axis.in_size, o_end, seg_end, p) < limit and p >= 0
            and (transposed or (o_end - 1) * s < limit)):
        return axis, 0, 0
    segments = [(start, length) for start, length in ((axis.seg0_start, axis.seg0_len),
                                                      (axis.seg1_start, axis.seg1_len))
                if length]
    lowest = min(start for start, _ in segments) if segments else None
    if transposed:
        # o = g * s + k * d - p: the shifts keep the output phases (o + p - k * d) mod s.
        ishift = (o0 + p) // s if lowest is None else min(lowest, (o0 + p) // s)
        ishift = max(0, min(ishift, axis.in_size - 1))
        oshift = min(o0, max(0, ishift * s - p))
        pad = p + oshift - ishift * s
    else:
        # g = o * s + k * d - p. A tile that reads left of the input (o0 * s < p) keeps the
        # input's origin: the padding modes fold coordinates about it.
        first = max(0, o0 * s - p)
        ishift = first if lowest is None else min(lowest, first)
        ishift = max(0, min(ishift, axis.in_size - 1))
        oshift = max(0, min(o0, (p + ishift) // s))
        pad = p + ishift - oshift * s
    rest = axis.in_size - ishift
    framed = dataclasses.replace(
        axis, in_size=min(rest, limit - 1), pad_lo=pad, out_start=o0 - oshift,
        seg0_start=axis.seg0_start - ishift if axis.seg0_len else 0,
        seg1_start=axis.seg1_start - ishift if axis.seg1_len else 0)
    f_end = framed.out_start + framed.out_len
    f_seg_end = max(framed.seg0_start + framed.seg0_len, framed.seg1_start + framed.seg1_len)
    # Capped, the input size must lie past everything the tile reads (then no read can tell);
    # a tile that reads the end of the input (padding, folding) has its exact size.
    reads_end = ((o_end - 1) * s + (axis.kernel - 1) * axis.dilation - p >= axis.in_size
                 if not transposed else False)
    fits = (min(segment[0] for segment in segments) >= ishift if segments else True) \
        and pad >= 0 and max(framed.in_size, f_end, f_seg_end, pad) < limit \
        and (transposed or (f_end - 1) * s < limit) and f_seg_end <= framed.in_size \
        and (rest < limit or not reads_end)
    if not fits:
        raise ValueError(f"an output tile at {o0} of length {axis.out_len} has no frame of "
                         f"coordinates below {limit}")
    return framed, ishift, oshift


@functools.lru_cache(maxsize=4096)
def frame(job: Job) -> Frame:
    """``job`` in the frame its registers hold (:func:`frame_axis` per dimension, below
    ``2**coord_width``); the job itself when its coordinates fit already. Circular padding
    reads the far end of the input at the near edge: a layer with it is not framed (the
    engine's checks refuse it longer than the limit)."""
    limit = 1 << job.config.coord_width
    if job.padding_mode == "circular":
        return Frame(job, (0, 0, 0), (0, 0, 0))
    framed = [frame_axis(a, job.transposed, limit) for a in job.axes]
    axes = tuple(a for a, _, _ in framed)
    if axes == job.axes:
        return Frame(job, (0, 0, 0), (0, 0, 0))
    return Frame(dataclasses.replace(job, axes=axes), tuple(i for _, i, _ in framed),
                 tuple(o for _, _, o in framed))


def _remap(g: np.ndarray, size: int, mode: str) -> np.ndarray:
    """Source coordinates outside ``[0, size)`` for the non-zero padding modes."""
    if mode == "circular":
        return np.where(g < 0, g + size, np.where(g >= size, g - size, g))
    if mode == "reflect":
        return np.where(g < 0, -g, np.where(g >= size, 2 * (size - 1) - g, g))
    if mode == "replicate":
        return np.clip(g, 0, size - 1)
    return g


def _local(axis: Axis, g: np.ndarray) -> np.ndarray:
    """Global input coordinate -> position in the input window (-1 if not in the window)."""
    in0 = (g >= axis.seg0_start) & (g < axis.seg0_start + axis.seg0_len)
    in1 = (g >= axis.seg1_start) & (g < axis.seg1_start + axis.seg1_len)
    return np.where(in0, g - axis.seg0_start,
                    np.where(in1, axis.seg0_len + g - axis.seg1_start, -1))


@dataclasses.dataclass(frozen=True)
class Descriptor:
    """What the pass sequencer hands the streamer: per dimension the first output (tile-local),
    the number of outputs and the source coordinate of the first; plus tap, chunk and flags."""

    axes: tuple[tuple[int, int, int], ...]     # (o_start, count, g_start) per dimension
    tap: int
    chunk: int
    init: bool
    zero: bool


def _phase_taps(job: Job, phase: tuple[int, ...]) -> list[tuple[int, ...]]:
    """The taps that reach outputs of ``phase`` (every tap when forward), in raster order."""
    ranges = []
    for axis, p in zip(job.axes, phase):
        ks = range(axis.kernel)
        if job.transposed:
            ks = [k for k in ks
                  if (axis.out_start + p + axis.pad_lo - k * axis.dilation) % axis.stride == 0]
        ranges.append(ks)
    return list(itertools.product(*ranges))


def phases(job: Job) -> list[tuple[int, int, int]]:
    """Output phases (offsets from the tile start, per dimension) that hold outputs."""
    if not job.transposed:
        return [(0, 0, 0)]
    return list(itertools.product(*(range(min(a.stride, a.out_len)) for a in job.axes)))


def _axis_range(job: Job, axis: Axis, phase: int, k: int, full: bool):
    """(o_start, count, g_start) of one dimension of a pass, in closed form."""
    if job.transposed:
        m_count = -(-(axis.out_len - phase) // axis.stride)
        c = (axis.out_start + phase + axis.pad_lo - k * axis.dilation) // axis.stride
        if full:
            return phase, m_count, c
        m_lo, m_hi = max(0, -c), min(m_count - 1, axis.in_size - 1 - c)
        return phase + m_lo * axis.stride, m_hi - m_lo + 1, c + m_lo
    g_first = axis.out_start * axis.stride + k * axis.dilation - axis.pad_lo
    if full or job.padding_mode != "zeros":
        return 0, axis.out_len, g_first
    lo = max(axis.out_start, -(-(axis.pad_lo - k * axis.dilation) // axis.stride))
    hi = min(axis.out_start + axis.out_len - 1,
             (axis.pad_lo + axis.in_size - 1 - k * axis.dilation) // axis.stride)
    return lo - axis.out_start, hi - lo + 1, lo * axis.stride + k * axis.dilation - axis.pad_lo


def candidates(job: Job) -> Iterator[Descriptor | None]:
    """Every pass the sequencer looks at, one per cycle when nothing stalls it: the emitted
    ones as descriptors, the others as ``None``.

    For each phase (a transposed layer's output phases; one for a forward layer), for each
    kernel tap in raster order, for each input chunk, one candidate pass over the phase's
    outputs; a tap that does not reach the phase (transposed only) is one candidate, not one
    per chunk, where :func:`~convhw.timing.skips_unreached_taps`. A candidate is emitted when
    its tap reaches the phase and the pass is not empty. The first emitted pass of each phase
    initialises the accumulator over the whole phase (zero operands where the source is not a
    real element) unless the job accumulates; with ``skip_borders`` the others visit only
    outputs whose source is a real element. If a phase ends without an emitted pass, its last
    candidate becomes one initialising pass of zero operands.
    """
    kernel = [a.kernel for a in job.axes]
    skip = job.skip_borders and (job.transposed or job.padding_mode == "zeros")
    # In FIR mode the array's rows cover the x taps: every output of a row is streamed.
    skip_axis = (skip, skip, skip and not job.fir_taps)
    taps = list(itertools.product(*(range(k) for k in kernel)))
    for phase in phases(job):
        emitted = False
        reach = set(_phase_taps(job, phase))
        for index, ks in enumerate(taps):
            # (A transposed layer with stride s reaches a phase with one tap in s per
            # dimension: DCGAN's 4x4 stride-2 layers with 64 input chunks looked at 768
            # candidates per phase for 256 passes.)
            chunks = (job.in_chunks if ks in reach or not skips_unreached_taps(job.config)
                      else 1)
            for chunk in range(chunks):
                last = index == len(taps) - 1 and chunk == chunks - 1
                init = not emitted and not job.accumulate
                desc = None
                if ks in reach:
                    axes = tuple(_axis_range(job, a, p, k, full=init or not s)
                                 for a, p, k, s in zip(job.axes, phase, ks, skip_axis))
                    if all(count > 0 for _, count, _ in axes):
                        desc = Descriptor(axes=axes, tap=index, chunk=chunk, init=init,
                                          zero=False)
                if desc is None and last and not emitted and not job.accumulate:
                    axes = tuple(_axis_range(job, a, p, 0, full=True)[:2] + (0,)
                                 for a, p in zip(job.axes, phase))
                    desc = Descriptor(axes=axes, tap=0, chunk=0, init=True, zero=True)
                emitted = emitted or desc is not None
                yield desc


def descriptors(job: Job) -> Iterator[Descriptor]:
    """The pass sequencer's output, in the order the hardware emits it (see
    :func:`candidates`)."""
    return (desc for desc in candidates(job) if desc is not None)


def fir_overlap(job: Job) -> int:
    """In FIR mode, the words each row of a pass shares with the next
    (:func:`convhw.timing.fir_shares_padding`): a row of outputs streams ``count + fir_taps -
    1`` words from ``g0 = out_start - pad_lo``; where its last ``n`` words lie past the input
    and the next row's first ``n`` before it (zeros padding), the next row begins ``n`` words
    early, on the same zero words, ``n = min(leading, trailing, fir_taps - 1)``. The same
    for every row and pass of the job (the x axis has one tap and is never skipped), and
    what the streamer derives from the job's registers. 0 in dense mode."""
    if (not job.fir_taps or job.transposed or job.padding_mode != "zeros"
            or job.axes[2].stride != 1 or not fir_shares_padding(job.config)):
        return 0   # (a polyphase FIR's phases begin and end at different inputs)
    x = job.axes[2]
    extra = job.fir_taps - 1
    g0 = x.out_start * x.stride - x.pad_lo
    leading = max(0, -g0)
    trailing = max(0, g0 + x.out_len + extra - x.in_size)
    return min(leading, trailing, extra)


def fir_joined(job: Job) -> bool:
    """Whether a FIR job streams its rows joined, without the x padding between them
    (:func:`convhw.timing.fir_shares_padding`): each row of outputs is the whole input row
    (``out_start`` 0, ``out_len == in_size``, zeros padding, stride 1), so the rows of a pass
    are one sequence of period ``W = in_size``; element ``g`` of a row carries the output
    ``g + pad_lo``, which past the row's end is the next row's output ``g + pad_lo - W``
    (the accumulator's row-major address wraps by itself); only the pass's first row has
    its ``pad_lo`` leading zero words and its last row its trailing ones. The PE of array row
    ``r`` drops the product of a sum whose output lies in another row than its word
    (a one-bit row tag beside each, :attr:`Pass.word_row` and :attr:`Pass.sum_row`):
    those are the padding's zeros of the unjoined form. A sum's ``fir_taps`` words span two
    rows at most: ``W >= fir_taps - 1``; and ``pad_lo <= fir_taps - 1``; the tile one output
    plane deep (z), so that the rows of a pass follow each other in the accumulator."""
    if (not job.fir_taps or job.transposed or job.padding_mode != "zeros"
            or not fir_shares_padding(job.config)):
        return False
    x, extra = job.axes[2], job.fir_taps - 1
    # (one output plane: the rows a pass streams are then consecutive rows of the
    # accumulator, whatever range of them it skips to)
    return (x.stride == 1 and x.out_start == 0 and x.out_len == x.in_size
            and x.pad_lo <= extra and x.in_size >= extra and job.axes[0].out_len == 1)


def fir_rows(job: Job) -> tuple[int, int]:
    """``(lead, cut)``: in FIR mode, the words every row of a pass but its first begins
    later and every row but its last ends earlier than a row of ``count + fir_taps - 1``
    words from ``pad_lo`` before its first output: ``(pad_lo, fir_taps - 1 - pad_lo)`` when
    the rows are joined (:func:`fir_joined`), else ``(0, fir_overlap(job))``."""
    if fir_joined(job):
        return job.axes[2].pad_lo, job.fir_taps - 1 - job.axes[2].pad_lo
    return 0, fir_overlap(job)


def pass_words(job: Job, desc: Descriptor) -> int:
    """The elements the streamer emits for ``desc``."""
    (_, nz, _), (_, ny, _), (_, nx, _) = desc.axes
    if not job.fir_taps:
        return nz * ny * nx
    lead, cut = fir_rows(job)
    rows = nz * ny
    return rows * (nx + job.fir_taps - 1) - (rows - 1) * (lead + cut)


def expand(job: Job, desc: Descriptor) -> Pass:
    """The streamer's output for one descriptor: raster over the pass's outputs (x fastest),
    input-buffer and accumulator addresses per cycle. In FIR mode every row of outputs is
    followed by ``fir_taps - 1`` more input words, whose sums are not outputs; every row but
    the pass's first begins and every row but its last ends early by :func:`fir_rows` (the
    padding it shares with the next row, or, joined, all of it), and each element carries
    its word's and its sum's row tags."""
    locals_, outs, writes = [], [], []
    for d, (axis, (o_start, count, g_start)) in enumerate(zip(job.axes, desc.axes)):
        extra = job.fir_taps - 1 if job.fir_taps and d == 2 else 0
        i = np.arange(count + extra)
        o = o_start + i * (axis.stride if job.transposed else 1)
        g = g_start + i * (1 if job.transposed else axis.stride)
        real = (g >= 0) & (g < axis.in_size)
        if not job.transposed and job.padding_mode != "zeros":
            g = _remap(g, axis.in_size, job.padding_mode)
            real = np.ones_like(real)
        if desc.zero:
            real = np.zeros_like(real)
        local = np.where(real, _local(axis, g), -1)
        if np.any(real & (local < 0)):
            raise ValueError(f"job input window {axis} misses source coordinates "
                             f"{np.unique(g[real & (local < 0)]).tolist()}")
        locals_.append(local)
        outs.append(o if extra and fir_joined(job) else np.where(i < count, o, 0))
        writes.append(i < count)
    pitch = (job.axes[1].window * job.axes[2].window, job.axes[2].window, 1)
    acc_pitch = (job.axes[1].out_len * job.axes[2].out_len, job.axes[2].out_len, 1)
    in_addr = np.zeros((1, 1, 1), dtype=np.int64)
    acc_addr = np.zeros((1, 1, 1), dtype=np.int64)
    valid = np.ones((1, 1, 1), dtype=bool)
    write = np.ones((1, 1, 1), dtype=bool)
    for d, (local, o, w) in enumerate(zip(locals_, outs, writes)):
        shape = [1, 1, 1]
        shape[d] = -1
        in_addr = in_addr + local.reshape(shape) * pitch[d]
        acc_addr = acc_addr + o.reshape(shape) * acc_pitch[d]
        valid = valid & (local.reshape(shape) >= 0)
        write = write & w.reshape(shape)
    in_addr = np.where(valid, in_addr * job.in_chunks + desc.chunk, -1)
    shape = in_addr.shape
    word_row = sum_row = None
    if job.fir_taps:
        lead, cut = fir_rows(job)
        # Every row but the pass's first begins `lead` words late, every row but its last
        # ends `cut` words early.
        keep = np.ones(shape, dtype=bool)
        keep[..., shape[2] - cut:] = False
        keep[-1, -1, shape[2] - cut:] = True
        keep[..., :lead] = False
        keep[0, 0, :lead] = True
        row = np.broadcast_to(np.arange(shape[0] * shape[1]).reshape(shape[:2] + (1,)), shape)
        if fir_joined(job):
            # an element past its row's outputs carries the next row's output, which the
            # pass's last row does not have
            past = np.broadcast_to(outs[2].reshape(1, 1, -1) >= job.axes[2].out_len, shape)
            write = np.where(past, row < row.max(), True)
            word_row, sum_row = row % 2, (row + past) % 2
        else:
            word_row = sum_row = row % 2
        in_addr, acc_addr, write = in_addr[keep], acc_addr[keep], write[keep]
        word_row, sum_row = word_row[keep], sum_row[keep]
    return Pass(tap=desc.tap, chunk=desc.chunk, init=desc.init, in_addr=in_addr.reshape(-1),
                acc_addr=acc_addr.reshape(-1),
                write=write.reshape(-1) if job.fir_taps else None,
                word_row=word_row, sum_row=sum_row)


def passes(job: Job) -> Iterator[Pass]:
    """The address generator's output, pass by pass: :func:`descriptors` expanded by
    :func:`expand`."""
    for desc in descriptors(job):
        yield expand(job, desc)


def execute(job: Job, input_words: np.ndarray, weight_words: np.ndarray,
            acc: np.ndarray | None = None) -> np.ndarray:
    """Run ``job`` on NumPy arrays the way the engine does: ``input_words`` is
    ``(input_words, rows)``, ``weight_words`` ``(weight_words, cols)``; returns the accumulator
    ``(acc_entries, cols)`` as int64 wrapped to ``acc_width`` bits. The operand of a real
    input element is the element less ``job.input_zero``; that of padding, a transposed
    layer's inserted zeros and a zero pass is 0."""
    rows, cols = job.config.rows, job.config.cols
    if acc is None:
        acc = np.zeros((job.acc_entries, cols), dtype=np.int64)
    words = np.concatenate([input_words.astype(np.int64) - job.input_zero,
                            np.zeros((1, rows), np.int64)])
    for p in passes(job):
        base = (p.tap * job.in_chunks + p.chunk) * rows
        weights = weight_words[base:base + rows].astype(np.int64)       # (rows, cols)
        operands = words[p.in_addr]                                      # -1 -> zero word
        if job.fir_taps:
            # Row r multiplies the word r cycles later, lane lanes[c] in column c. The rows
            # from fir_taps on hold no tap: they add nothing, whatever their words hold.
            lanes = operands[:, list(job.lanes)]                        # (cycles, cols)
            psum = np.zeros_like(lanes)
            for r in range(min(job.fir_taps, len(lanes))):   # a pass may be shorter
                n = len(lanes) - r
                same = (p.word_row[r:] == p.sum_row[:n])[:, None]
                psum[:n] += np.where(same, lanes[r:] * weights[r], 0)
            psum, acc_addr = psum[p.write], p.acc_addr[p.write]
        else:
            psum, acc_addr = operands @ weights, p.acc_addr
        if p.init:
            acc[acc_addr] = psum
        else:
            acc[acc_addr] += psum
    bits = job.config.acc_width
    return (acc + (1 << (bits - 1))) % (1 << bits) - (1 << (bits - 1))
