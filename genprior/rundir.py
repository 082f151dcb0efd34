"""A run directory belongs to one run and is held by one process at a time.

- **Which run**: `config.yaml`, the resolved config, says. Every start compares it with
  the config asked for (less the keys that may change on resumption, RESUMABLE_KEYS) and
  refuses another one, whether or not a checkpoint exists. A directory that holds files
  but no config.yaml is not taken either: those files are somebody else's.
- **Which process**: an exclusive `flock` on `run.lock`. The kernel drops it when the
  holder exits, however it exits (kill -9 included), so a dead run never blocks its own
  resumption; a second live run on the same directory is refused with one line naming
  the holder written into the lock file.

Everything is checked before anything in the directory changes; a directory created
for a run that is then refused (or whose components turn out invalid) is removed again,
and a lock file that was there gets back the holder's name it had.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import socket
import sys
import time
from pathlib import Path

import yaml

from genprior.errors import ConfigError
from genprior.files import write_text

LOCK = "run.lock"
CONFIG = "config.yaml"
LOG = "log.txt"
# Keys (and sections) that may change between a run and its resumption without changing what it
# computes: how far, how often, how judged, where and how verbose; `chunk` trades memory for time
# (float rounding aside), `dataset.download|root` say where the data comes from, not which data.
RESUMABLE_KEYS = ("iterations", "checkpoint_every", "checkpoint_minutes", "log_every", "eval", "protocol", "run_dir",
                  "threads", "name", "chunk", "log_with", "dataset.download", "dataset.root")


def fingerprint(config: dict) -> dict:
    """The part of a resolved config that decides the result (what a resumption must agree with),
    flat: {"synset.optim.images.lr": 5.0, ...}."""
    return {k: v for k, v in flat(config).items() if not under(k, RESUMABLE_KEYS)}


def under(key: str, prefixes) -> bool:
    """Whether a flat key (`protocol.epochs`) is one of `prefixes` or inside one of them."""
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def config_diff(have: dict, want: dict) -> str:
    """'' if the two configs decide the same result, else the differing keys as `key=old->new, ...`."""
    have, want = fingerprint(have), fingerprint(want)
    diff = sorted(k for k in set(have) | set(want) if have.get(k) != want.get(k))
    shown = ", ".join(f"{k}={have.get(k)!r}->{want.get(k)!r}" for k in diff[:4])
    return shown + (" ..." if len(diff) > 4 else "")


def flat(d: dict, prefix: str = "") -> dict:
    """A nested config as {"synset.optim.images.lr": 5.0, ...}."""
    out = {}
    for k, v in d.items():
        out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


class RunDirectory:
    """A claimed run directory: locked by this process until `release` (or its exit)."""

    def __init__(self, path: Path, lock_file, created: bool, lock_created: bool):
        self.path, self._lock_file, self.created, self.lock_created = path, lock_file, created, lock_created
        self._found_holder: str | None = None  # the lock file's text before this claim named itself
        self.config_written = False  # whether this claim wrote the directory's first config.yaml

    @classmethod
    def claim(cls, path: str | Path, config: dict) -> "RunDirectory":
        """Lock `path` for a run of `config` (resolved, plain dict), or raise ConfigError saying why not."""
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise ConfigError(f"run_dir {path} is a file, not a directory; pass another run_dir=")
        created, lock_created = not path.exists(), not (path / LOCK).exists()
        try:
            path.mkdir(parents=True, exist_ok=True)
            lock_file = open(path / LOCK, "a+")
        except OSError as e:
            raise ConfigError(f"run_dir {path} cannot be written ({e.strerror or type(e).__name__}); "
                              f"pass another run_dir=") from None
        claimed = cls(path, lock_file, created, lock_created)
        try:
            claimed._lock()
            claimed._check_owner(config)
        except ConfigError:
            claimed.abandon()
            raise
        claimed._name_holder()  # only now: a refused claim leaves every file as it found it
        return claimed

    def _lock(self) -> None:
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.seek(0)
            holder = self._lock_file.read().strip() or "another process"
            self._lock_file.close()
            self._lock_file = None
            raise ConfigError(f"run_dir {self.path} is in use by {holder}; wait for it to end, "
                              f"or pass another run_dir=") from None

    def _name_holder(self) -> None:
        self._lock_file.seek(0)
        self._found_holder = self._lock_file.read()
        self._write_holder(f"pid {os.getpid()} on {socket.gethostname()} since "
                           f"{time.strftime('%Y-%m-%d %H:%M:%S')} ({' '.join(sys.argv)})\n")

    def _write_holder(self, text: str) -> None:
        self._lock_file.seek(0)
        self._lock_file.truncate()
        self._lock_file.write(text)  # "a+" appends, at 0 once truncated
        self._lock_file.flush()

    def _check_owner(self, config: dict) -> None:
        saved = self.path / CONFIG
        if saved.is_file():
            try:
                have = yaml.safe_load(saved.read_text())
            except (OSError, yaml.YAMLError) as e:
                raise ConfigError(f"{saved} is not readable ({type(e).__name__}); pass another run_dir= "
                                  f"or remove it") from None
            diff = config_diff(have if isinstance(have, dict) else {}, config)
            if diff:
                raise ConfigError(f"{self.path} holds a run with another config ({diff}); "
                                  f"pass another run_dir= or remove it")
            return
        others = sorted(p.name for p in self.path.iterdir() if p.name != LOCK)
        if others:
            shown = ", ".join(others[:4]) + (" ..." if len(others) > 4 else "")
            raise ConfigError(f"run_dir {self.path} holds files ({shown}) but no {CONFIG}: not a run of this "
                              f"config; pass another run_dir= or empty it")

    def write_config(self, text: str) -> None:
        self.config_written = self.config_written or not (self.path / CONFIG).exists()
        write_text(self.path / CONFIG, text)

    def release(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()  # closing the descriptor drops the flock
            self._lock_file = None

    def abandon(self, untouched_only: bool = False) -> None:
        """Release, and take back what this claim added: the directory if it created it and
        nothing else was written, else the lock file if it created that. `untouched_only`: only
        while the run has written nothing past its config and log (a run stopped or failed in
        its set-up, before any step); a directory with a step's work keeps its lock file too."""
        held = self._lock_file is not None
        if held and self._found_holder is not None:  # refused after naming itself: the old name goes back
            self._write_holder(self._found_holder)
        self.release()
        # what this claim wrote: the lock, and the config with the log's first lines if it wrote the config
        mine = {LOCK, CONFIG, LOG} if self.config_written else {LOCK}
        only_mine = held and all(p.name in mine for p in self.path.iterdir())
        if untouched_only and not only_mine:
            return
        if self.created and only_mine:
            # (not `held`: the lock was refused, so another start holds this directory, perhaps one
            # that created it at the same moment; its run.lock is not ours to remove)
            shutil.rmtree(self.path, ignore_errors=True)
            return
        if only_mine and self.config_written:
            for name in (CONFIG, LOG):
                (self.path / name).unlink(missing_ok=True)
        if self.lock_created and held:
            (self.path / LOCK).unlink(missing_ok=True)
