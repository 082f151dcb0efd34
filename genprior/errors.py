"""User-facing errors: bad input that deserves one clear line, not a traceback."""
import argparse
import sys


class ConfigError(ValueError):
    """Bad user input (unknown choice, missing file, impossible size). CLIs print it and exit 2."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line and exit 2, like every other bad input."""

    def error(self, message):
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)
