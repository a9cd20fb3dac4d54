# amaranth: UnusedElaboratable=no
"""Multiplier: exact signed products with both latencies in the Amaranth simulator, and its
ECP5 form: one MULT18X18D whose own registers are the pipeline, which Yosys keeps (the fabric
holds no register of the multiplier), wired with sign-extended operands; too-wide operands fall
back to the behavioural form. The ECP5 primitive has no simulation model in the open
toolchain, so its arithmetic is not simulated here: what is checked is the wiring and the
register parameters that Lattice TN1267 gives the latency of."""

import os
import re
import subprocess
import tempfile

import numpy as np
import pytest
from amaranth.sim import Simulator

from convhw import cli
from convhw.boards.flow import tool_environment
from convhw.config import EngineConfig
from convhw.gateware.multiplier import Multiplier, uses_ecp5_dsp
from convhw.gateware.pe import ProcessingElement
from convhw.generate import TargetFamily, component_verilog


def products(dut, pairs, enables=None):
    """Drive ``pairs`` of operands (and ``enables`` on ``en``), one per cycle, and return ``p``
    of every cycle after."""
    seen = []
    if enables is None:
        steps = [(a, b, None) for a, b in [*pairs, *[(0, 0)] * dut.latency]]
    else:
        steps = [(a, b, en) for (a, b), en in zip(pairs, enables)]

    async def testbench(ctx):
        for a, b, en in steps:
            ctx.set(dut.a, a)
            ctx.set(dut.b, b)
            if en is not None:
                ctx.set(dut.en, en)
            await ctx.tick()
            seen.append(ctx.get(dut.p))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    return seen


@pytest.mark.parametrize("registered_inputs, latency", [(True, 2), (False, 1)])
@pytest.mark.parametrize("a_width, b_width", [(8, 8), (4, 9), (18, 18)])
def test_exact_signed_products_after_the_latency(a_width, b_width, registered_inputs, latency):
    seed = a_width * 100 + b_width + registered_inputs
    rng = np.random.default_rng(seed)
    lo_a, hi_a = -(1 << (a_width - 1)), (1 << (a_width - 1)) - 1
    lo_b, hi_b = -(1 << (b_width - 1)), (1 << (b_width - 1)) - 1
    pairs = [(lo_a, lo_b), (lo_a, hi_b), (hi_a, lo_b), (hi_a, hi_b), (0, lo_b), (-1, -1)]
    pairs += [(int(rng.integers(lo_a, hi_a + 1)), int(rng.integers(lo_b, hi_b + 1)))
              for _ in range(50)]
    dut = Multiplier(a_width, b_width, registered_inputs=registered_inputs)
    assert dut.latency == latency
    seen = products(dut, pairs)
    # After the tick of cycle t, p shows the product of cycle t + 1 - latency.
    assert seen[latency - 1:latency - 1 + len(pairs)] == [a * b for a, b in pairs], seed


@pytest.mark.parametrize("registered_inputs", [True, False])
@pytest.mark.parametrize("a_width, b_width", [(4, 4), (9, 8), (1, 3), (5, 1)])
def test_logic_form_is_exact_for_every_operand_pair(a_width, b_width, registered_inputs):
    # The shift-and-add product (EngineConfig.dsp_pes's PEs beyond the DSP blocks): every pair
    # of the small widths, the 9x8 operands of a quantised engine's PE at their corners and
    # 2,000 random pairs; the same latency as the other forms.
    rng = np.random.default_rng(a_width * 10 + b_width)
    lo_a, lo_b = -(1 << (a_width - 1)), -(1 << (b_width - 1))
    pairs = [(a, b) for a in range(lo_a, -lo_a) for b in range(lo_b, -lo_b)]
    if len(pairs) > 4096:
        pairs = [(lo_a, lo_b), (lo_a, -lo_b - 1), (-lo_a - 1, lo_b), (-lo_a - 1, -lo_b - 1)]
        pairs += [(int(rng.integers(lo_a, -lo_a)), int(rng.integers(lo_b, -lo_b)))
                  for _ in range(2000)]
    dut = Multiplier(a_width, b_width, registered_inputs=registered_inputs, in_logic=True)
    assert dut.latency == (2 if registered_inputs else 1)
    seen = products(dut, pairs)
    got = seen[dut.latency - 1:dut.latency - 1 + len(pairs)]
    wrong = [(a, b, p) for (a, b), p in zip(pairs, got) if p != a * b]
    assert not wrong, wrong[:5]


def test_logic_form_has_no_multiply_on_any_family():
    for family in (None, TargetFamily("ecp5"), TargetFamily("ice40")):
        text = component_verilog(Multiplier(9, 8, in_logic=True), "mul", "//\n", family)
        assert "MULT18X18D" not in text and " * " not in text, family


@pytest.mark.parametrize("registered_inputs", [True, False])
def test_enable_holds_every_register(registered_inputs):
    # A stalling pipeline: the operands and the product move only in cycles with `en`.
    seed = 7 + registered_inputs
    rng = np.random.default_rng(seed)
    dut = Multiplier(9, 7, registered_inputs=registered_inputs, enable=True)
    steps = [(int(rng.integers(-256, 256)), int(rng.integers(-64, 64)), int(rng.integers(2)))
             for _ in range(80)]
    seen = products(dut, [(a, b) for a, b, _ in steps], [en for _, _, en in steps])
    # The model: each register loads its input in the cycles with en.
    a_reg = b_reg = p_reg = 0
    want = []
    for a, b, en in steps:
        if en:
            if registered_inputs:
                p_reg, a_reg, b_reg = a_reg * b_reg, a, b
            else:
                p_reg = a * b
        want.append(p_reg)
    assert seen == want, f"seed {seed}"


def test_ecp5_form_drives_the_clock_enable_from_en():
    dut = Multiplier(8, 6, enable=True)
    _, pins = instance_text(component_verilog(dut, "mul", "// test\n", TargetFamily("ecp5")))
    assert pins["CE0"] == "en"


def test_constructor_validation():
    for bad in (0, -3, 2.0, True, None):
        with pytest.raises(ValueError, match=re.escape(f"a_width must be a positive int, "
                                                       f"not {bad!r}")):
            Multiplier(bad, 8)
    with pytest.raises(ValueError, match="^b_width must be a positive int, not 0$"):
        Multiplier(8, 0)


def test_which_platforms_get_the_dsp_primitive():
    assert uses_ecp5_dsp(TargetFamily("ecp5"), 8, 8)
    assert uses_ecp5_dsp(TargetFamily("ecp5"), 18, 18)
    assert not uses_ecp5_dsp(TargetFamily("ecp5"), 19, 8)
    assert not uses_ecp5_dsp(None, 8, 8)

    assert not uses_ecp5_dsp(TargetFamily("ice40"), 8, 8)

    class Board:            # amaranth-boards spells the family its own way
        def __init__(self, family):
            self.family = family

    assert uses_ecp5_dsp(Board("ECP5"), 8, 8)
    assert not uses_ecp5_dsp(Board("iCE40"), 8, 8)
    with pytest.raises(ValueError, match="^family must be one of 'ecp5', 'ice40', not 'xc7'$"):
        TargetFamily("xc7")


def instance_text(verilog):
    """The one MULT18X18D instance of ``verilog``: ``(parameters, {pin: net})``."""
    assert verilog.count("MULT18X18D #(") == 1
    block = verilog[verilog.index("MULT18X18D #("):]
    block = block[:block.index(");\n", block.index(") dsp (")) + 2]
    parameters = dict(re.findall(r"\.(\w+)\(\"(\w+)\"\)", block))
    pins = dict(re.findall(r"\.(\w+)\(([^()]+?)\),?\n", block.split(") dsp (")[1]))
    return parameters, {pin: net.strip() for pin, net in pins.items()}


@pytest.mark.parametrize("registered_inputs", [True, False])
def test_ecp5_form_is_one_mult18x18d_with_its_registers(registered_inputs):
    dut = Multiplier(8, 6, registered_inputs=registered_inputs)
    parameters, pins = instance_text(
        component_verilog(dut, "mul", "// test\n", TargetFamily("ecp5")))
    clock = "CLK0" if registered_inputs else "NONE"
    assert parameters["REG_INPUTA_CLK"] == parameters["REG_INPUTB_CLK"] == clock
    assert parameters["REG_OUTPUT_CLK"] == "CLK0"
    assert parameters["REG_PIPELINE_CLK"] == "NONE"
    assert parameters["GSR"] == "DISABLED"
    assert pins["SIGNEDA"] == pins["SIGNEDB"] == "1'h1"
    assert pins["CLK0"] == "clk" and pins["CE0"] == "1'h1" and pins["RST0"] == "1'h0"
    # Sign extension: every upper input pin is the operand's sign bit.
    a_sign, b_sign = pins["A7"], pins["B5"]
    assert a_sign != b_sign
    assert {pins[f"A{bit}"] for bit in range(7, 18)} == {a_sign}
    assert {pins[f"B{bit}"] for bit in range(5, 18)} == {b_sign}
    assert len({pins[f"A{bit}"] for bit in range(8)}) == 8
    assert all(pins[f"C{bit}"] == "1'h0" for bit in range(18))


def test_wide_operands_stay_behavioural_on_ecp5():
    text = component_verilog(Multiplier(19, 8), "mul", "// test\n", TargetFamily("ecp5"))
    assert "MULT18X18D" not in text
    assert "*" in text


def yosys_cells(verilog, top):
    """Cell counts of ``synth_ecp5`` on ``verilog`` (YoWASP Yosys, which sees only its working
    directory)."""
    with tempfile.TemporaryDirectory() as directory:
        with open(os.path.join(directory, "design.v"), "w") as file:
            file.write(verilog)
        env = tool_environment()
        subprocess.run([env["YOSYS"], "-q", "-l", "yosys.log", "-p",
                        f"read_verilog design.v; synth_ecp5 -top {top} -noabc9; stat"],
                       cwd=directory, env=env, check=True, capture_output=True)
        with open(os.path.join(directory, "yosys.log")) as file:
            log = file.read()
    stats = log[log.rindex("Printing statistics"):]
    return {name: int(count) for count, name in re.findall(r"^\s+(\d+)\s+(\w+)$", stats, re.M)}


@pytest.mark.slow
def test_yosys_keeps_the_pe_registers_in_the_dsp_block():
    config = EngineConfig()
    neutral = yosys_cells(component_verilog(ProcessingElement(config), "pe", "//\n"), "pe")
    ecp5 = yosys_cells(component_verilog(ProcessingElement(config), "pe", "//\n",
                                         TargetFamily("ecp5")), "pe")
    assert neutral["MULT18X18D"] == ecp5["MULT18X18D"] == 1
    # The fabric keeps the two weight banks and the partial sum; the operand, weight and
    # product registers (8 + 8 + 16 bits) moved into the block.
    assert ecp5["TRELLIS_FF"] == 2 * config.weight_width + config.acc_width
    assert neutral["TRELLIS_FF"] - ecp5["TRELLIS_FF"] == (
        config.input_width + config.weight_width + config.product_width)


@pytest.mark.slow
def test_yosys_builds_the_logic_pe_without_a_dsp_block():
    config = EngineConfig()
    cells = yosys_cells(component_verilog(ProcessingElement(config, in_logic=True), "pe", "//\n",
                                          TargetFamily("ecp5")), "pe")
    assert "MULT18X18D" not in cells and "ALU54B" not in cells
    assert cells["CCU2C"] > 0 and cells["LUT4"] > 0


@pytest.mark.slow
def test_generate_family_option(tmp_path, capsys):
    assert cli.main(["generate", "--preset", "small", "-o", str(tmp_path / "neutral")]) == 0
    assert cli.main(["generate", "--preset", "small", "--family", "ecp5",
                     "-o", str(tmp_path / "ecp5")]) == 0
    config = EngineConfig.preset("small")
    # the PEs, the streamer's seven address products and (list engine) the window loader's two
    # product halves (the block loaders have none), the job checker's product and the output
    # pipeline's two partial products per lane (column)
    for name, others in (("convhw.v", 7), ("convhw_list.v", 7 + 2 + 1 + config.cols * 2)):
        assert "MULT18X18D" not in (tmp_path / "neutral" / name).read_text()
        text = (tmp_path / "ecp5" / name).read_text()
        assert text.count("MULT18X18D #(") == config.rows * config.cols + others
        assert text.splitlines()[1].startswith("// Vendor primitives of the ECP5")
    capsys.readouterr()
    with pytest.raises(SystemExit):
        cli.main(["generate", "--family", "xc7", "-o", str(tmp_path / "x")])
    assert "invalid choice: 'xc7'" in capsys.readouterr().err
