"""``EngineConfig``: the one set of engine parameters.

The gateware, the golden model's engine arithmetic, the compiler, the register map and the driver
all read their widths and depths from an :class:`EngineConfig`; none of them restates a width.
Cross-parameter constraints are checked here, once.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any

import numpy as np

__all__ = ["BUSES", "COMMAND_LINE_OVERRIDES", "PRESETS", "SOURCE_RANGE_CHECKS", "EngineConfig"]

BUS_DATA_WIDTH = 32
#: Bus families of the list engine's ports (``EngineConfig.bus``).
BUSES = ("axi4", "wishbone")
#: How the host-fed job controller checks the source range (``EngineConfig.source_range_check``).
SOURCE_RANGE_CHECKS = ("products", "table", "off")


def _check_int(name: str, value: Any, low: int, high: int) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer from {low} to {high}, not {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be an integer from {low} to {high}, not {value!r}")
    return int(value)



#: The engine parameters ``convhw build``, ``synth`` and ``generate`` override on the command line
#: (``--rows``, ...), and so the ones a build's repeat command may name instead of a preset.
COMMAND_LINE_OVERRIDES = ("rows", "cols", "input_depth", "weight_depth", "acc_depth", "dsp_pes")

@dataclasses.dataclass(frozen=True)
class EngineConfig:
    """Parameters of one convolution engine.

    Parameters
    ----------
    rows : int
        Array rows: input-channel lanes of one input word (1..64).
    cols : int
        Array columns: output channels computed at once (1..64).
    input_width, weight_width : int
        Operand widths in bits (2..16): signed, or for the inputs unsigned with
        ``activation_offset``.
    acc_width : int
        Signed accumulator width in bits; at least the product width (:attr:`product_width`)
        plus one, at most 48.
    input_depth : int
        Input buffer words, each ``rows`` channels of one pixel.
    weight_depth : int
        Weight buffer words, each ``cols`` weights of one input lane.
    acc_depth : int
        Accumulator entries, each ``cols`` accumulators of one output pixel.
    coord_width : int
        Bits of a job's spatial sizes and coordinates (6..16): input and output sizes and
        padding must be below ``2**coord_width``.
    param_width : int
        Bits of a job's kernel size, stride and dilation (2..8, at most ``coord_width``): each
        must be below ``2**param_width``.
    border_skipping : bool
        Whether the pass sequencer can skip the outputs of a pass whose source is padding (or,
        transposed, outside the input): JOB_MODE.SKIP_BORDERS. Without it every pass streams
        its whole output range and border taps multiply zeros: the same results in more cycles,
        from a sequencer about a third smaller.
    source_range_check : str
        How the host-fed job controller refuses a forward job whose ``(OUT_START + OUT_LEN -
        1) * STRIDE`` reaches ``2**coord_width`` in a dimension (``SOURCE_RANGE``; past it the
        address generator's source coordinates would wrap onto real input elements).
        ``"products"``: with three more products in the checks (twelve cycles per job with the
        deep pipeline, six without). ``"table"``: the same decision from a table of each
        stride's largest last output in range, compared in the checks' first cycles: no cycles
        and about a third of the logic (on the iCE40 about 75 logic cells against some 200 for
        the products), but ``2**param_width`` entries, so only for a small ``param_width``.
        the ``up5k`` preset's. ``"off"``: not checked: then raw registers past the limit
        compute wrapped sources (no preset). A compiled layer never meets it
        (:meth:`check_layer` refuses such layers); it guards raw register programs. The list
        engine's job checker always checks, with products.
    deep_pipeline : bool
        Whether the data path has the register stages that let it clock fast: a six-stage
        streamer (one step of address arithmetic per stage) instead of two, a register after
        the input buffer, operand registers in every PE, and an accumulator that registers its
        read and forwards the sums still in flight instead of reading, adding and writing in
        one cycle. It costs flip-flops (and some twenty cycles per job), not results; without it
        the engine is smaller and its clock slower (the ``up5k`` preset).
    activation_offset : bool
        Whether the engine subtracts a zero point from every input element before the multiply,
        as torch's quantised convolutions do (``sum (x - zx) * w``): input elements are then
        *unsigned* ``input_width``-bit values (``0 .. 2**input_width - 1``, torch's quint8),
        each job carries its zero point (the job field ``input_zero``, the descriptor's
        ``INPUT_ZERO``) and the array multiplies ``x - zero`` as a signed ``input_width + 1``-bit
        operand (:attr:`operand_width`). Padding, a transposed layer's inserted zeros and zero
        passes give an operand of 0, i.e. the padding value is the zero point. Without it the
        inputs are signed and a job's zero point must be 0 (``ErrorCode.FIELD_TOO_WIDE``
        otherwise). Off in every preset but ``quantized``.
    dsp_pes : int or None
        How many PEs multiply in a DSP block (the first ones, row by row); the others multiply
        in logic (:class:`convhw.gateware.multiplier.Multiplier` with ``in_logic``: partial
        products and adders, which no synthesis tool maps onto a DSP block), so that an array
        can have more PEs than the part has multipliers (the LFE5U-85F: 156). ``None``: all of
        them. The same products in the same cycles either way: it changes the gateware's
        resources and clock, not a result or a cycle.
    float_output : bool
        Whether the output stage also computes torch's quantised output processing in IEEE-754
        single precision (:mod:`convhw.gateware.float32_requantizer`): per job (the descriptor's
        ``FLOAT_REQUANTIZE``), each sum plus its column's integer bias, wrapped to 32 bits,
        converted to float32, plus the column's float32 bias term, times its float32
        multiplier, rounded half to even, plus the job's ``OUTPUT_ZERO``, clamped to 0..255
        (ReLU: to ``OUTPUT_ZERO``..255). The column parameter records grow from two words to
        four (the two float32 constants) and the output pipeline from 6 stages to
        ``1 + Float32Requantizer.LATENCY``. Needs ``input_width`` 8 and ``acc_width`` 32 at
        most. Off in every preset but ``quantized``.

    Every geometry register and every width of the address generator derives from
    ``coord_width`` and ``param_width``, so they size most of the engine's logic besides the
    array.
    """

    rows: int = 8
    cols: int = 8
    input_width: int = 8
    weight_width: int = 8
    acc_width: int = 32
    input_depth: int = 8192
    weight_depth: int = 2048
    acc_depth: int = 2048
    coord_width: int = 16
    param_width: int = 8
    border_skipping: bool = True
    deep_pipeline: bool = True
    memory_width: int = 64
    bus: str = "axi4"
    source_range_check: str = "products"
    activation_offset: bool = False
    float_output: bool = False
    dsp_pes: int | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__.__get__(self)
        set_("rows", _check_int("rows", self.rows, 1, 64))
        set_("cols", _check_int("cols", self.cols, 1, 64))
        set_("input_width", _check_int("input_width", self.input_width, 2, 16))
        set_("weight_width", _check_int("weight_width", self.weight_width, 2, 16))
        if not isinstance(self.activation_offset, bool):
            raise TypeError(f"activation_offset must be a bool, not {self.activation_offset!r}")
        set_("acc_width", _check_int("acc_width", self.acc_width, self.product_width + 1, 48))
        for name in ("input_depth", "weight_depth", "acc_depth"):
            set_(name, _check_int(name, getattr(self, name), 16, 1 << 20))
        set_("coord_width", _check_int("coord_width", self.coord_width, 6, 16))
        set_("param_width", _check_int("param_width", self.param_width, 2,
                                       min(8, self.coord_width)))
        if not isinstance(self.border_skipping, bool):
            raise TypeError(f"border_skipping must be a bool, not {self.border_skipping!r}")
        if self.source_range_check not in SOURCE_RANGE_CHECKS:
            raise ValueError(f"source_range_check must be one of "
                             f"{', '.join(map(repr, SOURCE_RANGE_CHECKS))}, not "
                             f"{self.source_range_check!r}")
        if not isinstance(self.deep_pipeline, bool):
            raise TypeError(f"deep_pipeline must be a bool, not {self.deep_pipeline!r}")
        if not isinstance(self.float_output, bool):
            raise TypeError(f"float_output must be a bool, not {self.float_output!r}")
        if self.float_output and (self.input_width != 8 or self.acc_width > 32):
            raise ValueError(f"float_output needs input_width 8 and acc_width at most 32 (its "
                             f"results are quint8, its input an int32), not input_width "
                             f"{self.input_width} and acc_width {self.acc_width}")
        set_("memory_width", _check_int("memory_width", self.memory_width, 32, 512))
        if self.memory_width & (self.memory_width - 1):
            raise ValueError(f"memory_width must be a power of two from 32 to 512, not "
                             f"{self.memory_width!r}")
        if self.dsp_pes is not None:
            set_("dsp_pes", _check_int("dsp_pes", self.dsp_pes, 0, self.rows * self.cols))
        if self.bus not in BUSES:
            raise ValueError(f"bus must be one of {', '.join(map(repr, BUSES))}, "
                             f"not {self.bus!r}")

    @classmethod
    def preset(cls, name: str) -> EngineConfig:
        """A named configuration: one of :data:`PRESETS`."""
        if not isinstance(name, str) or name not in PRESETS:
            raise ValueError(f"preset must be one of {', '.join(map(repr, PRESETS))}, "
                             f"not {name!r}")
        return PRESETS[name]

    @classmethod
    def coerce(cls, config: EngineConfig | str | None) -> EngineConfig:
        """An :class:`EngineConfig` from a config, a preset name, or ``None`` (``'default'``)."""
        if config is None:
            return PRESETS["default"]
        if isinstance(config, EngineConfig):
            return config
        if isinstance(config, str):
            return cls.preset(config)
        raise TypeError(f"config must be an EngineConfig, a preset name or None, "
                        f"not {config!r}")

    # -- derived widths: the only place they are computed ------------------------------------

    @property
    def input_word_width(self) -> int:
        return self.rows * self.input_width

    @property
    def weight_word_width(self) -> int:
        return self.cols * self.weight_width

    @property
    def acc_word_width(self) -> int:
        return self.cols * self.acc_width

    @property
    def input_bytes(self) -> int:
        """Bytes of one input element in memory (and of a requantised result)."""
        return -(-self.input_width // 8)

    @property
    def weight_bytes(self) -> int:
        """Bytes of one weight in memory."""
        return -(-self.weight_width // 8)

    @property
    def raw_bytes(self) -> int:
        """Bytes of one raw (``acc + bias``) result in memory."""
        return 4 if self.acc_width <= 32 else 8

    @property
    def beat_bytes(self) -> int:
        """Bytes of one beat of the memory master port."""
        return self.memory_width // 8

    @property
    def operand_width(self) -> int:
        """Bits of the array's signed input operand: ``input_width``, or with
        ``activation_offset`` one more (``x - zero`` of two unsigned ``input_width``-bit
        values)."""
        return self.input_width + int(self.activation_offset)

    @property
    def product_width(self) -> int:
        """Bits of a PE's exact product: :attr:`operand_width` plus ``weight_width``."""
        return self.operand_width + self.weight_width

    @property
    def input_range(self) -> tuple[int, int]:
        """Inclusive range of an input element: signed ``input_width`` bits, or unsigned with
        ``activation_offset``."""
        if self.activation_offset:
            return 0, (1 << self.input_width) - 1
        return -(1 << (self.input_width - 1)), (1 << (self.input_width - 1)) - 1

    @property
    def zero_range(self) -> tuple[int, int]:
        """Inclusive range of a job's input zero point: an input element's with
        ``activation_offset``, else only 0."""
        return (0, (1 << self.input_width) - 1) if self.activation_offset else (0, 0)

    @property
    def result_range(self) -> tuple[int, int]:
        """Inclusive range of a requantised result: signed ``input_width`` bits (whatever the
        inputs are)."""
        return -(1 << (self.input_width - 1)), (1 << (self.input_width - 1)) - 1

    @property
    def operand_limit(self) -> int:
        """The largest magnitude of an operand the array multiplies: ``2**(input_width - 1)``
        (the most negative input), or with ``activation_offset`` ``2**input_width - 1``
        (``x - zero`` with one of them 0 and the other the largest input)."""
        if self.activation_offset:
            return (1 << self.input_width) - 1
        return 1 << (self.input_width - 1)

    @property
    def worst_product(self) -> int:
        """The largest magnitude of one product: :attr:`operand_limit` times the most negative
        weight's."""
        return self.operand_limit * (1 << (self.weight_width - 1))

    @property
    def operand_name(self) -> str:
        """The array's operand in words, for messages: ``int8``, or ``(uint8 - zero)``."""
        if self.activation_offset:
            return f"(uint{self.input_width} - zero)"
        return f"int{self.input_width}"

    @property
    def weight_range(self) -> tuple[int, int]:
        return -(1 << (self.weight_width - 1)), (1 << (self.weight_width - 1)) - 1

    @property
    def acc_range(self) -> tuple[int, int]:
        return -(1 << (self.acc_width - 1)), (1 << (self.acc_width - 1)) - 1

    @property
    def signed_coord_width(self) -> int:
        """Width of the address generator's signed coordinate arithmetic. A source coordinate
        the engine visits lies in the padded input, ``[-pad_lo, in_size + pad_hi)``, for a
        forward layer, and above ``-kernel*dilation`` and below ``in_size + kernel*dilation``
        for a transposed one; the bounds of a tap's outputs are as wide. With sizes and
        padding below ``2**coord_width`` and ``kernel*dilation`` below ``2**(2*param_width)``
        all of them lie in ``(-2**(w + 1), 2**(w + 1))``, ``w = max(coord_width,
        2*param_width)``."""
        return max(self.coord_width, 2 * self.param_width) + 2

    @staticmethod
    def address_width(depth: int) -> int:
        return max(1, math.ceil(math.log2(depth)))

    @staticmethod
    def _pow2(n: int) -> int:
        return 1 << max(0, (n - 1).bit_length())

    @property
    def bus_words_per_input_word(self) -> int:
        """32-bit bus words per input-buffer word on the bus, a power of two so that the bus
        address splits into word and part by bit slicing."""
        return self._pow2(-(-self.input_word_width // BUS_DATA_WIDTH))

    @property
    def bus_words_per_weight_word(self) -> int:
        return self._pow2(-(-self.weight_word_width // BUS_DATA_WIDTH))

    @property
    def output_stride(self) -> int:
        """OUTPUT window words per accumulator entry: ``cols`` rounded up to a power of two."""
        return self._pow2(self.cols)

    @property
    def max_terms(self) -> int:
        """The most worst-case products (:attr:`worst_product`: ``min_input * min_weight``, or
        with ``activation_offset`` ``(2**input_width - 1) * min_weight``) one accumulator holds
        without leaving its range: the compiler refuses a layer that could sum more."""
        return ((1 << (self.acc_width - 1)) - 1) // self.worst_product

    # -- what a layer asks of the engine: checked here, before anything touches hardware --------

    def check_layer(self, spec, input_shape=None) -> None:
        """Refuse a layer this engine cannot hold: a kernel size, stride or dilation beyond
        ``param_width`` bits, padding beyond ``coord_width`` bits (with circular padding also,
        given ``input_shape``, an input or output size beyond them, or a forward layer whose
        ``(output size - 1) * stride`` reaches ``2**coord_width``: other layers longer than
        the coordinates are cut into tiles framed to fit them, see
        :func:`convhw.compiler.job.frame`), a worst-case sum that could leave the
        accumulator's range, or a kernel whose weights or input window do not fit the buffers
        even for one output pixel and one input chunk."""
        for name in ("kernel_size", "stride", "dilation"):
            if max(getattr(spec, name)) >= 1 << self.param_width:
                raise ValueError(f"{name} must be below {1 << self.param_width} in every "
                                 f"dimension for this engine (param_width {self.param_width}), "
                                 f"not {getattr(spec, name)!r}")
        limit = 1 << self.coord_width
        if max(max(p) for p in spec.padding) >= limit:
            raise ValueError(f"padding must be below {limit} for this engine (coord_width "
                             f"{self.coord_width}), not {spec.padding!r}")
        if input_shape is not None:
            spec.check_input_shape(input_shape)
            in_size = tuple(input_shape)[-spec.dims:]
            # Longer inputs and outputs are cut into tiles that each run in a frame of their
            # own (convhw.compiler.job.frame): only circular padding, which reads the far end
            # of the input at the near edge, needs the whole input within the coordinates.
            if spec.padding_mode == "circular":
                for what, size in (("input", in_size), ("output", spec.output_size(in_size))):
                    if max(size) >= limit:
                        raise ValueError(
                            f"{what} size must be below {limit} in every spatial dimension "
                            f"with circular padding for this engine (coord_width "
                            f"{self.coord_width}), not {tuple(size)!r}")
                # The engine refuses a forward tile whose last output times the stride
                # reaches the limit (ErrorCode.SOURCE_RANGE), so that its source coordinates
                # cannot wrap in the address generator.
                reach = tuple((n - 1) * s for n, s in zip(spec.output_size(in_size),
                                                           spec.stride))
                if max(reach) >= limit:
                    raise ValueError(f"(output size - 1) * stride must be below {limit} in "
                                     f"every spatial dimension with circular padding for "
                                     f"this engine (coord_width {self.coord_width}), not "
                                     f"{reach!r}")
        split = self.kernel_split(spec)
        # One output pixel reads a window spanning the dilated kernel (a transposed layer:
        # the part of it one output phase reaches; a cut kernel: the part one job has); the
        # buffer must hold it.
        kernel = list(spec.kernel_size)
        if split is not None:
            dim, run = split
            kernel = [1] * dim + [min(run, kernel[dim])] + kernel[dim + 1:]
        window = 1
        for k, s, d in zip(kernel, spec.stride, spec.dilation):
            window *= (d * (k - 1)) // s + 1 if spec.transposed else d * (k - 1) + 1
        if window > self.input_depth:
            raise ValueError(
                f"{spec.op_name} kernel {spec.kernel_size} with dilation {spec.dilation} spans "
                f"{window} input pixels for one output pixel; this engine's input buffer "
                f"holds {self.input_depth} words")
        terms = spec.macs_per_output
        if terms > self.max_terms:
            raise ValueError(
                f"{spec.op_name} sums up to {terms} products per output (in_channels/groups x "
                f"kernel taps); a {self.acc_width}-bit accumulator holds at most "
                f"{self.max_terms} worst-case {self.operand_name} x int{self.weight_width} "
                f"products")

    def kernel_split(self, spec) -> tuple[int, int] | None:
        """How the compiler cuts a kernel whose weights for one input chunk (``rows`` words per
        tap) overflow the weight buffer: ``(dimension, taps)``. The dimensions before
        ``dimension`` (spatial, outermost first, of ``spec.dims``) are cut into single taps,
        ``dimension`` into runs of at most ``taps`` taps, the dimensions after it kept whole:
        the outermost cut whose runs fit. Each run is a job of its own (the kernel's part, the
        padding moved by its first tap) that adds to the previous runs' sums. ``None`` when
        the whole kernel fits. Only a forward layer is cut (a transposed layer's run would
        need a negative padding, which its frame cannot hold); a transposed kernel that does
        not fit raises ``ValueError``."""
        taps = math.prod(spec.kernel_size)
        if taps * self.rows <= self.weight_depth:
            return None
        if spec.transposed:
            raise ValueError(f"{spec.op_name} kernel {spec.kernel_size} needs "
                             f"{taps * self.rows} weight words per input chunk; this engine's "
                             f"weight buffer holds {self.weight_depth}")
        for dim in range(spec.dims):
            inner = math.prod(spec.kernel_size[dim + 1:])
            if inner * self.rows <= self.weight_depth:
                return dim, self.weight_depth // (inner * self.rows)
        raise ValueError(f"{spec.op_name} needs {self.rows} weight words for one tap of one "
                         f"input chunk; this engine's weight buffer holds {self.weight_depth}")

    def check_tensor(self, name: str, value, bounds: tuple[int, int], why: str = ""):
        """An integer-valued array within ``bounds`` (inclusive), as int64; floats holding
        integers are accepted. ``why``: the reason for the bounds, added to the error."""
        import numpy as np
        array = np.asarray(value)
        if array.dtype.kind not in "iuf":
            raise TypeError(f"{name} must be an array of integers, not an array of dtype "
                            f"{array.dtype}")
        if array.dtype.kind == "f":
            if not np.all(np.isfinite(array)) or np.any(array != np.round(array)):
                raise ValueError(
                    f"{name} must hold integer values for this engine; it holds non-integer "
                    f"values (a float model runs on the engine once quantised: "
                    f"quantized = convhw.quantize(model, calibration_data), then "
                    f"convhw.offload(quantized, convhw.Device('verilator', 'quantized')))")
        low, high = bounds
        if array.size and (array.min() < low or array.max() > high):
            # Exactly, as integers (a float array holds integers here; beyond 2**63 it is
            # outside every bound anyway).
            def exact(v):
                return str(int(v)) if abs(float(v)) < 2.0 ** 63 else repr(float(v))
            raise ValueError(f"{name} must lie in [{low}, {high}] for this engine, not "
                             f"[{exact(array.min())}, {exact(array.max())}]{why}")
        return array.astype(np.int64)

    def check_input_zero(self, input_zero) -> int:
        """A job's input zero point as an int: within :attr:`zero_range` (0 .. 2**input_width
        - 1 with ``activation_offset``, else only 0)."""
        if not isinstance(input_zero, numbers.Integral) or isinstance(input_zero, bool):
            raise TypeError(f"input_zero must be an integer, not {input_zero!r}")
        low, high = self.zero_range
        if not low <= input_zero <= high:
            if not self.activation_offset:
                raise ValueError(f"input_zero must be 0 for an engine without "
                                 f"activation_offset, not {input_zero!r}")
            raise ValueError(f"input_zero must be an integer from {low} to {high} for this "
                             f"engine (uint{self.input_width} inputs), not {input_zero!r}")
        return int(input_zero)

    def check_float_requantize(self, out_channels: int, bias, multiplier,
                               output_zero) -> tuple[np.ndarray, np.ndarray, int]:
        """The float32 output processing's constants of a layer with ``out_channels``
        channels: ``bias`` and ``multiplier`` as float32 arrays of one value per channel (each
        finite: the engine does not check them), ``output_zero`` an int in 0..255. Refused
        without ``float_output``."""
        if not self.float_output:
            raise ValueError("float requantisation needs an engine with float_output (the "
                             "'quantized' preset)")
        values = []
        for name, value in (("bias", bias), ("multiplier", multiplier)):
            array = np.asarray(value)
            if not (np.issubdtype(array.dtype, np.floating)
                    or np.issubdtype(array.dtype, np.integer)):
                raise TypeError(f"float requantisation {name} must be numbers, not "
                                f"{array.dtype}")
            with np.errstate(over="ignore"):        # (beyond float32: infinity, refused)
                array = array.astype(np.float32).reshape(-1)
            if array.size != out_channels:
                raise ValueError(f"float requantisation {name} must have one value per output "
                                 f"channel ({out_channels}), not {array.size}")
            if not np.all(np.isfinite(array)):
                raise ValueError(f"float requantisation {name} must be finite float32 values "
                                 f"(the engine's float32 unit takes no infinity or NaN)")
            values.append(array)
        return values[0], values[1], self.check_output_zero(output_zero)

    def check_output_zero(self, output_zero) -> int:
        """The float32 output processing's zero point as an int: 0..255 (quint8 results), on
        an engine with ``float_output``."""
        if not self.float_output:
            raise ValueError("float requantisation needs an engine with float_output (the "
                             "'quantized' preset)")
        if not isinstance(output_zero, numbers.Integral) or isinstance(output_zero, bool):
            raise TypeError(f"output_zero must be an integer, not {output_zero!r}")
        if not 0 <= output_zero <= 255:
            raise ValueError(f"output_zero must be an integer from 0 to 255 (quint8 results), "
                             f"not {output_zero!r}")
        return int(output_zero)

    def check_operands(self, spec, x, weight, bias, input_zero=0, *, input_shape=None):
        """Validate the tensors of one layer run (and its input zero point) against the
        engine's widths; returns them as int64 arrays (``bias`` may be None). ``x`` None: an
        input of ``input_shape`` that the engine itself wrote (a chained layer's)."""
        self.check_layer(spec, np.shape(x) if x is not None else input_shape)
        self.check_input_zero(input_zero)
        if x is not None:
            x = self.check_tensor("input", x, self.input_range)
        weight = self.check_tensor("weight", weight, self.weight_range)
        if bias is not None:
            worst = spec.macs_per_output * self.worst_product
            low, high = self.acc_range
            why = (f" (the int{self.acc_width} accumulator starts from the bias and must hold "
                   f"it plus {spec.macs_per_output} worst-case {self.operand_name} x "
                   f"int{self.weight_width} products, {worst} at most, without overflow)")
            bias = self.check_tensor("bias", bias, (low + worst, high - worst), why)
        return x, weight, bias

    def describe(self) -> str:
        return (f"{self.rows}x{self.cols} array, {self.operand_name} x int{self.weight_width}"
                f" -> int{self.acc_width}, buffers: input {self.input_depth} x "
                f"{self.input_word_width} b, weight {self.weight_depth} x "
                f"{self.weight_word_width} b, accumulator {self.acc_depth} x "
                f"{self.acc_word_width} b")

    def label(self, ignore: tuple[str, ...] = ()) -> str:
        """A short name that tells configurations apart: the preset with the fewest fields
        different (``'default'`` on a tie) and those fields, e.g. ``preset 'default' with
        memory_width=128``; fields named in ``ignore`` are left out (a build that sets them
        itself)."""
        def changes(preset: EngineConfig) -> list[str]:
            return [f"{field.name}={getattr(self, field.name)!r}"
                    for field in dataclasses.fields(self) if field.name not in ignore
                    and getattr(self, field.name) != getattr(preset, field.name)]
        name = min(PRESETS, key=lambda name: (len(changes(PRESETS[name])), name != "default"))
        differ = changes(PRESETS[name])
        return f"preset {name!r}" + (f" with {', '.join(differ)}" if differ else "")


#: Named configurations: ``small`` for fast simulation, ``default`` for benchmarks and boards,
#: ``up5k`` for a Lattice iCE40UP5K beside a serial bridge, ``quantized`` the ``default`` engine
#: with the activation offset and the float32 output stage (torch's quantised convolutions).
_SMALL = EngineConfig(rows=4, cols=4, input_depth=1024, weight_depth=512, acc_depth=256)

PRESETS = {
    "small": _SMALL,
    "default": EngineConfig(),
    # The UP5K's input and weight buffers are an SPRAM block each (16,384 x 16 bits; the
    # host-fed engine's buffers are single-ported, gateware/single_port_ram.py): 8 and 32 times
    # what its block RAMs held, for two logic cells more (bench/results/boards.md).
    "up5k": EngineConfig(rows=2, cols=2, acc_width=24, input_depth=16384, weight_depth=16384,
                         acc_depth=256, coord_width=8, param_width=4, border_skipping=False,
                         deep_pipeline=False, source_range_check="table"),
    "quantized": EngineConfig(activation_offset=True, float_output=True),
    # The quantised datapath on the small array: the ULX3S's, where the UART link, not the
    # array, sets a model's time, and the 8x8 one with LiteDRAM did not route.
    "small-quantized": dataclasses.replace(_SMALL, activation_offset=True, float_output=True),
}
