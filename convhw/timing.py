"""The engine's timing constants, as plain data: every latency the gateware is built with and
the cycle model (:mod:`convhw.compiler.cycles`) replays.

Each number is defined here once, as a function of an :class:`EngineConfig`; the gateware
components take their latencies from these functions (their ``latency_for`` and similar static
methods return them), and :func:`job_timing` collects the constants of the cycle model of a
job. The list engine's sizes and set-up times (its slots, queue depths, the loaders' and the job
checker's set-up, the output writer's) are here too; :func:`list_timing` collects them for the
cycle model of a list, and the gateware reads the sizes from here (or asserts the structural
counts it is built with). This module imports no Amaranth, so the compiler and the driver do
not either.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from .config import EngineConfig
from .descriptor import column_params

__all__ = ["ARBITER_DEPTH", "CHECKER_FACTORS", "CHECKER_PRODUCTS", "CHECK_PRODUCTS", "DIVISIONS",
           "FETCH_DEPTH", "LIST_SLOTS", "LOADER_MULTIPLIER_STAGES", "LOADER_PRODUCTS",
           "LOADER_QUEUE", "OUTPUT_STAGES", "FLOAT32_STAGES", "FLOAT32_REQUANTIZER_LATENCY",
           "output_stages", "output_credits", "PARAMS_QUEUE", "RANGE_QUEUE",
           "WISHBONE_READ_BUFFER", "WRITER_JOBS", "WRITER_RUNS", "JobTiming",
           "ListTimingConstants", "accumulator_host_read_latency",
           "accumulator_latency", "accumulator_lead", "array_input_stages", "array_latency",
           "check_cycles", "check_cycles_per_factor", "check_products", "checker_cycles",
           "divider_latency", "fir_kernel", "fir_read_kernel", "fir_shares_padding",
           "fir_takes_stride", "input_read_latency",
           "block_loader_start_cycles", "job_timing", "list_timing", "loader_start_cycles",
           "pe_latency", "sequencer_pipeline", "sequencer_setup", "streamer_job_setup",
           "streamer_latency", "weight_guard",
           "writer_setup_cycles"]


# -- the array -------------------------------------------------------------------------------

def pe_latency(config: EngineConfig) -> int:
    """Register stages of a processing element from its operand to its partial sum: operands
    (deep pipeline only), product, sum."""
    return 3 if config.deep_pipeline else 2


def array_input_stages(config: EngineConfig) -> int:
    """Register stages at the systolic array's input (deep pipeline only): they let every PE
    take its operand from a register, column 0's depthwise lane included."""
    return 1 if config.deep_pipeline else 0


def array_latency(config: EngineConfig) -> int:
    """Cycles from a word at the systolic array's input to its sums at the output: the input
    stage, the skew through ``rows`` and ``cols`` PEs, each with :func:`pe_latency` stages, and
    the de-skew."""
    return array_input_stages(config) + config.rows + config.cols + pe_latency(config) - 2


# -- around the array ------------------------------------------------------------------------

def input_read_latency(config: EngineConfig) -> int:
    """Cycles from the streamer's outputs to the word at the array's input: the input buffer's
    block RAM, and with the deep pipeline a register of its data."""
    return 2 if config.deep_pipeline else 1


def accumulator_latency(config: EngineConfig) -> int:
    """Cycles from a sum at the array's output to the end of its accumulator write: the adder,
    and with the deep pipeline a register of the new value."""
    return 2 if config.deep_pipeline else 1


def accumulator_lead(config: EngineConfig) -> int:
    """Cycles a sum's accumulator entry is known before the sum arrives, for its read: the
    block RAM's, and with the deep pipeline a register of the read data."""
    return 2 if config.deep_pipeline else 1


def accumulator_host_read_latency(config: EngineConfig) -> int:
    """Cycles from a host's accumulator address to the entry's data: the block RAM's, and with
    the deep pipeline a register of its data (the one the read-add-write uses)."""
    return 2 if config.deep_pipeline else 1


def streamer_latency(config: EngineConfig) -> int:
    """Register stages between the streamer's counters and its outputs: with the deep pipeline
    compare, remap, look-up, three multiply-adds; without it the look-up and the outputs."""
    return 6 if config.deep_pipeline else 2


def weight_guard(config: EngineConfig) -> int:
    """Cycles a weight bank stays closed after the cycle following its pass's last word
    entered the array. PE ``(r, c)`` takes that word's lane ``r`` ``r + c`` cycles after
    row 0 of column 0 does, and the loader writes the bank row by row, row ``r`` ``r`` cycles
    after row 0 (:class:`~convhw.gateware.weight_loader.WeightLoader`): so only the columns'
    delay binds, not the rows'. The bound is the same with and without the deep pipeline
    (measured: its extra stages before the PEs and the loader's word register offset each
    other). Tight: one cycle less corrupts the sums of short passes
    (``tests/test_list_cycles.py::test_weight_guard_is_tight``, both pipelines, 4 and 8
    rows)."""
    return max(0, config.cols - 4)


def weight_offer(config: EngineConfig, *, fir: bool) -> int:
    """Cycles from the cycle a weight load begins to the first in which the loader offers its
    pass to the streamer, for the passes loaded before they are offered: ``rows + 1``, once
    every row is written. That is every FIR (depthwise) pass, whose rows all take the pass's
    first word in the same cycle, and every pass without the deep pipeline. 0 for a dense pass
    with the deep pipeline: it is offered before its load begins, by the rule of
    :func:`weight_take_spacing`."""
    return 0 if config.deep_pipeline and not fir else config.rows + 1


def weight_take_lead(config: EngineConfig) -> int:
    """With the deep pipeline, the most cycles by which a dense pass's weight load may begin
    after the streamer took the pass: row ``r`` is written ``r + 3`` cycles after the load
    begins, and the pass's first word reaches row ``r`` :func:`streamer_latency` ``+``
    :func:`input_read_latency` ``+`` :func:`array_input_stages` ``+ r`` cycles after the take;
    the write may come as late as that cycle, not later (measured: with the lead one more,
    through :func:`weight_take_spacing`, short passes go wrong)."""
    return streamer_latency(config) + input_read_latency(config) + array_input_stages(config) - 3


def weight_take_spacing(config: EngineConfig) -> int:
    """With the deep pipeline, the fewest cycles between the streamer's takes of two dense
    passes; 0 without it (the loads precede the offers, :func:`weight_offer`).

    A dense pass is taken first and loaded after, so that its load overlaps the streaming of
    the passes before it, and it must begin within :func:`weight_take_lead` cycles. Two
    things could hold it back, and the spacing rules both out:

    * the loader, busy ``rows`` cycles per dense load (one row a cycle, the next load's first
      row in the cycle after the last);
    * the bank, the one the pass before the previous used, which is free
      :func:`weight_guard` ``+ 1`` cycles after that pass's last word entered the array,
      :func:`streamer_latency` ``+`` :func:`input_read_latency` cycles after it left the
      streamer's counters, no later than the previous take: ``guard + 3`` cycles
      (``streamer + read + 1 + guard - lead``);
    * the pass before, which the loader holds (one) from its take until its load begins, at
      most ``lead`` cycles.

    So short passes follow each other every ``max(rows, guard + 3, lead)`` cycles (8 on the
    8x8 array), where loading before offering took the array's whole input latency and the guard
    for every two passes (DCGAN's 512->256 layer, passes of 9-16 elements: 14-16 cycles
    each). Tight: ``tests/test_list_cycles.py::test_take_spacing_is_tight``."""
    if not config.deep_pipeline:
        return 0
    lead = weight_take_lead(config)
    bank = streamer_latency(config) + input_read_latency(config) + 1 + weight_guard(config)
    return max(config.rows, bank - lead, lead)


def fir_shares_padding(config: EngineConfig) -> bool:
    """Whether, in FIR (depthwise) mode, the rows of a pass share their x padding: each row of
    outputs is followed by ``fir_taps - 1`` more input words (the sums of its last outputs
    still run down the array's rows), and where the row's last words and the next row's
    first are both zero padding (zeros mode), ``min(leading, trailing, fir_taps - 1)`` of
    them serve both rows and are streamed once; the pass's last row keeps its whole tail
    (:func:`convhw.compiler.job.fir_overlap`). Where each row of outputs is a whole input
    row (same padding, one output plane), the rows are joined without any padding between
    them (:func:`convhw.compiler.job.fir_joined`), and a row tag beside each word and sum
    lets the array's PEs drop the products across a row's end. A 7x7 depthwise layer on a
    7x7 map then streams 7 words per row of outputs instead of 13 (10 with shared padding).
    With the deep pipeline only: the ``up5k`` preset's UP5K has no logic cells for the
    streamer's row lengths or the array's tags."""
    return config.deep_pipeline


def fir_takes_stride(config: EngineConfig) -> bool:
    """Whether the FIR (depthwise) mode takes an x stride ``s`` above 1, with zeros padding:
    the x axis then has ``P = min(s, kernel_x)`` taps of its own, its phases, each streaming
    the inputs ``s*m + j - pad_lo`` (the stride's own source step), and the array's rows hold
    the phase's kernel taps ``j, j + s, j + 2s, ...`` (``FIR_TAPS = ceil(kernel_x / s)``): a
    polyphase FIR. The job checker takes ``x kernel <= x stride`` for it instead of both 1.
    A 3x3 stride-2 depthwise layer then keeps 3 rows of 8 busy for 2 of every 2 + 2/W
    cycles, where one PE per column did for 3 (MobileNetV2's strided depthwise layers:
    0.12 -> 0.18 of the array's peak). With the deep pipeline only (the checker's compare;
    the ``up5k`` preset's UP5K has no logic cells to spare)."""
    return config.deep_pipeline


def fir_kernel(kernel: int, stride: int) -> tuple[int, int]:
    """The FIR mode's ``(x kernel, FIR_TAPS)`` for an x kernel and stride: ``(1, kernel)``
    unstrided; ``(min(stride, kernel), ceil(kernel / stride))`` with
    :func:`fir_takes_stride`."""
    return min(stride, kernel), -(-kernel // stride)


def fir_read_kernel(kernel: int, stride: int) -> int:
    """The x kernel that reads what a (polyphase) FIR job streams: each row of outputs reads
    ``FIR_TAPS - 1`` input steps past its last output in every phase, so ``stride * (FIR_TAPS
    - 1) + phases`` inputs from an output's first: the kernel itself unstrided, one more
    for 3 taps at stride 2 (a tap past the kernel, multiplied by a zero weight, whose input
    the window must hold all the same)."""
    phases, taps = min(stride, kernel), -(-kernel // stride)
    return stride * (taps - 1) + phases


def streamer_job_setup(config: EngineConfig) -> int:
    """Cycles the streamer needs the job's registers before it takes the job's first pass:
    it derives job constants from them through registers of its own, and the FIR overlap
    (:func:`fir_shares_padding`) through six in a row, one add or compare each. The pass
    sequencer's set-up (:func:`sequencer_setup`) is longer."""
    return 6 if fir_shares_padding(config) else 1


# -- the pass sequencer ----------------------------------------------------------------------

def skips_unreached_taps(config: EngineConfig) -> bool:
    """Whether the pass sequencer looks at a tap that does not reach a transposed layer's
    output phase once, rather than once per input chunk. With stride ``s`` a phase is reached
    by one tap in ``s`` per dimension, so a 4x4 stride-2 layer with 64 input chunks otherwise
    looks at 768 candidates per phase for 256 passes, and the candidates between two reaching
    taps stall the streamer (DCGAN's 512->256 layer: 0.760 -> 0.850 of the array's peak).
    With the deep pipeline only: it keeps a flag beside each remainder and a second weight
    step (``in_chunks * rows``), some twenty flip-flops and a multiplexer, and the ``up5k``
    preset's UP5K has no logic cells to spare."""
    return config.deep_pipeline


#: Divisions by the stride per dimension at the start of a job.
DIVISIONS = 3


def divider_latency(width: int, divisor: int, shifts: bool = False) -> int:
    """Cycles from a division's start to its result, for a ``width``-bit dividend: one to latch
    the operands and, unless the divisor is 1 (or, with ``shifts``, a power of two), one per
    quotient bit."""
    power = divisor > 0 and divisor & (divisor - 1) == 0
    return 1 if divisor == 1 or shifts and power else width + 1


def divider_shifts(config: EngineConfig) -> bool:
    """Whether the sequencer's divider divides by a power of two in one cycle
    (:class:`~convhw.gateware.divider.Divider` ``shifts``): with the deep pipeline. A job with
    a stride of 2 along a dimension then sets up in 9 cycles there instead of 54 (DCGAN's
    512->256 layer runs 256 jobs, strided in y and x). The ``up5k`` preset's UP5K has no logic
    cells for the shifter."""
    return config.deep_pipeline


def sequencer_pipeline(config: EngineConfig) -> int:
    """Register stages from the sequencer's stepped candidate to its ``passes`` output: the
    evaluation's (with the deep pipeline two with border skipping, one without) and the output
    register."""
    if not config.deep_pipeline:
        return 1
    return 3 if config.border_skipping else 2


def sequencer_setup(config: EngineConfig, strides: Iterable[int]) -> int:
    """Cycles from the sequencer's start to its first candidate's decision on ``passes`` for a
    job with ``strides`` (z, y, x): per division the divider's latency (the first is issued
    with the start, each next one in the cycle the last is done); one cycle to start; and
    :func:`sequencer_pipeline`."""
    return 1 + sum(DIVISIONS * divider_latency(config.coord_width + 1, stride,
                                               divider_shifts(config))
                   for stride in strides) + sequencer_pipeline(config)


# -- the job controller ----------------------------------------------------------------------

#: The products the controller's checks compare with their limits, factor by factor; a factor
#: is ``(dimension, field)`` (dimension None: a job field). The tile's outputs (``out_len``),
#: the window's input words (``window`` = seg0_len + seg1_len, ``in_chunks``) and the weight
#: words per array row (``kernel``, ``in_chunks``) against the buffers; then, per dimension,
#: a forward tile's last output times the stride (``out_end`` = out_start + out_len - 1)
#: against ``2**coord_width``, which bounds every source coordinate the address generator
#: makes to its signed width (``EngineConfig.signed_coord_width``): past it they would wrap
#: onto real input elements.
CHECK_PRODUCTS = (((0, "out_len"), (1, "out_len"), (2, "out_len")),
                  ((0, "window"), (1, "window"), (2, "window"), (None, "in_chunks")),
                  ((0, "kernel"), (1, "kernel"), (2, "kernel"), (None, "in_chunks")),
                  ((0, "out_end"), (0, "stride")),
                  ((1, "out_end"), (1, "stride")),
                  ((2, "out_end"), (2, "stride")))


def check_products(config: EngineConfig) -> tuple:
    """The products the host-fed controller checks: :data:`CHECK_PRODUCTS`, without the
    source range's unless ``config.source_range_check`` is ``"products"`` (a table decides it
    in no cycles of its own, or nothing does)."""
    return CHECK_PRODUCTS if config.source_range_check == "products" else CHECK_PRODUCTS[:3]


def check_cycles_per_factor(config: EngineConfig) -> int:
    """Cycles per factor of the checks: two with the deep pipeline, which registers each
    product before saturating it."""
    return 2 if config.deep_pipeline else 1


def check_cycles(config: EngineConfig, *, checked: bool = False) -> int:
    """Cycles the controller spends checking the registers after START: per factor
    :func:`check_cycles_per_factor`, and three to compare the last product and decide: that
    comparison and the error code go through registers of their own, so that no comparator
    is in the path to the datapath's start.

    ``checked``: the controller of the list engine's datapath, whose jobs the job checker has
    checked already (against the banks, stricter): it checks nothing and starts the datapath
    in the first cycle (the second with the deep pipeline, from a register)."""
    if checked:
        return 2 if config.deep_pipeline else 1
    factors = sum(len(product) for product in check_products(config))
    return factors * check_cycles_per_factor(config) + 3


# -- the cycle model's constants -------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class JobTiming:
    """The constants of :func:`convhw.compiler.cycles.job_cycles` (see its module
    documentation)."""

    check: int
    setup: int
    setup_unit_stride: int
    setup_stride: int
    setup_shift_stride: int
    rows: int
    guard: int
    offer: int
    offer_fir: int
    spacing: int
    streamer_latency: int
    read: int
    drain: int


def job_timing(config: EngineConfig, *, banked: bool = False) -> JobTiming:
    """The cycle model's constants for the engine built for ``config``: the host-fed engine's,
    or with ``banked`` the list engine's datapath's (whose controller checks nothing,
    :func:`check_cycles`)."""
    if not isinstance(config, EngineConfig):
        raise TypeError(f"config must be an EngineConfig, not {config!r}")
    setup = sequencer_setup(config, ())
    return JobTiming(
        check=check_cycles(config, checked=banked),
        # the sequencer's set-up: a fixed part and one per dimension, which depends on whether
        # its stride is 1
        setup=setup,
        setup_unit_stride=sequencer_setup(config, (1,)) - setup,
        setup_stride=sequencer_setup(config, (3,)) - setup,
        # a power of two (the divider shifts, divider_shifts)
        setup_shift_stride=sequencer_setup(config, (2,)) - setup,
        rows=config.rows,
        guard=weight_guard(config),
        offer=weight_offer(config, fir=False),
        offer_fir=weight_offer(config, fir=True),
        spacing=weight_take_spacing(config),
        streamer_latency=streamer_latency(config),
        read=input_read_latency(config),
        # input-buffer read + array + accumulator read-add-write
        drain=(input_read_latency(config) + array_latency(config)
               + accumulator_latency(config)),
    )


# -- the list engine -------------------------------------------------------------------------

#: Jobs in flight in :class:`~convhw.gateware.list_engine.ListEngine` (its ``slots``).
LIST_SLOTS = 4
#: Descriptors the fetcher keeps in flight or waiting.
FETCH_DEPTH = 2
#: Read commands in flight at most (the read arbiter's tag queue).
ARBITER_DEPTH = 16
#: An input loader's run queue (its ``queue_depth``: the window and weight loaders' default,
#: the parameter loader's), and its range queue.
LOADER_QUEUE = 32
PARAMS_QUEUE = 4
RANGE_QUEUE = 4
#: An input loader's walker: its products, one per cycle on a multiplier of this many stages.
LOADER_PRODUCTS = 9
LOADER_MULTIPLIER_STAGES = 3
#: The job checker's factors: those of :data:`CHECK_PRODUCTS`, and ``rows`` (the weight
#: words of the kernel's product), in as many products.
CHECKER_FACTORS = sum(len(product) for product in CHECK_PRODUCTS) + 1
CHECKER_PRODUCTS = len(CHECK_PRODUCTS)
#: The output writer: stages of its output pipeline (a buffer of :func:`output_credits` groups
#: follows, then the packer's skid buffer; with ``float_output`` more stages:
#: :func:`output_stages`), its run queues and its job queue.
OUTPUT_STAGES = 6
#: Register stages inside each float32 operation of the float32 requantiser
#: (:mod:`convhw.gateware.float32`), and its latency: each operation's stages and a register
#: after each of the four.
FLOAT32_STAGES = {"int_to_float": 3, "float_add": 4, "float_multiply": 6, "round_to_int": 3}
FLOAT32_REQUANTIZER_LATENCY = sum(FLOAT32_STAGES.values()) + 4
WRITER_RUNS = 16
WRITER_JOBS = 4
#: The Wishbone master's read-answer FIFO: the most read beats it has in flight (its
#: ``read_buffer``, as the list engine builds it).
WISHBONE_READ_BUFFER = 16


def output_stages(config: EngineConfig) -> int:
    """Stages of the output pipeline: :data:`OUTPUT_STAGES`, or with ``float_output`` the bias
    add and the float32 requantiser behind it (the integer path's results wait beside it)."""
    if config.float_output:
        return 1 + FLOAT32_REQUANTIZER_LATENCY
    return OUTPUT_STAGES


def output_credits(config: EngineConfig) -> int:
    """Groups the output pipeline holds at most, in its stages and its buffer: the stages and
    two, the fewest with which a group can enter in every cycle (a group counts from the cycle
    after it enters to the one in which it leaves the buffer, ``stages + 1`` cycles, and the
    pipeline takes one only while it counts fewer than this)."""
    return output_stages(config) + 2


def loader_start_cycles() -> int:
    """Cycles from an input loader taking a command (in IDLE) to its walker's first range:
    the products (the last one's result written ``LOADER_MULTIPLIER_STAGES`` cycles after it
    is issued), then the START, PLANE and ROW states."""
    return 1 + (LOADER_PRODUCTS - 1) + LOADER_MULTIPLIER_STAGES + 4


def block_loader_start_cycles() -> int:
    """Cycles from a block loader (an input loader with ``windowed=False``: the weights, the
    column parameters) taking a command (in IDLE) to its walker's range: it is emitted from
    RANGE, the next state."""
    return 1


def checker_cycles() -> int:
    """Cycles from the job checker taking an entry to offering it checked: LOAD, then per
    factor MULTIPLY, PRODUCT (not for a product's first factor) and NEXT, then FLAGS and
    CODE."""
    return 1 + 1 + 3 * CHECKER_FACTORS - CHECKER_PRODUCTS + 2


def writer_setup_cycles(config: EngineConfig) -> int:
    """Cycles from the output writer taking a command to its setup holding the result:
    ``coord_width`` shift-and-add steps, SUM and FINAL."""
    return config.coord_width + 3


@dataclasses.dataclass(frozen=True)
class ListTimingConstants:
    """The constants of :func:`convhw.compiler.cycles.list_cycles`."""

    beat_bytes: int
    cols: int
    raw_bytes: int
    input_word: int
    weight_word: int
    params_word: int
    descriptor_beats: int
    slots: int
    fetch_depth: int
    arbiter_depth: int
    loader_queue: int
    params_queue: int
    range_queue: int
    loader_start: int
    block_loader_start: int
    checker: int
    acc_read_latency: int
    output_stages: int
    output_credits: int
    writer_runs: int
    writer_jobs: int
    writer_setup: int
    read_buffer: int
    #: Cycles a job's last sums take to reach the accumulator after its pipeline is idle
    #: (:attr:`JobTiming.drain`): the list engine's next job runs meanwhile.
    job_drain: int


def list_timing(config: EngineConfig) -> ListTimingConstants:
    """The list engine's constants for ``config``."""
    if not isinstance(config, EngineConfig):
        raise TypeError(f"config must be an EngineConfig, not {config!r}")
    return ListTimingConstants(
        beat_bytes=config.beat_bytes,
        cols=config.cols,
        raw_bytes=config.raw_bytes,
        input_word=config.rows * config.input_bytes,
        weight_word=config.cols * config.weight_bytes,
        params_word=column_params(config).size,
        descriptor_beats=128 // config.beat_bytes,
        slots=LIST_SLOTS,
        fetch_depth=FETCH_DEPTH,
        arbiter_depth=ARBITER_DEPTH,
        loader_queue=LOADER_QUEUE,
        params_queue=PARAMS_QUEUE,
        range_queue=RANGE_QUEUE,
        loader_start=loader_start_cycles(),
        block_loader_start=block_loader_start_cycles(),
        checker=checker_cycles(),
        acc_read_latency=accumulator_host_read_latency(config),
        output_stages=output_stages(config),
        output_credits=output_credits(config),
        writer_runs=WRITER_RUNS,
        writer_jobs=WRITER_JOBS,
        writer_setup=writer_setup_cycles(config),
        read_buffer=WISHBONE_READ_BUFFER,
        job_drain=job_timing(config, banked=True).drain,
    )
