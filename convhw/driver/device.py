"""``Device``: where a layer runs.

A device takes a validated :class:`~convhw.spec.ConvSpec` and tensors and returns the result and
a :class:`RunInfo`. The front end (``convhw.nn``, ``convhw.functional``) only ever talks to a
device, so moving a layer from the golden model to a simulator or a board is a change of device,
not of code.

Devices:

* ``"golden"``: the NumPy golden model (any dtype; no engine);
* ``"amaranth"``: the list engine's Python description in the Amaranth simulator, its master
  port served from a Python memory model (:mod:`convhw.driver.amaranth_list`), each layer run
  as one descriptor list (:mod:`convhw.driver.list_driver`);
* ``"verilator"``: the list engine's generated Verilog, compiled by Verilator (built once per
  configuration and cached) with a C++ memory model behind its master port
  (:mod:`convhw.driver.verilator_list`), driven from this process by the same host flow.
* ``"serial"``: a board (or the simulated board of :mod:`convhw.driver.serial_sim`) through
  its UART bridge (:class:`~convhw.driver.serial_transport.SerialTransport`). The boards' top
  is the list engine with on-chip device memory: each layer runs as one descriptor list, like
  ``"amaranth"``. A board still built with the host-fed engine (``SerialEngine``; its VERSION
  major is 0) is driven word by word through the host-fed driver.

The list-engine devices share one host flow (:class:`~convhw.driver.list_driver.ListDriver`):
the same list, tensors and register accesses on each. They take integer-valued tensors within
the engine's operand widths and return the exact integer result (``acc + bias``), or the
requantised one when asked.
"""

from __future__ import annotations

import dataclasses
import threading
import time

import numpy as np

from .. import golden
from ..compiler.program import pointwise_view
from ..config import EngineConfig
from ..memory_model import MemoryModel
from ..spec import ConvSpec, result_dtype

__all__ = ["Device", "RunInfo"]


@dataclasses.dataclass(frozen=True)
class RunInfo:
    """What one layer run cost.

    ``cycles`` (engine clock cycles from START to DONE: of the layer's whole list on a list
    engine, summed over jobs on the host-fed one), ``bytes_moved`` (a list engine: the bytes it
    moved on its master port; the host-fed engine: host-bus traffic), ``host_bytes`` (a list
    engine: the bytes the host wrote into and read from device memory) and ``efficiency``
    (useful MACs / (rows x cols x cycles)) are ``None`` on the golden device, which has no
    clock and no bus.
    """

    device: str
    spec: ConvSpec
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    useful_macs: int
    seconds: float
    cycles: int | None = None
    #: A list engine's BUSY_CYCLES: the cycles in which its compute core was busy.
    busy_cycles: int | None = None
    bytes_moved: int | None = None
    efficiency: float | None = None
    jobs: int | None = None
    host_bytes: int | None = None


class Device:
    """A place to run convolution layers.

    Parameters
    ----------
    name : str
        ``"golden"`` (default), ``"amaranth"``, ``"verilator"`` or ``"serial"`` (a board
        through its UART bridge, or the simulated board of :mod:`convhw.driver.serial_sim`).
    config : EngineConfig or str, optional
        The engine (a config or a preset name) for the hardware devices; ``"default"`` when
        omitted. The golden device takes none.
    **options
        ``amaranth``: ``memory``, the :class:`~convhw.memory_model.MemoryModel` behind the list
        engine's master port (``MemoryModel()``: 8 bytes per cycle, latency 20).
        ``verilator``: ``memory`` (the same, served by the C++ harness) and ``trace``, the
        path of a waveform to write (VCD; ``.fst`` gives FST, which needs Debian's
        ``liblz4-dev`` to build). ``serial``: ``port`` (required: a
        device such as ``/dev/ttyUSB1`` or any pyserial URL), ``baudrate`` (3,000,000),
        ``timeout`` and ``retries`` (see :class:`~convhw.driver.serial_transport.
        SerialTransport`); ``config`` must be the board's engine. Others take none.
    """

    NAMES = ("golden", "amaranth", "verilator", "serial")

    def __init__(self, name: str = "golden", config=None, **options) -> None:
        if not isinstance(name, str):
            raise TypeError(f"device name must be a string, not {name!r}")
        if name not in self.NAMES:
            raise ValueError(f"device name must be one of {', '.join(map(repr, self.NAMES))}, "
                             f"not {name!r}")
        allowed = {"amaranth": {"memory"}, "verilator": {"trace", "memory"},
                   "serial": {"port", "baudrate", "timeout", "retries"}}.get(name, set())
        unknown = sorted(set(options) - allowed)
        if unknown:
            raise TypeError(f"the {name!r} device takes no options {', '.join(unknown)}"
                            + (f"; it takes {', '.join(sorted(allowed))}" if allowed else ""))
        if "memory" in options:
            memory = options["memory"]
            if not isinstance(memory, MemoryModel):
                raise TypeError(f"memory must be a convhw.MemoryModel, not {memory!r}")
        if name == "serial" and "port" not in options:
            raise TypeError("the 'serial' device needs port=..., e.g. Device('serial', "
                            "'default', port='/dev/ttyUSB1')")
        if name == "golden":
            if config is not None:
                raise ValueError(f"the 'golden' device takes no engine config, not {config!r}")
            self._config = None
        else:
            self._config = EngineConfig.coerce(config)
        self._name = name
        self._options = options
        self._driver = None
        # One run at a time: the engine holds one list (or job) and its results.
        self._lock = threading.RLock()
        #: The :class:`RunInfo` of the newest run on this device, or ``None``.
        self.last_run: RunInfo | None = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def config(self) -> EngineConfig | None:
        return self._config

    def __repr__(self) -> str:
        if self._config is None:
            return f"Device({self._name!r})"
        return f"Device({self._name!r}, {self._config!r})"

    def __eq__(self, other) -> bool:
        return (isinstance(other, Device) and other._name == self._name
                and other._config == self._config and other._options == self._options)

    def __hash__(self) -> int:
        return hash((self._name, self._config))

    def _transport(self):
        if self._name == "amaranth":
            from .amaranth_list import AmaranthListTransport
            return AmaranthListTransport(self._config, self.memory)
        if self._name == "serial":
            from .serial_transport import SerialTransport
            return SerialTransport(**self._options)
        from .verilator_list import ListVerilatorTransport
        return ListVerilatorTransport(self._config, memory=self.memory,
                                      trace_path=self._options.get("trace"))

    @property
    def driver(self):
        """The driver of a hardware device (its engine is started on first use)."""
        if self._name == "golden":
            raise ValueError("the 'golden' device has no engine to drive")
        with self._lock:
            return self._started_driver()

    def _started_driver(self):
        if self._driver is None:
            transport = self._transport()
            try:
                if self._name in ("amaranth", "verilator"):
                    from .list_driver import ListDriver
                    driver = ListDriver(transport, self._config, self.memory)
                elif self._name == "serial" and self._serial_runs_lists(transport):
                    from .list_driver import ListDriver
                    driver = ListDriver(transport, self._config,
                                        memory_size=transport.memory_size())
                else:
                    from .driver import Driver
                    driver = Driver(transport, self._config)
                driver.check_identity()
            except BaseException:
                transport.close()
                raise
            self._driver = driver
        return self._driver

    @staticmethod
    def _serial_runs_lists(transport) -> bool:
        """Whether the board behind ``transport`` runs the list engine (the boards' top,
        :class:`~convhw.gateware.serial_list_engine.SerialListEngine`: VERSION's major is that
        of :func:`~convhw.registers.list_register_map`) rather than the host-fed engine (the
        older :class:`~convhw.gateware.serial_engine.SerialEngine`)."""
        from ..registers import LIST_ENGINE_VERSION, list_register_map
        version = transport.read(list_register_map()["VERSION"].address)
        return (version >> 8) & 0xFF == LIST_ENGINE_VERSION[0]

    @property
    def memory(self) -> MemoryModel | None:
        """The memory model behind a simulated list engine's master port (``None`` for the
        golden device and the devices that still run the host-fed engine)."""
        if self._name not in ("amaranth", "verilator"):
            return None
        return self._options.get("memory") or MemoryModel()

    def close(self) -> None:
        """Stop a hardware device's simulator (it restarts on the next run); waits for a run in
        another thread to end."""
        with self._lock:
            if self._driver is not None:
                self._driver.transport.close()
                self._driver = None

    def run(self, spec: ConvSpec, input, weight, bias=None, *, requantize=None,
            relu: bool = False, input_zero: int = 0,
            float_requantize=None) -> tuple[np.ndarray, RunInfo]:
        """Run ``spec`` on the tensors; returns the output (batched like ``input``) and the
        :class:`RunInfo` of the run. ``requantize`` (hardware devices) is a pair of
        per-output-channel multipliers and shifts; ``relu`` clamps negative results. Threads
        may share a device: their runs take turns.

        torch's quantised arithmetic (an engine with ``activation_offset`` and
        ``float_output``, the ``quantized`` preset, or the golden device): ``input`` holds
        uint8 values and ``input_zero`` is its zero point (the padding value);
        ``float_requantize`` is ``(bias terms, multipliers, output zero point)``, float32 per
        output channel and an int: the results, uint8, are the float32 output processing of
        ``acc + bias`` (:func:`convhw.compiler.list_model.float_requantize`)."""
        with self._lock:
            return self._run(spec, input, weight, bias, requantize=requantize, relu=relu,
                             input_zero=input_zero, float_requantize=float_requantize)

    def _run(self, spec, input, weight, bias, *, requantize, relu, input_zero,
             float_requantize):
        start = time.perf_counter()
        input_shape = tuple(np.shape(input))
        info = {}
        if requantize is not None and float_requantize is not None:
            raise ValueError("requantize and float_requantize exclude each other")
        if self._name == "golden":
            if requantize is not None:
                raise ValueError("requantize needs a hardware device; the golden device "
                                 "returns exact results")
            if float_requantize is not None or input_zero:
                output = self._golden_quantized(spec, input, weight, bias, relu, input_zero,
                                                float_requantize)
            else:
                output = golden.convolution(spec, input, weight, bias)
                if relu:
                    output = np.maximum(output, 0)
        else:
            # The golden model's dtype on every device: float64 when an operand is a float
            # array (holding integers, as the engine needs), int64 otherwise.
            dtype = result_dtype(np.asarray(input), np.asarray(weight),
                                 None if bias is None else np.asarray(bias))
            x, batched = spec.check_input(input)
            weight = spec.check_weight(weight)
            bias = spec.check_bias(bias)
            x, weight, bias = self._config.check_operands(spec, x, weight, bias, input_zero)
            # (the host-fed engine's driver takes no quantised arithmetic; check_operands
            # refused a zero point on an engine without the offset)
            quantized = ({"input_zero": input_zero, "float_requantize": float_requantize}
                         if input_zero or float_requantize is not None else {})
            run_spec = spec
            # A layer that reads only every stride-th pixel (a 1x1 kernel with stride 2) runs
            # as the stride-1 layer on those pixels: the host writes only them.
            view = pointwise_view(spec)
            if view is not None:
                run_spec, strides = view
                x = x[(..., *(slice(None, None, s) for s in strides[3 - spec.dims:]))]
            packing = self._packing(run_spec, x.shape)
            if packing is not None:
                x = packing.input(x, pad_value=input_zero)
                weight, run_spec = packing.weight(weight), packing.spec
            result = self.driver.run(run_spec, x, weight, bias, requantize=requantize,
                                     relu=relu, **quantized)
            if hasattr(result, "outputs"):          # a list engine's ListRun
                output = result.outputs[0]
                info = dict(cycles=result.cycles, busy_cycles=result.busy_cycles,
                            bytes_moved=result.engine_bytes,
                            host_bytes=result.host_bytes, jobs=result.jobs)
            else:
                output = result.output
                info = dict(cycles=result.cycles, bytes_moved=result.bytes_moved,
                            jobs=len(result.job_cycles))
            output = output if batched else output[0]
            if float_requantize is not None:
                output = output.astype(np.uint8)
            elif requantize is None:
                output = output.astype(dtype, copy=False)
            macs = spec.useful_macs(input_shape)
            info["efficiency"] = (macs / (self._config.rows * self._config.cols
                                          * result.cycles) if result.cycles else None)
        info = RunInfo(device=self._name, spec=spec, input_shape=input_shape,
                       output_shape=output.shape, useful_macs=spec.useful_macs(input_shape),
                       seconds=time.perf_counter() - start, **info)
        self.last_run = info
        return output, info


    def run_layers(self, input, layers) -> tuple[np.ndarray, RunInfo]:
        """Run ``layers`` (:class:`~convhw.compiler.image.Layer`: spec, weight, bias, the
        output processing, the input zero point) one after another on ``input``, each reading
        the previous one's output: on a list engine as one descriptor list with the
        activations kept in device memory (the host writes the input, the weights and the list,
        and reads only the last output). Returns the last output (batched like ``input``) and
        the :class:`RunInfo` of the whole list (``spec`` the last layer's; ``useful_macs``,
        ``cycles`` and bytes of all). Every layer but the last must give 8-bit results
        (requantised)."""
        layers = list(layers)
        if not layers:
            raise ValueError("layers must hold at least one layer")
        if any(not layer.eight_bit for layer in layers[:-1]):
            raise ValueError("every layer but the last must be requantised (8-bit results: "
                             "the next layer reads them)")
        with self._lock:
            start = time.perf_counter()
            x, batched = layers[0].spec.check_input(input)
            shapes, shape = [], tuple(x.shape)
            for layer in layers:
                shapes.append(shape)
                if not layer.spec.check_input_shape(shape):
                    raise ValueError(f"a {layer.spec.op_name} layer cannot take the previous "
                                     f"layer's output of shape {shape}")
                shape = layer.spec.output_shape(shape)
            macs = sum(layer.spec.useful_macs(s) for layer, s in zip(layers, shapes))
            info = {}
            if self._name == "golden":
                from ..compiler.image import reference
                output = reference(np.asarray(x, dtype=np.int64), layers)[-1]
                if layers[-1].float_requantize is not None:
                    output = output.astype(np.uint8)
            else:
                checked = []
                for index, (layer, s) in enumerate(zip(layers, shapes)):
                    xi, weight, bias = self._config.check_operands(
                        layer.spec, x if index == 0 else None,
                        layer.spec.check_weight(layer.weight),
                        layer.spec.check_bias(layer.bias), layer.input_zero, input_shape=s)
                    if index == 0:
                        x = xi
                    checked.append(dataclasses.replace(layer, weight=weight, bias=bias))
                packing = self._packing(checked[0].spec, x.shape)
                if packing is not None:
                    first = checked[0]
                    x = packing.input(x, pad_value=first.input_zero)
                    checked[0] = dataclasses.replace(
                        first, spec=packing.spec, weight=packing.weight(first.weight),
                        resident_key=(None if first.resident_key is None
                                      else (first.resident_key, *packing.key)))
                driver = self.driver
                if not hasattr(driver, "run_layers"):
                    raise ValueError(f"the {self._name!r} device's engine runs no descriptor "
                                     f"lists (a host-fed engine): run layers one by one")
                result = driver.run_layers(x, checked, read_all=False)
                output = result.outputs[-1]
                if layers[-1].float_requantize is not None:
                    output = output.astype(np.uint8)
                info = dict(cycles=result.cycles, busy_cycles=result.busy_cycles,
                            bytes_moved=result.engine_bytes, host_bytes=result.host_bytes,
                            jobs=result.jobs,
                            efficiency=(macs / (self._config.rows * self._config.cols
                                                * result.cycles) if result.cycles else None))
            output = output if batched else output[0]
            run = RunInfo(device=self._name, spec=layers[-1].spec,
                          input_shape=tuple(np.shape(input)), output_shape=output.shape,
                          useful_macs=macs, seconds=time.perf_counter() - start, **info)
            self.last_run = run
            return output, run

    def _packing(self, spec, input_shape):
        """The packing (:func:`convhw.compiler.packing.packing_for`: x taps, or im2col over
        the innermost dimensions) a layer whose input the host writes runs with on this
        device, or None. The simulated list engines pack a low-channel layer (its cycles fall
        nearly by the rows it fills); a serial board does
        not, since its link, not the array, sets its time and the packed input is that many
        times larger; nor does a layer whose packed form the engine cannot hold."""
        if self._name not in ("amaranth", "verilator"):
            return None
        from ..compiler.packing import packing_for
        return packing_for(spec, input_shape, self._config)

    @staticmethod
    def _golden_quantized(spec, input, weight, bias, relu, input_zero, float_requantize):
        """The golden model of torch's quantised arithmetic: the exact sum of ``input -
        input_zero`` (padding: the zero point), then the float32 output processing."""
        from ..compiler.image import Layer, reference
        x, batched = spec.check_input(input)
        layer = Layer(spec, spec.check_weight(weight), spec.check_bias(bias), relu=relu,
                      input_zero=int(input_zero), float_requantize=float_requantize)
        (output,) = reference(np.asarray(x, dtype=np.int64), [layer])
        output = output if batched else output[0]
        return output.astype(np.uint8) if float_requantize is not None else output


def as_device(device) -> Device:
    """``None`` -> the golden model; a name -> ``Device(name)``; a ``Device`` as it is."""
    if device is None:
        return Device("golden")
    if isinstance(device, Device):
        return device
    if isinstance(device, str):
        return Device(device)
    raise TypeError(f"device must be a convhw.Device, a device name or None, not {device!r}")
