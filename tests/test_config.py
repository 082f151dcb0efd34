"""genprior/config.py's by_ipc: a preset value that steps with the run's IPC."""
import pytest

from genprior import config
from genprior.errors import ConfigError


@pytest.mark.parametrize("ipc, lr", [(1, 20), (9, 20), (10, 100), (50, 100)])
def test_glad_mtt_latent_lr_steps_up_at_ipc_10(ipc, lr):
    # the value under the largest key at or below the IPC (configs/glad/mtt.yaml: {1: 20, 10: 100})
    assert config.compose(["glad=mtt", f"ipc={ipc}"]).synset.optim.latents.lr == lr


def test_a_plain_override_replaces_the_table():
    assert config.compose(["glad=mtt", "ipc=10", "synset.optim.latents.lr=3"]).synset.optim.latents.lr == 3


def test_an_ipc_below_every_key_is_one_line():
    with pytest.raises(ConfigError, match=r"^bad interpolation in name: .*by_ipc has no value for ipc=1 "
                                          r"\(keys: 5, 10\)$"):
        config.compose(["ipc=1", "name='${by_ipc:{5: a, 10: b}}'"])  # (Hydra parses a quoted table)
