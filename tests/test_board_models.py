# amaranth: UnusedElaboratable=no
"""Whole quantised networks through the simulated ULX3S with its SDRAM (issue 14): the serial
list top, LiteDRAM and the behavioural chip Verilated behind a pseudo-terminal, driven by
``Device("serial")`` exactly as a board would be.

* the digits CNN and ResNet-8 (``convhw.models.resnet8``, small), quantised by torch's FX, every
  convolution offloaded: outputs torch's to the bit;
* their weights stay in the SDRAM: after the first call each call moves only activations (its
  input and output per offloaded layer, and the token that shows the memory kept the images);
* the chip model sees no timing or protocol violation; the frames go pipelined (the list top's
  bridge has a receive FIFO).
"""

from __future__ import annotations

import pytest

import convhw
from convhw import models
from convhw.driver.serial_sim import SimulatedBoard
from convhw.profile import profile

torch = pytest.importorskip("torch")
pytest.importorskip("serial")

pytestmark = [pytest.mark.slow, pytest.mark.torch,
              pytest.mark.usefixtures("quiet_quantization")]

#: The ULX3S's engine: the quantised datapath (activation offset, float32 output stage) on the
#: small preset's 4x4 array.
QUANTIZED_SMALL = convhw.EngineConfig.preset("small-quantized")
CLOCK_HZ, BAUDRATE = 60_000_000, 3_000_000
MEMORY_BYTES = 1 << 20


@pytest.fixture(scope="module")
def device():
    with SimulatedBoard(QUANTIZED_SMALL, clock_hz=CLOCK_HZ, baudrate=BAUDRATE,
                        memory_bytes=MEMORY_BYTES, memory="sdram") as board:
        device = convhw.Device("serial", QUANTIZED_SMALL, port=board.port, baudrate=BAUDRATE,
                               timeout=5.0)
        try:
            yield device
        finally:
            device.close()


def _no_violations(capfd):
    printed = capfd.readouterr()
    lines = [line for line in (printed.out + printed.err).splitlines() if "sdram_chip:" in line]
    assert not lines, "the SDRAM chip model saw violations:\n" + "\n".join(lines)


def _two_calls_bit_identical(offloaded, quantized, batches) -> None:
    """Each batch through the board equals torch's; the second call moves at least the
    weights' bytes less than the first (they stayed in the SDRAM)."""
    hosts = []
    with torch.no_grad():
        for batch in batches:
            got, result = profile(offloaded, batch)
            want = quantized(batch)
            assert torch.equal(got, want), f"{int((got != want).sum())} of {want.numel()} differ"
            hosts.append(sum(layer.host_bytes for layer in result.engine_layers))
    weights = sum(m.weight().numel() for m in quantized.modules()
                  if isinstance(m, torch.ao.nn.quantized.Conv2d))
    assert hosts[0] - hosts[1] >= weights


def test_digits_on_the_sdram_board(device, capfd):
    model, x_test, _, x_train = models.digits()
    quantized = convhw.quantize(model, [x_train], reference="fbgemm")
    offloaded = convhw.offload(quantized, device, strict=True)
    assert {layer.runs_on for layer in offloaded.convhw_report} == {"serial"}
    _two_calls_bit_identical(offloaded, quantized, (x_test[:8], x_test[8:16]))
    # The board's bridge has a receive FIFO: the tensors went as pipelined frames.
    assert device.driver.transport.stats["pipelined"] > 0
    _no_violations(capfd)


def test_resnet8_on_the_sdram_board(device, capfd):
    model, (x,) = models.build("resnet8", "small")
    calibration = [torch.randn(4, *x.shape[1:], generator=torch.Generator().manual_seed(i))
                   for i in range(2)]
    quantized = convhw.quantize(model, calibration, reference="fbgemm")
    offloaded = convhw.offload(quantized, device, strict=True)
    report = offloaded.convhw_report
    assert len(report) == 10 and {layer.runs_on for layer in report} == {"serial"}
    _two_calls_bit_identical(offloaded, quantized, (x, calibration[0][:1]))
    _no_violations(capfd)
