"""``convhw explore``: which array for a network and a part, on Dask.

A sweep has three steps:

1. **The cycle model on every configuration.** Each point of the grid (rows x cols x buffer
   depths, the rest of the part's preset unchanged) runs the network's convolutions through the
   compiler and its cycle model, without a simulator: on the ECP5 the list engine end to end
   with a memory model (:func:`convhw.estimate`: START to DONE, every byte moved, int8
   results), on the iCE40UP5K the host-fed engine its boards carry, whose model counts the
   compute of each job (:func:`convhw.compiler.cycles.job_cycles`; the serial link's transfers
   are not in it). A configuration the compiler refuses for a layer is kept with the reason.
   On the list engine every point first gets the fast lower bound
   (:func:`convhw.compiler.cycles.list_cycles_bound`: the larger of the datapath's busy cycles
   and the traffic at the memory's rate), and the exact model (the engine replayed cycle by
   cycle, 25-100 times slower) runs only where it can change the answer: on the front of the
   bounds, then on every point that no exactly modelled one surely dominates (a bound is never
   above the exact figure, so a point whose bound is beaten stays beaten).
2. **A first cut by area.** The DSP blocks and block RAMs a configuration needs are estimated
   from its array and buffers (:func:`resources`); those that cannot fit the part are dropped,
   and of the rest the Pareto front of cycles against DSP blocks goes on.
3. **Synthesis and place-and-route** (``--synth``) of the front only: LUTs, flip-flops, DSP
   blocks, block RAMs and fmax from Yosys and nextpnr (:func:`convhw.boards.flow.synthesize`),
   so latency = cycles / fmax and GOPS = 2 x MACs / latency.

Every result is written to ``DIR/results/<key>.json`` as soon as it arrives: an interrupted
sweep resumes where it stopped, and a worker lost in the middle of a task costs only that task,
which Dask runs again elsewhere. The work runs on ``dask.distributed``: a ``LocalCluster`` of
one process per core by default, or an existing scheduler (``--scheduler tcp://host:8786``)
whose workers have convhw (and for ``--synth`` the FPGA extra) installed. The report
(``report.md``, ``report.json``, ``report.html`` and ``pareto.png``) names the best configuration.

Networks: a name of :data:`convhw.models.NAMES` (the benchmark networks, built by
:func:`convhw.models.build`), or a Python file defining ``model`` and ``inputs`` (or ``build()``
returning both), as for ``convhw profile``. Their convolutions, transposed convolutions and
Linear layers are found with forward hooks in one pass of the inputs. torch is needed for that
step only: the sweep itself runs on the layers' :class:`~convhw.spec.ConvSpec`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from . import progress
from .config import EngineConfig
from .memory_model import MemoryModel
from .spec import ConvSpec

__all__ = ["DEFAULT_RANGES", "PARTS", "Layer", "Network", "PartBudget", "Point",
           "ProcessCluster", "best", "evaluate", "fits", "grid", "markdown", "network",
           "pareto", "parse_depths", "parse_range", "resources", "run", "synthesize",
           "timed"]


@dataclasses.dataclass(frozen=True)
class PartBudget:
    """What a part offers the engine, and the preset a sweep starts from."""
    preset: str
    dsp: int
    bram: int
    #: Bits of one block RAM, and the widest port it has at that depth (``bram_shapes``:
    #: ``(depth, width)`` pairs, the narrowest-deepest first).
    bram_shapes: tuple[tuple[int, int], ...]
    #: DSP blocks and block RAMs the engine uses besides one per PE and its three buffers
    #: (loaders, streamer, checks; FIFOs, the serial bridge's burst buffer), measured.
    dsp_overhead: int
    bram_overhead: int
    #: Which engine the part's builds carry, and so which cycle model applies.
    engine: str
    #: Single-port RAM blocks (the UP5K's SB_SPRAM256KA) and their ``(depth, width)``: the
    #: host-fed engine's input and weight buffers go there when they fit one block's depth
    #: (:func:`convhw.gateware.single_port_ram.uses_ice40_spram`, whose constants a test
    #: holds these to).
    spram: int = 0
    spram_shape: tuple[int, int] = (0, 0)


#: The parts of :data:`convhw.boards.flow.PARTS`. The overheads are measured: the ECP5's on the
#: list engine's 8x8 build (90 MULT18X18D, 64 of them PEs, and 70 DP16KD:
#: bench/results/ecp5-85f-list-engine.md), the UP5K's on the host-fed 2x2 engine with its
#: serial bridge (8 SB_MAC16 and 19 block RAMs: bench/results/boards.md).
PARTS = {
    "ecp5-85f": PartBudget(preset="default", dsp=156, bram=208,
                           bram_shapes=((16384, 1), (8192, 2), (4096, 4), (2048, 9),
                                        (1024, 18), (512, 36)),
                           dsp_overhead=26, bram_overhead=1, engine="list"),
    "up5k": PartBudget(preset="up5k", dsp=8, bram=30,
                       bram_shapes=((2048, 2), (1024, 4), (512, 8), (256, 16)),
                       dsp_overhead=4, bram_overhead=6, engine="host-fed", spram=4,
                       spram_shape=(16384, 16)),
}


#: ``(rows, cols)`` ranges ``convhw explore`` sweeps unless told otherwise.
DEFAULT_RANGES = {"ecp5-85f": ("4:16:4", "4:16:4"), "up5k": ("1:2", "1:2")}


def _blocks(depth: int, width: int, shapes) -> int:
    """Block RAMs for a ``depth`` x ``width`` memory: the cheapest way to tile it with one of
    the part's port shapes."""
    return min(math.ceil(depth / d) * math.ceil(width / w) for d, w in shapes)


def resources(config: EngineConfig, part: str) -> dict:
    """The DSP blocks, block RAMs and (on a part that has them) single-port RAM blocks
    ``config`` needs on ``part``, estimated before synthesis (one multiplier per PE that has
    one, ``config.dsp_pes``, plus the part's measured overhead; the input, weight and
    accumulator buffers, each ``depth`` x its word width, tiled onto the part's block RAM
    shapes: the banks split a buffer's depth, which leaves the count alone; the host-fed
    engine's input and weight buffers on single-port blocks where one block's depth holds
    them, as its build places them)."""
    budget = PARTS[part]
    shapes = budget.bram_shapes
    bram = budget.bram_overhead + _blocks(config.acc_depth, config.acc_word_width, shapes)
    spram = 0
    for depth, width in ((config.input_depth, config.input_word_width),
                         (config.weight_depth, config.weight_word_width)):
        if budget.spram and depth <= budget.spram_shape[0]:
            spram += -(-width // budget.spram_shape[1])
        else:
            bram += _blocks(depth, width, shapes)
    pes = config.rows * config.cols
    dsp_pes = pes if config.dsp_pes is None else config.dsp_pes     # the rest in logic
    counts = {"dsp": dsp_pes + budget.dsp_overhead, "bram": bram}
    if budget.spram:
        counts["spram"] = spram
    return counts


def fits(estimate: dict, part: str) -> bool:
    budget = PARTS[part]
    return (estimate["dsp"] <= budget.dsp and estimate["bram"] <= budget.bram
            and estimate.get("spram", 0) <= budget.spram)


# -- the network --------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Layer:
    """One distinct convolution of a network: its spec, its input shape and how many layers of
    the network are exactly it."""
    name: str
    spec: ConvSpec
    input_shape: tuple[int, ...]
    count: int = 1


@dataclasses.dataclass(frozen=True)
class Network:
    name: str
    layers: tuple[Layer, ...]

    @property
    def useful_macs(self) -> int:
        return sum(layer.spec.useful_macs(layer.input_shape) * layer.count
                   for layer in self.layers)


def network(source: str, size: str = "full") -> Network:
    """The convolutions of a benchmark network (a name of :data:`convhw.models.NAMES`, in
    ``size`` ``"full"`` or ``"small"``) or of the model a Python file defines."""
    from . import models
    if source in models.NAMES:
        model, inputs = models.build(source, size)
        name = source if size == "full" else f"{source} ({size})"
    elif source.endswith(".py"):
        from .profile import _load
        model, inputs, _ = _load(Path(source))
        name = Path(source).stem
    else:
        raise ValueError(f"network must be one of {', '.join(map(repr, models.NAMES))} or a "
                         f"Python file (.py), not {source!r}")
    return Network(name, tuple(_layers(model, inputs)))


def _layers(model, inputs) -> list[Layer]:
    import torch

    from .nn import torch_conv_arguments
    found: dict[tuple, list] = {}

    def hook(name, dims, transposed):
        def record(module, args, output):
            if dims == 0:          # Linear: a 1x1 Conv1d on (N, in_features, 1)
                spec = ConvSpec(1, module.in_features, module.out_features, 1,
                                bias=module.bias is not None)
                shape = (1, module.in_features, 1)
            else:
                spec = ConvSpec(dims=dims, transposed=transposed,
                                bias=module.bias is not None,
                                **torch_conv_arguments(module, transposed))
                shape = (1, *args[0].shape[1:])
            found.setdefault((spec, shape), []).append(name)
        return record

    kinds = {torch.nn.Linear: (0, False)}
    for dims in (1, 2, 3):
        kinds[getattr(torch.nn, f"Conv{dims}d")] = (dims, False)
        kinds[getattr(torch.nn, f"ConvTranspose{dims}d")] = (dims, True)
    handles = [module.register_forward_hook(hook(name, *kinds[type(module)]))
               for name, module in model.named_modules() if type(module) in kinds]
    try:
        with torch.no_grad():
            model.eval()
            model(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    if not found:
        raise ValueError("the model has no convolution or Linear layer to run on the engine")
    return [Layer(names[0] if len(names) == 1 else f"{names[0]} (+{len(names) - 1})", spec,
                  shape, len(names)) for (spec, shape), names in found.items()]


# -- the grid -----------------------------------------------------------------------------------

def parse_range(text: str, name: str) -> list[int]:
    """``"8"``, ``"4:16"`` (every value from 4 to 16) or ``"4:16:4"`` (4, 8, 12, 16)."""
    match = re.fullmatch(r"\s*(\d+)\s*(?::\s*(\d+)\s*(?::\s*(\d+)\s*)?)?", str(text))
    if not match:
        raise ValueError(f"{name} must be N, LOW:HIGH or LOW:HIGH:STEP, not {text!r}")
    low = int(match.group(1))
    high = int(match.group(2) or low)
    step = int(match.group(3) or 1)
    if high < low or step < 1:
        raise ValueError(f"{name} must be N, LOW:HIGH or LOW:HIGH:STEP with LOW <= HIGH and "
                         f"STEP >= 1, not {text!r}")
    return list(range(low, high + 1, step))


def parse_depths(text: str) -> tuple[int, int, int]:
    """``"INPUT,WEIGHT,ACC"`` buffer depths in words."""
    parts = str(text).split(",")
    if len(parts) != 3 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"depths must be INPUT,WEIGHT,ACC (three word counts), not {text!r}")
    return tuple(int(p) for p in parts)


@dataclasses.dataclass(frozen=True)
class Point:
    """One configuration of a sweep: the part's preset with these fields changed."""
    part: str
    rows: int
    cols: int
    input_depth: int
    weight_depth: int
    acc_depth: int

    def config(self) -> EngineConfig:
        return dataclasses.replace(EngineConfig.preset(PARTS[self.part].preset),
                                   rows=self.rows, cols=self.cols,
                                   input_depth=self.input_depth,
                                   weight_depth=self.weight_depth, acc_depth=self.acc_depth)

    @property
    def label(self) -> str:
        return (f"{self.rows}x{self.cols} in {self.input_depth} w {self.weight_depth} "
                f"acc {self.acc_depth}")


def grid(part: str, rows: Sequence[int], cols: Sequence[int],
         depths: Sequence[tuple[int, int, int]] | None = None) -> list[Point]:
    """Every point of ``rows`` x ``cols`` x ``depths`` (default: the preset's depths); each
    checked by :class:`EngineConfig` (a bad value raises here, naming it)."""
    if part not in PARTS:
        raise ValueError(f"part must be one of {', '.join(map(repr, PARTS))}, not {part!r}")
    preset = EngineConfig.preset(PARTS[part].preset)
    depths = list(depths or [(preset.input_depth, preset.weight_depth, preset.acc_depth)])
    points = [Point(part, r, c, *d) for r in rows for c in cols for d in depths]
    for point in points:
        point.config()
    return points


# -- evaluation (on the workers) ----------------------------------------------------------------

def evaluate(point: Point, layers: Sequence[Layer], memory: MemoryModel | None = None,
             exact: bool = True) -> dict:
    """The cycle model of the network on one configuration (see the module documentation);
    with ``exact`` False on the list engine, the lower bound of
    :func:`~convhw.compiler.cycles.list_cycles_bound` instead (``"exact"`` in the result
    says which; the host-fed engine's model is exact and fast either way)."""
    start = time.perf_counter()
    config = point.config()
    memory = memory or MemoryModel()
    cycles = busy = moved = 0
    try:
        for layer in layers:
            if PARTS[point.part].engine == "list":
                from .estimate import estimate
                result = estimate(layer.spec, layer.input_shape, config=config, memory=memory,
                                  requantize=True, exact=exact)
                cycles += result.cycles * layer.count
                busy += result.busy_cycles * layer.count
                moved += (result.bytes_read + result.bytes_written) * layer.count
            else:
                from .compiler.cycles import job_cycles
                from .compiler.program import compile_layer
                jobs = sum(job_cycles(step.job) for step in
                           compile_layer(layer.spec, layer.input_shape, config))
                cycles += jobs * layer.count
                busy += jobs * layer.count
    except ValueError as error:
        return dict(point=dataclasses.asdict(point), refused=f"{layer.name}: {error}",
                    seconds=time.perf_counter() - start)
    macs = sum(layer.spec.useful_macs(layer.input_shape) * layer.count for layer in layers)
    return dict(point=dataclasses.asdict(point), cycles=cycles,
                exact=exact or PARTS[point.part].engine != "list", busy_cycles=busy,
                bytes=moved, useful_macs=macs,
                efficiency=macs / (config.rows * config.cols * cycles),
                estimate=resources(config, point.part), seconds=time.perf_counter() - start)


def synthesize(point: Point, build_dir: str) -> dict:
    """Yosys and nextpnr on one configuration (:func:`convhw.boards.flow.synthesize`), in a
    directory of its own under ``build_dir`` (several run at once; a run that a lost worker
    left half done is started again from nothing)."""
    from .boards.flow import synthesize as flow_synthesize
    summary = flow_synthesize(point.part, point.config(),
                              build_dir=Path(build_dir) / key(point, "synth"))
    return dict(point=dataclasses.asdict(point), fmax_mhz=summary.fmax,
                resources={name: used for name, (used, _) in summary.resources.items()},
                available={name: available
                           for name, (_, available) in summary.resources.items()},
                seconds=summary.seconds)


def key(point: Point, stage: str, context: str = "") -> str:
    """The name of a result in the cache: the stage, the point, what else decides the result
    (``context``: the network's layers and the memory model for the cycle model) and convhw's
    version, so that a changed network, memory or convhw never reads a stale result."""
    from . import __version__
    text = json.dumps([stage, context, __version__, dataclasses.asdict(point)], sort_keys=True)
    return f"{stage}-{point.rows}x{point.cols}-" + hashlib.sha256(text.encode()).hexdigest()[:12]


def pareto(rows: Iterable[dict], objectives: Sequence) -> list[dict]:
    """The rows no other row beats or equals in every objective (each a function to
    minimise) while beating it in one."""
    rows = list(rows)
    values = [tuple(f(row) for f in objectives) for row in rows]
    front = []
    for row, value in zip(rows, values):
        dominated = any(all(o <= v for o, v in zip(other, value)) and other != value
                        for other in values)
        if not dominated:
            front.append(row)
    return front


# -- the sweep (on the client) ------------------------------------------------------------------

class ProcessCluster:
    """A Dask scheduler and ``workers`` workers started as processes of their own on this
    machine, listening on loopback only: what ``dask scheduler`` and ``dask worker ADDRESS``
    do on several machines, for tests and benchmarks of that set-up. A context manager giving
    itself; ``address`` is the scheduler's, ``workers`` the workers' ``Popen`` objects (each
    in a process group of its own: :meth:`kill_worker` kills one with its children, as a
    machine lost would)."""

    def __init__(self, workers: int, directory, *, start_seconds: float = 60):
        import subprocess
        import sys
        self._subprocess = subprocess
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        scheduler_file = directory / "scheduler.json"
        scheduler_file.unlink(missing_ok=True)
        # Their own warnings (e.g. a deprecation in a dependency) must not stop them when the
        # caller runs with warnings as errors.
        env = dict(os.environ, PYTHONWARNINGS="ignore")
        quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                     start_new_session=True)
        self.scheduler = subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
             "--port", "0", "--no-dashboard", "--scheduler-file", str(scheduler_file)],
            **quiet)
        self.workers = []
        try:
            deadline = time.monotonic() + start_seconds
            while not (scheduler_file.exists() and scheduler_file.read_text().strip()):
                if time.monotonic() > deadline or self.scheduler.poll() is not None:
                    raise RuntimeError("the Dask scheduler did not start")
                time.sleep(0.1)
            self.address = json.loads(scheduler_file.read_text())["address"]
            self.workers = [subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", self.address,
                 "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1"], **quiet)
                for _ in range(workers)]
            # Ready when every worker has joined: work sent before lands on the first alone.
            from dask.distributed import Client
            with Client(self.address, timeout=start_seconds) as client:
                client.wait_for_workers(workers, timeout=start_seconds)
        except BaseException:
            self.close()
            raise

    def kill_worker(self, index: int = 0) -> None:
        import signal
        os.killpg(self.workers[index].pid, signal.SIGKILL)
        self.workers[index].wait()

    def close(self) -> None:
        for process in [*self.workers, self.scheduler]:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except self._subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()

    def __enter__(self) -> ProcessCluster:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _client(scheduler: str | None, workers: int | None):
    from dask.distributed import Client, LocalCluster
    if scheduler:
        return Client(scheduler), None
    # Its HTTP server on a free port of loopback: on the default 8787, taken by any other
    # cluster on the machine, distributed falls back to another port but leaks a socket.
    cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1,
                           processes=True, dashboard_address="127.0.0.1:0")
    return Client(cluster), cluster


def _stage(client, tasks: dict, function, args: tuple, cache: Path, title: str) -> dict:
    """Run ``function(point, *args)`` for every ``key -> point`` not yet in ``cache`` and write
    each result there as it arrives; every result, cached or new, by key."""
    from dask.distributed import as_completed
    results = {}
    todo = {}
    for name, point in tasks.items():
        path = cache / f"{name}.json"
        if path.exists():
            results[name] = json.loads(path.read_text())
        else:
            todo[name] = point
    if todo:
        futures = {client.submit(function, point, *args, key=f"{name}-{time.time_ns()}",
                                 pure=False): name for name, point in todo.items()}
        with progress.bar(total=len(futures), desc=title, unit="config") as bar:
            for future in as_completed(futures):
                name = futures[future]
                result = future.result()
                path = cache / f"{name}.json"
                temporary = path.with_suffix(".tmp")
                temporary.write_text(json.dumps(result, indent=1) + "\n")
                temporary.replace(path)
                results[name] = result
                bar.update(1)
    return results


def run(net: Network, points: Sequence[Point], out_dir, *, memory: MemoryModel | None = None,
        exact: bool = True, synth: bool = False, scheduler: str | None = None,
        workers: int | None = None) -> dict:
    """The sweep of the module documentation; returns the report's data and writes it to
    ``out_dir``. ``exact`` False: the lower bounds only (the front then is the bounds')."""
    out_dir = Path(out_dir)
    cache = out_dir / "results"
    cache.mkdir(parents=True, exist_ok=True)
    memory = memory or MemoryModel()
    started = time.perf_counter()
    client, cluster = _client(scheduler, workers)
    try:
        context = repr((net.layers, memory))
        # Sent with every task, not scattered: scattered data has no recipe, so a worker lost
        # with the only copy (one that joined after the scatter never had one) would cancel
        # every task that needs it. The layers are a few hundred bytes.
        layers = list(net.layers)
        names = {key(p, "bound", context): p for p in points}
        rows = _stage(client, names, evaluate, (layers, memory, False), cache, "cycle bounds")
        bound_seconds = time.perf_counter() - started
        for name, point in names.items():
            rows[name] = dict(rows[name])
            rows[name]["fits"] = ("refused" not in rows[name]
                                  and fits(rows[name]["estimate"], point.part))
        # The exact model only where it can change the answer: first on the front of the
        # bounds, then on every configuration that no exactly known one surely dominates
        # (bound <= exact, so one that is dominated by an exact figure stays dominated).
        refined = 0
        while exact:
            candidates = [n for n, r in rows.items() if r["fits"]]
            known = [n for n in candidates if rows[n]["exact"]]
            if not known:
                front = pareto([rows[n] for n in candidates], _OBJECTIVES)
                need = [n for n in candidates if any(rows[n] is f for f in front)]
            else:
                need = [n for n in candidates if not rows[n]["exact"]
                        and not any(_dominates(rows[k], rows[n]) for k in known)]
            if not need:
                break
            exact = _stage(client, {n.replace("bound-", "cycles-", 1): names[n] for n in need},
                           evaluate, (layers, memory, True), cache, "exact cycles")
            for n in need:
                result = dict(exact[n.replace("bound-", "cycles-", 1)])
                result["fits"] = rows[n]["fits"]
                result["bound"] = rows[n]["cycles"]
                rows[n] = result
                refined += 1
        model_seconds = time.perf_counter() - started
        rows = [rows[n] for n in names]
        front = pareto([r for r in rows if r["fits"]], _OBJECTIVES)
        for row in rows:
            row["front"] = any(row is f for f in front)
        synthesized = {}
        if synth and front:
            synth_tasks = {key(Point(**r["point"]), "synth"): Point(**r["point"]) for r in front}
            synthesized = _stage(client, synth_tasks, synthesize, (str(out_dir / "synth"),),
                                 cache, "synthesis")
            for row in front:
                result = synthesized[key(Point(**row["point"]), "synth")]
                row["synth"] = result
                row.update(timed(row, result["fmax_mhz"]))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    report = dict(network=net.name, part=points[0].part if points else None,
                  layers=[dict(name=layer.name, spec=repr(layer.spec),
                               input_shape=list(layer.input_shape), count=layer.count)
                          for layer in net.layers],
                  memory=dict(bytes_per_cycle=memory.bytes_per_cycle, latency=memory.latency),
                  configurations=len(points), exact=exact, exact_configurations=refined,
                  bound_seconds=round(bound_seconds, 2),
                  model_seconds=round(model_seconds, 2),
                  seconds=round(time.perf_counter() - started, 2), rows=rows,
                  best=best(rows))
    write_report(report, out_dir)
    return report


#: What the front minimises: cycles and the array's cost, its DSP blocks. Block RAMs only have
#: to fit: with them as a third objective nearly every point of a rows x cols grid is on the
#: front (74 of 92 fitting ResNet-18 configurations), as rows and cols trade one for the other.
_OBJECTIVES = (lambda r: r["cycles"], lambda r: r["estimate"]["dsp"])


def _dominates(known: dict, other: dict) -> bool:
    """Whether ``known`` (exact cycles) beats or equals ``other`` (a lower bound of its
    cycles) in every objective and beats it in one, whatever ``other``'s exact cycles are."""
    a = [f(known) for f in _OBJECTIVES]
    b = [f(other) for f in _OBJECTIVES]
    return all(x <= y for x, y in zip(a, b)) and a != b


def timed(row: dict, fmax_mhz: float) -> dict:
    """A modelled configuration at its fmax: ``latency_s`` (cycles / fmax) and ``gops``
    (two operations per useful multiply-accumulate, in 1e9 per second)."""
    latency = row["cycles"] / (fmax_mhz * 1e6)
    return {"latency_s": latency, "gops": 2 * row["useful_macs"] / latency / 1e9}


def best(rows: Sequence[dict]) -> dict | None:
    """The fastest configuration that fits: by latency (cycles at fmax) among the synthesised
    ones if any were, else by cycles."""
    fitting = [r for r in rows if r.get("fits")]
    timed = [r for r in fitting if "latency_s" in r]
    if timed:
        return min(timed, key=lambda r: r["latency_s"])
    return min(fitting, key=lambda r: r["cycles"]) if fitting else None


# -- the report -----------------------------------------------------------------------------------

_COLUMNS = ("config", "cycles", "efficiency", "dsp (est.)", "bram (est.)", "fits", "front",
            "fmax MHz", "synth resources", "latency ms", "GOPS")


def _cells(row: dict) -> list[str]:
    point = Point(**row["point"])
    if "refused" in row:
        return [point.label, "refused: " + row["refused"]] + [""] * (len(_COLUMNS) - 2)
    synth = row.get("synth")
    bound = not row.get("exact", True)
    return [point.label, ("≥ " if bound else "") + str(row["cycles"]),
            ("≤ " if bound else "") + f"{row['efficiency']:.3f}",
            str(row["estimate"]["dsp"]), str(row["estimate"]["bram"]),
            "yes" if row["fits"] else "no", "yes" if row["front"] else "",
            f"{synth['fmax_mhz']:.1f}" if synth else "",
            ", ".join(f"{k} {v}" for k, v in synth["resources"].items()) if synth else "",
            f"{row['latency_s'] * 1e3:.2f}" if synth else "",
            f"{row['gops']:.3f}" if synth else ""]


def markdown(report: dict) -> str:
    host_fed = report["part"] in PARTS and PARTS[report["part"]].engine == "host-fed"
    lines = [f"# Design-space exploration: {report['network']} on {report['part']}", "",
             f"- configurations: {report['configurations']}, cycle model in "
             f"{report['model_seconds']} s, whole sweep {report['seconds']} s",
             f"- cycles: exact for {report.get('exact_configurations', 0)} (those that can "
             f"be on the Pareto front), a lower bound (≥) for the rest"
             + (", each of which an exactly modelled configuration beats in cycles and DSP "
                "blocks" if report.get("exact", True) else " (the exact model not run)"),
             (f"- memory model: {report['memory']['bytes_per_cycle']} B/cycle, latency "
              f"{report['memory']['latency']}" if not host_fed else
              "- the host-fed engine (the part's boards carry it): compute cycles only, the "
              "host's transfers not counted"), ""]
    chosen = report["best"]
    if chosen:
        how = (f"{chosen['latency_s'] * 1e3:.2f} ms at {chosen['synth']['fmax_mhz']:.1f} MHz"
               if "latency_s" in chosen else f"{chosen['cycles']} cycles (not synthesised)")
        lines += [f"**Best on {report['part']}: {Point(**chosen['point']).label}**, {how}.", ""]
    lines += ["| " + " | ".join(_COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
    ordered = sorted(report["rows"], key=lambda r: ("refused" in r, r.get("cycles", 0)))
    lines += ["| " + " | ".join(_cells(row)) + " |" for row in ordered]
    return "\n".join(lines) + "\n"


def write_report(report: dict, out_dir: Path) -> None:
    (out_dir / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    text = markdown(report)
    (out_dir / "report.md").write_text(text)
    plotted = _plot(report, out_dir / "pareto.png")
    rows = "\n".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in _cells(row)) + "</tr>"
                     for row in sorted(report["rows"],
                                       key=lambda r: ("refused" in r, r.get("cycles", 0))))
    head = "".join(f"<th>{c}</th>" for c in _COLUMNS)
    first = text.split("\n\n")[1] if "\n\n" in text else ""
    (out_dir / "report.html").write_text(
        f"<!doctype html><meta charset=utf-8><title>{report['network']} on "
        f"{report['part']}</title><h1>{report['network']} on {report['part']}</h1>"
        f"<pre>{first}</pre>" + ("<img src=pareto.png>" if plotted else "")
        + f"<table border=1><tr>{head}</tr>{rows}</table>\n")


def _plot(report: dict, path: Path) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rows = [r for r in report["rows"] if "refused" not in r]
    if not rows:
        return False
    synthesised = [r for r in rows if "synth" in r]
    figure, axes = plt.subplots(1, 4 if synthesised else 2, figsize=(20 if synthesised else 10,
                                                                     4.5))
    for axis, what in zip(axes, ("dsp", "bram")):
        for fit, marker in ((True, "o"), (False, "x")):
            chosen = [r for r in rows if r["fits"] == fit]
            axis.scatter([r["estimate"][what] for r in chosen], [r["cycles"] for r in chosen],
                         marker=marker, label="fits" if fit else "does not fit")
        front = sorted((r for r in rows if r["front"]),
                       key=lambda r: (r["estimate"][what], r["cycles"]))
        axis.plot([r["estimate"][what] for r in front], [r["cycles"] for r in front], "r-",
                  label="Pareto front (cycles against DSP)")
        if report["part"] in PARTS:
            axis.axvline(getattr(PARTS[report["part"]], what), color="grey", linestyle="--",
                         label=f"the part's {what.upper()} blocks")
        axis.set_xlabel(f"{what.upper()} blocks (estimated)")
        axis.set_ylabel("cycles (cycle model)")
        axis.set_yscale("log")
        axis.legend()
    if synthesised:
        # After synthesis: the latency at fmax against the LUTs nextpnr placed (the ECP5's
        # LUT4 count; the iCE40's logic cells, a LUT4 and a flip-flop each).
        axis = axes[2]
        kind = next(k for k in synthesised[0]["synth"]["resources"]
                    if k.startswith(("LUT", "LC")))
        luts = [r["synth"]["resources"][kind] for r in synthesised]
        axis.scatter(luts, [r["latency_s"] * 1e3 for r in synthesised])
        for x, r in zip(luts, synthesised):
            axis.annotate(f"{r['point']['rows']}x{r['point']['cols']}", (x, r["latency_s"] * 1e3))
        axis.set_xlabel(f"{kind} (placed)")
        axis.set_ylabel("latency at fmax (ms)")
        axis = axes[3]
        area = [sum(r["synth"]["resources"].values()) for r in synthesised]
        axis.scatter(area, [r["gops"] for r in synthesised])
        for a, r in zip(area, synthesised):
            axis.annotate(f"{r['point']['rows']}x{r['point']['cols']}", (a, r["gops"]))
        axis.set_xlabel("resources used (sum of nextpnr's counts)")
        axis.set_ylabel("GOPS at fmax")
    figure.suptitle(f"{report['network']} on {report['part']}")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True
