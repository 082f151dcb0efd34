from dataclasses import dataclass, field

import pytest
from omegaconf import OmegaConf

from genprior.errors import ConfigError
from genprior.options import key_values, option, spec_from


@dataclass
class Spec:
    name: str = "a"
    epochs: int = option(1, min=1)
    lr: float = option(0.1, above=0)
    size: int | None = None
    kwargs: dict = field(default_factory=dict)


@dataclass
class Section:  # as run.py's sections are: every key required, the config file gives them
    trust: bool = option()
    mode: str = option(choices=("exact", "fast"))
    models: list[str] = option(choices=("a", "b"))
    momentum: float = option(0.0, min=0, below=1)


def test_values_parse_as_json_except_for_string_fields():
    spec = spec_from(Spec, key_values(["name=42", "epochs=4", "lr=1e-3", "size=null", 'kwargs={"width": 8}']), "opt")
    assert spec == Spec(name="42", epochs=4, lr=1e-3, size=None, kwargs={"width": 8})


def test_a_config_mapping_gives_the_same_spec_as_the_command_line():
    from_config = spec_from(Spec, OmegaConf.create({"epochs": 4, "kwargs": {"width": 8}}), "opt")
    assert from_config == spec_from(Spec, key_values(["epochs=4", 'kwargs={"width": 8}']), "opt")
    assert type(from_config.kwargs) is dict  # plain, so it hashes into manifests like the CLI's


@pytest.mark.parametrize("argv, message", [
    (["epochs=4", "oops"], "expected key=value arguments, got 'oops'"),
    (["epoch=4"], "unknown key opt.epoch; valid: dir, epochs, kwargs, lr, name, size"),
    (["epochs=four"], "opt.epochs must be an integer >= 1, got 'four'"),
    (["epochs=0"], "opt.epochs must be an integer >= 1, got 0"),
    (["epochs=2.5"], "opt.epochs must be an integer >= 1, got 2.5"),
    (["lr=-1"], "opt.lr must be a number > 0, got -1"),
    (["lr=NaN"], "opt.lr must be a number > 0, got nan"),
    (["size=0.5"], "opt.size must be an integer (or null), got 0.5"),
    (["kwargs=3"], "opt.kwargs must be a mapping, got 3"),
])
def test_bad_input_is_one_line_naming_what_is_valid(argv, message):
    with pytest.raises(ConfigError) as e:
        spec_from(Spec, key_values(argv), "opt", also_valid=("dir",))
    assert message in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("value", ["no", "off", "false", "False", "0", "", 0, 1, None, "true", "yes"])
def test_a_bool_takes_only_a_real_boolean(value):
    # "no" must never read as consent (a truthy string), nor "true" as a boolean: config values are typed
    with pytest.raises(ConfigError, match=f"sec.trust must be true or false, got {value!r}"):
        spec_from(Section, {"trust": value, "mode": "exact", "models": ["a"]}, "sec", strings=False)
    assert spec_from(Section, {"trust": True, "mode": "exact", "models": ["a"]}, "sec", strings=False).trust is True


@pytest.mark.parametrize("items, message", [
    ({"trust": False, "mode": "slow", "models": ["a"]}, "sec.mode must be one of exact, fast, got 'slow'"),
    ({"trust": False, "mode": "fast", "models": ["a", "c"]}, "sec.models has unknown 'c'; valid: a, b"),
    ({"trust": False, "mode": "fast", "models": "a"}, "sec.models must be a list of a, b, got 'a'"),
    ({"trust": False, "mode": "fast", "models": ["a"], "momentum": 1.0}, "sec.momentum must be a number >= 0 and < 1"),
    ({"trust": False, "models": ["a"]}, "missing key sec.mode"),
])
def test_choices_ranges_and_missing_keys(items, message):
    with pytest.raises(ConfigError) as e:
        spec_from(Section, items, "sec", strings=False)
    assert message in str(e.value) and "\n" not in str(e.value)
