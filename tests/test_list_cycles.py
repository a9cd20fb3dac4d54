# amaranth: UnusedElaboratable=no
# (OutputPipeline instances built only to read their latency are never elaborated.)
"""``list_cycles``: the cycle model of a whole descriptor list against the list engine's CYCLES
register in the Amaranth simulator (AXI4 and Wishbone masters), on a memory that follows a
:class:`MemoryModel`; with random stalls the results stay bit-exact and the model is a lower
bound."""

import dataclasses
import inspect

import numpy as np
import pytest

from convhw import timing
from convhw.compiler.cycles import ListTiming, job_cycles, list_cycles
from convhw.compiler.image import Layer, build, plan, reference
from convhw.compiler.list_model import run_list
from convhw.compiler.list_sim import window_ranges
from convhw.config import EngineConfig
from convhw.descriptor import JOB_DESCRIPTOR
from convhw.gateware.descriptor_fetcher import DescriptorFetcher
from convhw.gateware.input_loader import InputLoader
from convhw.gateware.list_engine import ListEngine
from convhw.gateware.output_pipeline import OutputPipeline
from convhw.gateware.window_walker import MULTIPLIER_STAGES
from convhw.gateware.wishbone_master import WishboneMaster
from convhw.memory_model import MemoryModel, Stalls
from convhw.spec import ConvSpec

from .helpers import tiered
from .test_gateware_list_engine import TINY, network, outputs, run_engine


def single(spec, shape, seed=5):
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, shape)
    layer = Layer(spec, rng.integers(-128, 128, spec.weight_shape),
                  rng.integers(-300, 300, spec.out_channels))
    return x, [layer]


def case(name):
    """``(x, layers)`` of a small list: int8 results chained into a second layer, or one layer
    with raw 32-bit results."""
    if name == "chained":
        return network(1, TINY)
    return {
        "strided": lambda: single(ConvSpec(2, 4, 8, 3, stride=2, padding=1), (1, 4, 7, 7)),
        # a 3x3 output: passes of 4 to 9 elements, the border taps' short after longer ones
        "strided-small": lambda: single(ConvSpec(2, 4, 8, 3, stride=2, padding=1),
                                        (1, 4, 5, 5)),
        # joined FIR rows (compiler.job.fir_joined)
        "depthwise": lambda: single(ConvSpec(2, 4, 4, 3, padding=1, groups=4), (1, 4, 6, 6)),
        # a polyphase FIR (timing.fir_takes_stride), a depth multiplier of 2
        "depthwise-strided": lambda: single(ConvSpec(2, 4, 8, 3, stride=2, padding=1,
                                                     groups=4), (1, 4, 7, 9)),
        # 2-D, and 3 input chunks on TINY's 4 rows: each phase's unreached taps are looked
        # at once, not per chunk (timing.skips_unreached_taps)
        "transposed": lambda: single(ConvSpec(2, 10, 6, 4, stride=2, padding=1,
                                              transposed=True), (1, 10, 3, 4)),
        # 8 channels: a pixel fills its beat, so a window row is one contiguous range
        "contiguous": lambda: single(ConvSpec(2, 8, 4, 3, padding=1), (1, 8, 5, 6)),
        # 4 raw 32-bit results fill an output pixel: a tile row is one contiguous run
        "rows": lambda: single(ConvSpec(2, 4, 4, 3, padding=1), (1, 4, 5, 5)),
        # a 1x1 kernel with stride 2: windows of every other pixel, one range per pixel
        "pointwise-strided": lambda: single(ConvSpec(2, 8, 4, 1, stride=2), (1, 8, 7, 6)),
    }[name]()


MEMORIES = [MemoryModel(8, 20), MemoryModel(2, 20), MemoryModel(8, 1)]


def check_exact(name, memory, config=TINY, **kwargs):
    """CYCLES equals the model, and the results are the golden ones."""
    x, layers = case(name)
    placed = plan(config, x, layers, **kwargs)
    expected = list_cycles(placed, config, memory)
    got, result = run_engine(config, placed, model=memory)
    assert result["status"] & 0b110 == 0b010, result
    assert result["error"] == 0 and result["irq"] == 1
    assert result["cycles"] == expected.cycles, memory
    assert result["busy_cycles"] == expected.busy_cycles, memory
    for index, (have, want) in enumerate(zip(outputs(got, placed), reference(x, layers))):
        assert np.array_equal(have, want), f"layer {index}"
    return placed


# Each list on each memory; `make test` runs a few (the chained list, whose second layer WAITs,
# and a depthwise one on different memories), the rest is marked slow (`make check`; the
# polyphase list on one memory, its others exhaustive).
FAST_CASES = {("chained", 2), ("depthwise", 1), ("pointwise-strided", 0), ("transposed", 0)}


@pytest.mark.parametrize("name, memory", [
    pytest.param(name, memory, id=f"{name}-{memory.bytes_per_cycle}B-{memory.latency}",
                 marks=() if (name, i) in FAST_CASES
                 else pytest.mark.exhaustive if name == "depthwise-strided" and i != 2
                 else pytest.mark.slow)
    for name in ("chained", "strided", "depthwise", "depthwise-strided", "transposed",
                 "pointwise-strided")
    for i, memory in enumerate(MEMORIES)])
def test_sim_cycles_exact(name, memory):
    # (the chained list on the fastest memory needs its second layer's WAIT to be bit-exact)
    check_exact(name, memory)


def crosses(start, size):
    return start // 4096 != (start + size - 1) // 4096


@pytest.mark.slow
@pytest.mark.parametrize("name, base", [("contiguous", 0xFC0), ("rows", 0xEC0)])
def test_sim_cycles_exact_across_4k_pages(name, base):
    # "contiguous": the input starts 64 bytes below a 4 KiB boundary, window rows are split
    # there; "rows": the output does, the output writer splits tile rows.
    placed = check_exact(name, MemoryModel(4, 9), base=base)
    descriptors = [JOB_DESCRIPTOR.decode(JOB_DESCRIPTOR.encode(d))
                   for d in placed.builder.descriptors()]
    if name == "contiguous":
        assert any(crosses(r.addr, r.size) for d in descriptors
                   for r in window_ranges(d, TINY.rows * TINY.input_bytes))
    else:
        assert any(crosses(d["OUTPUT_ADDR"] + y * d["OUTPUT_ROW_PITCH"],
                           d["X_OUT_LEN"] * d["OUTPUT_PIXEL_PITCH"])
                   for d in descriptors for y in range(d["Y_OUT_LEN"]))


@pytest.mark.parametrize("memory", tiered([MemoryModel(8, 20), MemoryModel(16, 4)], fast=1),
                         ids=["8B-20", "16B-4"])
def test_sim_cycles_exact_other_config(memory):
    # 32-bit bus (4-byte beats: a read and a write beat per cycle at 8 B/cycle), 8 columns,
    # no deep pipeline (one-cycle accumulator reads).
    config = EngineConfig(rows=4, cols=8, input_depth=256, weight_depth=512, acc_depth=64,
                          memory_width=32, deep_pipeline=False)
    check_exact("strided", memory, config)


# -- the Wishbone master ---------------------------------------------------------------------------

WISHBONE = dataclasses.replace(TINY, bus="wishbone")
#: Every bandwidth with every latency; 40 cycles keep more read beats in flight than the
#: master's read-answer FIFO holds.
WB_MEMORIES = [MemoryModel(b, lat) for b in (1, 2, 8, 64) for lat in (1, 5, 20)] \
    + [MemoryModel(8, 40)]
#: `make test` runs these few; `make check` also each list on each bandwidth (latencies taken
#: in turn) and on the 40-cycle memory; the rest of the cross product is marked exhaustive
#: (`pytest -m exhaustive`: 30 more cases).
WB_FAST = {("depthwise", 8, 1)}
WB_LISTS = ("strided", "depthwise", "transposed", "chained")


def _wishbone_tier(name, memory):
    if (name, memory.bytes_per_cycle, memory.latency) in WB_FAST:
        return ()
    bandwidths, latencies = (1, 2, 8, 64), (1, 5, 20)
    if memory.latency == 40 or memory.latency == latencies[
            (WB_LISTS.index(name) + bandwidths.index(memory.bytes_per_cycle)) % 3]:
        return pytest.mark.slow
    return pytest.mark.exhaustive


@pytest.mark.parametrize("name, memory", [
    pytest.param(name, memory, id=f"{name}-{memory.bytes_per_cycle}B-{memory.latency}",
                 marks=_wishbone_tier(name, memory))
    for name in WB_LISTS
    for memory in WB_MEMORIES])
def test_sim_cycles_exact_wishbone(name, memory):
    # One bus cycle per command: a chained list with WAIT, strided, depthwise and transposed
    # layers on every memory.
    check_exact(name, memory, WISHBONE)


@pytest.mark.slow
@pytest.mark.parametrize("name, base", [("contiguous", 0xFC0), ("rows", 0xEC0)])
def test_sim_cycles_exact_wishbone_across_4k_pages(name, base):
    check_exact(name, MemoryModel(4, 9), WISHBONE, base=base)


@pytest.mark.slow
@pytest.mark.parametrize("memory", [MemoryModel(8, 20), MemoryModel(16, 4)],
                         ids=["8B-20", "16B-4"])
def test_sim_cycles_exact_wishbone_other_config(memory):
    config = EngineConfig(rows=4, cols=8, input_depth=256, weight_depth=512, acc_depth=64,
                          memory_width=32, deep_pipeline=False, bus="wishbone")
    check_exact("strided", memory, config)


def test_wishbone_is_slower_than_axi4():
    # Commands one at a time, each a bus cycle waiting for its answers: with a long latency
    # the Wishbone engine takes longer than the AXI4 one, with one it is close.
    x, layers = case("strided")
    placed = plan(TINY, x, layers)
    for memory, factor in ((MemoryModel(8, 20), 2), (MemoryModel(8, 1), 1)):
        axi = list_cycles(placed, TINY, memory)
        wb = list_cycles(placed, WISHBONE, memory)
        assert wb.cycles >= factor * axi.cycles
        assert (wb.bytes_read, wb.bytes_written) == (axi.bytes_read, axi.bytes_written)


@pytest.mark.parametrize("seed", tiered([1, 2], fast=1))
def test_sim_stalls_bit_exact_and_slower(seed):
    name = ["strided", "chained"][seed - 1]
    x, layers = case(name)
    placed = plan(TINY, x, layers)
    memory = MemoryModel(8, 20, stalls=Stalls(0.2, seed))
    bound = list_cycles(placed, TINY, MemoryModel(8, 20))
    got, result = run_engine(TINY, placed, model=memory)
    print(f"seed {seed}: {result['cycles']} cycles, model without stalls {bound.cycles}")
    assert result["status"] & 0b110 == 0b010, result
    assert result["cycles"] >= bound.cycles
    for index, (have, want) in enumerate(zip(outputs(got, placed), reference(x, layers))):
        assert np.array_equal(have, want), f"layer {index}"


# -- the model alone ------------------------------------------------------------------------------

def test_list_cycles_fields():
    x, layers = case("chained")
    placed = plan(TINY, x, layers)
    result = list_cycles(placed, TINY)
    assert isinstance(result, ListTiming)
    descriptors = placed.builder.descriptors()
    assert len(result.compute_cycles) == len(result.compute_starts) == len(descriptors)
    assert list(result.compute_starts) == sorted(result.compute_starts)
    # each job's datapath: job_cycles; jobs one after another, each after the previous one's
    # pipeline is idle (its last sums, job_drain cycles of them, may still be on their way)
    drain = timing.list_timing(TINY).job_drain
    assert drain > 0
    overlapped = 0
    for start, after, cycles in zip(result.compute_starts, result.compute_starts[1:],
                                    result.compute_cycles):
        assert after >= start + cycles - drain + 2
        overlapped += after < start + cycles
    assert overlapped
    assert result.compute_starts[-1] + result.compute_cycles[-1] < result.cycles
    # the builder and the plan give the same figure
    assert list_cycles(placed.builder, TINY) == result
    # bytes: at least what the list model moves (the bus moves whole beats, and descriptors
    # fetched ahead)
    image = build(TINY, x, layers)
    run_list(image.memory, image.list_address, TINY)
    traffic = image.memory.traffic
    assert result.bytes_written >= traffic.output > 0
    assert result.bytes_read >= traffic.total - traffic.output
    assert result.bytes_moved == result.bytes_read + result.bytes_written


def test_list_cycles_slower_memory_takes_longer():
    x, layers = case("strided")
    placed = plan(TINY, x, layers)
    fast, slow, late = (list_cycles(placed, TINY, MemoryModel(*m)).cycles
                        for m in ((8, 1), (1, 1), (8, 200)))
    assert slow > fast and late > fast


def test_list_cycles_job_cycles():
    x, layers = case("depthwise")
    placed = plan(TINY, x, layers)
    from convhw.compiler.list_model import _check
    result = list_cycles(placed, TINY)
    # the list engine's datapath: its controller does not check the job again
    banked = timing.job_timing(TINY, banked=True)
    assert banked.check < timing.job_timing(TINY).check
    assert result.compute_cycles == tuple(job_cycles(_check(TINY, d), banked)
                                          for d in placed.builder.descriptors())


def test_list_cycles_wrong():
    x, layers = case("strided")
    placed = plan(TINY, x, layers)
    with pytest.raises(TypeError, match=r"^memory must be a MemoryModel, not 3$"):
        list_cycles(placed, TINY, 3)
    with pytest.raises(ValueError, match=r"^memory must have no stalls"):
        list_cycles(placed, TINY, MemoryModel(stalls=0.1))
    # (Wishbone, the other bus an EngineConfig may have, is modelled too)
    assert list_cycles(placed, WISHBONE).cycles > list_cycles(placed, TINY).cycles
    descriptors = placed.builder.descriptors()
    descriptors[-1]["LAST"] = 0
    with pytest.raises(ValueError, match=r"^the list must end with a descriptor with LAST$"):
        list_cycles(descriptors, TINY)


def test_constants_are_the_gateware_s():
    # The structural numbers the model replays are the ones the gateware is built with.
    # (the pipelines' latencies are measured against these in test_gateware_output_pipeline)
    assert OutputPipeline(TINY).latency == 7
    assert OutputPipeline(EngineConfig.preset("quantized")).latency == 22
    assert MULTIPLIER_STAGES == timing.LOADER_MULTIPLIER_STAGES
    for component, name, value in ((InputLoader, "queue_depth", timing.LOADER_QUEUE),
                                   (DescriptorFetcher, "depth", timing.FETCH_DEPTH),
                                   (ListEngine, "slots", timing.LIST_SLOTS)):
        assert inspect.signature(component).parameters[name].default == value
    assert timing.checker_cycles() == 52
    assert timing.loader_start_cycles() == 16
    assert timing.list_timing(TINY).writer_setup == TINY.coord_width + 3
    # the list engine builds its Wishbone master with the default read-answer FIFO
    assert (inspect.signature(WishboneMaster).parameters["read_buffer"].default
            == timing.WISHBONE_READ_BUFFER == timing.list_timing(TINY).read_buffer)


@pytest.mark.slow
def test_weight_slots_reused_across_tiles_exact():
    # 4 -> 32 channels: eight 36-word weight blocks do not fit the 256-word buffer, but each
    # 128-word bank holds three. Every other tile visits the chunks backwards and starts with
    # the six blocks the previous one ended with; on the engine the results stay bit-exact
    # and CYCLES equals the model.
    config = TINY
    x, layers = single(ConvSpec(2, 4, 32, 3, padding=1), (1, 4, 12, 8))
    placed = plan(config, x, layers)
    record = placed.records[0]
    descriptors = record.descriptors
    assert record.order == "tile-major" and len(descriptors) == 24
    assert [d["LOAD_WEIGHTS"] for d in descriptors] == ([1] * 8 + [0] * 6 + [1] * 2
                                                        + [0] * 6 + [1] * 2)
    chunks = [d["PARAMS_ADDR"] for d in descriptors]
    assert chunks[8:16] == chunks[:8][::-1] and chunks[16:] == chunks[:8]
    assert len({d["WEIGHT_BASE"] for d in descriptors}) == 6
    memory = MemoryModel(8, 20)
    got, result = run_engine(config, placed, model=memory)
    assert result["status"] & 0b110 == 0b010, result
    assert result["cycles"] == list_cycles(placed, config, memory).cycles
    (have,) = outputs(got, placed)
    (want,) = reference(x, layers)
    assert np.array_equal(have, want)


@pytest.mark.parametrize("rows, deep", [(4, False), (4, True), (8, False), (8, True)])
def test_weight_guard_is_tight(rows, deep, monkeypatch):
    """timing.weight_guard, which the loader and the cycle model both read, is the least
    that keeps the strided layer's short passes right (8 columns, 8 output channels): exact
    and CYCLES equal to the model with it; with one cycle less a weight bank is overwritten
    while the last column still multiplies with it, and the results go wrong. The rows do
    not change the bound (the loader writes them in order)."""
    config = EngineConfig(rows=rows, cols=8, input_depth=256, weight_depth=512, acc_depth=64,
                          memory_width=32, deep_pipeline=deep)
    guard = timing.weight_guard(config)
    assert guard == 4
    check_exact("strided", MemoryModel(8, 20), config)
    monkeypatch.setattr(timing, "weight_guard", lambda c: guard - 1)
    with pytest.raises(AssertionError, match="layer 0"):
        check_exact("strided", MemoryModel(8, 20), config)


@pytest.mark.parametrize("rows", [4, 8])
def test_take_spacing_is_tight(rows, monkeypatch):
    """timing.weight_take_spacing, which the loader and the cycle model both read, is the
    least that keeps short passes right with the deep pipeline: exact and CYCLES equal to the
    model with it; with one cycle less a load can begin after the pass's first word reached a
    row it had not written yet. On 4 rows the bank binds (a long pass, then a
    short one: guard + 3), on 8 the loader (rows: it falls behind by a cycle per
    pass)."""
    config = EngineConfig(rows=rows, cols=8, input_depth=256, weight_depth=512, acc_depth=64,
                          memory_width=32)
    spacing = timing.weight_take_spacing(config)
    assert spacing == {4: 7, 8: 8}[rows]
    check_exact("strided-small", MemoryModel(8, 20), config)
    monkeypatch.setattr(timing, "weight_take_spacing", lambda c: spacing - 1)
    x, layers = case("strided-small")
    placed = plan(config, x, layers)
    got, result = run_engine(config, placed, model=MemoryModel(8, 20))
    (have,), (want,) = outputs(got, placed), reference(x, layers)
    assert result["status"] & 0b110 == 0b010, result
    assert not np.array_equal(have, want)
