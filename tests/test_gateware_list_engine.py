"""ListEngine in the Amaranth simulator: descriptor lists compiled for layers run from a memory
behind its AXI4 or Wishbone master, started through its control port; results bit-exact
against the golden model and the list model, error codes as the list model gives them."""

import dataclasses
import functools

import numpy as np
import pytest
from amaranth.sim import Simulator

from convhw.compiler.cycles import list_cycles
from convhw.compiler.image import Layer, plan, reference
from convhw.compiler.list_model import Memory, run_list
from convhw.config import EngineConfig
from convhw.descriptor import JOB_DESCRIPTOR
from convhw.driver.list_driver import SimulatorBus
from convhw.driver.transport import BusError
from convhw.gateware.list_engine import ListEngine
from convhw.memory_model import MemoryModel
from convhw.registers import ErrorCode
from convhw.sim_memory import SparseMemory, axi4_slave, wishbone_slave
from convhw.spec import ConvSpec
from convhw.timing import list_timing

from .helpers import tiered

# Small buffers, so that layers take several tiles, windows and weight loads.
TINY = EngineConfig(rows=4, cols=4, input_depth=256, weight_depth=256, acc_depth=64)


def network(seed, config, *, channels=6, height=9, chain=True):
    """Input and two requantised layers (the first with ReLU, the second strided and
    reflect-padded); ``chain``: the second reads the first's output, else the input (the shape
    of ``sim/test_list_engine.py``'s lists with ``channels=5, height=8``)."""
    rng = np.random.default_rng(seed)
    specs = [ConvSpec(2, channels, 8, 3, padding=1),
             ConvSpec(2, 8 if chain else channels, 4, 3, stride=2, padding=1,
                      padding_mode="reflect")]
    x = rng.integers(-128, 128, (1, channels, height, 7))
    layers = [Layer(s, rng.integers(-128, 128, s.weight_shape),
                    rng.integers(-300, 300, s.out_channels),
                    (rng.integers(1, 1 << 15, s.out_channels),
                     rng.integers(12, 18, s.out_channels)), relu=i == 0)
              for i, s in enumerate(specs)]
    return x, layers


def run_engine(config, placed, *, latency=4, pause=0.1, seed=0, patch=None, limit=400_000,
               errors=(), abort_after=None, write_while_busy=None, model=None):
    """Run ``placed`` (a :class:`ListPlan`) on the engine; returns the memory and the final
    STATUS, ERROR and CYCLES. ``errors``: byte ranges the memory answers with bus errors;
    ``abort_after``: write CTRL.ABORT that many cycles after START, then run the list again
    (``result["again"]``); ``write_while_busy``: a (register, value) written 200 cycles after
    START (``result["refused"]``: whether the bus refused it; ``result["after"]``: the
    register's value when the list has ended); ``model``: a
    :class:`~convhw.memory_model.MemoryModel` the memory follows instead of ``latency``,
    ``pause`` and ``seed``."""
    dut = ListEngine(config)
    regs = dut.register_map
    memory = SparseMemory(background=lambda address: 0)
    for address, data in placed.writes:
        memory.write(address, bytes(np.asarray(data, np.uint8)))
    if patch:
        patch(memory)
    result = {}
    # Control accesses through the host flow's own simulator bus (one helper for both buses).
    async def write(ctx, address, value, check=True):
        try:
            await SimulatorBus(ctx, dut, memory).write(address, value)
        except BusError:
            if check:
                raise
            return True
        return False

    async def read(ctx, address):
        return await SimulatorBus(ctx, dut, memory).read(address)

    if config.bus == "axi4":
        slave = functools.partial(axi4_slave, axi=dut.mem, memory=memory, latency=latency,
                                  pause=pause, seed=seed, errors=errors, model=model)
    else:
        slave = functools.partial(wishbone_slave, bus=dut.mem, memory=memory, latency=latency,
                                  pause=pause, seed=seed, errors=errors, model=model)

    async def run_list(ctx, abort_after=None):
        await write(ctx, regs["LIST_ADDR"].address, placed.list_address)
        await write(ctx, regs["CTRL"].address, 1)
        if abort_after is not None:
            await ctx.tick().repeat(abort_after)
            await write(ctx, regs["CTRL"].address, 0b10)
        if write_while_busy is not None:
            await ctx.tick().repeat(200)
            name, value = write_while_busy
            result["refused"] = await write(ctx, regs[name].address, value, check=False)
        for _ in range(limit // 16):
            status = await read(ctx, regs["STATUS"].address)
            if not status & 1:
                break
            await ctx.tick().repeat(16)
        else:
            raise AssertionError("the list did not end")
        return dict(status=status, error=await read(ctx, regs["ERROR"].address),
                    cycles=await read(ctx, regs["CYCLES"].address),
                    busy_cycles=await read(ctx, regs["BUSY_CYCLES"].address),
                    irq=ctx.get(dut.irq))

    async def host(ctx):
        result.update(await run_list(ctx, abort_after))
        if write_while_busy is not None:
            result["after"] = await read(ctx, regs[write_while_busy[0]].address)
        if abort_after is not None:
            await write(ctx, regs["IRQ_CLEAR"].address, 1)
            assert not ctx.get(dut.irq)
            result["again"] = await run_list(ctx)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_process(slave)
    sim.add_testbench(host)
    sim.run()
    return memory, result


def model(config, placed, errors=(), patch=None):
    """The list model on the same image (``patch``: bytes to change in it first, as
    ``(address, data)`` pairs)."""
    memory = Memory(max(placed.end, 1 << 16) + 4096)
    for address, data in placed.writes:
        memory.write(address, data)
    for address, data in patch or ():
        memory.write(address, list(data))
    memory.errors = list(errors)
    return memory, run_list(memory, placed.list_address, config)


def outputs(memory, placed):
    got = []
    for index, record in enumerate(placed.records):
        address = placed.output_addresses[index]
        data = np.frombuffer(memory.read(address, record.output.size), np.uint8)
        got.append(placed.unpack(index, data))
    return got


# In the slow tier: make test runs this list on the AXI4 engine with its cycles checked
# (tests/test_list_cycles.py) and through the driver (tests/test_list_driver.py).
@pytest.mark.slow
@pytest.mark.parametrize("bus", ["axi4", "wishbone"])
def test_a_chained_list_is_bit_exact(bus):
    config = dataclasses.replace(TINY, bus=bus)
    x, layers = network(1, config)
    placed = plan(config, x, layers)
    assert sum(len(r.descriptors) for r in placed.records) >= 4
    memory, result = run_engine(config, placed, seed=3)
    assert result["status"] & 0b110 == 0b010, result           # DONE, no ERROR
    assert result["error"] == 0 and result["irq"] == 1
    for index, (got, want) in enumerate(zip(outputs(memory, placed), reference(x, layers))):
        assert np.array_equal(got, want), f"layer {index}"
    # The slave's latency without a bandwidth limit (64 bytes per cycle: more than the bus
    # moves) and with its random pauses: the cycle model without the pauses is a lower bound.
    bound = list_cycles(placed, config, MemoryModel(64, 4)).cycles
    print(f"{bus}: {result['cycles']} cycles, model without pauses {bound}")
    assert result["cycles"] >= bound


def test_a_bad_descriptor_stops_the_list_with_its_code():
    config = TINY
    x, layers = network(2, config)
    placed = plan(config, x, layers)
    bad = 2
    address = placed.list_address + bad * JOB_DESCRIPTOR.size

    def patch(memory):
        memory.write(address + 3, bytes([0x00]))               # MAGIC
    memory, result = run_engine(config, placed, patch=patch)
    assert result["status"] & 0b110 == 0b110
    assert result["error"] == (bad << 16) | ErrorCode.BAD_DESCRIPTOR


@pytest.mark.parametrize("which, code", tiered([("read", ErrorCode.READ_ERROR),
                                                ("write", ErrorCode.WRITE_ERROR)], fast=1,
                                               several=True))
def test_bus_errors_end_the_list_as_the_model_says(which, code):
    # An error range over the second layer's weights (a read) or over its output (a write):
    # the engine stops with the list model's code and job, and every earlier job's results
    # are in memory.
    config = TINY
    x, layers = network(3, config)
    placed = plan(config, x, layers)
    record = placed.records[1]
    if which == "read":
        start = record.descriptors[0]["WEIGHT_ADDR"]
    else:
        start = placed.output_addresses[1]
    errors = [(start, start + 8)]
    dut_memory, result = run_engine(config, placed, errors=errors)
    model_memory, expected = model(config, placed, errors=errors)
    assert expected.code == code
    assert result["status"] & 0b110 == 0b110
    assert result["error"] == (expected.failed_job << 16) | code
    # The first layer completed: its output is the golden one.
    (first,) = reference(x, layers[:1])
    assert np.array_equal(outputs(dut_memory, placed)[0], first)


# Wishbone in make test: its slave's refusal while a list runs is tested only here (the
# AXI4-Lite slave's also in tests/test_gateware_axi4_lite_slave.py); AXI4 in the slow tier.
@pytest.mark.parametrize("bus", tiered(["wishbone", "axi4"], fast=1))
def test_register_writes_while_busy_are_refused_and_not_applied(bus):
    config = dataclasses.replace(TINY, bus=bus)
    x, layers = network(8, config)
    placed = plan(config, x, layers[:1])
    memory, result = run_engine(config, placed, pause=0.0,
                                write_while_busy=("LIST_ADDR", 0x00DE_AD00))
    assert result["refused"], "a write to LIST_ADDR while the list ran was accepted"
    assert result["after"] == placed.list_address
    assert result["status"] & 0b110 == 0b010
    # without pauses (and without a bandwidth limit) the cycle model is exact, a refused write
    # changes nothing
    timing = list_cycles(placed, config, MemoryModel(64, 4))
    assert (result["cycles"], result["busy_cycles"]) == (timing.cycles, timing.busy_cycles)
    assert np.array_equal(outputs(memory, placed)[0], reference(x, layers[:1])[0])


def test_abort_stops_a_list_and_the_next_one_runs():
    config = TINY
    x, layers = network(4, config)
    placed = plan(config, x, layers)
    memory, result = run_engine(config, placed, abort_after=600)
    assert result["status"] & 0b110 == 0b110
    assert result["error"] & 0xFF == ErrorCode.ABORTED
    assert result["again"]["status"] & 0b110 == 0b010
    for index, (got, want) in enumerate(zip(outputs(memory, placed), reference(x, layers))):
        assert np.array_equal(got, want), f"layer {index}"


@pytest.mark.parametrize("case", tiered(["transposed-1d", "depthwise-fir", "conv3d-groups"],
                                        fast=1))
def test_other_ops(case):
    config = TINY
    rng = np.random.default_rng(7)
    spec, shape = {
        "transposed-1d": (ConvSpec(1, 5, 6, 4, stride=2, padding=1, transposed=True), (2, 5, 9)),
        "depthwise-fir": (ConvSpec(2, 4, 4, 3, padding=1, groups=4, padding_mode="circular"),
                          (1, 4, 8, 10)),
        "conv3d-groups": (ConvSpec(3, 4, 6, 2, groups=2, dilation=(1, 2, 1)), (1, 4, 3, 5, 4)),
    }[case]
    x = rng.integers(-128, 128, shape)
    layer = Layer(spec, rng.integers(-128, 128, spec.weight_shape),
                  rng.integers(-300, 300, spec.out_channels))
    placed = plan(config, x, [layer])
    memory, result = run_engine(config, placed, pause=0.2)
    assert result["status"] & 0b110 == 0b010, result
    (want,) = reference(x, [layer])
    assert np.array_equal(outputs(memory, placed)[0], want)


def test_a_job_failing_in_the_datapath_leaves_the_drain_before_it_alone():
    # A job whose window the datapath finds missing (WINDOW_MISS: X_IN_SIZE made huge, which
    # the job checker does not bound) stops with sums still on their way to the accumulator.
    # They belong to its own bank: the next job at the compute stage has the other bank, in
    # which the job before is still draining. Found by the cocotb descriptor fuzz
    # (list-wishbone, SEED=1, case 13; this is its list): bytes of the drained tile came out
    # saturated.
    config = dataclasses.replace(TINY, bus="wishbone")
    x, layers = network(272894389, config, channels=5, height=8, chain=False)
    placed = plan(config, x, layers, chain=False)
    bad = 3
    descriptors = [d for record in placed.records for d in record.descriptors]
    assert descriptors[bad]["ACC_BANK"] != descriptors[bad + 1]["ACC_BANK"]
    field = JOB_DESCRIPTOR["X_IN_SIZE"]
    address = placed.list_address + bad * JOB_DESCRIPTOR.size + 4 * field.word + field.offset // 8
    huge = [(address, b"\xff\xff")]
    dut_memory, result = run_engine(config, placed, pause=0.0, model=MemoryModel(8, 20),
                                    patch=lambda memory: memory.write(*huge[0]))
    model_memory, expected = model(config, placed, patch=huge)
    assert expected.code == ErrorCode.WINDOW_MISS and expected.failed_job == bad
    assert result["error"] == (bad << 16) | ErrorCode.WINDOW_MISS
    start, size = placed.output_addresses[0], placed.records[0].output.size
    assert dut_memory.read(start, size) == bytes(model_memory.read(start, size))


@pytest.mark.slow
def test_jobs_overlap_only_beside_each_other():
    # A job starts as soon as the one before has its pipeline idle, while that one's last sums
    # still reach the accumulator: only if it sums into the other bank and neither runs in the
    # FIR lane mode. Here a layer whose input channels take two weight loads (its jobs
    # accumulate into the bank the job before summed into), a depthwise (FIR) layer, and one
    # whose jobs share a window and take turns with the banks.
    config = TINY
    rng = np.random.default_rng(11)
    specs = [ConvSpec(2, 40, 8, 3, padding=1), ConvSpec(2, 8, 8, 3, padding=1, groups=8),
             ConvSpec(2, 8, 16, 3, padding=1)]
    x = rng.integers(-128, 128, (1, 40, 6, 7))
    layers = [Layer(s, rng.integers(-128, 128, s.weight_shape),
                    rng.integers(-300, 300, s.out_channels),
                    (rng.integers(1, 1 << 15, s.out_channels),
                     rng.integers(12, 18, s.out_channels))) for s in specs]
    placed = plan(config, x, layers)
    descriptors = placed.builder.descriptors()
    fast = MemoryModel(64, 4)      # compute-bound: the jobs' loads are ready early
    timing = list_cycles(placed, config, fast)
    drain = list_timing(config).job_drain
    kinds = set()
    for k in range(len(descriptors) - 1):
        this, after = descriptors[k], descriptors[k + 1]
        beside = (this["ACC_BANK"] != after["ACC_BANK"]
                  and not this["FIR_TAPS"] and not after["FIR_TAPS"])
        end = timing.compute_starts[k] + timing.compute_cycles[k]
        overlapped = timing.compute_starts[k + 1] < end
        assert timing.compute_starts[k + 1] >= end - drain + 2
        assert overlapped <= beside, k
        kinds.add((overlapped, beside, bool(after["ACCUMULATE"]), bool(after["FIR_TAPS"])))
    # every case is there: overlapped, an accumulating job after its bank's last, FIR jobs
    assert (True, True, False, False) in kinds
    assert (False, False, True, False) in kinds
    assert any(fir for *_, fir in kinds)
    memory, result = run_engine(config, placed, pause=0.0, model=fast)
    assert result["status"] & 0b110 == 0b010, result
    assert result["cycles"] == timing.cycles
    assert result["busy_cycles"] == timing.busy_cycles
    for have, want in zip(outputs(memory, placed), reference(x, layers)):
        assert np.array_equal(have, want)
