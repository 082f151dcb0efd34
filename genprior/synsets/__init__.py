"""Synthetic-set parameterizations. SYNSETS maps a config's `synset.kind` to its class."""
from genprior.synsets.base import Synset
from genprior.synsets.diffusion import DiffusionSynset
from genprior.synsets.gan import GanSynset
from genprior.synsets.haba import HabaSynset
from genprior.synsets.pixel import PixelSynset

SYNSETS = {"pixel": PixelSynset, "gan": GanSynset, "diffusion": DiffusionSynset, "haba": HabaSynset}

__all__ = ["SYNSETS", "Synset", "PixelSynset", "GanSynset", "DiffusionSynset", "HabaSynset"]
