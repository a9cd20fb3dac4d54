"""How long a newcomer waits for the test tiers: ``make test`` and ``make check`` on a fresh
clone, with a new venv and an empty Verilator cache, as on a fresh machine.

Clones the repository's HEAD (committed work only) into ``--work``, then times, each in that
clone: making the venv (``make .venv/.convhw-installed``: ``pip install -e '.[dev]'``, pip's
cache off), optionally torch (``--torch``: ``pip install -e '.[torch]'``, as CI does), ``make
test`` (its first Verilator builds included) and, with ``--check``, the rest of ``make
check`` (``make slow``). Writes ``bench/results/test_times.{md,json}`` (with the machine's load
average before and after each step: other work on the machine slows the tests) and prints the
table. ``bench/update_readme.py`` puts the table in the README.

    .venv/bin/python bench/test_times.py --torch --check
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from report import markdown, provenance, render

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
COLUMNS = ["step", "command", "seconds", "load before", "load after", "outcome"]


def _summary(log: str) -> str:
    """pytest's closing line ("1234 passed, 8 skipped in 201.3s"), without the time."""
    found = re.findall(r"^=+ (.*?) in [\d.]+s(?: \([\d:]+\))? =+$", log, re.M)
    return found[-1] if found else ""


def _step(rows, name, command, cwd, env, log_dir) -> bool:
    load_before = os.getloadavg()[0]
    start = time.monotonic()
    proc = subprocess.run(command, cwd=cwd, env=env, shell=True, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    seconds = time.monotonic() - start
    (log_dir / f"{name.replace(' ', '_')}.log").write_text(proc.stdout)
    outcome = _summary(proc.stdout) or ("ok" if proc.returncode == 0 else "")
    if proc.returncode:
        outcome = f"FAILED (exit {proc.returncode}) {outcome}".rstrip()
    rows.append({"step": name, "command": f"`{command}`", "seconds": round(seconds, 1),
                 "load before": round(load_before, 2),
                 "load after": round(os.getloadavg()[0], 2), "outcome": outcome})
    print(render(rows[-1:], COLUMNS), file=sys.stderr)
    return proc.returncode == 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default="/tmp/convhw-test-times",
                        help="scratch directory (emptied first)")
    parser.add_argument("--torch", action="store_true",
                        help="install the torch extra before `make test`, as CI does")
    parser.add_argument("--check", action="store_true",
                        help="then the rest of `make check` (`make slow`)")
    args = parser.parse_args(argv)
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    clone = work / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=clone, check=True,
                            capture_output=True, text=True).stdout.strip()
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "CONVHW_CACHE", "PYTHONPATH")}
    env.update(XDG_CACHE_HOME=str(work / "cache"), PIP_NO_CACHE_DIR="1")
    rows = []
    ok = _step(rows, "venv", "make .venv/.convhw-installed", clone, env, work)
    if ok and args.torch:
        ok = _step(rows, "torch", ".venv/bin/python -m pip install --quiet -e '.[torch]'",
                   clone, env, work)
    if ok:
        ok = _step(rows, "make test", "make test", clone, env, work)
    if ok and args.check:
        ok = _step(rows, "rest of make check", "make slow", clone, env, work)
    first = sum(r["seconds"] for r in rows if r["step"] in ("venv", "make test"))
    command, machine, date = provenance("test_times.py", argv)
    data = {"command": command, "machine": machine, "date": date, "commit": commit,
            "torch": args.torch, "fresh_clone_to_make_test_done_s": round(first, 1),
            "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "test_times.json").write_text(json.dumps(data, indent=1) + "\n")
    (RESULTS / "test_times.md").write_text(
        f"# Test tiers on a fresh clone\n\n- command: `{command}`\n- commit: {commit}\n"
        f"- date: {date}\n- machine: {machine}\n\nA new venv (pip's cache off) and an empty "
        f"Verilator cache; torch {'installed (the torch extra)' if args.torch else 'absent'}. "
        f"Fresh clone to `make test` done: {first:.0f} s.\n\n{markdown(rows, COLUMNS)}\n")
    print(render(rows, COLUMNS, title=f"test tiers on a fresh clone of {commit}"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
