"""The checked-in rtl/, docs/registers.md and docs/descriptors.md are what the sources
generate (run `make rtl`)."""

from pathlib import Path

import pytest

from convhw.config import EngineConfig
from convhw.generate import generate

ROOT = Path(__file__).resolve().parents[1]


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
