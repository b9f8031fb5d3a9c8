"""Progress of long work: a tqdm bar on a terminal, timed log lines otherwise.

Without a terminal (a log file, CI, a batch job) a bar either prints nothing or floods the
log with carriage returns; :class:`LogProgress` prints one plain line at least every
``interval`` seconds instead, with the units done, the rate and the ETA.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TextIO

from tqdm.auto import tqdm

__all__ = ["LOG_INTERVAL", "LogProgress", "progress"]

#: Seconds between two log lines when there is no terminal.
LOG_INTERVAL = 30.0


def progress(iterable: Iterable | None = None, *, desc: str = "", total: int | None = None,
             enable: bool | None = None, unit: str = "it", log_lines: bool = False,
             **kwargs: Any) -> tqdm | LogProgress:
    """A progress display with kdexplain's defaults.

    ``enable=None`` shows a tqdm bar when stderr is a terminal or ``KDEXPLAIN_PROGRESS=1``,
    and hides it when ``KDEXPLAIN_PROGRESS=0`` (tests, CI). Without a terminal it shows
    nothing, or, with ``log_lines=True``, :class:`LogProgress` lines on stderr (long work:
    the sweep, quantify). ``enable=True`` is a bar on a terminal and, off one, log lines
    where ``log_lines`` (else a bar); ``enable=False`` nothing.
    """
    env = os.environ.get("KDEXPLAIN_PROGRESS")
    if enable is None and env is not None:
        enable = env == "1"
    elif enable is not False and not sys.stderr.isatty():
        if log_lines:
            return LogProgress(iterable, desc=desc, total=total, unit=unit,
                               initial=kwargs.get("initial", 0))
        enable = bool(enable)
    elif enable is None:
        enable = True  # a terminal
    return tqdm(iterable, desc=desc, total=total, disable=not enable, unit=unit,
                dynamic_ncols=True, **kwargs)


class LogProgress:
    """Plain progress lines: ``desc: 3/10 ckpt (30%), 0.25 ckpt/s, ETA 28 s, elapsed 12 s``.

    A line is printed when the work starts, at least every ``interval`` seconds while it
    runs (from a background thread, so a slow unit still shows the process is alive), and
    when it ends. Used like a tqdm bar: iterate over it, or call :meth:`update` and
    :meth:`close`.

    Parameters
    ----------
    iterable : iterable, optional
    desc : str
    total : int, optional
        Default: ``len(iterable)`` when it has one.
    unit : str
    interval : float
        Most seconds between two lines.
    stream : file, optional
        Default ``sys.stderr``.
    initial : int
        Units already done before (not counted in the rate).
    clock : callable, optional
        Seconds, monotonic (default ``time.monotonic``; tests pass a fake one).
    """

    def __init__(self, iterable: Iterable | None = None, *, desc: str = "",
                 total: int | None = None, unit: str = "it", interval: float = LOG_INTERVAL,
                 stream: TextIO | None = None, initial: int = 0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.iterable, self.desc, self.total, self.unit = iterable, desc, total, unit
        self.interval = float(interval)
        self.stream = stream if stream is not None else sys.stderr
        self.initial = self.n = int(initial)
        self.clock = clock
        self.start = clock()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._tick, daemon=True)
        self._emit()
        self._thread.start()

    def line(self) -> str:
        """The current progress line."""
        elapsed = self.clock() - self.start
        rate = (self.n - self.initial) / elapsed if elapsed > 0 else 0.0
        done = f"{self.n}/{self.total}" if self.total is not None else f"{self.n}"
        pct = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        if self.total is not None and rate > 0:
            eta = f"ETA {_duration((self.total - self.n) / rate)}"
        else:
            eta = "ETA ?"
        return (f"{self.desc + ': ' if self.desc else ''}{done} {self.unit}{pct}, "
                f"{rate:.3g} {self.unit}/s, {eta}, elapsed {_duration(elapsed)}")

    def _emit(self) -> None:
        with self._lock:
            print(self.line(), file=self.stream, flush=True)

    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            self._emit()

    def update(self, n: int = 1) -> None:
        """Count ``n`` more units done."""
        self.n += n

    def close(self) -> None:
        """Stop the timer and print the final line (once)."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._thread.join()
        self._emit()

    def __iter__(self) -> Iterator:
        try:
            for item in self.iterable or ():
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
