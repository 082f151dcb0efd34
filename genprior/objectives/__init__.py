"""The base objectives, shared by every parameterization.

An objective is a small callable

    loss = objective(images, labels, step, units, lr=None)

that sees only synthetic images (a leaf tensor), their labels and the real data it was
built with; it never knows which synset rendered the images. `objective.units()` is the
number of independent work units per step (classes for DC and DM, the
`trajectories_per_step` trajectories for MTT); `units` is the share this process computes,
and the loss is scaled so that the shares of all processes add up to the full loss. An objective that must keep
memory constant may backpropagate internally and return a detached loss.

All randomness is derived from (seed, step, unit): results do not depend on how many
processes share the units, and resuming needs no RNG state.
"""
from genprior.objectives.dc import DC, layerwise_distance
from genprior.objectives.dm import DM
from genprior.objectives.mtt import MTT

OBJECTIVES = {"dc": DC, "dm": DM, "mtt": MTT}

__all__ = ["OBJECTIVES", "DC", "DM", "MTT", "layerwise_distance"]
