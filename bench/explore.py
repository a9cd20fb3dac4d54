"""``convhw explore`` measured: the issue's two sweeps, each with its report in
``bench/results/explore/``.

* ``cycle-model``: ResNet-18 (224x224) on the ECP5-85F, the grid given (default rows and cols
  4 to 13: 100 configurations, the issue's target size), on a LocalCluster of 2 workers, the
  cycle model's lower bound of every configuration (``--bounds-only``: the exact model on the
  front takes about a minute per configuration more); seconds for the sweep against the
  target (60 s on 2 cores).
* ``cycle-model-exact``: the same grid as the sweep runs it by default: the bounds, then the
  exact model on the configurations that can be on the front (about a minute each for
  ResNet-18); how far below the exact figure each bound was, where both were computed.
* ``synth-ecp5``: the same network on the ECP5-85F (rows and cols 4 and 8), ``--synth`` on
  a LocalCluster of 2 workers: the front's configurations through Yosys and nextpnr-ecp5
  (several minutes each).
* ``synth``: ``bench/networks/small_cnn.py`` (a network given as a file; ResNet-18's layers
  sum more products than the ``up5k`` preset's 24-bit accumulator holds) on the iCE40UP5K
  (rows and cols 1 and 2: 4 configurations),
  with ``--synth``, on a scheduler and 2 workers started as processes of their own; worker 0
  is killed (with its Yosys or nextpnr) once the first synthesis result is written. Recorded:
  whether the sweep completed with every front configuration synthesised, and the best
  configuration its report names.

Run from the repository root: ``.venv/bin/python bench/explore.py [--sections ...]``; each
section replaces its own part of ``bench/results/explore.md`` (and ``.json``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import threading
import time
from pathlib import Path

from report import markdown, provenance

from convhw import explore

RESULTS = Path(__file__).resolve().parent / "results"
OUT = RESULTS / "explore"
TARGET_SECONDS = 60          # 100 configurations x ResNet-18, 2 cores


def cycle_model(rows: str, cols: str, exact: bool = False) -> dict:
    net = explore.network("resnet18", "full")
    points = explore.grid("ecp5-85f", explore.parse_range(rows, "rows"),
                          explore.parse_range(cols, "cols"))
    out = OUT / ("resnet18-ecp5-85f" + ("-exact" if exact else ""))
    shutil.rmtree(out, ignore_errors=True)       # measured from scratch: no cached result
    start = time.perf_counter()
    report = explore.run(net, points, out, exact=exact, workers=2)
    seconds = time.perf_counter() - start
    per = seconds / len(points)
    chosen = report["best"]
    row = dict(section="cycle-model-exact" if exact else "cycle-model", network=net.name,
               part="ecp5-85f", configurations=len(points),
               exact=report["exact_configurations"], workers=2,
               seconds=round(seconds, 1), bounds_s=report["bound_seconds"],
               seconds_per_configuration=round(per, 2),
               hundred_configurations_s=round(100 * per), target_s=TARGET_SECONDS,
               met=100 * per <= TARGET_SECONDS,
               best=explore.Point(**chosen["point"]).label if chosen else None,
               best_cycles=chosen["cycles"] if chosen else None,
               report=str(out.relative_to(RESULTS.parent.parent)))
    if exact:
        # How far below the exact figure each lower bound was, where both were computed.
        gaps = []
        for path in (out / "results").glob("cycles-*.json"):
            bound = out / "results" / path.name.replace("cycles-", "bound-", 1)
            exact_cycles = json.loads(path.read_text())["cycles"]
            if bound.exists():
                gaps.append(1 - json.loads(bound.read_text())["cycles"] / exact_cycles)
        row.update(bound_below_exact_min=round(min(gaps), 4) if gaps else None,
                   bound_below_exact_max=round(max(gaps), 4) if gaps else None)
    return row


def _front(report: dict) -> tuple[int, int, bool]:
    """The synthesis sweep's front: its size, how many of it were synthesised, whether all."""
    front = [row for row in report["rows"] if row["front"]]
    synthesised = sum("synth" in row for row in front)
    return len(front), synthesised, synthesised == len(front)


def _best(report: dict) -> dict:
    """The configuration the report names best, with its latency and fmax."""
    chosen = report["best"]
    return dict(best=explore.Point(**chosen["point"]).label if chosen else None,
                best_latency_ms=round(chosen["latency_s"] * 1e3, 3) if chosen else None,
                best_fmax_mhz=round(chosen["synth"]["fmax_mhz"], 1) if chosen else None)


def synth_with_a_killed_worker() -> dict:
    net = explore.network(str(Path(__file__).resolve().parent / "networks" / "small_cnn.py"))
    points = explore.grid("up5k", [1, 2], [1, 2])
    out = OUT / "small_cnn-up5k-synth"
    shutil.rmtree(out, ignore_errors=True)
    results = out / "results"
    killed = {}
    start = time.perf_counter()
    with explore.ProcessCluster(2, out / "cluster") as cluster:
        def kill_after_the_first_synthesis():
            while not killed.get("stop"):
                if results.exists() and any(results.glob("synth-*.json")):
                    killed.update(at_s=round(time.perf_counter() - start, 1),
                                  finished_before=len(list(results.glob("synth-*.json"))))
                    cluster.kill_worker(0)
                    return
                time.sleep(0.2)

        killer = threading.Thread(target=kill_after_the_first_synthesis)
        killer.start()
        try:
            report = explore.run(net, points, out, synth=True, scheduler=cluster.address)
        finally:
            killed["stop"] = True
            killer.join()
    shutil.rmtree(out / "cluster", ignore_errors=True)
    shutil.rmtree(out / "synth", ignore_errors=True)      # the build directories: large
    front, synthesised, all_synthesised = _front(report)
    return dict(section="synth", network=net.name, part="up5k", configurations=len(points),
                workers=2, front=front, synthesised=synthesised,
                killed_worker_at_s=killed.get("at_s"),
                synth_results_before_kill=killed.get("finished_before"),
                completed=all_synthesised and "at_s" in killed,
                seconds=round(time.perf_counter() - start, 1), **_best(report),
                report=str(out.relative_to(RESULTS.parent.parent)))


def synth_ecp5() -> dict:
    net = explore.network(str(Path(__file__).resolve().parent / "networks" / "small_cnn.py"))
    points = explore.grid("ecp5-85f", [4, 8], [4, 8])
    out = OUT / "small_cnn-ecp5-85f-synth"
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    report = explore.run(net, points, out, synth=True, workers=2)
    shutil.rmtree(out / "synth", ignore_errors=True)      # the build directories: large
    front, synthesised, all_synthesised = _front(report)
    return dict(section="synth-ecp5", network=net.name, part="ecp5-85f",
                configurations=len(points), workers=2, front=front, synthesised=synthesised,
                completed=all_synthesised, seconds=round(time.perf_counter() - start, 1),
                **_best(report), report=str(out.relative_to(RESULTS.parent.parent)))


SECTIONS = {"cycle-model": "The cycle-model sweep (lower bounds)",
            "cycle-model-exact": "The cycle-model sweep with the exact model on the front",
            "synth": "Synthesis with a killed worker",
            "synth-ecp5": "Synthesis on the ECP5-85F"}
BUILDERS = {"synth": synth_with_a_killed_worker, "synth-ecp5": synth_ecp5}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", nargs="+", choices=list(SECTIONS), default=list(SECTIONS))
    parser.add_argument("--rows", default="4:13", help="cycle-model grid (default 4:13)")
    parser.add_argument("--cols", default="4:13", help="cycle-model grid (default 4:13)")
    args = parser.parse_args(argv)
    path = RESULTS / "explore.json"
    recorded = json.loads(path.read_text()) if path.exists() else {}
    command, machine, date = provenance("explore.py", argv)
    for section in args.sections:
        row = (cycle_model(args.rows, args.cols, exact=section == "cycle-model-exact")
               if section.startswith("cycle-model") else BUILDERS[section]())
        print(markdown([row], list(row)))
        recorded[section] = dict(command=command, machine=machine, date=date, row=row)
    path.write_text(json.dumps(recorded, indent=1) + "\n")
    text = ["# convhw explore\n",
            "Each section comes from its own run of `bench/explore.py`; its report (table, "
            "HTML, Pareto plot, every configuration's cached result) is in the directory "
            "named. `seconds` includes starting the Dask workers.\n"]
    for section, title in SECTIONS.items():
        if section in recorded:
            entry = recorded[section]
            text += [f"## {title}\n", f"- command: `{entry['command']}`",
                     f"- date: {entry['date']}", f"- machine: {entry['machine']}", "",
                     markdown([entry["row"]], list(entry["row"])), ""]
    (RESULTS / "explore.md").write_text("\n".join(text))
    failed = [s for s in args.sections if not recorded[s]["row"].get("completed", True)]
    if failed:
        print(f"bench/explore.py: {', '.join(failed)} did not complete", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
