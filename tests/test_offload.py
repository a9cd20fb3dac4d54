"""convhw.offload on models that torch's own quantisation made: a small CNN trained here on
scikit-learn's bundled digits, quantised with torch (FX and eager), its convolutions on the
golden device, every output identical to the quantised torch model's; and the other ops and
layouts (1-D, 3-D, transposed, per-channel, reflect padding)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import convhw
from convhw import models
from convhw.offload import OffloadError, offload, offloaded_convs
from convhw.profile import profile

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.torch, pytest.mark.usefixtures("quiet_quantization")]

SEED = 7


@pytest.fixture
def engine():
    previous = torch.backends.quantized.engine
    yield lambda name: setattr(torch.backends.quantized, "engine", name)
    torch.backends.quantized.engine = previous


@pytest.fixture(scope="module")
def digits():
    """The digits CNN trained on scikit-learn's digits (convhw.models.digits): the float model,
    the training images (and None for their labels), the held-out images and labels."""
    model, x_test, y_test, x_train = models.digits(seed=SEED)
    return model, x_train, None, x_test, y_test


def _fx_quantized(model, calibration, backend="x86"):
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
    prepared = prepare_fx(model, get_default_qconfig_mapping(backend), (calibration[:1],))
    with torch.no_grad():
        prepared(calibration)
    return convert_fx(prepared)


def test_digits_quantised_with_fx_offloaded_bit_identical(digits):
    model, x_train, _, x_test, y_test = digits
    quantized = _fx_quantized(model, x_train)
    on_golden = offload(quantized, "golden")
    assert [(layer.op, layer.runs_on) for layer in on_golden.convhw_report] == [
        ("ConvReLU2d", "golden"), ("ConvReLU2d", "golden"), ("Conv2d", "golden")]
    with torch.no_grad():
        want = quantized(x_test)
        got = on_golden(x_test)
        floats = model(x_test)
    assert torch.equal(want, got), f"{int((want != got).sum())} of {want.numel()} differ"
    accuracy = (got.argmax(1) == y_test).float().mean().item()
    assert accuracy == (want.argmax(1) == y_test).float().mean().item()
    # (the network learned: well above chance, near its float accuracy)
    assert accuracy > 0.85
    assert accuracy >= (floats.argmax(1) == y_test).float().mean().item() - 0.05


def test_digits_quantised_in_eager_mode_offloaded_bit_identical(digits, engine):
    model, x_train, _, x_test, _ = digits
    engine("x86")
    eager = type(model)()
    eager.load_state_dict(model.state_dict())
    eager.eval()
    fused = torch.ao.quantization.fuse_modules(eager, [["conv1", "relu1"], ["conv2", "relu2"]])
    fused.qconfig = torch.ao.quantization.get_default_qconfig("x86")
    prepared = torch.ao.quantization.prepare(fused)
    with torch.no_grad():
        prepared(x_train)
    quantized = torch.ao.quantization.convert(prepared)
    on_golden = offload(quantized)
    assert {layer.runs_on for layer in on_golden.convhw_report} == {"golden"}
    with torch.no_grad():
        assert torch.equal(quantized(x_test), on_golden(x_test))


class Mixed(torch.nn.Module):
    """1-D, 3-D, transposed, grouped and reflect-padded convolutions in one model."""

    def __init__(self, with_3d=True):
        super().__init__()
        self.c1 = torch.nn.Conv1d(4, 8, 5, padding=2, padding_mode="reflect")
        self.c1g = torch.nn.Conv1d(8, 8, 3, padding=1, groups=4)
        self.t1 = torch.nn.ConvTranspose1d(8, 4, 4, stride=2, padding=1)
        # (torch's qnnpack has no 3-D quantised convolution)
        self.c3 = torch.nn.Conv3d(2, 4, 3, padding=1) if with_3d else torch.nn.Identity()
        self.t2 = torch.nn.ConvTranspose2d(3, 5, 3, stride=2, output_padding=1)

    def forward(self, a, b, c):
        return (self.t1(torch.relu(self.c1g(self.c1(a)))), self.c3(b), self.t2(c))


@pytest.mark.parametrize("backend", ["fbgemm", "qnnpack"])
def test_every_op_offloaded_bit_identical(backend, engine):
    # fbgemm, not x86: torch's x86 engine runs transposed convolutions on oneDNN, whose
    # results are not the exact sum's (convhw.quantized_golden).
    engine(backend)
    torch.manual_seed(SEED)
    model = Mixed(with_3d=backend != "qnnpack").eval()
    inputs = (torch.randn(2, 4, 30), torch.randn(1, 2, 5, 6, 7), torch.randn(2, 3, 6, 5))
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
    prepared = prepare_fx(model, get_default_qconfig_mapping(backend), inputs)
    with torch.no_grad():
        prepared(*inputs)
    quantized = convert_fx(prepared)
    on_golden = offload(quantized, "golden")
    ops = sorted(layer.op for layer in on_golden.convhw_report)
    assert ops == ["Conv1d", "Conv1d", *(["Conv3d"] if backend != "qnnpack" else []),
                   "ConvTranspose1d", "ConvTranspose2d"]
    with torch.no_grad():
        for want, got in zip(quantized(*inputs), on_golden(*inputs)):
            assert torch.equal(want, got)


#: The quantised datapath on the small preset's array and buffers: a Verilator build of about
#: half the 'quantized' preset's (four float32 lanes, not eight) for the fast tier; the preset
#: itself runs the benchmark models (bench/models.py).
QUANTIZED_SMALL = dataclasses.replace(convhw.EngineConfig.preset("small"),
                                      activation_offset=True, float_output=True)


@pytest.fixture(scope="module")
def quantized_engine():
    device = convhw.Device("verilator", QUANTIZED_SMALL)
    yield device
    device.close()


@pytest.mark.parametrize("reference", ["x86", "qnnpack"])
def test_digits_offloaded_to_the_engine_bit_identical(digits, engine, reference,
                                                      quantized_engine):
    # The quantised engine (activation offset and float32 output stage) on Verilator: every
    # convolution on it, every output torch's, the same accuracy.
    model, x_train, _, x_test, y_test = digits
    engine(reference)
    quantized = _fx_quantized(model, x_train, reference)
    offloaded = offload(quantized, quantized_engine, strict=True)
    assert [(layer.op, layer.runs_on) for layer in offloaded.convhw_report] == [
        ("ConvReLU2d", "verilator"), ("ConvReLU2d", "verilator"), ("Conv2d", "verilator")]
    x = x_test if reference == "x86" else x_test[:100]
    with torch.no_grad():
        want, got = quantized(x), offloaded(x)
    assert torch.equal(want, got), f"{int((want != got).sum())} of {want.numel()} differ"
    y = y_test[:len(x)]
    accuracy = (got.argmax(1) == y).float().mean().item()
    assert accuracy == (want.argmax(1) == y).float().mean().item() and accuracy > 0.85
    # the three convolutions follow each other: one descriptor list
    run = quantized_engine.last_run
    assert run.cycles > 0 and run.input_shape == (len(x), 1, 8, 8)
    assert run.spec.kernel_size == (4, 4)
    if reference == "qnnpack":
        return
    # Layer by layer (chain=False), profiled: the engine's figures per layer, as its RunInfo
    # says.
    single = offload(quantized, quantized_engine, strict=True, chain=False)
    got_again, result = profile(single, x, name="digits")
    assert torch.equal(got_again, want)
    last = quantized_engine.last_run
    layers = result.engine_layers
    assert [(layer.name, layer.op) for layer in layers] == [
        ("conv1", "Conv2d+ReLU"), ("conv2", "Conv2d+ReLU"), ("classify", "Conv2d")]
    assert layers[-1].cycles == last.cycles and layers[-1].host_bytes == last.host_bytes
    assert result.cycles == sum(layer.cycles for layer in layers)
    assert result.efficiency() == result.useful_macs / (16 * result.cycles)
    assert all(0 < layer.efficiency <= 1 for layer in layers)
    assert result.useful_macs == run.useful_macs


class Classifier(torch.nn.Module):
    """A convolution, a pooled and flattened map, then Linear layers (one fused with ReLU)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 8, 3, padding=1)
        self.pool = torch.nn.AdaptiveAvgPool2d(1)
        self.fc1 = torch.nn.Linear(8, 12)
        self.fc2 = torch.nn.Linear(12, 5)

    def forward(self, x):
        x = self.pool(torch.nn.functional.relu(self.conv(x))).flatten(1)
        return self.fc2(torch.nn.functional.relu(self.fc1(x)))


def test_linear_layers_run_on_the_engine(quantized_engine):
    torch.manual_seed(SEED)
    model = Classifier().eval()
    x = torch.rand(6, 2, 5, 5)
    quantized = convhw.quantize(model, [torch.rand(6, 2, 5, 5) for _ in range(2)])
    for device in ("golden", quantized_engine):
        offloaded = offload(quantized, device, strict=True)
        assert [layer.op for layer in offloaded.convhw_report] == [
            "ConvReLU2d", "LinearReLU", "Linear"]
        with torch.no_grad():
            want, got = quantized(x), offloaded(x)
        assert torch.equal(want, got), f"{device}: {int((want != got).sum())} differ"
    assert quantized_engine.last_run.spec.op_name == "Conv1d"
    assert quantized_engine.last_run.input_shape == (6, 12, 1)


class Branches(torch.nn.Module):
    """Three convolutions in a row (a chain), then one whose output two ops use (a residual
    branch: no chain through it), then a 1-D tail."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.b = torch.nn.Conv2d(8, 8, 1)
        self.c = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.d = torch.nn.Conv2d(8, 8, 3, padding=1)
        self.e = torch.nn.Conv2d(8, 4, 3, stride=2)

    def forward(self, x):
        x = self.c(torch.nn.functional.relu(self.b(torch.nn.functional.relu(self.a(x)))))
        y = self.d(x)
        return self.e(torch.nn.functional.relu(y + x))


def test_consecutive_layers_run_as_one_list(quantized_engine):
    torch.manual_seed(SEED)
    model = Branches().eval()
    x = torch.rand(2, 3, 7, 6)
    quantized = convhw.quantize(model, [torch.rand(2, 3, 7, 6) for _ in range(2)])
    chained = offload(quantized, quantized_engine)
    single = offload(quantized, quantized_engine, chain=False)
    assert [layer.name for layer in chained.convhw_report] == ["a", "b", "c", "d", "e"]
    assert [m.names for m in offloaded_convs(chained)] == [["d"], ["e"], ["a", "b", "c"]]
    assert [m.names for m in offloaded_convs(single)] == [["a"], ["b"], ["c"], ["d"], ["e"]]
    with torch.no_grad():
        want = quantized(x)
        _, one = profile(chained, x)
        _, each = profile(single, x)
        assert torch.equal(chained(x), want) and torch.equal(single(x), want)
    rows = {layer.name: layer for layer in one.engine_layers}
    assert rows["a+b+c"].op == "Conv2d+ReLU > Conv2d+ReLU > Conv2d"
    # the chain's activations stay in device memory: the host moves fewer bytes
    host = sum(layer.host_bytes for layer in each.engine_layers if layer.name in "abc")
    assert rows["a+b+c"].host_bytes < host
    assert rows["a+b+c"].useful_macs == sum(layer.useful_macs for layer in each.engine_layers
                                            if layer.name in "abc")


def test_an_offloaded_model_uploads_its_weights_once(quantized_engine):
    # Each layer's weight and parameter images stay in device memory after its first run:
    # later calls move only the activations (and read back the token that shows the memory
    # kept them), and are still torch's to the bit.
    torch.manual_seed(SEED + 1)
    model = Branches().eval()
    quantized = convhw.quantize(model, [torch.rand(2, 3, 7, 6) for _ in range(2)])
    offloaded = offload(quantized, quantized_engine)
    runs = []
    with torch.no_grad():
        for seed in range(3):
            x = torch.rand(2, 3, 7, 6, generator=torch.Generator().manual_seed(seed))
            got, result = profile(offloaded, x)
            assert torch.equal(got, quantized(x))
            runs.append({layer.name: layer.host_bytes for layer in result.engine_layers})
    config = quantized_engine.config
    for name, modules in (("d", [quantized.d]), ("e", [quantized.e]),
                          ("a+b+c", [quantized.a, quantized.b, quantized.c])):
        weights = sum(m.weight().numel() * config.weight_bytes for m in modules)
        assert runs[0][name] - runs[1][name] >= weights, name
        assert runs[1][name] == runs[2][name], name


def test_engines_without_the_quantised_datapath_leave_layers_in_torch(digits):
    model, x_train, _, x_test, _ = digits
    quantized = _fx_quantized(model, x_train)
    device = convhw.Device("amaranth", convhw.EngineConfig.preset("small"))
    with pytest.warns(UserWarning) as record:
        kept = offload(quantized, device)
    messages = [str(w.message) for w in record if "convhw.offload" in str(w.message)]
    assert len(messages) == 3
    assert messages[0] == (
        "convhw.offload: conv1 (ConvReLU2d) stays in torch: the engine (preset 'small') has "
        "no quantised datapath: use the 'quantized' preset (activation offset and float32 "
        "output stage), e.g. Device('amaranth', 'quantized')")
    assert {layer.runs_on for layer in kept.convhw_report} == {"torch"}
    with torch.no_grad():
        assert torch.equal(kept(x_test), quantized(x_test))
    with pytest.raises(OffloadError, match=r"conv1 \(ConvReLU2d\) cannot run on amaranth"):
        offload(quantized, device, strict=True)


def test_float_models_are_reported_not_offloaded(digits):
    model = digits[0]
    report = offload(model).convhw_report
    assert [layer.runs_on for layer in report] == ["torch"] * 3
    assert "quantise the model first" in report[0].reason
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        offload(np.zeros(3))


@pytest.mark.parametrize("reference", ["x86", "qnnpack"])
def test_quantize_then_offload(digits, engine, reference):
    # convhw.quantize is torch's FX quantisation for a torch engine; offloaded, the model is
    # that engine's to the bit.
    model, x_train, _, x_test, y_test = digits
    engine(reference)
    quantized = convhw.quantize(model, [x_train[:700], x_train[700:]], reference=reference)
    assert torch.backends.quantized.engine == reference
    offloaded = convhw.offload(quantized)
    assert {layer.runs_on for layer in offloaded.convhw_report} == {"golden"}
    with torch.no_grad():
        want, got = quantized(x_test), offloaded(x_test)
    assert torch.equal(want, got)
    assert (got.argmax(1) == y_test).float().mean().item() > 0.85
    with pytest.raises(ValueError, match="reference must be one of"):
        convhw.quantize(model, x_train, reference="cuda")
    with pytest.raises(ValueError, match="calibration holds no data"):
        convhw.quantize(model, [])
