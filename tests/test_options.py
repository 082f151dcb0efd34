from dataclasses import dataclass, field

import pytest
from omegaconf import OmegaConf

from genprior.errors import ConfigError
from genprior.options import key_values, spec_from


@dataclass
class Spec:
    name: str = "a"
    epochs: int = 1
    lr: float = 0.1
    size: int | None = None
    kwargs: dict = field(default_factory=dict)


def test_values_parse_as_json_except_for_string_fields():
    spec = spec_from(Spec, key_values(["name=42", "epochs=4", "lr=1e-3", "size=null", 'kwargs={"width": 8}']), "opt")
    assert spec == Spec(name="42", epochs=4, lr=1e-3, size=None, kwargs={"width": 8})


def test_a_config_mapping_gives_the_same_spec_as_the_command_line():
    from_config = spec_from(Spec, OmegaConf.create({"epochs": 4, "kwargs": {"width": 8}}), "opt")
    assert from_config == spec_from(Spec, key_values(["epochs=4", 'kwargs={"width": 8}']), "opt")
    assert type(from_config.kwargs) is dict  # plain, so it hashes into manifests like the CLI's


@pytest.mark.parametrize("argv, message", [
    (["epochs=4", "oops"], "expected key=value arguments, got 'oops'"),
    (["epoch=4"], "unknown opt(s) epoch; valid: dir, epochs, kwargs, lr, name, size"),
    (["epochs=four"], "opt epochs='four' is not a valid value"),
    (["kwargs=3"], "opt kwargs must be a JSON object"),
])
def test_bad_input_is_one_line_naming_what_is_valid(argv, message):
    with pytest.raises(ConfigError) as e:
        spec_from(Spec, key_values(argv), "opt", also_valid=("dir",))
    assert message in str(e.value) and "\n" not in str(e.value)
