"""The proofs :mod:`convhw.formal` runs (``make formal``): one harness per property group.

Depths: a ``prove`` depth is the k of the induction (the smallest that closes, plus a margin
of one or two: the invariants the harnesses state make them close in a few cycles); a ``bmc``
depth is the number of cycles checked from reset; a ``cover`` depth is enough to reach every
``Cover`` of its harness (that the properties are not vacuous).
"""

from __future__ import annotations

from ..config import EngineConfig
from .bus_slaves import Axi4LiteSlaveHarness, WishboneSlaveHarness
from .dma import LoaderHarness, OutputWriterHarness, WalkerHarness
from .fetcher import FetcherHarness
from .job_controller import JobControllerHarness
from .list_controller import ListControllerHarness
from .registry import Proof
from .streamer import StreamerHarness

__all__ = ["PROOFS"]


#: The DMA proofs' engine: buffers and coordinates as small as EngineConfig allows, 4-byte
#: beats (weight words of one beat, parameter words of two, at any byte offset).
TINY = EngineConfig(rows=4, cols=4, input_depth=64, weight_depth=64, acc_depth=32,
                    coord_width=6, param_width=4, memory_width=32)


def _preset(name: str) -> EngineConfig:
    return EngineConfig.preset(name)


def _job_controller(preset: str, groups, **options):
    return lambda: JobControllerHarness(_preset(preset), groups=groups, **options)


_JOB_SUMMARIES = {
    "abort": "ABORT while busy: idle within 2 cycles, the job ended DONE+ERROR+ABORTED; "
             "START with ABORT: ABORTED at once (every job register and datapath input free).",
    "start": "START: the datapath starts exactly check_cycles later, or the controller is "
             "idle within check_cycles + 1 with DONE+ERROR and a check's code; job_start "
             "never otherwise; busy only for checks, datapath or drain.",
    "run": "While the datapath runs: window_miss or ABORT flushes it and the controller is "
           "idle next cycle with WINDOW_MISS (ABORTED); pipeline_idle ends the job after "
           "exactly max(drain_cycles, 1) drain cycles, DONE and no error.",
}

PROOFS: list[Proof] = []

# -- the host-fed engine's job controller -----------------------------------------------------
for _preset_name in ("small", "up5k"):
    for _group in ("abort", "start", "run"):
        PROOFS.append(Proof(
            name=f"job_controller_{_group}_{_preset_name}",
            summary=_JOB_SUMMARIES[_group],
            config=_preset_name,
            harness=_job_controller(_preset_name, (_group,)),
            mode="prove", depth=4))
PROOFS.append(Proof(
    name="job_controller_cover_up5k",
    summary="Every Cover of the job controller's harness is reached: an ABORT honoured, a "
            "check's error, a datapath start, a window miss, a complete drain.",
    config="up5k",
    harness=_job_controller("up5k", ("abort", "start", "run")),
    mode="cover", depth=24))
# The list engine's datapath's controller (`checked`, `overlap`): no checks; the job is done
# as soon as the pipeline is idle, the tail drains behind the next job.
for _group in ("abort", "start", "run"):
    PROOFS.append(Proof(
        name=f"job_controller_list_{_group}_small",
        summary=_JOB_SUMMARIES[_group].replace(
            "a check's code", "ABORTED (it checks nothing)").replace(
            "exactly max(drain_cycles, 1) drain cycles", "release, DONE in the next cycle and "
            "a tail of at most drain_cycles (cut short by ABORT)"),
        config="small, checked+overlap",
        harness=_job_controller("small", (_group,), checked=True, overlap=True),
        mode="prove", depth=4))
PROOFS.append(Proof(
    name="job_controller_list_cover_small",
    summary="Every Cover of the checked+overlap controller's harness is reached (an ABORT "
            "honoured, a datapath start, a window miss, a tail drained to its end).",
    config="small, checked+overlap",
    harness=_job_controller("small", ("abort", "start", "run"), checked=True, overlap=True),
    mode="cover", depth=24))

# -- the control-port bus slaves ----------------------------------------------------------------
PROOFS += [
    Proof(
        name="axi4_lite_slave_small",
        summary="List engine's AXI4-Lite port + register file: every write answered (BVALID) "
                "and every read (RVALID) within 8 cycles of being presented (master takes "
                "responses within 2 cycles); responses held until taken; no answer without "
                "an access; while locked only CTRL and IRQ_CLEAR are written.",
        config="small",
        harness=lambda: Axi4LiteSlaveHarness(_preset("small"), patience=2),
        mode="prove", depth=12),
    Proof(
        name="axi4_lite_slave_cover_small",
        summary="Covers of the AXI4-Lite harness: an OKAY write and read, a write answered at "
                "exactly the bound (the bound is reached).",
        config="small",
        harness=lambda: Axi4LiteSlaveHarness(_preset("small"), patience=2),
        mode="cover", depth=14),
    Proof(
        name="wishbone_slave_engine_small",
        summary="Host-fed engine's Wishbone port (registers + INPUT/WEIGHT/OUTPUT windows "
                "answering within 3 cycles, the address decoded into registers first): every "
                "access answered (ACK or ERR) within 5 cycles, exactly once, never in its "
                "first cycle; one window request at a time; while locked only CTRL is "
                "written.",
        config="small",
        harness=lambda: WishboneSlaveHarness(_preset("small"), engine="host",
                                             window_latency=3),
        mode="prove", depth=10),
    Proof(
        name="wishbone_slave_engine_up5k",
        summary="As wishbone_slave_engine_small, on the up5k register map and windows.",
        config="up5k",
        harness=lambda: WishboneSlaveHarness(_preset("up5k"), engine="host",
                                             window_latency=3),
        mode="prove", depth=10),
    Proof(
        name="wishbone_slave_list_small",
        summary="List engine's Wishbone port (registers only): every access answered within "
                "1 cycle after it is presented; while locked only CTRL and IRQ_CLEAR are "
                "written.",
        config="small, bus=wishbone",
        harness=lambda: WishboneSlaveHarness(_preset("small"), engine="list",
                                             window_latency=0),
        mode="prove", depth=10),
    Proof(
        name="wishbone_slave_cover_small",
        summary="Covers of the Wishbone harness: an ACK, an ERR, an access answered at exactly "
                "the bound.",
        config="small",
        harness=lambda: WishboneSlaveHarness(_preset("small"), engine="host",
                                             window_latency=3),
        mode="cover", depth=12),
]

# -- the list engine's controller ---------------------------------------------------------------
# Bounded only (see list_controller.py); two slots instead of the list engine's four and
# stages answering within one cycle keep each run to a minute or two: the solver's time grows
# about 2.5-fold per cycle of depth here (depth 24 with z3: 2 minutes for ABORT, 6 for the
# error group; boolector: the error group in 110 s). The error group's end bound is out of
# reach: a failure comes 3 cycles after START at the earliest, and traces exist in which the
# list is still busy 20 cycles after it (probes with a bound of 12, 16 and 20 failed at depth
# 24-26), so a bound that holds needs a depth past 24.
PROOFS += [
    Proof(
        name="list_controller_abort_small",
        summary="ABORT while a list runs (whatever the entries, loads, computes, drains and "
                "their errors do, each stage answering within 1 cycle): idle within 16 "
                "cycles, the list ended DONE+ERROR+ABORTED (unless it had finished in the "
                "ABORT's cycle); START with ABORT starts no fetch.",
        config="small, slots=2",
        harness=lambda: ListControllerHarness(_preset("small"), slots=2, latency=1,
                                              groups=("abort",), abort_cycles=16),
        mode="bmc", depth=22),
    Proof(
        name="list_controller_error_small",
        summary="A failure (an entry's code, a load's, compute's or drain's error) and no "
                "ABORT: the list ends DONE+ERROR with a code neither 0 nor ABORTED; no "
                "failure and no ABORT: it ends DONE, no ERROR, code 0 (end within 24 cycles "
                "of the failure: not reached at this depth; it takes 21 or more in some "
                "traces).",
        config="small, slots=2",
        harness=lambda: ListControllerHarness(_preset("small"), slots=2, latency=1,
                                              groups=("error",), error_cycles=24),
        mode="bmc", depth=24, solver="boolector"),
]

# -- the memory masters (DMA) ---------------------------------------------------------------------
# Bounded: the solvers' time grows about twofold per cycle of depth past 16 here (boolector:
# depth 16 in 10 s, 19 in 70 s; z3 is 10-20 times slower on these).
_LOADER_SUMMARY = (
    "Block loader ({}): read commands contiguous from the region's first beat, never past its "
    "last, none crossing 4 KiB, none without a command; buffer writes exactly words base, "
    "base+1, ..., never more than the command's; done only after every word and every beat, "
    "with error exactly when a beat failed (every command field, the memory's data, errors "
    "and pace free).")
PROOFS += [
    Proof(
        name="block_loader_weights_tiny",
        summary=_LOADER_SUMMARY.format("weight words of 4 bytes, 4-byte beats"),
        config="tiny, 13-bit addresses",
        harness=lambda: LoaderHarness(TINY, buffer="weights"),
        mode="bmc", depth=19, solver="boolector"),
    Proof(
        name="block_loader_params_tiny",
        summary=_LOADER_SUMMARY.format("column-parameter words of 8 bytes, 4-byte beats"),
        config="tiny, 13-bit addresses",
        harness=lambda: LoaderHarness(TINY, buffer="params"),
        mode="bmc", depth=19, solver="boolector"),
    Proof(
        name="block_loader_cover_tiny",
        summary="Covers of the block loader's harness: a command of several bursts (a 4 KiB "
                "page crossed) done with an error, an empty command done, a command of "
                "several words done.",
        config="tiny, 13-bit addresses",
        harness=lambda: LoaderHarness(TINY, buffer="weights"),
        mode="cover", depth=19, solver="boolector"),
]
PROOFS += [
    Proof(
        name="output_writer_tiny",
        summary="Output writer: every write command a legal burst (beat-aligned, no 4 KiB "
                "crossing) and only while a command with something to write is in progress; "
                "every strobed byte of every beat inside the tile's bounding box in memory; "
                "last on exactly each burst's last beat; done only after every beat and "
                "response, error exactly when a response failed (every command field, the "
                "accumulator data, the memory's pace and errors free).",
        config="tiny, 13-bit addresses",
        harness=lambda: OutputWriterHarness(TINY),
        mode="bmc", depth=22, solver="boolector"),
    Proof(
        name="output_writer_cover_tiny",
        summary="Covers of the output writer's harness: a tile of more than a beat written and "
                "done; a beat at the start of a 4 KiB page inside a tile.",
        config="tiny, 13-bit addresses",
        harness=lambda: OutputWriterHarness(TINY),
        mode="cover", depth=26, solver="boolector"),
]
PROOFS += [
    Proof(
        name="streamer_tiny",
        summary="Streamer (the address generator): every input-buffer address of a real "
                "operand inside the job's window, every accumulator address written inside "
                "the tile (job registers free and constant, descriptors as the pass sequencer "
                "makes them; tiles up to 3 per axis, strides up to 2, segments up to 2 long).",
        config="tiny",
        harness=lambda: StreamerHarness(TINY),
        mode="bmc", depth=24, solver="boolector"),
    Proof(
        name="streamer_cover_tiny",
        summary="Covers of the streamer's harness: a real operand at a nonzero window word; "
                "the last entry of a tile of more than 4 written.",
        config="tiny",
        harness=lambda: StreamerHarness(TINY),
        mode="cover", depth=16, solver="boolector"),
]
PROOFS += [
    Proof(
        name="descriptor_fetcher_small",
        summary="Descriptor fetcher: the k-th read after a START is descriptor k, at list_addr "
                "+ 128k, one descriptor long; none while idle, none after ABORT or after the "
                "entry that ends the list is handed on (start, abort, list_addr, the memory's "
                "data, errors and pace free).",
        config="small, 13-bit addresses",
        harness=lambda: FetcherHarness(_preset("small")),
        mode="bmc", depth=40, solver="boolector"),
    Proof(
        name="descriptor_fetcher_cover_small",
        summary="Covers of the fetcher's harness: a fourth descriptor read; an entry with LAST "
                "handed on after three reads.",
        config="small, 13-bit addresses",
        harness=lambda: FetcherHarness(_preset("small")),
        mode="cover", depth=40, solver="boolector"),
]
PROOFS += [
    Proof(
        name="window_walker_products_tiny",
        summary="Window walker (the input DMA's address generator), its products: while it "
                "walks, its multiplier's results are each segment start times its pitch, "
                "in_chunks times the word's bytes and that times each x segment's length (the "
                "lemma the next proof assumes).",
        config="tiny, 13-bit addresses",
        harness=lambda: WalkerHarness(TINY, part="products"),
        mode="bmc", depth=24, solver="boolector"),
    Proof(
        name="window_walker_tiny",
        summary="Window walker, its ranges, for any products (the multiplier cut free): exactly "
                "those of a reference walk (z, y, x; empty segments skipped; a whole x segment "
                "when the pixels are contiguous), each at addr + the sum of its pixel's start "
                "products and steps times pitches, one pixel's (or segment's) bytes; the last "
                "one marked, an empty command one marker, the command's first buffer word on "
                "each; no command taken while ranges are owed (pitches and address free below "
                "2**13, segments from 0..3, up to 2 long, up to 2 words a pixel).",
        config="tiny, 13-bit addresses",
        harness=lambda: WalkerHarness(TINY),
        mode="bmc", depth=24, solver="boolector"),
    Proof(
        name="window_walker_cover_tiny",
        summary="Covers of the walker's harness: the last range of a window of more than 4 "
                "ranges given; a range in a second z segment at step 1 in y and x.",
        config="tiny, 13-bit addresses",
        harness=lambda: WalkerHarness(TINY),
        mode="cover", depth=24, solver="boolector"),
]
