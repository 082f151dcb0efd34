"""User-facing errors: bad input that deserves one clear line, not a traceback."""
import argparse
import sys
from typing import Callable


class ConfigError(ValueError):
    """Bad user input (unknown choice, missing file, impossible size). CLIs print it and exit 2."""


class Diverged(RuntimeError):
    """A loss stopped being finite (usually: an lr too large). CLIs print the reason, which says
    what was kept, and exit 1."""


class Terminated(BaseException):
    """SIGTERM, raised where the work is, as KeyboardInterrupt is for SIGINT (genprior/run.py
    installs the handler that raises it; schedulers, docker stop and kill send the signal)."""


class DataNotFound(ConfigError):
    """A data set found nowhere. Its message names the Python arguments (root=, download=True);
    a command line words it with `hint`, naming the keys or flags that command accepts."""

    def __init__(self, dataset: str, looked: list, holding: str, downloadable: bool = True, also: str = ""):
        self.dataset, self.holding, self.downloadable, self.also = dataset, holding, downloadable, also
        self.where = ", ".join(str(p) for p in dict.fromkeys(looked))
        super().__init__(self.hint("root=DIR", "download=True"))

    def hint(self, root: str, download: str | None = None) -> str:
        """The message with `root` (e.g. "dataset.root=DIR") and `download` (None: the command has none)."""
        ways = [f"pass {root} holding {self.holding}"]
        if self.downloadable and download:
            ways.append(f"{download} (torchvision)")
        elif not self.downloadable:
            ways[0] += " (no automatic download)"
        return f"{self.dataset} not found (looked in {self.where}); {self.also}{', or '.join(ways)}"


def one_line(e: Exception, limit: int = 300) -> str:
    """An exception's message on one line, for ConfigErrors that wrap it."""
    text = " ".join(str(e).split())
    return text if len(text) <= limit else text[:limit] + " ..."


def message(e: ConfigError, root: str, download: str | None = None) -> str:
    """One line for a command line's error: a missing data set names that command's own keys."""
    return e.hint(root, download) if isinstance(e, DataNotFound) else str(e)


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line and exit 2, like every other bad input."""

    def error(self, message):
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def exit_status(prog: str, work: Callable[[], int | None], root: str, download: str | None = None,
                stopped: str = "rerun the same command to resume") -> int:
    """Run a command line's body; its ending as that command's exit status, every failure one
    stderr line: work's own status (None: 0), 2 bad input (ConfigError; `root`, `download`: its
    data-set keys, see DataNotFound.hint), 1 diverged, 130 SIGINT, 143 SIGTERM (`stopped`: what is kept).
    SIGTERM reaches `work` as Terminated only where the command installs a handler raising it
    (genprior/run.py); elsewhere it ends the process as the signal's default does."""
    try:
        return work() or 0
    except ConfigError as e:
        print(f"{prog}: error: {message(e, root, download)}", file=sys.stderr)
        return 2
    except Diverged as e:
        print(f"{prog}: diverged: {e}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, Terminated) as e:
        name, code = ("SIGINT", 130) if isinstance(e, KeyboardInterrupt) else ("SIGTERM", 143)
        print(f"{prog}: stopped by {name} (exit {code}); {stopped}", file=sys.stderr)
        return code
