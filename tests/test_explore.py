"""``convhw explore`` (convhw/explore.py): the grid, the area estimate, the Pareto front, the
network's layers, and sweeps on Dask (a LocalCluster; in the slow tier a scheduler and workers
started as processes of their own, one of them killed in the middle)."""

from __future__ import annotations

import dataclasses
import json
import textwrap
import threading
import time
from pathlib import Path

import pytest

from convhw import explore
from convhw.config import EngineConfig
from convhw.estimate import estimate
from convhw.spec import ConvSpec

NETWORK = textwrap.dedent("""\
    import torch
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(5, 8, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(8, 16, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(16, 16, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(16, 16, 3, padding=1))
    inputs = (torch.randn(1, 5, 16, 16),)
    """)

#: The same convolutions without torch: the last two are one distinct layer, twice. (No
#: layer packs its taps, convhw.compiler.packing: the sweep's test below needs a network whose
#: bounds leave some configurations out, which a packed stem's did not.)
#: At 16x16 the (4, 2) array's bound is above the (2, 4) array's exact cycles, with the same
#: DSP blocks; at 12x12, since the weight loads overlap short passes, no bound was.
LAYERS = (explore.Layer("0", ConvSpec(2, 5, 8, 3, padding=1), (1, 5, 16, 16)),
          explore.Layer("2", ConvSpec(2, 8, 16, 3, stride=2, padding=1), (1, 8, 16, 16)),
          explore.Layer("4 (+1)", ConvSpec(2, 16, 16, 3, padding=1), (1, 16, 8, 8), 2))


@pytest.mark.parametrize("text, values", [("8", [8]), ("4:6", [4, 5, 6]),
                                          ("4:16:4", [4, 8, 12, 16])])
def test_parse_range(text, values):
    assert explore.parse_range(text, "rows") == values


@pytest.mark.parametrize("text", ["", "4-8", "8:4", "4:8:0", "a"])
def test_parse_range_refuses(text):
    with pytest.raises(ValueError, match="rows must be N, LOW:HIGH or LOW:HIGH:STEP"):
        explore.parse_range(text, "rows")


def test_parse_depths():
    assert explore.parse_depths("4096,1024,512") == (4096, 1024, 512)
    with pytest.raises(ValueError, match="depths must be INPUT,WEIGHT,ACC"):
        explore.parse_depths("4096,1024")


def test_grid_checks_every_point_before_any_work():
    points = explore.grid("ecp5-85f", [4, 8], [8], [(4096, 1024, 512), (8192, 2048, 2048)])
    assert len(points) == 4 and points[0].config().input_depth == 4096
    with pytest.raises(ValueError, match="rows must be an integer from 1 to 64, not 65"):
        explore.grid("ecp5-85f", [65], [8])
    with pytest.raises(ValueError, match="part must be one of 'ecp5-85f', 'up5k'"):
        explore.grid("ecp5-25f", [8], [8])


def test_resource_estimate_matches_the_measured_builds():
    # bench/results/ecp5-85f-list-engine.md (ae83028): 90 MULT18X18D and 70 DP16KD;
    # bench/results/boards.md, the iCEBreaker: 8 SB_MAC16, 9 block RAMs and 2 SPRAM blocks
    # (19 block RAMs and no SPRAM with the buffers the block RAMs held before).
    estimate_8x8 = explore.resources(EngineConfig(), "ecp5-85f")
    assert estimate_8x8 == {"dsp": 90, "bram": 70}
    up5k = EngineConfig.preset("up5k")
    assert explore.resources(up5k, "up5k") == {"dsp": 8, "bram": 9, "spram": 2}
    block_rams = dataclasses.replace(up5k, input_depth=2048, weight_depth=512)
    # Still SPRAM: the block RAMs' count of the earlier build is what they would take.
    assert explore.resources(block_rams, "up5k") == {"dsp": 8, "bram": 9, "spram": 2}
    deep = dataclasses.replace(up5k, input_depth=32768)
    assert explore.resources(deep, "up5k") == {"dsp": 8, "bram": 9 + 128, "spram": 1}
    assert not explore.fits(explore.resources(deep, "up5k"), "up5k")
    assert explore.fits(estimate_8x8, "ecp5-85f")
    assert not explore.fits(explore.resources(EngineConfig(rows=16, cols=16), "ecp5-85f"),
                            "ecp5-85f")
    # With 130 of its PEs on DSP blocks (dsp_pes; the other 126 multiply in logic) the 16x16
    # array's blocks fit: 130 + the 26 the rest of the engine takes.
    in_logic = EngineConfig(rows=16, cols=16, dsp_pes=130)
    assert explore.resources(in_logic, "ecp5-85f")["dsp"] == 156
    assert explore.fits(explore.resources(in_logic, "ecp5-85f") | {"bram": 0}, "ecp5-85f")


def test_spram_shape_is_the_gateware_s():
    from convhw.gateware.single_port_ram import SPRAM_DEPTH, SPRAM_WIDTH
    assert explore.PARTS["up5k"].spram_shape == (SPRAM_DEPTH, SPRAM_WIDTH)


def test_pareto():
    rows = [dict(n=1, a=1, b=9), dict(n=2, a=2, b=2), dict(n=3, a=3, b=3), dict(n=4, a=9, b=1),
            dict(n=5, a=2, b=2)]
    front = explore.pareto(rows, (lambda r: r["a"], lambda r: r["b"]))
    assert [r["n"] for r in front] == [1, 2, 4, 5]        # 3 is beaten by 2; 2 and 5 tie


def test_timed_at_fmax():
    # 1,000,000 cycles at 100 MHz: 10 ms; 4x4 PEs at efficiency 0.5 give half their peak of
    # 2 x 16 x 100e6 operations per second.
    row = dict(cycles=1_000_000, useful_macs=8_000_000)
    timed = explore.timed(row, 100.0)
    assert timed["latency_s"] == pytest.approx(0.01)
    assert timed["gops"] == pytest.approx(0.5 * 2 * 16 * 100e6 / 1e9)


def test_evaluate_sums_the_layers_estimates():
    point = explore.grid("ecp5-85f", [4], [4])[0]
    result = explore.evaluate(point, LAYERS)
    config = point.config()
    want = sum(estimate(layer.spec, layer.input_shape, config=config, requantize=True).cycles
               * layer.count for layer in LAYERS)
    assert result["cycles"] == want
    assert result["useful_macs"] == sum(l.spec.useful_macs(l.input_shape) * l.count
                                        for l in LAYERS)
    assert 0 < result["efficiency"] <= 1


def test_evaluate_on_the_up5k_counts_the_host_fed_jobs():
    from convhw.compiler.cycles import job_cycles
    from convhw.compiler.program import compile_layer
    point = explore.grid("up5k", [2], [2])[0]
    want = sum(job_cycles(step.job) * layer.count for layer in LAYERS
               for step in compile_layer(layer.spec, layer.input_shape, point.config()))
    assert explore.evaluate(point, LAYERS)["cycles"] == want


def test_evaluate_keeps_a_refused_configuration_with_its_reason():
    point = explore.grid("ecp5-85f", [8], [8], [(1024, 16, 64)])[0]
    result = explore.evaluate(point, LAYERS)
    assert "cycles" not in result
    assert result["refused"].startswith("0: ")


def test_network_from_a_file(tmp_path):
    pytest.importorskip("torch")
    path = tmp_path / "net.py"
    path.write_text(NETWORK)
    net = explore.network(str(path))
    assert net.name == "net"
    assert net.layers == LAYERS
    with pytest.raises(ValueError, match="network must be one of 'resnet18'"):
        explore.network("resnet19")


POINTS = explore.grid("ecp5-85f", [2, 4, 8], [2, 4, 8])


def _sweep(tmp_path, **options):
    return explore.run(explore.Network("tiny", LAYERS), POINTS, tmp_path / "out", **options)


def test_sweep_on_a_local_cluster_resumes_from_its_cache(tmp_path):
    pytest.importorskip("dask.distributed")
    report = _sweep(tmp_path, workers=2)
    assert report["configurations"] == 9 and len(report["rows"]) == 9
    # The bounds and the exact model where it matters give the front that the exact model
    # everywhere gives; each configuration left with a bound is beaten by an exact one.
    exact = [dict(explore.evaluate(p, LAYERS), fits=True) for p in POINTS]
    fitting = [r for r in exact if explore.fits(r["estimate"], "ecp5-85f")]
    want = {explore.Point(**r["point"]) for r in explore.pareto(fitting, explore._OBJECTIVES)}
    assert {explore.Point(**r["point"]) for r in report["rows"] if r["front"]} == want
    assert 0 < report["exact_configurations"] < 9, "the test no longer leaves a bound"
    for row in report["rows"]:
        truth = next(r for r in exact if r["point"] == row["point"])
        if row["exact"]:
            assert row["cycles"] == truth["cycles"]
        else:
            assert row["cycles"] <= truth["cycles"]
            assert any(explore._dominates(other, row) for other in report["rows"]
                       if other["exact"])
    best = report["best"]
    assert best["cycles"] == min(row["cycles"] for row in report["rows"])
    for name in ("report.md", "report.json", "report.html"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    assert "**Best on ecp5-85f: " in (tmp_path / "out" / "report.md").read_text()
    cached = {p: p.stat().st_mtime_ns for p in (tmp_path / "out" / "results").iterdir()}
    assert len(cached) == 9 + report["exact_configurations"]
    again = _sweep(tmp_path, workers=1)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "out" / "results").iterdir()} == cached
    assert [r["cycles"] for r in again["rows"]] == [r["cycles"] for r in report["rows"]]
    # --bounds-only: the same cached bounds, no exact figure
    bounds = _sweep(tmp_path, workers=1, exact=False)
    assert bounds["exact_configurations"] == 0
    assert not any(row["exact"] for row in bounds["rows"])
    assert "(the exact model not run)" in (tmp_path / "out" / "report.md").read_text()


@pytest.mark.slow
def test_sweep_on_separate_processes_survives_a_killed_worker(tmp_path):
    # A scheduler and two workers started as processes of their own (loopback only), as on
    # several machines; one worker is killed once the first exact result is in (the bounds
    # take milliseconds each; an exact figure of this layer about a second): every point
    # still gets its result, and those written before are not computed again.
    pytest.importorskip("dask.distributed")
    results = tmp_path / "out" / "results"
    points = explore.grid("ecp5-85f", [2, 4, 8], [2, 4, 8])
    layers = (explore.Layer("0", ConvSpec(2, 32, 32, 3, padding=1), (1, 32, 56, 56)),)
    with explore.ProcessCluster(2, tmp_path / "cluster") as cluster:
        killed = []

        def kill_one_after_the_first_exact_result():
            for _ in range(2400):
                if results.exists() and any(results.glob("cycles-*.json")):
                    killed.append(len(list(results.glob("cycles-*.json"))))
                    cluster.kill_worker(0)
                    return
                time.sleep(0.05)

        killer = threading.Thread(target=kill_one_after_the_first_exact_result)
        killer.start()
        report = explore.run(explore.Network("one layer", layers), points, tmp_path / "out",
                             scheduler=cluster.address)
        killer.join()
    assert killed and killed[0] < report["exact_configurations"], \
        "the worker was not killed mid-sweep"
    assert len(report["rows"]) == len(points)
    assert all("cycles" in row for row in report["rows"])
    assert len(list(results.glob("bound-*.json"))) == len(points)
    assert len(list(results.glob("cycles-*.json"))) == report["exact_configurations"]


def test_cli_refuses_bad_input(capsys):
    from convhw.cli import main
    assert main(["explore", "--network", "x.onnx"]) == 2
    assert "network must be one of" in capsys.readouterr().err
    assert main(["explore", "--network", "resnet18", "--rows", "8:4"]) == 2
    assert "rows must be N, LOW:HIGH or LOW:HIGH:STEP" in capsys.readouterr().err


def test_example_reports_are_committed():
    # bench/results/explore.md: bench/explore.py's sweeps, each with its report.
    results = Path(__file__).resolve().parents[1] / "bench" / "results"
    recorded = json.loads((results / "explore.json").read_text())
    for section in ("cycle-model", "cycle-model-exact", "synth", "synth-ecp5"):
        row = recorded[section]["row"]
        report = json.loads((results.parent.parent / row["report"] / "report.json").read_text())
        assert report["best"] is not None
        assert explore.Point(**report["best"]["point"]).label == row["best"]
    assert recorded["synth"]["row"]["completed"] and recorded["synth-ecp5"]["row"]["completed"]


def test_plots_of_the_committed_synthesis_reports(tmp_path):
    # After synthesis the plot has four panels: cycles against DSP and BRAM, latency against
    # the placed LUTs (the ECP5's LUT4, the iCE40's logic cells) and GOPS against area.
    pytest.importorskip("matplotlib")
    results = Path(__file__).resolve().parents[1] / "bench" / "results" / "explore"
    for name in ("small_cnn-up5k-synth", "small_cnn-ecp5-85f-synth"):
        report = json.loads((results / name / "report.json").read_text())
        assert any("synth" in row for row in report["rows"])
        path = tmp_path / f"{name}.png"
        assert explore._plot(report, path)
        assert path.stat().st_size > 10_000
