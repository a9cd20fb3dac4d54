"""``convhw.offload``: a quantised torch model with its convolutions on a convhw device.

:func:`offload` takes a model that torch's own quantisation made (``torch.ao.quantization``,
eager ``convert`` or FX ``convert_fx``) and returns a copy in which every quantised convolution
module (``torch.ao.nn.quantized.Conv1d/2d/3d``, ``ConvTranspose1d/2d/3d``, and the fused
``torch.ao.nn.intrinsic.quantized.ConvReLU1d/2d/3d``) and every quantised ``Linear`` (and fused
``LinearReLU``, run as a 1x1 ``Conv1d`` over ``(N, in_features, 1)``: a classifier after a
pooled feature map, or a convolution whose kernel covered the whole map) is an
:class:`OffloadedConv` that runs on the device, the rest staying in torch. Results are
torch's to the bit: the exact integer sum, then torch's kernel's float32 output processing
(:mod:`convhw.quantized_golden`: fbgemm's for torch's ``x86``, ``fbgemm`` and ``onednn``
engines, qnnpack's for ``qnnpack``, chosen from ``torch.backends.quantized.engine`` when the
model is offloaded).

Devices: ``"golden"`` (the NumPy model of that arithmetic) runs every such layer. A hardware
device runs them when its engine has the quantised datapath, the ``quantized`` preset
(``EngineConfig.activation_offset``: the exact sum of ``x - x_zero_point`` times the weights,
padding contributing 0; ``EngineConfig.float_output``: the float32 output processing on the
kernel's constants, :meth:`~convhw.quantized_golden.QuantizedArithmetic.constants`, qnnpack's
int32 bias added to the sum): ``Device("verilator", "quantized")``. A layer the engine cannot
take (an engine without that datapath, weights with a non-zero zero point, arguments the engine
refuses) stays in torch with a warning that names it, or, with ``strict=True``, raises.
``convhw_report`` lists every convolution and where it runs.

torch is needed here (and only here and in :mod:`convhw.nn`'s torch paths): ``import torch``
happens when :func:`offload` is called.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import time
import warnings

import numpy as np

from . import quantized_golden
from .driver.device import as_device
from .nn import torch_conv_arguments
from .spec import ConvSpec

__all__ = ["OffloadError", "OffloadedLayer", "offload", "offloaded_convs"]


class OffloadError(RuntimeError):
    """A layer that cannot run on the device, with ``strict=True``."""


@dataclasses.dataclass(frozen=True)
class OffloadedLayer:
    """One quantised convolution of an offloaded model: its name in the model, the op, and
    where it runs (``"golden"``, a device name, or ``"torch"`` with the reason)."""

    name: str
    op: str
    runs_on: str
    reason: str = ""


def _torch():
    try:
        import torch
    except ImportError as error:              # pragma: no cover - torch is installed in CI
        raise ImportError("convhw.offload needs torch (pip install torch)") from error
    return torch


def _quantized_conv_types():
    torch = _torch()
    nnq = torch.ao.nn.quantized
    nniq = torch.ao.nn.intrinsic.quantized
    types = {getattr(nnq, f"Conv{d}d"): (d, False, False) for d in (1, 2, 3)}
    types.update({getattr(nnq, f"ConvTranspose{d}d"): (d, True, False) for d in (1, 2, 3)})
    types.update({getattr(nniq, f"ConvReLU{d}d"): (d, False, True) for d in (1, 2, 3)})
    # A Linear is a 1x1 Conv1d over (N, in_features, 1): dims 0 marks it.
    types.update({nnq.Linear: (0, False, False), nniq.LinearReLU: (0, False, True)})
    return types


def _kernel() -> str:
    return "qnnpack" if _torch().backends.quantized.engine == "qnnpack" else "fbgemm"


class _Layer:
    """What an :class:`OffloadedConv` keeps of a torch quantised convolution."""

    def __init__(self, module, dims: int, transposed: bool, relu: bool, kernel: str) -> None:
        torch = _torch()
        weight = module.weight()
        #: A quantised Linear, run as a 1x1 Conv1d on its input as (N, in_features, 1).
        self.linear = dims == 0
        if self.linear:
            out_channels, in_channels = weight.shape
            self.spec = ConvSpec(1, in_channels, out_channels, 1, bias=False)
            self.weight = weight.int_repr().numpy().astype(np.int64)[:, :, None]
        else:
            self.spec = ConvSpec(dims=dims, transposed=transposed, bias=False,
                                 **torch_conv_arguments(module, transposed))
            self.weight = weight.int_repr().numpy().astype(np.int64)
        out_channels = self.spec.out_channels
        if weight.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
            if weight.q_per_channel_axis() != 0 or transposed:
                raise ValueError("per-channel weights of a transposed convolution are not "
                                 "supported (torch's quantised ConvTranspose takes per-tensor "
                                 "weights)")
            self.weight_scales = weight.q_per_channel_scales().numpy().astype(np.float64)
            self.weight_zero_points = weight.q_per_channel_zero_points().numpy()
        else:
            self.weight_scales = np.full(out_channels, weight.q_scale())
            self.weight_zero_points = np.full(out_channels, weight.q_zero_point())
        bias = module.bias()
        self.bias = None if bias is None else bias.detach().numpy().astype(np.float32)
        self.output_scale = float(module.scale)
        self.output_zero_point = int(module.zero_point)
        self.relu = relu
        self.kernel = kernel

    @property
    def op(self) -> str:
        return (("Linear" if self.linear else self.spec.op_name)
                + ("+ReLU" if self.relu else ""))

    def arithmetic(self, input_scale: float, input_zero_point: int
                   ) -> quantized_golden.QuantizedArithmetic:
        return quantized_golden.QuantizedArithmetic(
            input_scale=input_scale, input_zero_point=input_zero_point,
            weight_scales=self.weight_scales, weight_zero_points=self.weight_zero_points,
            output_scale=self.output_scale, output_zero_point=self.output_zero_point,
            bias=self.bias, relu=self.relu, kernel=self.kernel)

    def engine_layer(self, input_scale: float, input_zero_point: int):
        """The layer as the compiler takes it: the exact sum of ``x - input_zero_point``, then
        the kernel's float32 sequence on its constants (qnnpack's bias an int32 added to the
        sum, fbgemm's a float32 term)."""
        from .compiler.image import Layer
        arithmetic = self.arithmetic(input_scale, input_zero_point)
        bias, multiplier = arithmetic.constants()
        int_bias, float_bias = None, bias
        if arithmetic.kernel == "qnnpack":
            int_bias, float_bias = bias, np.zeros(self.spec.out_channels, np.float32)
        # The images are this layer's (its operands were copied when it was offloaded) for
        # this input quantisation: kept in device memory under that key.
        return Layer(self.spec, self.weight, int_bias, relu=self.relu,
                     input_zero=int(input_zero_point),
                     float_requantize=(float_bias, multiplier, self.output_zero_point),
                     resident_key=(self, float(input_scale), int(input_zero_point)))


@functools.cache
def _offloaded_conv_class():
    torch = _torch()

    class OffloadedConv(torch.nn.Module):
        """Torch quantised convolutions running on a convhw device (see
        :mod:`convhw.offload`): one layer, or on a hardware device a chain of consecutive
        layers run as one descriptor list (each reads the previous one's output in device
        memory; the host reads only the last)."""

        def __init__(self, layers: list[_Layer], device, names: list[str]) -> None:
            super().__init__()
            self.layers = list(layers)
            self.device = device
            self.names = list(names)
            self.name = "+".join(names)
            #: Called with a :class:`~convhw.profile.LayerProfile` after each run
            #: (:func:`convhw.profile.profile` sets it).
            self.recorder = None

        @property
        def layer(self) -> _Layer:
            """The first layer (the only one, unless a chain)."""
            return self.layers[0]

        def forward(self, x):
            if not (x.is_quantized and x.dtype == torch.quint8
                    and x.qscheme() == torch.per_tensor_affine):
                raise TypeError(f"{self.name}: the input must be a per-tensor quint8 tensor "
                                f"(as torch's quantised convolutions take), not {x.dtype}")
            start = time.perf_counter()
            xq = x.int_repr().numpy()
            scale, zero = x.q_scale(), x.q_zero_point()
            shape = xq.shape
            linear = self.layer.linear          # (a Linear is never in a chain)
            if linear:      # (..., in_features) -> (N, in_features, 1)
                xq = xq.reshape(-1, shape[-1], 1)
            info = None
            if self.device.name == "golden":
                y = xq
                for layer in self.layers:
                    y = quantized_golden.quantized_convolution(
                        layer.spec, y, layer.weight, layer.arithmetic(scale, zero))
                    scale, zero = layer.output_scale, layer.output_zero_point
            else:
                engine_layers = []
                for layer in self.layers:
                    engine_layers.append(layer.engine_layer(scale, zero))
                    scale, zero = layer.output_scale, layer.output_zero_point
                y, info = self.device.run_layers(xq.astype(np.int64), engine_layers)
            last = self.layers[-1]
            if linear:
                y = y.reshape(*shape[:-1], last.spec.out_channels)
            out = torch._make_per_tensor_quantized_tensor(
                torch.from_numpy(np.ascontiguousarray(y)), last.output_scale,
                last.output_zero_point)
            if self.recorder is not None:
                self.recorder(self._record(xq.shape, info, time.perf_counter() - start))
            return out

        def _record(self, shape, info, seconds):
            from .profile import LayerProfile
            macs = 0
            for layer in self.layers:
                macs += layer.spec.useful_macs(shape)
                shape = layer.spec.output_shape(shape)
            op = " > ".join(layer.op for layer in self.layers)
            if info is None:
                return LayerProfile(self.name, op, self.device.name, seconds, macs)
            return LayerProfile(self.name, op, self.device.name, seconds,
                                macs, info.cycles, info.busy_cycles, info.bytes_moved,
                                info.host_bytes, info.efficiency)

        def extra_repr(self) -> str:
            return f"{' > '.join(layer.op for layer in self.layers)}, on {self.device.name}"

    return OffloadedConv


def offload(model, device=None, *, strict: bool = False, chain: bool = True):
    """A copy of ``model`` with its quantised convolutions on ``device`` (see the module
    documentation); its ``convhw_report`` attribute lists them (:class:`OffloadedLayer`).

    Parameters
    ----------
    model : torch.nn.Module
        A quantised model (after torch's ``convert`` or ``convert_fx``). A float convolution
        in it is left in torch and reported (quantise the model first:
        ``torch.ao.quantization.quantize_fx.prepare_fx`` / ``convert_fx``).
    device : Device, str or None
        ``None`` or ``"golden"``: the golden model.
    strict : bool
        Raise :class:`OffloadError` for a layer that cannot run on the device instead of
        leaving it in torch with a warning.
    chain : bool
        On a hardware device, run each run of consecutive offloaded convolutions of an FX
        graph (``convert_fx``'s; each layer's output used only by the next) as one descriptor
        list: the activations between them stay in device memory and the host writes and
        reads only the run's input and output. ``convhw_report`` still lists each layer.
    """
    torch = _torch()
    device = as_device(device)
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, not {type(model).__name__}")
    model = copy.deepcopy(model)
    types = _quantized_conv_types()
    float_convs = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d, torch.nn.ConvTranspose1d,
                   torch.nn.ConvTranspose2d, torch.nn.ConvTranspose3d)
    offloaded = _offloaded_conv_class()
    kernel = _kernel()
    report = []
    for name, module in list(model.named_modules()):
        kind = types.get(type(module))
        if kind is None:
            if isinstance(module, float_convs):
                report.append(OffloadedLayer(name, type(module).__name__, "torch",
                                             "a float convolution: quantise the model first "
                                             "(torch.ao.quantization)"))
            continue
        op = type(module).__name__
        try:
            layer = _Layer(module, *kind, kernel)
            if device.name != "golden":
                _check_engine(device, layer)
        except ValueError as error:
            if strict:
                raise OffloadError(f"{name} ({op}) cannot run on {device.name}: "
                                   f"{error}") from error
            warnings.warn(f"convhw.offload: {name} ({op}) stays in torch: {error}",
                          stacklevel=2)
            report.append(OffloadedLayer(name, op, "torch", str(error)))
            continue
        _replace(model, name, offloaded([layer], device, [name]))
        report.append(OffloadedLayer(name, op, device.name))
    if chain and device.name != "golden" and isinstance(model, torch.fx.GraphModule):
        _chain(model)
    model.convhw_report = report
    return model


def _chain(model) -> None:
    """Merge each run of consecutive offloaded convolutions of an FX graph (each the only user
    of the one before, Linear layers apart) into one :class:`OffloadedConv`: one descriptor
    list, the activations between them left in device memory."""
    cls = _offloaded_conv_class()
    graph = model.graph

    def offloaded(node):
        if node.op != "call_module":
            return None
        module = model.get_submodule(node.target)
        if isinstance(module, cls) and not module.layer.linear:
            return module
        return None

    chains, seen = [], set()
    for node in graph.nodes:
        if node in seen or offloaded(node) is None:
            continue
        run = [node]
        while True:
            users = list(run[-1].users)
            if (len(users) == 1 and offloaded(users[0]) is not None
                    and users[0].args == (run[-1],) and not users[0].kwargs):
                run.append(users[0])
            else:
                break
        seen.update(run)
        if len(run) > 1:
            chains.append(run)
    for index, run in enumerate(chains):
        modules = [model.get_submodule(node.target) for node in run]
        merged = cls([m.layer for m in modules], modules[0].device,
                     [name for m in modules for name in m.names])
        target = f"convhw_chain{index}"
        model.add_submodule(target, merged)
        with graph.inserting_after(run[-1]):
            new = graph.call_module(target, run[0].args)
        run[-1].replace_all_uses_with(new)
        for node in reversed(run):
            graph.erase_node(node)
            model.delete_submodule(node.target)
    if chains:
        graph.lint()
        model.recompile()


def offloaded_convs(model) -> list:
    """The :func:`offload`-made convolution modules of ``model``, in module order."""
    cls = _offloaded_conv_class()
    return [module for module in model.modules() if isinstance(module, cls)]


def _check_engine(device, layer: _Layer) -> None:
    """Raise ``ValueError`` with the reason if ``device``'s engine cannot run ``layer``."""
    config = device.config
    if not (config.activation_offset and config.float_output):
        raise ValueError(f"the engine ({config.label()}) has no quantised datapath: use the "
                         f"'quantized' preset (activation offset and float32 output stage), "
                         f"e.g. Device({device.name!r}, 'quantized')")
    if np.any(layer.weight_zero_points != 0):
        raise ValueError("the weights have a non-zero zero point (the engine subtracts only the "
                         "input's; torch's default qconfigs give symmetric weights)")
    # (what the list engine holds: one bank of each buffer per job)
    from .compiler.lower import bank_config
    bank_config(config).check_layer(layer.spec)


def _replace(model, name: str, new) -> None:
    parent = model
    *path, leaf = name.split(".")
    for part in path:
        parent = getattr(parent, part)
    setattr(parent, leaf, new)
