"""`key=value` command lines into dataclass specs (genprior.experts, generators.train).

Values are JSON where the field is not a string (`epochs=4`, `net_kwargs='{"width": 64}'`),
so a spec built from a command line equals one built from a config mapping.
"""
from __future__ import annotations

import json
from dataclasses import fields

from genprior.errors import ConfigError


def key_values(argv: list[str]) -> dict[str, str]:
    """`["a=1", "b=x"]` -> `{"a": "1", "b": "x"}`; anything without `=` is one clear error."""
    bad = [a for a in argv if "=" not in a]
    if bad:
        raise ConfigError(f"expected key=value arguments, got {bad[0]!r}")
    return dict(a.split("=", 1) for a in argv)


def spec_from(cls, items: dict, what: str, also_valid: tuple[str, ...] = ()):
    """`cls(**items)` with strings parsed as JSON where the field's default is not a string.

    `what` names the options in errors ("expert option"); `also_valid` lists the keys the
    caller takes out before calling, so the error for a typo names every valid key."""
    names = [f.name for f in fields(cls)]
    unknown = sorted(set(items) - set(names))
    if unknown:
        raise ConfigError(f"unknown {what}(s) {', '.join(unknown)}; valid: {', '.join(sorted([*names, *also_valid]))}")
    defaults, kwargs = cls(), {}
    for k, v in items.items():
        default = getattr(defaults, k)
        if isinstance(v, str) and not isinstance(default, str):
            try:
                v = json.loads(v)
            except json.JSONDecodeError:
                raise ConfigError(f"{what} {k}={v!r} is not a valid value") from None
        if isinstance(default, dict):
            if not hasattr(v, "items"):  # a dict or a DictConfig
                raise ConfigError(f"{what} {k} must be a JSON object, e.g. {k}='{{\"width\": 64}}'")
            v = dict(v)  # an OmegaConf DictConfig from run.py becomes a plain dict
        kwargs[k] = v
    return cls(**kwargs)

