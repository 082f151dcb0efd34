"""Options as typed dataclasses, checked where they are built: one line for any bad value.

Every component (synset, objective, protocol, expert buffer, generator training) states
its options as a dataclass; `option()` adds the bounds a field must keep. `spec_from`
turns a config mapping (run.py's Hydra sections) or `key=value` strings (the small
command lines) into that dataclass and refuses, before any work starts:

    unknown keys             unknown key objective.batch_rea; valid: batch_real, ...
    values of the wrong type objective.batch_real must be an integer >= 1, got 'abc'
    values out of range      protocol.runs must be an integer >= 1, got 0
    values not among choices synset.space must be one of z, w, w+, f, got 'x'

Types are strict: a bool field takes only a real true/false (a string "no" is not
false, and never consent), an int field no float and no bool.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, field, fields

from genprior.errors import ConfigError


def option(default=MISSING, *, min=None, above=None, max=None, below=None, choices=None):
    """A dataclass field with bounds: value >= min, > above, <= max, < below, in choices.

    For lists the bounds and choices apply to every element. Mutable defaults are copied.
    Without a default the key is required: run.py's config files give every key, so the
    schema needs no second copy of their defaults."""
    meta = {k: v for k, v in (("min", min), ("above", above), ("max", max), ("below", below), ("choices", choices))
            if v is not None}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return field(default=default, metadata=meta)


def key_values(argv: list[str]) -> dict[str, str]:
    """`["a=1", "b=x"]` -> `{"a": "1", "b": "x"}`; anything without `=` is one clear error."""
    bad = [a for a in argv if "=" not in a]
    if bad:
        raise ConfigError(f"expected key=value arguments, got {bad[0]!r}")
    return dict(a.split("=", 1) for a in argv)


def split_args(argv: list[str]) -> tuple[list[str], dict[str, str]]:
    """Paths and key=value arguments, mixed on one command line: (paths, {key: value})."""
    return [a for a in argv if "=" not in a], key_values([a for a in argv if "=" in a])


def spec_from(cls, items: Mapping, what: str = "", also_valid: tuple[str, ...] = (), strings: bool = True):
    """`cls(**items)`, every value checked against the field's type and bounds.

    `what` is the section the keys live in, as the user types it ("objective" names a
    key `objective.batch_real`). `also_valid` lists keys the caller took out before
    calling, so the error for a typo names every valid key. With `strings`, a string
    given for a field that takes no string is read as JSON (`epochs=4` from a command
    line); config values (Hydra already typed them) pass `strings=False`."""
    if not isinstance(items, Mapping):
        raise ConfigError(f"{what or 'options'} must be a mapping of keys to values, got {items!r}")
    items = _plain(items)
    hints = typing.get_type_hints(cls)
    names = [f.name for f in fields(cls)]
    unknown = sorted(set(items) - set(names))
    if unknown:
        raise ConfigError(f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(_key(what, k) for k in unknown)}; "
                          f"valid: {', '.join(sorted([*names, *also_valid]))}")
    missing = [f.name for f in fields(cls) if f.name not in items and f.default is MISSING
               and f.default_factory is MISSING and not dataclasses.is_dataclass(hints[f.name])]
    if missing:
        raise ConfigError(f"missing key{'s' if len(missing) > 1 else ''} {', '.join(_key(what, k) for k in missing)}")
    kwargs = {}
    for f in fields(cls):
        if f.name in items or dataclasses.is_dataclass(hints[f.name]):
            kwargs[f.name] = _checked(items.get(f.name), hints[f.name], f.metadata, _key(what, f.name), strings)
    return cls(**kwargs)


def _key(what: str, name: str) -> str:
    return f"{what}.{name}" if what else name


def _plain(value):
    """OmegaConf containers as plain dicts and lists (a DictConfig is a Mapping already)."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf
    except ImportError:  # pragma: no cover - omegaconf comes with hydra-core
        return value
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value


def _checked(value, hint, meta: Mapping, key: str, strings: bool):
    if dataclasses.is_dataclass(hint):  # a nested section: its own keys, its own checks
        return spec_from(hint, value if value is not None else {}, key, strings=strings)
    if strings and isinstance(value, str) and not _admits(hint, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            pass  # reported below as a value of the wrong type
    ok, value = _typed(value, hint)
    if ok and isinstance(value, list) and "choices" in meta:
        bad = [v for v in value if v not in meta["choices"]]
        if bad:  # name the one element that is wrong, not the whole list
            raise ConfigError(f"{key} has unknown {bad[0]!r}; valid: {', '.join(map(str, meta['choices']))}")
    if not ok or not _within(value, meta):
        raise ConfigError(f"{key} must be {_describe(hint, meta)}, got {value!r}")
    return value


def _alternatives(hint) -> tuple:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return typing.get_args(hint)
    return (hint,)


def _admits(hint, t) -> bool:
    return any(a is t or typing.get_origin(a) is t for a in _alternatives(hint))


def _typed(value, hint) -> tuple[bool, object]:
    """(whether value is of the type hint, the value in its plain form)."""
    for alt in _alternatives(hint):
        origin, args = typing.get_origin(alt) or alt, typing.get_args(alt)
        if alt is type(None) and value is None:
            return True, None
        if origin is bool and isinstance(value, bool):
            return True, value
        if origin is int and isinstance(value, int) and not isinstance(value, bool):
            return True, value
        if origin is float and isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return True, float(value)
        if origin is str and isinstance(value, str):
            return True, value
        if origin is dict and isinstance(value, Mapping):
            return True, dict(value)
        if origin is list and isinstance(value, Sequence) and not isinstance(value, str):
            items = [_typed(v, args[0]) if args else (True, v) for v in value]
            if all(ok for ok, _ in items):
                return True, [v for _, v in items]
    return False, value


def _within(value, meta: Mapping) -> bool:
    if value is None or isinstance(value, bool):
        return not (value is not None and "choices" in meta and value not in meta["choices"])
    for v in value if isinstance(value, list) else [value]:
        if "choices" in meta and v not in meta["choices"]:
            return False
        if isinstance(v, (int, float)):
            if ("min" in meta and v < meta["min"]) or ("above" in meta and v <= meta["above"]) \
                    or ("max" in meta and v > meta["max"]) or ("below" in meta and v >= meta["below"]):
                return False
    return True


_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string", dict: "a mapping",
          list: "a list", type(None): "null"}


def _describe(hint, meta: Mapping) -> str:
    if "choices" in meta:
        text = "one of " + ", ".join(str(c) for c in meta["choices"])
        if _admits(hint, list):
            text = "a list of " + text[len("one of "):]
    else:
        text = " or ".join(_NAMES.get(typing.get_origin(a) or a, str(a)) for a in _alternatives(hint)
                           if a is not type(None))
    bounds = [f"{op} {meta[k]}" for k, op in (("min", ">="), ("above", ">"), ("max", "<="), ("below", "<"))
              if k in meta]
    if bounds:
        text += " " + " and ".join(bounds)
    if _admits(hint, type(None)):
        text += " (or null)"
    return text
