"""MTT: matching training trajectories (Cazenavette et al., 2022).

A student starts from an expert's parameters at epoch t (t < max_start_epoch), takes
`syn_steps` SGD steps on the synthetic set with the set's learnable lr, and should land
where the expert was `expert_epochs` epochs later:

    L = || theta_N - theta*_{t+M} ||^2 / || theta*_t - theta*_{t+M} ||^2

The denominator makes segments of different lengths comparable. The network is a
fixed template evaluated with torch.func.functional_call on a flat parameter vector.

Two ways to get dL/dimages:
- "exact": unroll with create_graph and backprop through all N steps. Memory grows
  with N (every step's activations and its gradient's graph stay alive).
- "constant_memory" (TESLA-style, as GLaD uses): unroll without a graph, then revisit
  step i alone and backprop  -lr * <dL/dtheta_N, g_i(theta_i, x_i)>  into x_i and lr.
  Memory is that of one step. It is an APPROXIMATION: it drops how x_i changes the
  later theta_j (j > i) and hence the later gradients, i.e. the Hessian terms that
  exact unrolling keeps. The loss value it reports is exact.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.func import functional_call

from genprior.augment import dsa_or_none
from genprior.data import Split
from genprior.errors import ConfigError
from genprior.nets import build_net
from genprior.objectives.common import Objective, ObjectiveOptions
from genprior.options import option
from genprior.rng import derive_seed, seeded

MODES = ("exact", "constant_memory")


def _check_segment(max_start_epoch: int, expert_epochs: int, epochs: int) -> None:
    """Every segment the student may be asked to match must lie inside the trajectories."""
    if max_start_epoch < 1 or expert_epochs < 1 or max_start_epoch - 1 + expert_epochs > epochs:
        raise ConfigError(f"MTT needs 1 <= max_start_epoch and max_start_epoch - 1 + expert_epochs <= "
                          f"expert epochs; got max_start_epoch={max_start_epoch}, "
                          f"expert_epochs={expert_epochs}, experts have {epochs} epochs")


class MTT(Objective):
    @dataclass
    class Options(ObjectiveOptions):
        syn_steps: int = option(min=1)
        expert_epochs: int = option(min=1)
        max_start_epoch: int = option(min=1)
        batch_syn: int | None = option(min=1)
        mode: str = option(choices=MODES)
        trajectories_per_step: int = option(min=1)
        init_lr: float = option(above=0)  # the set's learned training lr starts here
        experts: dict = option()          # genprior.experts.ExpertSpec keys, plus dir

        def __post_init__(self):  # everything checked before any expert is built
            super().__post_init__()
            if not isinstance(self.experts.get("dir"), (str, type(None))):
                raise ConfigError(f"objective.experts.dir must be a path (or null), got {self.experts['dir']!r}")
            _check_segment(self.max_start_epoch, self.expert_epochs, self.expert_spec().epochs)

        def expert_spec(self, dataset=None):
            """The expert buffer these options ask for: the trajectories of this objective's network."""
            from genprior.experts import ExpertSpec, expert_spec

            given = {k: v for k, v in self.experts.items() if k != "dir"}
            run = {"net": self.net, "net_kwargs": self.net_kwargs or {}, "dsa": self.dsa}
            if dataset is not None:  # the run's DatasetOptions: experts see what the set will be
                run.update(dataset=dataset.name, space=dataset.space, resolution=dataset.resolution)
            owned = {"net": "objective.net", "net_kwargs": "objective.net_kwargs", "dsa": "objective.dsa",
                     "dataset": "dataset=", "space": "dataset.space", "resolution": "dataset.resolution"}
            if taken := sorted(k for k in given if k in owned):  # the run decides them: never silently overridden
                raise ConfigError(f"objective.experts.{taken[0]} is the run's {owned[taken[0]]}: the experts "
                                  f"train the network the student unrolls, on the set's data; set that instead")
            valid = sorted({f.name for f in fields(ExpertSpec)} - set(owned) | {"dir"})
            if unknown := sorted(set(given) - set(valid)):
                raise ConfigError(f"unknown key objective.experts.{unknown[0]}; valid: {', '.join(valid)}")
            return expert_spec(dict(given, **run), "objective.experts", strings=False)

    @classmethod
    def from_config(cls, o: Options, ctx) -> "MTT":
        """Builds the expert trajectories first if they are missing (each rank a share; cached)."""
        from genprior.experts import ensure_experts, load_experts

        spec = o.expert_spec(ctx.dataset)
        directory = Path(o.experts["dir"]) if o.experts.get("dir") else spec.default_dir(ctx.cache_dir)
        t0 = time.time()
        built = ensure_experts(spec, ctx.real, directory, ctx.rank, ctx.world, ctx.device)
        ctx.barrier()
        objective = cls(ctx.real, load_experts(directory, spec), net=o.net, net_kwargs=o.net_kwargs,
                   syn_steps=o.syn_steps, expert_epochs=o.expert_epochs, max_start_epoch=o.max_start_epoch,
                   batch_syn=o.batch_syn, dsa=o.dsa, seed=ctx.seed, mode=o.mode,
                   trajectories_per_step=o.trajectories_per_step, init_lr=o.init_lr)
        objective.setup = (f"built {built} of {spec.num_experts} experts in {time.time() - t0:.0f}s" if built
                           else f"{spec.num_experts} cached experts") + f" ({directory})"
        return objective

    def __init__(self, real: Split, trajectories: list[torch.Tensor], net: str = "convnet",
                 net_kwargs: dict | None = None, syn_steps: int = 20, expert_epochs: int = 2,
                 max_start_epoch: int = 4, batch_syn: int | None = None,
                 dsa: str = "color_crop_cutout_flip_scale_rotate", seed: int = 0, mode: str = "exact",
                 trajectories_per_step: int = 1, init_lr: float = 0.01):
        if mode not in MODES:
            raise ConfigError(f"unknown MTT mode {mode!r}; valid: {', '.join(MODES)}")
        if not trajectories:
            raise ConfigError("MTT needs at least one expert trajectory")
        _check_segment(max_start_epoch, expert_epochs, trajectories[0].shape[0] - 1)
        info = real.info
        self.template = build_net(net, info.channels, info.num_classes, real.images.shape[-1], **(net_kwargs or {}))
        self.names = [n for n, _ in self.template.named_parameters()]
        self.shapes = [p.shape for _, p in self.template.named_parameters()]
        n_params = sum(p.numel() for p in self.template.parameters())
        if trajectories[0].shape[1] != n_params:
            raise ConfigError(f"expert trajectories have {trajectories[0].shape[1]} parameters, "
                              f"but {net} {net_kwargs or ''} has {n_params}: experts of another network")
        self.trajectories, self.syn_steps, self.expert_epochs = trajectories, syn_steps, expert_epochs
        self.max_start_epoch, self.batch_syn, self.seed, self.mode = max_start_epoch, batch_syn, seed, mode
        self.per_step, self.init_lr = trajectories_per_step, init_lr
        self.setup: str | None = None  # from_config: how the experts came to be (the run's start line)
        self.dsa = dsa_or_none(dsa, info.flip_ok)

    def units(self) -> int:
        return self.per_step  # one unit of work per trajectory segment matched

    def __call__(self, images: torch.Tensor, labels: torch.Tensor, step: int, units: list[int],
                 lr: torch.Tensor | None = None) -> torch.Tensor:
        if lr is None:
            raise ConfigError("MTT trains the student with the set's own lr: the synset must learn_lr()")
        self.template.to(images.device)
        total = images.new_zeros(())
        for u in units:
            g = seeded(self.seed, step, u)
            expert = self.trajectories[int(torch.randint(len(self.trajectories), (1,), generator=g))]
            t = int(torch.randint(self.max_start_epoch, (1,), generator=g))
            start = expert[t].to(images.device)
            target = expert[t + self.expert_epochs].to(images.device)
            match = self._exact if self.mode == "exact" else self._constant_memory
            total = total + match(start, target, images, labels, lr, derive_seed(self.seed, step, u))
        return total / self.per_step  # each unit's share of the mean over all units: ranks sum shares

    # ---- the student
    def _logits(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        params = {n: p.view(s) for n, p, s in zip(self.names, theta.split([s.numel() for s in self.shapes]),
                                                   self.shapes)}
        return functional_call(self.template, params, (x,))

    def _batch(self, images, labels, seed: int, i: int):
        n = len(labels)
        if self.batch_syn and self.batch_syn < n:
            # student step i takes chunk i of passes over the set, each pass a fresh permutation
            # split into batch_syn-sized chunks (the last one smaller), as the MTT code cycles
            # them: every image is seen once per pass, none twice while another waits
            chunks = math.ceil(n / self.batch_syn)
            perm = torch.randperm(n, generator=seeded(seed, i // chunks))
            idx = perm.split(self.batch_syn)[i % chunks].to(images.device)
            x, y = images[idx], labels[idx]
        else:
            x, y = images, labels
        if self.dsa is not None:  # per-sample transforms, as MTT's student sees them
            x = self.dsa(x, derive_seed(seed, i, 0xD5A))
        return x, y

    def _step_grad(self, theta, images, labels, seed, i, create_graph):
        x, y = self._batch(images, labels, seed, i)
        ce = F.cross_entropy(self._logits(theta, x), y)
        return torch.autograd.grad(ce, theta, create_graph=create_graph)[0]

    @staticmethod
    def _distance(theta_n, start, target):
        return ((theta_n - target) ** 2).sum() / ((start - target) ** 2).sum()

    def _exact(self, start, target, images, labels, lr, seed):
        theta = start.clone().requires_grad_(True)
        for i in range(self.syn_steps):
            theta = theta - lr * self._step_grad(theta, images, labels, seed, i, create_graph=True)
        return self._distance(theta, start, target)

    def _constant_memory(self, start, target, images, labels, lr, seed):
        thetas = [start.detach()]
        for i in range(self.syn_steps):  # pass 1: the trajectory, no graph kept
            theta = thetas[-1].detach().requires_grad_(True)
            g = self._step_grad(theta, images.detach(), labels, seed, i, create_graph=False)
            thetas.append((theta - lr.detach() * g).detach())
        with torch.no_grad():
            loss = self._distance(thetas[-1], start, target)
            dl_dtheta = 2 * (thetas[-1] - target) / ((start - target) ** 2).sum() / self.per_step
        for i in range(self.syn_steps):  # pass 2: one step's graph at a time
            theta = thetas[i].detach().requires_grad_(True)
            g = self._step_grad(theta, images, labels, seed, i, create_graph=True)
            (-(lr * (g * dl_dtheta).sum())).backward()  # d theta_N / d(x_i, lr) through step i only
        return loss.detach()  # gradients are already in images.grad and lr.grad
