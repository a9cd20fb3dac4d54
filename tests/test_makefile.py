"""The Makefile's user commands: `make help` lists every target with what it does, and the
test tiers are the ones the README and CI name."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAKEFILE = (ROOT / "Makefile").read_text()


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_help_lists_every_target():
    targets = re.findall(r"^([a-z]+):", MAKEFILE, re.M)
    out = subprocess.run(["make", "-s", "-C", str(ROOT), "help"], capture_output=True,
                         text=True, check=True, timeout=60).stdout
    listed = re.findall(r"^  make (\w+)\s+\S", out, re.M)
    assert set(listed) == set(targets), (sorted(set(targets) - set(listed)), out)
    for line in out.splitlines():
        assert len(line.split(None, 2)) == 3, f"a target without a description: {line!r}"


def test_check_is_test_then_the_slow_tier():
    assert re.search(r"^check: test slow\b", MAKEFILE, re.M)
    assert re.search(r"^slow:.*\n\t.*pytest .*-m slow", MAKEFILE, re.M)
    run = (ROOT / ".ci" / "run").read_text()
    assert run.index("make test") < run.index("make slow")
