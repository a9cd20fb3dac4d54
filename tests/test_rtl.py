"""The checked-in rtl/, docs/registers.md and docs/descriptors.md are what the sources
generate (run `make rtl`)."""

from pathlib import Path

import pytest
from amaranth.hdl import Module
from amaranth.lib import data, fifo, wiring
from amaranth.lib.wiring import In

from convhw.config import EngineConfig
from convhw.generate import check_constant_blocks, component_verilog, generate

ROOT = Path(__file__).resolve().parents[1]


# In the slow tier (12 s and 25 s of elaboration): the checked-in Verilog is a product of
# `make rtl`, checked by `make check` and CI.
@pytest.mark.slow
@pytest.mark.parametrize("preset", ["small", "default"])
def test_rtl_is_current(preset, tmp_path):
    for path in generate(EngineConfig.preset(preset), tmp_path):
        checked_in = ROOT / "rtl" / preset / path.name
        assert checked_in.exists(), f"{checked_in} is missing: run `make rtl`"
        assert checked_in.read_text() == path.read_text(), \
            f"{checked_in} is stale: run `make rtl` and commit"
    if preset == "default":
        for doc, generated in (("registers.md", "convhw_regs.md"),
                               ("list-registers.md", "convhw_list_regs.md"),
                               ("descriptors.md", "convhw_desc.md")):
            assert (ROOT / "docs" / doc).read_text() == (tmp_path / generated).read_text(), \
                f"docs/{doc} is stale: `make rtl`"


class _ConstantBits(wiring.Component):
    """A queue entry with a field driven by a constant alone beside a field from a state."""

    go: In(1)
    value: In(2)

    def elaborate(self, platform):
        m = Module()
        m.submodules.queue = queue = fifo.SyncFIFOBuffered(width=4, depth=2)
        entry = data.View(data.StructLayout({"value": 2, "first": 1, "empty": 1}),
                          queue.w_data)
        m.d.comb += [entry.value.eq(self.value), entry.first.eq(1)]
        with m.FSM():
            with m.State("WAIT"):
                with m.If(self.go):
                    m.next = "PUSH"
            with m.State("PUSH"):
                m.d.comb += [entry.empty.eq(1), queue.w_en.eq(1)]
                m.next = "WAIT"
        return m


def test_constant_combinational_blocks_are_refused():
    """Yosys writes bits driven by a constant alone, beside process-driven ones, as an
    `always @*` that reads nothing, which Verilator and Icarus never run (the bits stay 0):
    generating such Verilog fails instead (the list engine's block loader once hung in
    Verilator this way while Amaranth's simulator ran it)."""
    with pytest.raises(RuntimeError, match="never run"):
        component_verilog(_ConstantBits(), "constant_bits", "// test\n")
    check_constant_blocks("module ok;\n  always @*\n    x [1] = y;\nendmodule\n")
