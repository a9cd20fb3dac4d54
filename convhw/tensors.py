"""torch in, torch out: the front ends' (:mod:`convhw.nn`, :mod:`convhw.functional`) one rule
for torch tensors, without importing torch.

* A torch tensor given as an input, weight or bias is read as its values: detached from
  autograd (convhw computes no gradients; a tensor that requires them is read, not refused),
  moved to the CPU, as a NumPy array. A quantised tensor is refused: quantised models go
  through :func:`convhw.offload`.
* When the input is a torch tensor, the output is one too, on the input's torch device: of the
  input's dtype when that is a floating-point one (as ``torch.nn.functional.conv*d`` gives),
  else ``torch.int64`` (torch has no integer convolutions to follow; convhw's exact integer
  results are int64).
* Otherwise the output is a NumPy array: int64 when every operand is an integer array, else
  float64, on every device (:func:`convhw.spec.result_dtype`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["as_array", "is_torch", "like_input"]


def is_torch(value) -> bool:
    """Whether ``value`` is a torch tensor (without importing torch)."""
    return type(value).__module__.startswith("torch") and hasattr(value, "detach")


def as_array(value, name: str):
    """``value`` as NumPy values if it is a torch tensor (see the module documentation); any
    other value as it is (None included)."""
    if not is_torch(value):
        return value
    if value.is_quantized:
        raise TypeError(f"{name} is a quantised torch tensor: run quantised models with "
                        f"convhw.offload(model, device)")
    return value.detach().cpu().numpy()


def like_input(output: np.ndarray, input):
    """``output`` as a torch tensor if ``input`` was one (see the module documentation)."""
    if not is_torch(input):
        return output
    import torch
    result = torch.from_numpy(np.ascontiguousarray(output))
    if input.dtype.is_floating_point and result.dtype.is_floating_point:
        result = result.to(input.dtype)
    return result.to(input.device)
