"""The ULX3S's SDRAM controller as checked in (rtl/boards/litedram_ulx3s.v and .json):
LiteDRAM's generation, with the two changes convhw.boards.litedram makes, and a description that
says what the part and the board need. The controller runs on the behavioural chip in
tests/test_cocotb.py (sdram-ulx3s)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from convhw.boards import BOARDS
from convhw.boards.litedram import ULX3S_SDRAM, generate, load

ROOT = Path(__file__).resolve().parents[1]
CORE = load()


@pytest.mark.skipif(importlib.util.find_spec("litedram") is None,
                    reason="LiteDRAM is not installed (pip install -e '.[sdram]'; make slow "
                           "and make rtl install it)")
def test_checked_in_core_is_what_litedram_generates(tmp_path):
    for path in generate(ULX3S_SDRAM, tmp_path):
        checked_in = ROOT / "rtl" / "boards" / path.name
        assert checked_in.read_text() == path.read_text(), \
            f"{checked_in} is stale: run `make rtl` and commit"


def test_data_port_is_bidirectional():
    verilog = (ROOT / "rtl" / "boards" / f"{ULX3S_SDRAM.name}.v").read_text()
    assert "inout   wire   [15:0] sdram_dq," in verilog
    assert "input   wire   [15:0] sdram_dq," not in verilog
    # Nothing that changes from one generation to the next (a date, our Git revision).
    assert "// Date" not in verilog and "LiteX sha1" not in verilog


def test_description_matches_the_part_and_the_board():
    assert CORE["core"]["sys_clk_hz"] == BOARDS["ulx3s"].clock_hz
    # 32 MB: 4 banks x 8192 rows x 512 columns of 16 bits, 2**23 words on the 32-bit port.
    assert CORE["geometry"] == {"bank_bits": 2, "row_bits": 13, "col_bits": 9}
    assert CORE["user_port"] == {"data_width": 32, "address_width": 23}
    # 8192 refreshes in 64 ms, at the board's clock.
    assert CORE["timing_cycles"]["tREFI"] == round(64e-3 / 8192 * BOARDS["ulx3s"].clock_hz)
    # The JEDEC order: CKE, precharge all, two auto refreshes, the mode register last (CAS
    # latency 2, burst length 1, standard operation: 0x20).
    what = [step["what"].split(" /")[0] for step in CORE["init"]]
    assert what[0] == "Bring CKE high" and what[1] == "Precharge All"
    assert what.count("Auto Refresh") == 2 and what[-1] == "Load Mode Register"
    assert CORE["init"][-1]["address"] == 0x20 and CORE["phy"]["cl"] == 2
    dfii = CORE["dfii"]
    assert CORE["init"][0]["value"] & dfii["control_cke"]
    assert CORE["init"][-1]["value"] == (dfii["command_ras"] | dfii["command_cas"]
                                         | dfii["command_we"] | dfii["command_cs"])
