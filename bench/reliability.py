"""Reliability: what the engine and its host do when things go wrong, measured.

Sections (``--sections``, all by default):

* ``link``: the simulated board (:class:`convhw.driver.serial_sim.SimulatedBoard`: the board
  top's Verilog, UART, bridge and list engine, behind a pseudo-terminal) with seeded noise on
  its line, every byte of both directions flipped (one random bit) or lost with the given
  probabilities. Per noise level, ``--layers`` small layers run through ``Device("serial")``:
  how many completed exact, ended in a :class:`~convhw.driver.serial_transport.LinkError`, or
  (the number that must stay 0) returned a wrong result; the longest time a layer took to fail;
  the link's attempts per request; and the layers' payload (tensor bytes to and from the
  board) per second of wall time, whose ratio to the clean line's is the throughput the noise
  and the retry scheme cost. On the clean line no attempt fails and no frame is cut, so the
  scheme's cost there is nil: ``attempts`` = ``requests``, as long as the machine keeps up
  with the simulated board (on one busy with other jobs the Verilated board answers later than
  :data:`TIMEOUT`, and those attempts count as failed: 177 of 1,736 once, with two FPGA builds
  beside it).

* ``fuzz``: :mod:`convhw.fuzz` on the list engine in Verilator: ``--programs`` random
  descriptor lists (fields at their limits, flipped bits), bus errors at random beats, and
  ABORTs and resets at random cycles, each against the list model (ERROR and every byte of
  memory), a legal list after every error; hangs and mismatches (both must stay 0), and the
  error codes the programs ended with.

* ``formal``: every proof of :mod:`convhw.formal` (``make formal``) with SymbiYosys: the
  property, configuration, mode (k-induction or bounded), depth, outcome and solver time.

Run from the repository root: ``.venv/bin/python bench/reliability.py`` (``--no-write`` leaves
bench/results/ alone). The simulated line is slow (the Verilated board runs at a few hundred
kHz), so seconds are the simulation's, not a board's.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from report import markdown, provenance, render

import convhw
from convhw import golden, progress
from convhw.spec import ConvSpec

RESULTS = Path(__file__).resolve().parent / "results"

CONFIG = convhw.EngineConfig.preset("small")
CLOCK_HZ, BAUDRATE = 1_000_000, 125_000
LINK_SPEC = ConvSpec(2, 4, 4, 3, padding=1)
LINK_SHAPE = (1, 4, 6, 6)
#: (bytes flipped, bytes lost): per byte, both directions.
NOISE = [(0.0, 0.0), (0.005, 0.0005), (0.01, 0.001), (0.05, 0.005)]
#: The transport's slack for a late response (seconds). The simulated board answers within
#: milliseconds; a lost byte costs this much.
TIMEOUT = 0.1

LINK_COLUMNS = ["flipped", "lost", "layers", "exact", "link_errors", "other_errors", "wrong",
                "completed",
                "seconds", "slowest_failure_s", "requests", "attempts", "halved",
                "doubled_reads", "read_backs", "disagreements", "bus_errors_resent",
                "payload_bytes", "payload_bytes_per_s", "relative_throughput"]


def link(layers: int, seed: int) -> list[dict]:
    from convhw.driver.serial_sim import SimulatedBoard
    from convhw.driver.serial_transport import LinkError
    rows, others = [], []
    with SimulatedBoard(CONFIG, clock_hz=CLOCK_HZ, baudrate=BAUDRATE) as board:
        device = convhw.Device("serial", CONFIG, port=board.port, baudrate=BAUDRATE,
                               timeout=TIMEOUT)
        try:
            rng = np.random.default_rng(seed)
            device.run(LINK_SPEC, np.zeros(LINK_SHAPE, int),
                       np.zeros(LINK_SPEC.weight_shape, int))        # connects, clean line
            transport = device.driver.transport
            bar = progress.bar(total=len(NOISE) * layers, desc="bench/reliability.py: link",
                               unit="layer", tick=1.0)
            for level, (flipped, lost) in enumerate(NOISE):
                board.set_noise(flipped, lost, seed=seed * 100 + level)
                before = dict(transport.stats)
                counts = dict(exact=0, link_errors=0, other_errors=0, wrong=0)
                payload, slowest_failure = 0, 0.0
                start = time.perf_counter()
                for _ in range(layers):
                    bar.update()
                    x = rng.integers(-128, 128, LINK_SHAPE)
                    w = rng.integers(-128, 128, LINK_SPEC.weight_shape)
                    b = rng.integers(-1000, 1000, LINK_SPEC.out_channels)
                    began = time.perf_counter()
                    try:
                        out, info = device.run(LINK_SPEC, x, w, b)
                    except LinkError:
                        counts["link_errors"] += 1
                        slowest_failure = max(slowest_failure, time.perf_counter() - began)
                        continue
                    except Exception as error:      # e.g. a BusError: a frame the CRC let by
                        counts["other_errors"] += 1
                        others.append(f"{flipped}/{lost}: {type(error).__name__}: {error}")
                        continue
                    payload += info.host_bytes
                    exact = np.array_equal(out, golden.convolution(LINK_SPEC, x, w, b))
                    counts["exact" if exact else "wrong"] += 1
                seconds = time.perf_counter() - start
                stats = {k: transport.stats[k] - before[k] for k in transport.stats}
                rows.append(dict(flipped=flipped, lost=lost, layers=layers, **counts,
                                 completed=round(counts["exact"] / layers, 4),
                                 seconds=round(seconds, 1),
                                 slowest_failure_s=round(slowest_failure, 1),
                                 requests=stats["requests"], attempts=stats["attempts"],
                                 halved=stats["halved"],
                                 **{k: stats[k] for k in ("doubled_reads", "read_backs",
                                                          "disagreements",
                                                          "bus_errors_resent")},
                                 payload_bytes=payload,
                                 payload_bytes_per_s=round(payload / seconds)))
                rows[-1]["relative_throughput"] = round(
                    rows[-1]["payload_bytes_per_s"] / rows[0]["payload_bytes_per_s"], 3)
                progress.echo(render([rows[-1]], LINK_COLUMNS), flush=True)
            bar.close()
            board.set_noise()
        finally:
            device.close()
    return rows, others


#: The sections, in the order of the results file, and their titles.
SECTIONS = {"link": "The serial link under noise", "fuzz": "Fuzzing the list engine",
            "formal": "Formal proofs"}
FORMAL_COLUMNS = ["proof", "property", "config", "mode", "depth", "solver", "outcome",
                  "seconds"]


def formal():
    import tempfile

    from convhw.formal.proofs import PROOFS
    from convhw.formal.runner import run_proofs
    with tempfile.TemporaryDirectory() as build:
        results = run_proofs(PROOFS, build)
    return [dict(proof=r.proof.name, property=r.proof.summary, config=r.proof.config,
                 mode=r.proof.mode, depth=r.proof.depth, solver=r.proof.solver,
                 outcome=r.outcome,
                 seconds=round(r.seconds, 1)) for r in results]

FUZZ_COLUMNS = ["programs", "fields", "bits", "bus_error", "abort", "reset", "legal",
                "hangs", "mismatches", "racy", "engine_cycles", "seconds"]


def fuzz(programs: int, seed: int):
    from convhw.driver.verilator_list import ListVerilatorTransport
    from convhw.fuzz import FUZZ_CONFIG, MEMORY_SIZE
    from convhw.fuzz import fuzz as run_fuzz
    from convhw.registers import ErrorCode

    def done_so_far(done):
        bar.update(done - bar.n)
        if done % 500 == 0:
            progress.echo(f"fuzz: {done} programs", flush=True)

    with ListVerilatorTransport(FUZZ_CONFIG, memory_size=MEMORY_SIZE) as transport, \
            progress.bar(total=programs, desc="bench/reliability.py: fuzz", unit="program",
                         tick=1.0) as bar:
        report = run_fuzz(transport, programs, seed=seed, progress=done_so_far)
    row = dict(programs=report.programs,
               **{kind: report.by_kind.get(kind, 0)
                  for kind in ("fields", "bits", "bus_error", "abort", "reset", "legal")},
               hangs=len(report.hangs), mismatches=len(report.mismatches),
               racy=len(report.racy), engine_cycles=report.cycles, seconds=round(report.seconds))
    codes = [dict(code=int(code), name=ErrorCode(code).name, programs=count)
             for code, count in sorted(report.by_code.items())]
    return row, codes, report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default="link,fuzz,formal",
                        help="comma-separated: link, fuzz, formal")
    parser.add_argument("--layers", type=int, default=100, help="layers per noise level")
    parser.add_argument("--programs", type=int, default=10_000, help="fuzz programs")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-write", action="store_true", help="do not write bench/results/")
    args = parser.parse_args(argv)
    sections = args.sections.split(",")
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown sections {', '.join(unknown)}; there are: link, fuzz")
    results, texts = {}, {}
    if "link" in sections:
        rows, others = link(args.layers, args.seed)
        results["link"] = rows
        print()
        print(render(rows, LINK_COLUMNS, "The serial link under noise"))
        texts["link"] = [
                 f"The simulated board ({CONFIG.describe()}, {CLOCK_HZ} Hz, {BAUDRATE} Bd) "
                 f"behind a pseudo-terminal, `Device('serial', timeout={TIMEOUT})`; per noise "
                 f"level {args.layers} layers `{LINK_SPEC}` on input {LINK_SHAPE}, each checked "
                 f"against the golden model. `flipped`, `lost`: the probability that a byte "
                 f"(either direction) has one bit flipped or is lost. `completed` = exact / "
                 f"layers; `wrong` counts results returned without an error that differ from "
                 f"the golden model. `slowest_failure_s`: the longest a layer took to end in a "
                 f"LinkError. `doubled_reads`, `read_backs`: the transport's checks on a "
                 f"suspect line (a READ taken when two agree, a storage write read back); "
                 f"`disagreements`: checks that failed (each a frame the CRC let by); "
                 f"`bus_errors_resent`: bus errors asked again. `payload_bytes`: tensor "
                 f"bytes to and from the board of the "
                 f"completed layers; `relative_throughput`: their rate against the clean "
                 f"line's. Seconds are the simulation's (the Verilated board is slower than a "
                 f"real one at this rate). `other_errors`: layers that ended in another "
                 f"exception, listed below.", "", markdown(rows, LINK_COLUMNS), ""]
        if others:
            texts["link"] += ["Other errors:", "", *[f"- {line}" for line in others], ""]
    failures = 0
    if "fuzz" in sections:
        from convhw.fuzz import FUZZ_CONFIG
        row, codes, report = fuzz(args.programs, args.seed)
        results["fuzz"] = dict(summary=row, codes=codes, hangs=report.hangs,
                               mismatches=report.mismatches)
        failures = row["hangs"] + row["mismatches"]
        print()
        print(render([row], FUZZ_COLUMNS, "Fuzzing the list engine"))
        print(render(codes, ["code", "name", "programs"], "Error codes"))
        texts["fuzz"] = [
                 f"`convhw.fuzz` on the list engine ({FUZZ_CONFIG.describe()}) in Verilator, "
                 f"seeds {args.seed} to {args.seed + args.programs - 1}: each program one "
                 f"descriptor list made from six compiled ones (1-D, 2-D, 3-D, strided, "
                 f"dilated, every padding mode, grouped, transposed, FIR depthwise) by setting "
                 f"one to three fields of a job near the checks' limits (`fields`), flipping "
                 f"one to four bits of a job's descriptor (`bits`), an error range over one beat "
                 f"the list reads or writes (`bus_error`), or ABORT or a reset at a random cycle "
                 f"(`abort`, `reset`: then the list again). Each is compared with the list "
                 f"model on the same memory image: ERROR (code and failing job) and every byte "
                 f"of memory; a *hang* is a list still busy after 2,000,000 cycles. After every "
                 f"program that ended in an error the unchanged list runs again and must be "
                 f"exact (`legal`). A *racy* list is one whose outcome depends on the engine's "
                 f"timing by the documented rules (a job writes a later job's descriptor, which "
                 f"the fetcher reads ahead, or its window, weights or parameters with no WAIT "
                 f"between them): it must end, and the legal list after it must be exact, but "
                 f"its memory and ERROR are not compared. Every program starts from a scrub "
                 f"list that zeroes the engine's buffers, the model's starting state.", "",
                 markdown([row], FUZZ_COLUMNS), "",
                 "Codes the programs ended with (an `abort` or `reset` program ends with its "
                 "rerun's):", "", markdown(codes, ["code", "name", "programs"]), ""]
        if report.racy:
            texts["fuzz"] += ["Racy programs (the first five):", ""]
            texts["fuzz"] += [f"- seed {seed} ({kind}): {detail}"
                              for seed, kind, detail in report.racy[:5]]
            texts["fuzz"].append("")
        for seed, kind, detail in report.mismatches[:20]:
            texts["fuzz"].append(f"- mismatch, seed {seed} ({kind}): {detail}")
        for seed, kind in report.hangs[:20]:
            texts["fuzz"].append(f"- hang, seed {seed} ({kind})")
    if "formal" in sections:
        rows = formal()
        results["formal"] = rows
        failures += sum(row["outcome"] not in ("PASS", "XFAIL") for row in rows)
        print()
        print(render(rows, FORMAL_COLUMNS, "Formal proofs"))
        texts["formal"] = [
            "Every proof of `convhw.formal` (`make formal`; harnesses, assumptions and what is "
            "not proven: docs/formal.md), one solver at a time: `yowasp-sby` with smtbmc and "
            "z3 or boolector. `prove`: k-induction, the property holds in every reachable "
            "state; `bmc`: no counterexample within `depth` cycles of reset; `cover`: every "
            f"cover reached (the properties are not vacuous). Total "
            f"{sum(row['seconds'] for row in rows):.0f} s.", "",
            markdown(rows, FORMAL_COLUMNS), ""]
    wrong = sum(row["wrong"] for row in results.get("link", [])) + failures
    if wrong:
        print(f"{wrong} WRONG RESULTS", file=sys.stderr)
    if args.no_write:
        return 2 if wrong else 0
    command, machine, date = provenance("reliability.py", argv)
    # Each section is kept from the run that made it: a run of some sections replaces those.
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "reliability.json"
    kept = json.loads(path.read_text()).get("sections", {}) if path.exists() else {}
    for name in texts:
        kept[name] = dict(command=command, date=date, machine=machine,
                          text="\n".join(texts[name]), data=results[name])
    lines = ["# Reliability\n", "Each section comes from its own run of "
             "`bench/reliability.py`, named with it.", ""]
    for name in SECTIONS:
        if name in kept:
            section = kept[name]
            lines += [f"## {SECTIONS[name]}\n", f"- command: `{section['command']}`",
                      f"- date: {section['date']}", f"- machine: {section['machine']}", "",
                      section["text"]]
    (RESULTS / "reliability.md").write_text("\n".join(lines))
    path.write_text(json.dumps(dict(sections=kept), indent=1) + "\n")
    return 2 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
