"""Summarise the cocotb results of some benches: one line per bench, and one JUnit file with
all of them (for CI).

Usage::

    python sim/summary.py OUTPUT.xml RUN_DIR...

where each ``RUN_DIR`` holds a bench's ``results.xml`` (``build/<bench>/<sim>``). Exits with 1
if a test failed or a bench has no results.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    output, run_dirs = Path(argv[0]), [Path(d) for d in argv[1:]]
    combined = ET.Element("testsuites", name="convhw cocotb")
    bad = False
    print(f"{'bench':<28} {'tests':>6} {'passed':>7} {'failed':>7} {'skipped':>8} {'time s':>8}")
    for run_dir in run_dirs:
        results = run_dir / "results.xml"
        name = f"{run_dir.parent.name} ({run_dir.name})"
        if not results.exists():
            print(f"{name:<28} no results")
            bad = True
            continue
        tests = failed = skipped = 0
        seconds = 0.0
        for suite in ET.parse(results).getroot().iter("testsuite"):
            suite.set("name", f"{run_dir.parent.name}.{run_dir.name}.{suite.get('name')}")
            combined.append(suite)
            for case in suite.iter("testcase"):
                tests += 1
                seconds += float(case.get("time", 0))
                failed += bool(case.findall("failure") + case.findall("error"))
                skipped += case.find("skipped") is not None
        bad |= failed > 0
        print(f"{name:<28} {tests:>6} {tests - failed - skipped:>7} {failed:>7} {skipped:>8} "
              f"{seconds:>8.1f}")
    output.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(combined).write(output, encoding="unicode", xml_declaration=True)
    print(f"JUnit: {output}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
