"""Progress for long work, on a terminal and in a log file alike.

On a terminal, `progress(...)` is a tqdm bar. When stderr is not a terminal (CI, nohup,
a cluster job writing to a file), a bar's carriage-return redraws would pile up in the
file, or, disabled, a 50-minute evaluation would print nothing at all; there, it writes
one plain line every `every` seconds (default 30, GENPRIOR_PROGRESS_EVERY overrides) and
at every further 10 %, plus one at the end:

    expert 0: 120/400 (30%) 0:01:02 elapsed, 0:02:25 left, loss=0.812

`enabled=False` silences it (a rank that is not the main one, a caller's progress=False).
"""
from __future__ import annotations

import os
import sys
import time

from tqdm import tqdm


class _LogLines(tqdm):
    """tqdm that prints whole lines, at most every `every` seconds or 10 % of the total."""

    def __init__(self, *args, every: float = 30.0, **kwargs):
        self._every, self._last_time, self._last_tenth = every, time.time(), 0
        super().__init__(*args, mininterval=0, miniters=1, **kwargs)

    def display(self, msg=None, pos=None):
        now, total = time.time(), self.total or 0
        tenth = 10 * self.n // total if total else 0  # whole tenths done, in integers: no rounding at 30 %
        done = total and self.n >= total
        if not (done or now - self._last_time >= self._every or tenth > self._last_tenth):
            return True
        self._last_time, self._last_tenth = now, tenth
        self.fp.write(_line(self.format_dict) + "\n")
        self.fp.flush()
        return True

    def close(self):
        if not self.disable and self.total and self.n < self.total and self.n > 0:
            self.fp.write(_line(self.format_dict) + " (stopped)\n")
            self.fp.flush()
        self.disable = True  # tqdm's close would redraw the bar
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
        return tqdm(iterable, **kwargs)
    for terminal_only in ("leave", "dynamic_ncols", "mininterval", "miniters"):
        kwargs.pop(terminal_only, None)
    every = float(os.environ.get("GENPRIOR_PROGRESS_EVERY", "30"))
    return _LogLines(iterable, every=every, **kwargs)
