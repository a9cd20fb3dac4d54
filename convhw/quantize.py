"""``convhw.quantize``: a float torch model quantised by torch's own machinery, ready for
:func:`convhw.offload`.

No home-made calibration: this is torch's FX graph mode quantisation
(``torch.ao.quantization.quantize_fx.prepare_fx`` with the default qconfig mapping of a torch
quantised engine, the calibration data run through the observers, then ``convert_fx``). The
engine named by ``reference`` decides the quantisation (``"x86"``: per-channel weights and 7-bit
activations, ``reduce_range``, which every x86 CPU's kernels sum exactly; ``"qnnpack"``:
per-tensor weights, full 8-bit activations) and which of torch's kernels the model is then
bit-identical to: run it with ``torch.backends.quantized.engine`` set to that engine, and
:func:`convhw.offload` follows the same engine's arithmetic.
"""

from __future__ import annotations

__all__ = ["REFERENCES", "quantize"]

#: torch's quantised engines whose default configuration ``quantize`` can follow.
REFERENCES = ("x86", "fbgemm", "qnnpack")


def quantize(model, calibration, *, reference: str = "x86", example_inputs=None):
    """``model`` (a float ``torch.nn.Module``, left unchanged) quantised by torch for the
    ``reference`` engine, calibrated on ``calibration`` (a tensor, or a tuple of the model's
    inputs, or an iterable of either); returns torch's quantised ``GraphModule``.

    ``example_inputs`` (a tuple) is what FX traces with; by default the first calibration
    batch. Sets ``torch.backends.quantized.engine`` to ``reference`` (the engine the result
    must run on to match torch's kernels).
    """
    import copy

    import torch
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    if reference not in REFERENCES:
        raise ValueError(f"reference must be one of {REFERENCES}, not {reference!r}")
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, not {type(model).__name__}")
    if isinstance(calibration, torch.Tensor):
        batches = [(calibration,)]
    elif isinstance(calibration, tuple) and all(isinstance(t, torch.Tensor)
                                                 for t in calibration):
        batches = [calibration]
    else:
        batches = [b if isinstance(b, tuple) else (b,) for b in calibration]
    if not batches:
        raise ValueError("calibration holds no data: the observers need at least one batch")
    torch.backends.quantized.engine = reference
    float_model = copy.deepcopy(model).eval()
    prepared = prepare_fx(float_model, get_default_qconfig_mapping(reference),
                          example_inputs if example_inputs is not None else batches[0])
    with torch.no_grad():
        for batch in batches:
            prepared(*batch)
    return convert_fx(prepared)
