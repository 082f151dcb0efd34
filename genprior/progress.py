"""Progress for long work, on a terminal and in a log file alike.

On a terminal, `progress(...)` is a tqdm bar. When stderr is not a terminal (CI, nohup,
a cluster job writing to a file), a bar's carriage-return redraws would pile up in the
file, or, disabled, a 50-minute evaluation would print nothing at all; there, it writes
one plain line every `every` seconds (default 30, GENPRIOR_PROGRESS_EVERY overrides) and
at every further 10 %, plus one at the end:

    expert 0: 120/400 (30%) 0:01:02 elapsed, 0:02:25 left, loss=0.812

Inside `lines_to(path)` (a run: its log.txt) the same lines are also appended to that file,
time-stamped, whether or not stderr is a terminal, so a run's log shows its long phases
(experts, a fine-tune, judging) as they go.

`enabled=False` silences it (a rank that is not the main one, a caller's progress=False).
"""
from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from tqdm import tqdm

from genprior.errors import ConfigError

_log_file: Path | None = None  # where lines also go (lines_to)


@contextmanager
def lines_to(path: str | Path | None):
    """Progress lines of everything inside also appended to `path` (None: nowhere more)."""
    global _log_file
    before, _log_file = _log_file, None if path is None else Path(path)
    try:
        yield
    finally:
        _log_file = before


def _append(line: str) -> None:
    if _log_file is not None:
        append_stamped(_log_file, line)


def append_stamped(path: str | Path, line: str) -> None:
    """`line` at the end of a log file, after the time it is written (a run's log.txt)."""
    with open(path, "a") as f:
        f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")


class _Lines(tqdm):
    """tqdm that emits whole lines (`_emit`), at most every `every` seconds or 10 % of the total."""

    def __init__(self, *args, every: float = 30.0, **kwargs):
        self._every, self._last_time, self._last_tenth, self._closing = every, time.time(), 0, False
        super().__init__(*args, **kwargs)

    def _line_due(self) -> bool:
        now, total = time.time(), self.total or 0
        tenth = 10 * self.n // total if total else 0  # whole tenths done, in integers: no rounding at 30 %
        done = total and self.n >= total
        if self._closing or not (done or now - self._last_time >= self._every or tenth > self._last_tenth):
            return False
        self._last_time, self._last_tenth = now, tenth
        return True

    def _say_stopped(self) -> None:
        if not self.disable and self.total and 0 < self.n < self.total:
            self._emit(_line(self.format_dict) + " (stopped)")


class _LogLines(_Lines):
    """No terminal: lines instead of a bar, on its stream (and in the log file)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, mininterval=0, miniters=1, **kwargs)

    def display(self, msg=None, pos=None):
        if self._line_due():
            self._emit(_line(self.format_dict))
        return True

    def clear(self, nolock=False):
        pass  # a bar's erase before tqdm.write: there is no bar to erase

    def close(self):
        if self.disable:
            return
        self._say_stopped()
        self.disable = True  # tqdm's close would redraw the bar and end it with a newline
        self._decr_instances(self)  # which it would also do: the instance leaves tqdm's list

    def _emit(self, line: str) -> None:
        self.fp.write(line + "\n")
        self.fp.flush()
        _append(line)


class _BarAndLines(_Lines):
    """A terminal: the bar, and lines in the log file."""

    def display(self, msg=None, pos=None):
        if self._line_due():
            _append(_line(self.format_dict))
        return super().display(msg, pos)

    def _emit(self, line: str) -> None:
        _append(line)

    def close(self):
        self._say_stopped()
        self._closing = True  # tqdm's close redraws the bar once more: no line for that
        super().close()


def _line(d: dict) -> str:
    n, total, elapsed = d["n"], d["total"], d["elapsed"]
    text = f"{d['prefix'] or 'progress'}: {n}/{total}" if total else f"{d['prefix'] or 'progress'}: {n}"
    if total:
        text += f" ({100 * n / total:.0f}%)"
    text += f" {tqdm.format_interval(elapsed)} elapsed"
    done = n - (d.get("initial") or 0)  # a resumed bar starts at `initial`: only what this session did has a pace
    if total and done > 0:
        text += f", {tqdm.format_interval(elapsed * (total - n) / done)} left"
    if d.get("postfix"):
        text += f", {d['postfix']}"
    return text


def progress(iterable=None, *, enabled: bool = True, **kwargs) -> tqdm:
    """A progress bar on a terminal, progress lines in a file (see the module doc)."""
    kwargs.pop("disable", None)
    if not enabled:
        return tqdm(iterable, disable=True, **kwargs)
    stream = kwargs.get("file") or sys.stderr
    if hasattr(stream, "isatty") and stream.isatty():
        return _BarAndLines(iterable, every=_every(), **kwargs) if _log_file else tqdm(iterable, **kwargs)
    for terminal_only in ("leave", "dynamic_ncols", "mininterval", "miniters"):
        kwargs.pop(terminal_only, None)
    return _LogLines(iterable, every=_every(), **kwargs)


def _every() -> float:
    value = os.environ.get("GENPRIOR_PROGRESS_EVERY", "30")
    try:
        every = float(value)
    except ValueError:
        every = -1.0
    if not every >= 0:
        raise ConfigError(f"GENPRIOR_PROGRESS_EVERY must be a number of seconds >= 0, got {value!r}")
    return every
