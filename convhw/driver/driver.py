"""The driver: one layer on an engine, over any :class:`~convhw.driver.transport.Transport`.

For each job the compiler makes of the layer: write the job's registers, the input and weight
buffer words (bursts), start it, wait until it is idle, check STATUS and ERROR, read CYCLES, and
read the results of the jobs that end an accumulation. The same calls in the same order on every
transport.
"""

from __future__ import annotations

import dataclasses
import threading

import numpy as np

from ..compiler import compile_layer
from ..compiler.cycles import job_cycles, timing
from ..config import EngineConfig
from ..registers import ErrorCode, engine_register_map
from .program import JobProgram

__all__ = ["ConvEngineError", "Driver", "LayerResult"]


class ConvEngineError(RuntimeError):
    """The engine stopped a job with an error code (see ERROR.CODE in docs/registers.md)."""

    def __init__(self, code: int, job: int):
        self.code = int(code)
        self.job = job
        try:
            meaning = ErrorCode(self.code).meaning
        except ValueError:
            meaning = "unknown error code"
        super().__init__(f"engine error {self.code} in job {job}: {meaning}")


@dataclasses.dataclass(frozen=True)
class LayerResult:
    output: np.ndarray
    cycles: int
    job_cycles: tuple[int, ...]
    bytes_moved: int


#: Cycles an aborted job is given to stop (the engine answers ABORT within a few).
ABORT_CYCLES = 10_000


class Driver:
    """Runs layers on the engine behind ``transport``, built with ``config``. Thread-safe: one
    layer at a time (a job's register writes and its results are not interleaved with
    another's)."""

    def __init__(self, transport, config: EngineConfig):
        self._transport = transport
        self._config = config
        self._map = engine_register_map(config)
        self._timing = timing(config)
        self._lock = threading.Lock()

    @property
    def config(self) -> EngineConfig:
        return self._config

    @property
    def transport(self):
        return self._transport

    def check_identity(self) -> None:
        """Read ID and HWCFG0 and refuse an engine built for another configuration."""
        with self._lock:
            self._check_identity()

    def _check_identity(self) -> None:
        t, regmap = self._transport, self._map
        ident = t.read(regmap["ID"].address)
        if ident != regmap["ID"].reset:
            raise ConnectionError(f"no convhw engine answers: ID reads {ident:#010x}")
        hwcfg = t.read(regmap["HWCFG0"].address)
        if hwcfg != regmap["HWCFG0"].reset:
            raise ConnectionError(f"the engine's HWCFG0 {hwcfg:#010x} does not match this "
                                  f"configuration's {regmap['HWCFG0'].reset:#010x}")

    def run(self, spec, x, weight, bias=None, *, requantize=None, relu=False) -> LayerResult:
        """Run ``spec`` on batched ``x`` (int64 arrays already checked against the engine's
        widths by :meth:`EngineConfig.check_operands`)."""
        with self._lock:
            return self._run(spec, x, weight, bias, requantize=requantize, relu=relu)

    def _run(self, spec, x, weight, bias, *, requantize, relu) -> LayerResult:
        t, regmap, config = self._transport, self._map, self._config
        steps = compile_layer(spec, x.shape, config)
        # A job left running (a host that lost its link while it waited) would take the next
        # job's register writes as its own and ignore its START: stop it first.
        if t.read(regmap["STATUS"].address) & 1:
            self._abort()
        out = np.zeros(spec.output_shape(x.shape), dtype=np.int64)
        out3 = out.reshape(out.shape[0], out.shape[1], *(1,) * (5 - out.ndim), *out.shape[2:])
        cycles, moved = [], 0
        for index, step in enumerate(steps):
            program = JobProgram.build(regmap, config, step, spec, x, weight, bias,
                                       requantize=requantize, relu=relu)
            # The job's registers are storage (write_burst, which a transport may read back);
            # only CTRL, whose writes act, goes through write().
            for address, values in _runs(program.registers):
                t.write_burst(address, values)
            t.write_burst(program.input_base, program.input_words)
            t.write_burst(program.weight_base, program.weight_words)
            t.write(program.start_address, 1)
            # The cycle model says how long the job takes: a hung engine is noticed at once,
            # and stopped, so that the next layer finds it idle.
            budget = 2 * job_cycles(step.job, self._timing) + 10_000
            try:
                t.wait_idle(regmap["STATUS"].address, budget)
            except TimeoutError:
                self._abort()
                raise TimeoutError(f"job {index} was still running after {budget} cycles; it "
                                   f"was aborted") from None
            status = t.read(regmap["STATUS"].address)
            moved += 4 * (len(program.registers) + len(program.input_words)
                          + len(program.weight_words) + 2)
            if status & 0b100:
                raise ConvEngineError(t.read(regmap["ERROR"].address), index)
            cycles.append(t.read(regmap["CYCLES"].address))
            if program.output_addresses is not None:
                job = step.job
                values = self._read_outputs(program.output_addresses)
                moved += 4 * len(values)
                block = values.reshape(*(a.out_len for a in job.axes), step.oc_count)
                region = tuple(slice(a.out_start, a.out_start + a.out_len) for a in job.axes)
                out3[(step.batch, slice(step.oc_start, step.oc_start + step.oc_count),
                      *region)] = np.moveaxis(block, -1, 0)
        return LayerResult(output=out, cycles=sum(cycles), job_cycles=tuple(cycles),
                           bytes_moved=moved)

    def _abort(self) -> None:
        """Abort the running job and wait until the engine is idle."""
        t, regmap = self._transport, self._map
        t.write(regmap["CTRL"].address, regmap["CTRL"].field("ABORT").mask)
        t.wait_idle(regmap["STATUS"].address, ABORT_CYCLES)

    def _read_outputs(self, addresses: np.ndarray) -> np.ndarray:
        """Results as signed 32-bit values; runs of consecutive addresses go as bursts."""
        t = self._transport
        values = np.empty(len(addresses), dtype=np.int64)
        breaks = np.flatnonzero(np.diff(addresses) != 4) + 1
        for start, stop in zip(np.r_[0, breaks], np.r_[breaks, len(addresses)]):
            words = t.read_burst(int(addresses[start]), int(stop - start))
            values[start:stop] = np.asarray(words, dtype=np.uint32).astype(np.int64)
        return np.where(values >= 1 << 31, values - (1 << 32), values)


def _runs(writes):
    """Register writes as runs of consecutive addresses, in address order: the registers are
    plain storage until START, so their order does not matter, and a link with a per-access
    cost (a serial bridge) moves a run as one burst."""
    runs = []
    for address, value in sorted(writes, key=lambda write: write[0]):
        if runs and address == runs[-1][0] + 4 * len(runs[-1][1]):
            runs[-1][1].append(value)
        else:
            runs.append((address, [value]))
    return runs
