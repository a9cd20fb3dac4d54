"""convhw.formal: the SymbiYosys runner end to end, and that it can fail.

The fast tests run one real proof (the job controller's ABORT property, k-induction, a few
seconds) and one that must fail (the same harness with a bound one cycle too tight: the
solver has to find legal job registers, pass the checks and ABORT in their last cycle); the
whole registry (`make formal`) is marked slow.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from convhw.config import EngineConfig
from convhw.formal import PROOFS, Proof
from convhw.formal.bus_slaves import WishboneSlaveHarness, wishbone_bound
from convhw.formal.dma import LoaderHarness, OutputWriterHarness, WalkerHarness
from convhw.formal.fetcher import FetcherHarness
from convhw.formal.job_controller import ABORT_BOUND, JobControllerHarness
from convhw.formal.proofs import TINY
from convhw.formal.runner import GOOD, main, run_proof
from convhw.formal.streamer import StreamerHarness

from .helpers import tiered

ABORT_PROOF = next(p for p in PROOFS if p.name == "job_controller_abort_up5k")

#: The ABORT bound one cycle too tight: false (an ABORT in the last cycle of the checks is
#: carried into the first cycle of the run), so the same runner must report FAIL.
TOO_TIGHT = Proof(
    name="job_controller_abort_too_tight_up5k",
    summary="ABORT honoured within 1 cycle: false.",
    config="up5k",
    harness=lambda: JobControllerHarness(EngineConfig.preset("up5k"), groups=("abort",),
                                         abort_bound=ABORT_BOUND - 1),
    mode="bmc", depth=16)


@pytest.mark.slow       # (37 s; the boolector test below runs a real proof in make test)
def test_a_real_proof_passes(tmp_path):
    result = run_proof(ABORT_PROOF, tmp_path)
    assert (result.outcome, result.status) == ("PASS", "PASS")
    assert result.trace is None
    assert (tmp_path / ABORT_PROOF.name / f"{ABORT_PROOF.name}.sby").exists()


@pytest.mark.slow       # (48 s)
def test_a_false_property_fails_with_a_counterexample(tmp_path):
    result = run_proof(TOO_TIGHT, tmp_path)
    assert (result.outcome, result.status) == ("FAIL", "FAIL")
    assert result.trace is not None and (tmp_path / result.trace).exists()
    log = (tmp_path / result.log).read_text()
    assert re.search(r"failed assertion .*job_controller\.py", log)


@pytest.mark.slow       # (3 s here; YoWASP compiles its tools once on a fresh machine)
def test_the_registered_decode_costs_exactly_one_cycle(tmp_path):
    # The host-fed engine's slave decodes the address into registers before it takes the
    # access: the bound of a slave that decodes in the access's first cycle is one too tight.
    proof = Proof(
        name="wishbone_slave_registered_decode_too_tight",
        summary="Host-fed engine's Wishbone port answered within 4 cycles: false.",
        config="small",
        harness=lambda: WishboneSlaveHarness(EngineConfig.preset("small"), engine="host",
                                             window_latency=3, bound=wishbone_bound(3)),
        mode="bmc", depth=10)
    assert wishbone_bound(3, registered_decode=True) == wishbone_bound(3) + 1
    result = run_proof(proof, tmp_path)
    assert (result.outcome, result.status) == ("FAIL", "FAIL")


@pytest.mark.slow       # (2 s, but 38 s on a fresh machine: YoWASP compiles its tools once)
def test_boolector_runs_the_block_loaders_proof(tmp_path):
    # At a shallow depth: boolector through the runner's shim.
    loader = next(p for p in PROOFS if p.name == "block_loader_weights_tiny")
    assert run_proof(dataclasses.replace(loader, depth=10), tmp_path).outcome == "PASS"


#: Each address-bound harness told that its region ends one unit (a beat, a byte, an entry or
#: a word) earlier than it does, or the fetcher that its reads start a descriptor later:
#: false, so the runner must find a counterexample (the real proofs are in the slow suite).
#: (proof, harness, depth, the harness's file)
TIGHT = [
    ("block_loader_weights_tiny", lambda: LoaderHarness(TINY, buffer="weights", short=1), 10,
     "dma"),
    ("output_writer_tiny", lambda: OutputWriterHarness(TINY, short=1), 24, "dma"),
    # (the first range expected one byte further on)
    ("window_walker_tiny", lambda: WalkerHarness(TINY, short=1), 17, "dma"),
    ("window_walker_products_tiny", lambda: WalkerHarness(TINY, part="products", short=1), 17,
     "dma"),
    ("streamer_tiny", lambda: StreamerHarness(TINY, short=1), 12, "streamer"),
    # (the fetcher expecting descriptor k + 1 as its k-th read)
    ("descriptor_fetcher_small", lambda: FetcherHarness(EngineConfig.preset("small"), skew=1),
     12, "fetcher"),
]


# Slow tier: each runs yosys and a solver (YoWASP: 40 s on a fresh machine, compiling them).
@pytest.mark.parametrize("name, harness, depth, source", tiered(TIGHT, fast=0, several=True),
                         ids=[t[0] for t in TIGHT])
def test_the_address_bounds_are_tight(tmp_path, name, harness, depth, source):
    proof = next(p for p in PROOFS if p.name == name)
    short = dataclasses.replace(proof, name=f"{name}_short", depth=depth, harness=harness)
    result = run_proof(short, tmp_path)
    assert (result.outcome, result.status) == ("FAIL", "FAIL")
    assert re.search(rf"failed assertion .*{source}\.py", (tmp_path / result.log).read_text())


@pytest.mark.slow       # (two proofs: 40 s on a fresh machine, where YoWASP compiles its tools)
def test_main_writes_the_summary_and_reports_failures(tmp_path, capsys):
    known = dataclasses.replace(TOO_TIGHT, name="known_failure",
                                expect_failure="the bound is one cycle too tight")
    # A proof marked as failing that passes (XPASS) fails the run: its mark must go.
    stale = dataclasses.replace(ABORT_PROOF, name="stale_mark", expect_failure="fixed since")
    assert main(["--build-dir", str(tmp_path)], proofs=[ABORT_PROOF, known]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [(r["name"], r["outcome"]) for r in summary] == [(ABORT_PROOF.name, "PASS"),
                                                             ("known_failure", "XFAIL")]
    assert summary[1]["trace"] and (tmp_path / summary[1]["trace"]).exists()
    assert "| known_failure | up5k | bmc | 16 | z3 | XFAIL |" in \
        (tmp_path / "summary.md").read_text()
    assert main(["--build-dir", str(tmp_path), "--only", "stale_mark"],
                proofs=[ABORT_PROOF, stale]) == 1
    assert main(["--build-dir", str(tmp_path)], proofs=[TOO_TIGHT]) == 1


def test_list_and_only_select_by_name(capsys):
    assert main(["--list"]) == 0
    listed = capsys.readouterr().out
    assert all(p.name in listed for p in PROOFS)
    with pytest.raises(SystemExit):
        main(["--list", "--only", "no_such_proof"])
    assert main(["--list", "--only", "axi4_lite*"]) == 0
    assert "axi4_lite_slave_small" in capsys.readouterr().out


def test_registry_names_are_unique():
    names = [p.name for p in PROOFS]
    assert len(names) == len(set(names))


def test_gateware_does_not_import_the_formal_package():
    gateware = Path(__file__).resolve().parents[1] / "convhw" / "gateware"
    for path in gateware.glob("*.py"):
        assert "formal" not in re.findall(r"^\s*(?:from|import)\s+(\S+)", path.read_text(),
                                          re.M), path


@pytest.mark.formal
@pytest.mark.parametrize("proof", PROOFS, ids=lambda p: p.name)
def test_proof(proof, tmp_path):
    result = run_proof(proof, tmp_path)
    assert result.outcome in GOOD, (result.outcome, result.log, result.trace)
