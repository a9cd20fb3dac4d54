"""Rewrite the README's tables of measured figures from bench/results/ (the README's numbers are
never typed by hand).

Each table sits between ``<!-- results:NAME -->`` and ``<!-- /results:NAME -->`` in README.md;
:func:`tables` makes them from the recorded results. ``tests/test_readme.py`` checks that the
README holds what this would write. Run from the repository root:
``.venv/bin/python bench/update_readme.py``.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from report import markdown

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
README = ROOT / "README.md"


def _memory_rows():
    return json.loads((RESULTS / "memory.json").read_text())["rows"]


def _table(header, rows) -> str:
    return markdown([dict(zip(header, row)) for row in rows], header)


def memory_table() -> str:
    """End to end on the Verilated list engine: every row of bench/results/memory.md."""
    rows = [(row["layer"], row["memory"], row["output"], row["cycles"], row["efficiency"],
             row["compute_only"], row["traffic"], row["seconds"]) for row in _memory_rows()]
    return _table(["layer", "memory", "output", "cycles (= model)", "efficiency",
                   "datapath only", "traffic / minimum", "Verilator s"], rows)


def efficiency_table() -> str:
    """Every reference layer at 8 B/cycle with int8 results: the datapath's efficiency
    (BUSY_CYCLES) against its target and the conventional ideal, and end to end."""
    rows = [(row["layer"], row["busy_cycles"], row["compute_only"], row["conventional"],
             f">= {row['compute_target']}", row["cycles"], row["efficiency"])
            for row in _memory_rows()
            if row["output"] == "int8" and row["memory"].startswith("8 ")]
    return _table(["layer", "busy cycles", "datapath efficiency", "conventional ideal",
                   "target", "cycles end to end", "efficiency end to end"], rows)


def reliability_table() -> str:
    """bench/results/reliability.md in one table: the fuzz campaign and the link's noise
    levels."""
    sections = json.loads((RESULTS / "reliability.json").read_text())["sections"]
    rows = []
    if "fuzz" in sections:
        f = sections["fuzz"]["data"]["summary"]
        rows.append(("fuzz: descriptor lists, bus errors, aborts, resets (list engine)",
                     f"{f['programs']:,} programs ({f['abort'] + f['reset']:,} aborts and "
                     f"resets, {f['bus_error']:,} bus errors)",
                     f"{f['hangs']} hangs, {f['mismatches']} mismatches, {f['racy']} racy"))
    if "formal" in sections:
        proofs = sections["formal"]["data"]
        outcomes = {}
        for proof in proofs:
            outcomes[proof["outcome"]] = outcomes.get(proof["outcome"], 0) + 1
        rows.append(("formal proofs (`make formal`): controllers, bus slaves, memory masters",
                     f"{len(proofs)} proofs, {sum(p['seconds'] for p in proofs) / 60:.0f} min",
                     ", ".join(f"{n} {k}" for k, n in sorted(outcomes.items()))))
    for link in sections.get("link", {}).get("data", []):
        rows.append((f"serial link, {link['flipped']:.1%} of bytes flipped, "
                     f"{link['lost']:.2%} lost", f"{link['layers']} layers",
                     f"{link['exact']} exact, {link['link_errors']} LinkError, "
                     f"{link['other_errors']} other errors, {link['wrong']} wrong; "
                     f"{link['relative_throughput']} of the clean throughput"))
    return _table(["what", "tried", "outcome"], rows)


def boards_table() -> str:
    """bench/results/boards.md's summary: each build's part, clock, fmax and resources."""
    recorded = json.loads((RESULTS / "boards.json").read_text())
    builds = recorded["builds"]
    commands = {"board": "make bitstream BOARD={}", "synth": "convhw synth --part {}"}
    rows = []
    for b in builds:
        kind, name = b["build"].split(": ")
        ecp5 = "LUT4" in b
        rows.append((
            f"`{commands[kind].format(name)}`", b["device"], f"`{b['preset']}` {b['array']}",
            f"{float(b['target_MHz']):g} MHz", f"{b['fmax_MHz']} MHz", b["timing"],
            _fraction(b["LUT4"] if ecp5 else b["LC (LUT4+FF)"]),
            _fraction(b["DSP (MULT18X18D)"] if ecp5 else b["DSP (SB_MAC16)"]),
            _fraction(b["BRAM (DP16KD)"] if ecp5 else b["BRAM (4 kbit)"]),
            b["peak_GOPS_clock"], b.get("memory", "-" if kind == "synth" else "?"),
            b.get("recorded", recorded["date"][:10])))
    table = _table(["build", "part", "engine", "clock", "fmax", "timing", "LUT4 / LC", "DSP",
                    "BRAM", "peak GOPS at the clock", "device memory", "recorded"], rows)
    return f"From `{recorded['command']}` ({recorded['date'][:10]}):\n\n{table}"


def board_models_table() -> str:
    """bench/results/board_models.md: modelled per-inference times on the ULX3S."""
    recorded = json.loads((RESULTS / "board_models.json").read_text())
    rows = [(r["model"], r["input"], r["convs on board"], r["upload s"], r["engine s"],
             r["link s"], r["host s"], r["inference s"], r["link share"], r["identical"])
            for r in recorded["rows"]]
    table = _table(["model", "input", "convs on board", "weight upload s", "engine s",
                    "link s", "host s", "inference s", "link share", "torch's to the bit"],
                   rows)
    return (f"{recorded['title']}; modelled (`{recorded['command']}`, "
            f"{recorded['date'][:10]}):\n\n{table}")


def _fraction(used_of: str) -> str:
    used, available = used_of.split("/")
    return f"{int(used):,} / {int(available):,}"


def test_times_table() -> str:
    """bench/results/test_times.md: how long each tier takes on a fresh clone."""
    data = json.loads((RESULTS / "test_times.json").read_text())
    rows = [(f"`{row['command'].strip('`')}`", f"{row['seconds']:.0f} s",
             f"{row['load before']} / {row['load after']}", row["outcome"])
            for row in data["rows"]]
    table = _table(["step", "took", "load average before / after", "outcome"], rows)
    return (f"Measured on a fresh clone of {data['commit']} ({data['date'][:10]}, "
            f"{data['machine'].split(', Python')[0]}; `bench/test_times.py`, "
            f"bench/results/test_times.md), a new venv and an empty Verilator cache, torch "
            f"{'installed' if data['torch'] else 'absent'}: "
            f"{data['fresh_clone_to_make_test_done_s']:.0f} s from the clone to `make test` "
            f"done.\n\n{table}")


#: Wall seconds for the quantised ResNet-18 at 224x224 on Device("verilator") (issue 12).
RESNET18_TARGET_S = 60


def models_table() -> str:
    """bench/results/models.md: whole quantised models on the Verilated engine."""
    data = json.loads((RESULTS / "models.json").read_text())
    columns = ["model", "input", "convs on engine", "engine MACs", "engine cycles",
               "efficiency", "bytes moved", "verilator s", "identical", "accuracy"]
    table = markdown(data["rows"], columns)
    resnet = next((row for row in data["rows"] if row["model"] == "resnet18"), None)
    target = ""
    if resnet is not None:
        seconds = float(resnet["verilator s"])
        target = (f" ResNet-18 at 224x224: {seconds:.1f} s against the target of "
                  f"{RESNET18_TARGET_S} s ({'met' if seconds <= RESNET18_TARGET_S else 'missed'}"
                  f"), {resnet['identical']} outputs identical.")
    return (f"Recorded {data['date'][:10]} by `{data['command']}` on "
            f"{data['machine'].split(', Python')[0]} (bench/results/models.md; per-layer "
            f"profiles and plots in bench/results/models/).{target}\n\n{table}")


#: Issue 15's targets: efficiency end to end at 8 B/cycle on the default 8x8 array.
NETWORK_TARGETS = {"resnet18": 0.95, "mobilenet_v2": 0.85, "dcgan_generator": 0.85,
                   "convnext_t_dw": 0.80, "wav2vec2_encoder": 0.97, "r3d18": 0.95}


def networks_table() -> str:
    """bench/results/networks.md: six networks on the engine and on a conventional array."""
    data = json.loads((RESULTS / "networks.json").read_text())
    def verdict(row) -> str:
        met = float(row["efficiency"]) >= NETWORK_TARGETS[row["name"]]
        if row["model"] == "bound":
            # (the bound's cycles are low, its efficiency high: by 0.2-1.4 %)
            return " (met on the bound)" if met else " (not met)"
        return " (met)" if met else " (not met)"
    rows = [dict(row, target=f">= {NETWORK_TARGETS[row['name']]:.2f}{verdict(row)}")
            for row in data["networks"]]
    columns = ["network", "efficiency", "compute only", "conventional", "target", "model",
               "refused"]
    memory = data["memory"]
    dates = sorted({row["date"][:10] for row in data["networks"]})
    return (f"Recorded {', '.join(dates)} by `python bench/networks.py` (`{data['preset']}` "
            f"8x8, {memory['bytes_per_cycle']} B/cycle, latency {memory['latency']}; `model`: "
            f"the exact cycle model or its lower bound; bench/results/networks.md, per-layer "
            f"tables in bench/results/networks/):\n\n{markdown(rows, columns)}")


def explore_table() -> str:
    """bench/results/explore.md: the cycle-model sweep's Pareto front and the synthesis
    sweep's outcome."""
    recorded = json.loads((RESULTS / "explore.json").read_text())
    parts = []
    if "cycle-model" in recorded:
        entry = recorded["cycle-model"]
        row = entry["row"]
        report = json.loads((ROOT / row["report"] / "report.json").read_text())
        rows = [(f"{r['point']['rows']}x{r['point']['cols']}",
                 ("" if r.get("exact", True) else ">= ") + f"{r['cycles']:,}",
                 ("" if r.get("exact", True) else "<= ") + f"{r['efficiency']:.3f}",
                 r["estimate"]["dsp"], r["estimate"]["bram"],
                 "yes" if r["fits"] else "no", "yes" if r["front"] else "")
                for r in sorted(report["rows"], key=lambda r: r["cycles"]) if r.get("front")]
        shown = rows[:10]
        parts.append(
            f"`{entry['command']}` ({entry['date'][:10]}, {row['workers']} workers on "
            f"{entry['machine'].split(', Python')[0]}): {row['network']} on the "
            f"{row['part']}, {row['configurations']} configurations in {row['seconds']} s "
            f"(target {row['target_s']} s: {'met' if row['met'] else 'not met'}; "
            f"{row['report']}), "
            + (f"{row['exact']} of them through the exact model, the rest with lower bounds "
               f"(`>=`) that an exactly modelled configuration beats"
               if row["exact"] else "the cycle model's lower bounds (`>=`) only "
               "(`--bounds-only`)")
            + f". Best: **{row['best']}**. The fastest {len(shown)} of the {len(rows)} "
            f"configurations on the Pareto front of cycles against DSP blocks (every "
            f"configuration in the report):\n\n"
            + _table(["array", "cycles", "efficiency", "DSP (est.)", "BRAM (est.)", "fits",
                      "Pareto front"], shown))
    if "cycle-model-exact" in recorded:
        entry = recorded["cycle-model-exact"]
        row = entry["row"]
        parts.append(
            f"Without `--bounds-only` (`{entry['command']}`, {entry['date'][:10]}): the same "
            f"grid, {row['exact']} of the {row['configurations']} configurations through the "
            f"exact model (those that can be on the front), {row['seconds']} s in all; where "
            f"both were computed the bound was {100 * row['bound_below_exact_min']:.1f}-"
            f"{100 * row['bound_below_exact_max']:.1f} % below the exact figure. Best: "
            f"**{row['best']}**, {row['best_cycles']:,} cycles ({row['report']}).")
    if "synth" in recorded:
        row = recorded["synth"]["row"]
        parts.append(
            f"With `--synth` ({recorded['synth']['date'][:10]}): {row['network']} on the "
            f"{row['part']}, {row['configurations']} configurations, {row['synthesised']} of "
            f"the front's {row['front']} synthesised and placed on a scheduler and "
            f"{row['workers']} workers in processes of their own, worker 0 killed "
            f"{row['killed_worker_at_s']} s in: {'completed' if row['completed'] else 'FAILED'}"
            f" in {row['seconds']} s. Best: **{row['best']}**, {row['best_latency_ms']} ms at "
            f"{row['best_fmax_mhz']:.1f} MHz ({row['report']}).")
    if "synth-ecp5" in recorded:
        entry = recorded["synth-ecp5"]
        row = entry["row"]
        parts.append(
            f"On the ECP5 ({entry['date'][:10]}, `{entry['command']}`): {row['network']}, "
            f"{row['configurations']} configurations, "
            f"{row['synthesised']} of the front's {row['front']} synthesised and placed on a "
            f"LocalCluster of {row['workers']} workers: "
            f"{'completed' if row['completed'] else 'FAILED'} in {row['seconds']} s. Best: "
            f"**{row['best']}**, {row['best_latency_ms']} ms at {row['best_fmax_mhz']:.1f} MHz "
            f"({row['report']}).")
    return "\n\n".join(parts)


def sizes_table() -> str:
    """bench/results/ecp5-85f-sizes.md: the list engine out of context per array size."""
    data = json.loads((RESULTS / "ecp5-85f-sizes.json").read_text())
    rows = [(r["array"], r["PEs in DSP"], r["PEs in logic"], r.get("LUT4", ""), r.get("FF", ""),
             r.get("MULT18X18D", ""), r.get("DP16KD", ""), r["fmax MHz"],
             r.get("peak GOPS", ""), r["date"][:10]) for r in data["sizes"]]
    return (f"From `python bench/sizes.py` ({', '.join(sorted({r[-1] for r in rows}))}):\n\n"
            + _table(["array", "PEs in DSP", "PEs in logic", "LUT4", "FF", "MULT18X18D",
                      "DP16KD", "fmax MHz", "peak GOPS", "recorded"], rows))


def tables() -> dict[str, str]:
    return {"memory": memory_table(), "efficiency": efficiency_table(), "sizes": sizes_table(),
            "reliability": reliability_table(), "boards": boards_table(),
            "board_models": board_models_table(),
            "test-times": test_times_table(), "models": models_table(),
            "explore": explore_table(), "networks": networks_table()}


def render(text: str) -> str:
    """``text`` (the README) with every marked table replaced."""
    for name, table in tables().items():
        key = re.escape(name)
        pattern = re.compile(rf"(<!-- results:{key} -->\n)(?:.*?\n)?(<!-- /results:{key} -->)",
                             re.DOTALL)
        if not pattern.search(text):
            raise ValueError(f"README.md has no <!-- results:{name} --> block")
        text = pattern.sub(
            lambda match, table=table: match.group(1) + table + "\n" + match.group(2), text)
    return text


def main() -> int:
    text = README.read_text()
    new = render(text)
    if new != text:
        README.write_text(new)
        print("README.md: tables rewritten from bench/results/")
    else:
        print("README.md: tables already match bench/results/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
