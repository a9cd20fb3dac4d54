"""Array sizes on the LFE5U-85F: Yosys and nextpnr (``convhw synth``) on the list engine out of
context for each rows x cols, with its resources, fmax and peak GOPS.

Each size starts from the ``default`` preset (8x8's buffers: input 8192, weight 2048,
accumulator 2048 words, each as wide as the array needs). PEs multiply in a MULT18X18D while the
part has one left, the rest in logic (``EngineConfig.dsp_pes``): the PEs get what
:func:`other_dsps` leaves of the 85F's 156 (118 at 12x12, 106 at 16x16; ``--dsp-budget`` sets
one number for every size). Peak GOPS = 2 x rows x cols x fmax
(one MAC is two operations).

Sizes run one after another, each a separate synthesis (8x8 takes about 25 minutes on this
machine, a larger array longer); the results file is rewritten after each, keeping the rows of
sizes recorded earlier that this run did not rebuild, so a sweep can be done in parts.
``--record-only`` reads summaries already built under ``--build-dir`` instead of building.

Run from the repository root: ``.venv/bin/python bench/sizes.py [--sizes 4 8 12 16]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import subprocess
import sys
from pathlib import Path

from report import markdown, provenance, render

from convhw.boards.flow import PARTS as FLOW_PARTS
from convhw.boards.flow import _yosys_cells, synthesize
from convhw.config import EngineConfig
from convhw.explore import PARTS as BUDGETS

RESULTS = Path(__file__).resolve().parent / "results"
PART = "ecp5-85f"
COLUMNS = ["array", "PEs", "PEs in DSP", "PEs in logic", "LUT4", "FF", "MULT18X18D",
           "DP16KD", "fmax MHz", "peak GOPS", "critical path ns", "synth s", "result", "date"]


def parse_size(text: str) -> tuple[int, int]:
    rows, _, cols = text.lower().partition("x")
    return int(rows), int(cols or rows)


def other_dsps(cols: int) -> int:
    """MULT18X18D blocks left to the rest of the list engine at ``cols`` columns: 3 per column
    and 2. The netlists count 2 per column (the output pipeline's requantising multiply, in
    17-bit pieces) and 10 (the streamer's address products, the job checker): 18 at 4x4, 26 at
    8x8; from 8 columns up the budget leaves a few blocks spare rather than risk a placement
    that does not fit."""
    return 3 * cols + 2


def config_for(rows: int, cols: int, dsp_budget: int | None = None) -> EngineConfig:
    """The ``default`` preset at ``rows`` x ``cols``, the PEs past ``dsp_budget`` (default:
    what the part's DSP blocks leave after :func:`other_dsps`) in logic."""
    pes = rows * cols
    if dsp_budget is None:
        dsp_budget = BUDGETS[PART].dsp - other_dsps(cols)
    return dataclasses.replace(EngineConfig.preset("default"), rows=rows, cols=cols,
                               dsp_pes=None if pes <= dsp_budget else dsp_budget)


def row_of(size: tuple[int, int], config: EngineConfig, summary: dict, date: str) -> dict:
    rows, cols = size
    pes = rows * cols
    dsp_pes = pes if config.dsp_pes is None else config.dsp_pes
    row = {"array": f"{rows}x{cols}", "rows": rows, "cols": cols, "PEs": pes,
           "PEs in DSP": dsp_pes, "PEs in logic": pes - dsp_pes, "date": date,
           "config": summary["config"]}
    if "failed" in summary:
        cells = summary.get("cells") or {}
        return {**row, "fmax": 0.0, "fmax MHz": "failed",
                "LUT4": f"{cells.get('LUT4', 0):,} (Yosys)" if cells else "",
                "result": summary["failed"], "synth command": ""}
    resources = summary["resources"]
    fmax = summary["fmax"]
    path = next(iter(summary.get("critical_paths", {}).values()), {})

    def used(name):
        return f"{resources[name][0]:,} / {resources[name][1]:,}"

    return {**row, "LUT4": used("LUT4"), "FF": used("FF"),
            "MULT18X18D": used("DSP (MULT18X18D)"), "DP16KD": used("BRAM (DP16KD)"),
            "fmax MHz": f"{fmax:.1f}", "fmax": fmax,
            "peak GOPS": f"{2 * pes * fmax / 1e3:.1f}",
            "critical path ns": f"{path['ns']:.1f}" if path else "",
            "synth s": f"{summary['seconds']:.0f}",
            "result": "meets 100 MHz" if summary["passed"] else "below 100 MHz",
            "synth command": summary["command"]}


def plot(rows: list[dict], path: Path) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rows = sorted((r for r in rows if r["fmax"]), key=lambda r: r["PEs"])
    if not rows:
        return False
    pes = [r["PEs"] for r in rows]
    fig, left = plt.subplots(figsize=(7, 4))
    left.plot(pes, [r["fmax"] for r in rows], "o-", color="tab:blue", label="fmax")
    left.set_xlabel("PEs (rows x cols)")
    left.set_ylabel("fmax, MHz (nextpnr)", color="tab:blue")
    left.set_ylim(bottom=0)
    right = left.twinx()
    right.plot(pes, [2 * r["PEs"] * r["fmax"] / 1e3 for r in rows], "s--", color="tab:red",
               label="peak GOPS")
    right.set_ylabel("peak GOPS at fmax", color="tab:red")
    right.set_ylim(bottom=0)
    for r in rows:
        left.annotate(r["array"], (r["PEs"], r["fmax"]), textcoords="offset points",
                      xytext=(4, 4), fontsize=8)
    left.set_title(f"List engine out of context on the {FLOW_PARTS[PART].name}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["4", "8", "12", "16"],
                        help="N (square) or RxC, in the order to build (default: 4 8 12 16)")
    parser.add_argument("--dsp-budget", type=int,
                        help="PEs that get a DSP block (default: what the part leaves)")
    parser.add_argument("--build-dir", default="build/sizes")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--record-only", action="store_true",
                        help="read the summaries under --build-dir, build nothing")
    parser.add_argument("--no-write", action="store_true", help="do not write bench/results/")
    args = parser.parse_args(argv)
    command, machine, date = provenance("sizes.py", argv)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    json_path = RESULTS / f"{PART}-sizes.json"
    recorded = {}
    if json_path.is_file() and not args.no_write:
        recorded = {r["array"]: r for r in json.loads(json_path.read_text())["sizes"]}
    for text in args.sizes:
        size = parse_size(text)
        config = config_for(*size, args.dsp_budget)
        directory = Path(args.build_dir) / f"{size[0]}x{size[1]}"
        if args.record_only:
            summary_path = directory / PART / "summary.json"
            if not summary_path.is_file():
                print(f"{text}: no summary at {summary_path}", file=sys.stderr)
                continue
            summary = json.loads(summary_path.read_text())
            when = datetime.datetime.fromtimestamp(
                summary_path.stat().st_mtime, datetime.timezone.utc).isoformat(timespec="seconds")
        else:
            try:
                summary = json.loads(synthesize(PART, config, build_dir=directory,
                                                seed=args.seed).to_json())
            except RuntimeError as error:          # a tool failed: the array does not fit
                log = directory / PART / "yosys.log"
                summary = {"failed": str(error).splitlines()[-1], "config": config.describe(),
                           "cells": _yosys_cells(log.read_text()) if log.is_file() else {}}
            when = date
        row = row_of(size, config, summary, when)
        # A summary read back was built by an earlier run, at a commit it does not record.
        row.update(commit="an earlier build" if args.record_only else commit, command=command,
                   machine=machine)
        recorded[row["array"]] = row
        print(render([row], COLUMNS), flush=True)
        if not args.no_write:
            write(recorded, command, machine, date)
    print()
    print(render(sorted(recorded.values(), key=lambda r: r["PEs"]), COLUMNS,
                 f"List engine sizes on the {FLOW_PARTS[PART].name}"))
    return 0


def write(recorded: dict, command: str, machine: str, date: str) -> None:
    rows = sorted(recorded.values(), key=lambda r: r["PEs"])
    lines = [f"# Array sizes on the {FLOW_PARTS[PART].name}: the list engine out of context", "",
             *sorted({f"- `{r['command']}` at {r['commit']}, {r['date']}" for r in rows}),
             f"- machine: {machine}", "",
             "Each row is `convhw synth --part ecp5-85f` (Yosys `synth_ecp5`, nextpnr-ecp5, "
             "target 100 MHz, seed 1) of the `default` preset at that size (its synth command "
             "below), the list engine with its control slave and memory master and no pins. "
             "PEs past the DSP budget multiply in logic. Peak GOPS = 2 x PEs x fmax. "
             "Nothing here ran on a board.", "",
             markdown(rows, COLUMNS), ""]
    if plot(rows, RESULTS / f"{PART}-sizes.png"):
        lines += [f"![fmax and peak GOPS per size]({PART}-sizes.png)", ""]
    lines += ["| array | configuration | synth command |", "|---|---|---|"]
    lines += [f"| {r['array']} | {r['config']} | `{r['synth command']}` |" for r in rows]
    (RESULTS / f"{PART}-sizes.md").write_text("\n".join(lines) + "\n")
    (RESULTS / f"{PART}-sizes.json").write_text(json.dumps(
        {"part": PART, "sizes": rows}, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
