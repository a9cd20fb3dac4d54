"""The engine regression on the generated Verilog (top ``convhw``), through its Wishbone port.

Seeded random layers of all six ops (:mod:`layers`), bit-exact against
:func:`convhw.golden.convolution`, every job's CYCLES equal to
:func:`convhw.compiler.cycles.job_cycles`; the register map (read-back, constants, bus errors);
illegal configurations; abort, reset mid-job, back-to-back jobs, wait states and the buffers'
lock while busy.

Environment (set by sim/Makefile): ``BENCH_CONFIG`` names the configuration the Verilog was
generated for (tiny, small or default), ``LAYERS`` the number of random layers (default 20),
cocotb's ``COCOTB_RANDOM_SEED`` (``SEED``) the seed.
"""

from __future__ import annotations

import collections
import inspect

import cocotb
import numpy as np

from convhw import golden
from convhw.compiler import compile_layer
from convhw.compiler.cycles import job_cycles, timing
from convhw.driver.program import JobProgram, register_writes
from convhw.gateware.control import ErrorCode
from convhw.registers import engine_register_map
from convhw.sim_helpers import RandomIdle
from convhw.spec import ConvSpec

from gen_component import bench_config
from layers import features, random_layer, random_tensors
from tb import BUSY, DONE, ERROR, REGRESSION_SEED, TB, Inserter, check_equal, int_env, seed_for
from tb import reproduce as tb_reproduce

CONFIG_NAME, CONFIG = bench_config("small")
LAYERS = int_env("LAYERS", 20)
BENCH = f"engine-{CONFIG_NAME}"
REGMAP = engine_register_map(CONFIG)


def reproduce(test: str) -> str:
    """How to rerun one test, printed with its failures."""
    return tb_reproduce(BENCH, test, LAYERS=LAYERS)


def new_tb(dut, test: str, *, index: int = 0, layer=None, **kwargs) -> TB:
    seed = seed_for(test, index)
    lines = [f"  test: {test}", f"  seed: SEED={REGRESSION_SEED}, test seed {seed}",
             f"  engine: {CONFIG_NAME}, {CONFIG}"]
    if layer is not None:
        lines.insert(1, f"  layer: {layer.describe()}")
    lines.append(f"  {reproduce(test)}")
    return TB(dut, seed=seed, config=CONFIG, context="\n".join(lines), **kwargs)


def small_layer(seed: int):
    """A 2-D layer of a few jobs on every configuration, and its tensors."""
    spec = ConvSpec(2, 4, 4, 3, padding=1)
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, (1, 4, 6, 6))
    w = rng.integers(-128, 128, spec.weight_shape)
    b = rng.integers(-1000, 1000, spec.out_channels)
    return spec, x, w, b


# -- random layers ----------------------------------------------------------------------------


@cocotb.test()
@cocotb.parametrize(layer=range(LAYERS))
async def test_random_layer(dut, layer: int) -> None:
    """One seeded random layer, bit-exact and cycle-exact."""
    case = random_layer(REGRESSION_SEED, layer, CONFIG)
    tb = new_tb(dut, f"test_random_layer/layer={layer}", index=layer, layer=case)
    await tb.start()
    x, w, b = random_tensors(case, CONFIG)
    steps, cycles = await tb.run_layer(case.spec, x, w, b, skip_borders=case.skip_borders)
    tb.log.info("%s on %s: %d jobs, %d cycles, %d bus accesses; %s", case.spec.op_name,
                case.shape, len(steps), sum(cycles), tb.bus_accesses,
                ", ".join(sorted(features(case, CONFIG, steps))))


@cocotb.test()
async def test_layer_coverage(dut) -> None:
    """The random layers of this regression cover what they must (computed from the layers
    themselves: the stimulus, not the simulation)."""
    seen = collections.Counter()
    for index in range(LAYERS):
        seen.update(features(random_layer(REGRESSION_SEED, index, CONFIG), CONFIG))
    dut._log.info("coverage of %d layers: %s", LAYERS,
                  ", ".join(f"{k} {v}" for k, v in sorted(seen.items())))
    # 24 layers take every op through every padding mode and grouping.
    if LAYERS >= 24:
        required = ["Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d",
                    "ConvTranspose3d", "padding zeros", "padding circular", "padding reflect",
                    "padding replicate", "groups", "depthwise", "stride", "dilation",
                    "output_padding", "batch > 1"]
        if "fir" in inspect.signature(compile_layer).parameters:
            required.append("FIR mode")       # the compiler runs depthwise layers in it
        if CONFIG_NAME == "tiny":
            required += ["multi-tile", "input-channel runs", "two-segment window"]
        missing = [name for name in required if not seen[name]]
        assert not missing, f"{LAYERS} layers with SEED={REGRESSION_SEED} miss {missing}"


# -- registers and bus ------------------------------------------------------------------------


@cocotb.test()
async def test_registers(dut) -> None:
    """Constants name the configuration; every rw field reads back what was written (random
    values, ro and unused bits masked); w1p fields read as 0."""
    tb = new_tb(dut, "test_registers")
    await tb.start()
    regmap = tb.regmap
    for register in regmap.registers:
        value = await tb.read(register.address)
        assert value == register.reset, \
            f"{register.name} reads {value:#x} after reset, expected {register.reset:#x}"
    hwcfg0 = regmap["HWCFG0"]
    value = await tb.read_register("HWCFG0")
    fields = {f.name: (value & f.mask) >> f.offset for f in hwcfg0.fields}
    assert (fields["ROWS"], fields["COLS"], fields["ACC_WIDTH"]) == \
        (CONFIG.rows, CONFIG.cols, CONFIG.acc_width), f"HWCFG0 {fields} is not {CONFIG}"
    depths = [await tb.read_register(f"HWCFG{i}") for i in (1, 2, 3)]
    assert depths == [CONFIG.input_depth, CONFIG.weight_depth, CONFIG.acc_depth], depths

    writable = [r for r in regmap.registers if any(f.access == "rw" for f in r.fields)]
    model = {}
    for _ in range(3):
        tb.rng.shuffle(writable)
        for register in writable:
            value = tb.rng.getrandbits(32)
            await tb.write(register.address, value)
            mask = sum(f.mask for f in register.fields if f.access == "rw")
            model[register.name] = value & mask
        for register in writable:
            got = await tb.read(register.address)
            assert got == model[register.name], \
                f"{register.name} reads {got:#x}, written {model[register.name]:#x}"
    assert await tb.read_register("CTRL") == 0
    assert await tb.read_register("STATUS") == 0      # nothing started


@cocotb.test()
async def test_bus_errors(dut) -> None:
    """ERR for unmapped addresses (register holes, window tails, beyond the map), partial SEL,
    and writes to read-only registers and the OUTPUT window; none of them changes anything."""
    tb = new_tb(dut, "test_bus_errors")
    await tb.start()
    regmap = tb.regmap
    mapped = {r.address for r in regmap.registers}
    holes = [a for a in range(0, regmap.register_space, 4) if a not in mapped]
    refused = tb.rng.sample(holes, min(12, len(holes)))
    for window in regmap.windows:
        if window.words < window.span // 4:
            refused += [window.address + 4 * window.words, window.address + window.span - 4]
    last = max(w.address + w.span for w in regmap.windows)
    if last < 1 << (regmap.bus_address_width + 2):
        refused += [last, (1 << (regmap.bus_address_width + 2)) - 4]
    probe = regmap["X_PAD_LO"]
    await tb.write(probe.address, 5)
    for address in refused:
        for write in (None, 0x1234):
            ack, _ = await tb.access(address, write=write)
            assert not ack, f"access to unmapped {address:#x} (write={write}) was acknowledged"
    read_only = [r.address for r in regmap.registers if not r.writable]
    output = regmap.window("OUTPUT")
    for address in [*read_only, output.address, output.address + 4 * (output.words - 1)]:
        ack, _ = await tb.access(address, write=0xFFFFFFFF)
        assert not ack, f"write to read-only {address:#x} was acknowledged"
    for sel in (0b0000, 0b0001, 0b0111, 0b1110, 0b1000):
        for address in (probe.address, regmap.window("INPUT").address, output.address):
            for write in (None, 7):
                ack, _ = await tb.access(address, write=write, sel=sel)
                assert not ack, f"access with SEL {sel:#06b} to {address:#x} was acknowledged"
    assert await tb.read(probe.address) == 5
    for register in regmap.registers:
        if not register.writable:
            assert await tb.read(register.address) == register.reset, register.name


# -- control: illegal configurations, abort, reset --------------------------------------------


def legal_job(seed: int):
    """A job of :func:`small_layer` with its program and the expected result."""
    spec, x, w, b = small_layer(seed)
    steps = compile_layer(spec, x.shape, CONFIG)
    return spec, x, w, b, steps


def illegal_changes(job):
    """Register changes that make a legal job illegal, per error code; the values derive from
    the configuration so that every configuration refuses them."""
    x = job.axes[2]
    cases = [
        ({"Y_KERNEL": 0}, ErrorCode.BAD_GEOMETRY),
        ({"X_STRIDE": 0}, ErrorCode.BAD_GEOMETRY),
        ({"Z_DILATION": 0}, ErrorCode.BAD_GEOMETRY),
        ({"X_OUT_LEN": 0}, ErrorCode.BAD_GEOMETRY),
        ({"IN_CHUNKS": 0}, ErrorCode.BAD_GEOMETRY),
        ({"Y_OUT_LEN": CONFIG.acc_depth, "X_OUT_LEN": 2}, ErrorCode.TILE_TOO_LARGE),
        ({"X_SEG0_LEN": CONFIG.input_depth + 1}, ErrorCode.WINDOW_TOO_LARGE),
        ({"IN_CHUNKS": CONFIG.input_depth}, ErrorCode.WINDOW_TOO_LARGE),
        ({"Z_KERNEL": 255}, ErrorCode.WEIGHTS_TOO_LARGE),
        ({"JOB_MODE": 1 | 1 << 1}, ErrorCode.BAD_PADDING),              # transposed circular
        ({"JOB_MODE": 2 << 1, "X_PAD_LO": x.in_size}, ErrorCode.BAD_PADDING),  # reflect
        ({"JOB_MODE": 1 << 1, "X_PAD_LO": x.in_size + 1}, ErrorCode.BAD_PADDING),  # circular
    ]
    if "FIR_TAPS" in REGMAP:
        # The FIR lane mode needs a unit x kernel: this job's is 3.
        cases.append(({"FIR_TAPS": 2}, ErrorCode.BAD_GEOMETRY))
    return cases


ILLEGAL = list(range(len(illegal_changes(legal_job(0)[4][0].job))))


@cocotb.test()
@cocotb.parametrize(case=ILLEGAL)
async def test_illegal_configuration(dut, case: int) -> None:
    """An illegal job ends at once with STATUS.ERROR and its code, and the engine is idle and
    runs the next (legal) layer bit-exact and cycle-exact."""
    test = f"test_illegal_configuration/case={case}"
    tb = new_tb(dut, test, index=case)
    await tb.start()
    spec, x, w, b, steps = legal_job(tb.seed)
    changes, code = illegal_changes(steps[0].job)[case]
    tb.context = f"  changes: {changes}, expected {code!r}\n" + tb.context
    for address, value in register_writes(tb.regmap, steps[0].job):
        await tb.write(address, value)
    for name, value in changes.items():
        await tb.write_register(name, value)
    await tb.start_job()
    status = await tb.wait_job(10)
    error = await tb.read_register("ERROR")
    assert error == code, f"ERROR {error}, expected {code!r}\n{tb.context}"
    assert status == DONE | ERROR, f"STATUS {status:#05b}\n{tb.context}"
    # The register checks' cycles, then straight back to idle.
    assert await tb.read_register("CYCLES") == timing(CONFIG).check
    await tb.run_layer(spec, x, w, b)


@cocotb.test()
async def test_abort_mid_job(dut) -> None:
    """ABORT stops a running job (ERROR 7, idle at once); the same job then runs normally."""
    tb = new_tb(dut, "test_abort_mid_job")
    await tb.start()
    spec, x, w, b, steps = legal_job(tb.seed)
    step = steps[0]
    program = JobProgram.build(tb.regmap, CONFIG, step, spec, x, w, b)
    await tb.load(program)
    await tb.start_job()
    await tb.tick(tb.rng.randint(10, max(11, job_cycles(step.job) // 2)))
    assert await tb.read_register("STATUS") == BUSY
    await tb.write_register("CTRL", 1 << tb.regmap["CTRL"].field("ABORT").offset)
    assert await tb.read_register("STATUS") == DONE | ERROR
    assert await tb.read_register("ERROR") == ErrorCode.ABORTED
    await tb.run_layer(spec, x, w, b)


@cocotb.test()
async def test_reset_mid_job(dut) -> None:
    """A reset in the middle of a job leaves the engine idle with its registers at their reset
    values; a layer then runs bit-exact and cycle-exact."""
    tb = new_tb(dut, "test_reset_mid_job")
    await tb.start()
    spec, x, w, b, steps = legal_job(tb.seed)
    step = steps[0]
    program = JobProgram.build(tb.regmap, CONFIG, step, spec, x, w, b)
    await tb.load(program)
    await tb.start_job()
    await tb.tick(tb.rng.randint(5, max(6, job_cycles(step.job) - 5)))
    await tb.reset(tb.rng.randint(1, 3))
    assert await tb.read_register("STATUS") == 0
    for register in tb.regmap.registers:
        assert await tb.read(register.address) == register.reset, register.name
    await tb.run_layer(spec, x, w, b)


# -- throughput and bus timing -----------------------------------------------------------------


@cocotb.test()
async def test_back_to_back_jobs(dut) -> None:
    """Jobs started at the first idle cycle, without bus idles, with START written again while
    busy (ignored: the job and its cycle count are unchanged)."""
    tb = new_tb(dut, "test_back_to_back_jobs", max_idle=0)
    await tb.start()
    for index in range(3):
        spec, x, w, b = small_layer(tb.seed + index)
        steps = compile_layer(spec, x.shape, CONFIG)
        out = np.zeros(spec.output_shape(x.shape), dtype=np.int64)
        for number, step in enumerate(steps):
            program = JobProgram.build(tb.regmap, CONFIG, step, spec, x, w, b)
            await tb.load(program, shuffle=False)
            await tb.start_job()
            await tb.start_job()                          # busy: ignored
            expected = job_cycles(step.job)
            status = await tb.read_register("STATUS")
            while status & BUSY:
                status = await tb.read_register("STATUS")
            cycles = await tb.read_register("CYCLES")
            assert (status, cycles) == (DONE, expected), \
                f"job {number}: STATUS {status:#05b}, CYCLES {cycles}, model {expected}"
            if program.output_addresses is not None:
                await tb.read_results(step, program, out)
        check_equal(out, golden.convolution(spec, x, w, b), what=f"layer {index}",
                    context=tb.context)


@cocotb.test()
async def test_bus_wait_states(dut) -> None:
    """A layer with long random idles between bus accesses (0 to 8 cycles)."""
    tb = new_tb(dut, "test_bus_wait_states")
    tb.idle = RandomIdle(tb.seed, 8)
    await tb.start()
    case = random_layer(REGRESSION_SEED, 4, CONFIG)        # a Conv2d in reflect mode
    x, w, b = random_tensors(case, CONFIG)
    await tb.run_layer(case.spec, x, w, b, skip_borders=case.skip_borders)


@cocotb.test()
async def test_buffers_locked_while_busy(dut) -> None:
    """While a job runs, buffer writes are dropped and buffer reads return 0; the job's result
    is unaffected and the buffers read back intact afterwards."""
    tb = new_tb(dut, "test_buffers_locked_while_busy")
    await tb.start()
    spec, x, w, b, steps = legal_job(tb.seed)
    step = steps[0]
    program = JobProgram.build(tb.regmap, CONFIG, step, spec, x, w, b)
    await tb.load(program)
    await tb.start_job()
    probes = [(program.input_base + 4 * i, int(v)) for i, v in enumerate(program.input_words)]
    probes += [(program.weight_base + 4 * i, int(v)) for i, v in enumerate(program.weight_words)]
    probes = tb.rng.sample(probes, min(6, len(probes)))
    for address, _ in probes:
        assert await tb.read_register("STATUS") == BUSY, "the job ended before the probes"
        assert await tb.read(address) == 0, f"buffer read at {address:#x} while busy"
        await tb.write(address, 0x5A5A5A5A)
    await tb.run_job(step, program, start=False)
    for address, value in probes:
        assert await tb.read(address) == value, f"buffer word {address:#x} changed while busy"
    out = np.zeros(spec.output_shape(x.shape), dtype=np.int64)
    if program.output_addresses is not None:
        await tb.read_results(step, program, out)
        n, oc = step.batch, slice(step.oc_start, step.oc_start + step.oc_count)
        region = tuple(slice(a.out_start, a.out_start + a.out_len) for a in step.job.axes[1:])
        expected = golden.convolution(spec, x, w, b)[(n, oc, *region)]
        check_equal(out[(n, oc, *region)], expected, what="first job's results",
                    context=tb.context)


@cocotb.test()
async def test_idle_inserter_patterns(dut) -> None:
    """A layer whose bus accesses follow fixed idle patterns (none, every other, bursts)."""
    tb = new_tb(dut, "test_idle_inserter_patterns")
    await tb.start()
    spec, x, w, b = small_layer(tb.seed)
    for pattern in ([0], [1, 0], [0, 0, 0, 1, 1, 1, 1]):
        inserter = Inserter(pattern)

        class PatternIdle:
            async def wait(self, ctx, inserter=inserter):
                for _ in range(inserter.count(8)):
                    await ctx.tick()

        tb.idle = PatternIdle()
        await tb.run_layer(spec, x, w, b)
