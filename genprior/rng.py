"""Seeds derived from (seed, step, unit, ...) instead of a shared RNG stream.

Every random draw in distillation (a network's init, a real batch, a DSA transform)
takes its seed from the run seed and *where* it happens: the step and the work unit
(a class, a trajectory). Then a run gives the same result whether one process or
eight share the units, and a resumed run needs no RNG state from its checkpoint.
"""
from __future__ import annotations

import numpy as np
import torch


def derive_seed(seed: int, *keys: int) -> int:
    """A well-mixed 63-bit seed for (seed, *keys); never the clock."""
    return int(np.random.SeedSequence([seed, *keys]).generate_state(2, np.uint64)[0] >> np.uint64(1))


def seeded(seed: int, *keys: int) -> torch.Generator:
    """A CPU generator seeded from derive_seed: draw on CPU, then move, so devices agree."""
    return torch.Generator().manual_seed(derive_seed(seed, *keys))
