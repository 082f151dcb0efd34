"""User-facing errors: bad input that deserves one clear line, not a traceback."""


class ConfigError(ValueError):
    """Bad user input (unknown choice, missing file, impossible size). CLIs print it and exit 2."""
