"""convhw.profile: a model's run layer by layer (engine figures, shares, the torch rest), its
Markdown table, JSON and plot, and the ``convhw profile`` command on a model file. On the golden
device here; the engine's figures are checked on Verilator in tests/test_offload.py."""

from __future__ import annotations

import json
import textwrap

import pytest

import convhw
from convhw.cli import main
from convhw.profile import profile

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.torch, pytest.mark.usefixtures("quiet_quantization")]


MODEL = textwrap.dedent("""\
    import torch
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(2, 8, 3, padding=1), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(8, 4, 1))
    inputs = torch.rand(3, 2, 6, 6)
    """)


def test_profile_on_the_golden_device(tmp_path):
    exec(compile(MODEL, "model", "exec"), namespace := {})
    model, x = namespace["model"].eval(), namespace["inputs"]
    quantized = convhw.quantize(model, [x])
    offloaded = convhw.offload(quantized)
    got, result = profile(offloaded, x, name="tiny")
    with torch.no_grad():
        assert torch.equal(got, quantized(x))
    names = [(layer.name, layer.runs_on) for layer in result.layers]
    # the two convolutions on the device, the pool in torch (a module: its own row), the rest
    assert ("0", "golden") in names and ("3", "golden") in names
    assert ("2", "torch") in names and names[-1] == ("(other)", "torch")
    assert result.cycles == 0 and result.efficiency() is None
    assert sum(layer.seconds for layer in result.layers) == pytest.approx(result.seconds)
    table = result.table().splitlines()
    assert table[0].startswith("| layer | op | runs on | wall s |")
    assert len(table) == 2 + len(result.layers) + 1 and table[-1].startswith("| **total** |")
    assert json.loads(json.dumps(result.to_dict()))["model"] == "tiny"
    result.plot(tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="model has no offloaded convolution"):
        profile(quantized, x)


def test_the_command(tmp_path, capsys):
    (tmp_path / "net.py").write_text(MODEL)
    status = main(["profile", str(tmp_path / "net.py"), "--device", "golden",
                   "-o", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "net: " in out and "108/108 output elements identical to torch's" in out
    assert {p.name for p in (tmp_path / "out").iterdir()} == {
        "profile.md", "profile.json", "profile.png"}
    (tmp_path / "bad.py").write_text("x = 1\n")
    assert main(["profile", str(tmp_path / "bad.py"), "--device", "golden"]) == 2
    assert "must define model and inputs, or build() returning both" in capsys.readouterr().err
