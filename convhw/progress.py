"""Progress bars (tqdm) on standard error, for what takes more than a few seconds.

A layer simulated for long (:mod:`convhw.driver.list_driver`), a Verilator build
(:mod:`convhw.driver.verilator_build`), a board's flow (:mod:`convhw.boards.flow`), the proofs of
:mod:`convhw.formal` and the benchmarks' sweeps show one. Bars go to standard error only, and
only when it is a terminal (tqdm's ``disable=None``), so that piped or captured output is what
it was without them; the environment variable ``CONVHW_PROGRESS`` overrides that: ``1`` shows
them anyway, ``0`` never. Bars vanish when they end (``leave=False``): what stays on the screen
is the program's own output, and lines printed while a bar is shown go through :func:`echo`,
which moves the bar out of their way.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterable, Sequence

from tqdm import tqdm

__all__ = ["ENVIRONMENT", "LONG_SECONDS", "Bar", "bar", "echo", "enabled", "is_long", "items",
           "spinner", "stages"]

#: ``1``: bars even when standard error is not a terminal; ``0``: never.
ENVIRONMENT = "CONVHW_PROGRESS"
#: An operation expected to take at least this many seconds gets a bar (a simulated layer:
#: its expected cycles at the simulator's rough speed).
LONG_SECONDS = 2.0
#: Seconds between redraws of a bar whose count does not move (a stage, a spinner), so that
#: its elapsed time keeps running.
TICK_SECONDS = 0.5


def _forced() -> bool | None:
    value = os.environ.get(ENVIRONMENT, "").strip()
    return {"1": True, "0": False}.get(value)


def enabled() -> bool:
    """Whether a bar made now would be shown: ``CONVHW_PROGRESS`` if it is ``1`` or ``0``,
    else whether standard error is a terminal."""
    forced = _forced()
    if forced is not None:
        return forced
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError, OSError):     # no stream, or a closed one
        return False


def is_long(seconds: float) -> bool:
    """Whether an operation expected to take ``seconds`` gets a bar (and bars are shown)."""
    return seconds >= LONG_SECONDS and enabled()


class Bar(tqdm):
    """A tqdm bar on standard error, shown as :func:`enabled` says, that vanishes when closed.

    ``disable=True`` hides it whatever :func:`enabled` says. ``tick`` (seconds): redraw it that
    often from a thread of its own, so that its elapsed time
    runs while its count stands still; ``watch(bar)`` is called before each redraw (to look at
    the files a tool writes, say). :meth:`stage` names what it is doing now.
    """

    def __init__(self, iterable=None, *, tick: float | None = None,
                 watch: Callable[[Bar], None] | None = None, stage_names: Sequence[str] = (),
                 **options) -> None:
        self._ticker = None
        self._stage_names = list(stage_names)
        options.setdefault("file", sys.stderr)
        options.setdefault("leave", False)
        options.setdefault("dynamic_ncols", True)
        options["disable"] = bool(options.get("disable")) or not enabled()
        super().__init__(iterable, **options)
        if not self.disable and tick:
            self._stop = threading.Event()
            self._ticker = threading.Thread(target=self._tick, args=(tick, watch), daemon=True,
                                            name="convhw-progress")
            self._ticker.start()

    def _tick(self, interval: float, watch) -> None:
        while not self._stop.wait(interval):
            try:
                if watch is not None:
                    watch(self)
                self.refresh()
            except Exception:                # a display must never break the work it shows
                pass

    def stage(self, name: str, detail: str = "") -> None:
        """Now at stage ``name`` (one of ``stage_names``: the count becomes the stages before
        it), ``detail`` after its name."""
        if self.disable:
            return
        if name in self._stage_names:
            self.n = self._stage_names.index(name)
        self.set_postfix_str(f"{name}{': ' + detail if detail else ''}", refresh=True)

    def close(self) -> None:
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            self._stop.set()
            if ticker is not threading.current_thread():
                ticker.join()
        super().close()


def bar(iterable: Iterable | None = None, *, total: float | None = None, desc: str | None = None,
        unit: str = "it", **options) -> Bar:
    """A :class:`Bar` (tqdm's options; it writes to standard error and vanishes when done)."""
    return Bar(iterable, total=total, desc=desc, unit=unit, **options)


def items(iterable: Iterable, desc: str, *, total: int | None = None, unit: str = "item",
          tick: float | None = 1.0, **options) -> Iterable:
    """The items of a sweep, with a bar over them when there are at least two (its elapsed
    time runs between items, redrawn every ``tick`` seconds; None: only when one ends, for a
    benchmark that times threads)."""
    if total is None:
        try:
            total = len(iterable)
        except TypeError:
            total = None
    if total is not None and total < 2:
        return iterable
    return Bar(iterable, total=total, desc=desc, unit=unit, tick=tick, **options)


def stages(desc: str, names: Sequence[str], *, watch: Callable[[Bar], None] | None = None,
           **options) -> Bar:
    """A bar over the named stages of a long task (a build: verilate, compile): how many are
    done, the current one and the elapsed time, redrawn while a stage runs; ``watch(bar)`` may
    move it on (:meth:`Bar.stage`) from what it sees. Use it as a context manager."""
    options.setdefault("bar_format", "{desc}: {n_fmt}/{total_fmt} stages |{bar:12}| "
                                     "{elapsed}{postfix}")
    options.setdefault("tick", TICK_SECONDS)
    return Bar(total=len(names), desc=desc, watch=watch, stage_names=names, **options)


def spinner(desc: str, **options) -> Bar:
    """A line that says what is being done and for how long (no count): for a step of
    unknown length, such as elaborating a design. Use it as a context manager."""
    options.setdefault("bar_format", "{desc} [{elapsed}]")
    return Bar(total=None, desc=desc, tick=TICK_SECONDS, **options)


def echo(*values, file=None, **options) -> None:
    """``print``, with any bar shown cleared first and redrawn after (a bar on standard error
    and a line on standard output share the terminal)."""
    file = sys.stdout if file is None else file
    with Bar.external_write_mode(file=file):
        print(*values, file=file, **options)

