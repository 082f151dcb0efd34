"""DC: gradient matching (Zhao, Mopuri & Bilen, 2021), with DSA (Zhao & Bilen, 2021).

For each class c, the gradient of the network's loss on synthetic images of c should
point where the gradient on real images of c points:

    L = sum_c D(grad_theta CE(net(syn_c), c), grad_theta CE(net(real_c), c))
    D = sum over layers, sum over output units of (1 - cos(g_syn_row, g_real_row))

Rows are output units: conv weights are seen as [out, in*h*w]. 1-D parameters (biases,
norm scales) are skipped, as the DC code does: per-unit scalars give no direction.

The network follows the images along a trajectory: a fresh one every `outer_loop`
steps, and between two steps it trains `inner_loop` epochs on the (current) synthetic
set. One call of this objective is one image update, so the loop stays uniform.

A network with BatchNorm normalizes each class's real and synthetic batch by that batch's
own statistics here; the DC code instead runs one mixed-class real batch through it and
then freezes BatchNorm for the class loop. The default networks (instance norm) have none.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from genprior.data import Split
from genprior.errors import ConfigError
from genprior.objectives.common import ClassObjective, ObjectiveOptions, class_batches, fresh_net
from genprior.options import option
from genprior.rng import derive_seed, seeded
from genprior.training import train_epoch

# The DC paper's (outer_loop, inner_loop) by images per class.
LOOPS_BY_IPC = {1: (1, 1), 10: (10, 50), 20: (20, 25), 30: (30, 20), 40: (40, 15), 50: (50, 10)}


def loops_for(ipc: int) -> tuple[int, int]:
    """The DC schedule for `ipc`, or that of the largest tabulated IPC below it."""
    return LOOPS_BY_IPC[max(k for k in LOOPS_BY_IPC if k <= ipc)]


def layerwise_distance(g_syn: list[torch.Tensor], g_real: list[torch.Tensor]) -> torch.Tensor:
    """DC's distance between two lists of parameter gradients."""
    total = g_syn[0].new_zeros(())
    for gs, gr in zip(g_syn, g_real):
        if gs.ndim == 1:
            continue
        gs, gr = gs.flatten(1), gr.flatten(1)
        cos = (gs * gr).sum(1) / (gs.norm(dim=1) * gr.norm(dim=1) + 1e-6)
        total = total + (1 - cos).sum()
    return total


class DC(ClassObjective):
    @dataclass
    class Options(ObjectiveOptions):
        batch_real: int = option(min=1)
        outer_loop: int | None = option(min=1)
        inner_loop: int | None = option(min=0)
        lr_net: float = option(above=0)
        batch_train: int = option(min=1)

    @classmethod
    def from_config(cls, o: Options, ctx) -> "DC":
        return cls(ctx.real, ctx.ipc, seed=ctx.seed, **vars(o))

    def __init__(self, real: Split, ipc: int, net: str = "convnet", batch_real: int = 256,
                 dsa: str = "color_crop_cutout_flip_scale_rotate", seed: int = 0, outer_loop: int | None = None,
                 inner_loop: int | None = None, lr_net: float = 0.01, batch_train: int = 256,
                 net_kwargs: dict | None = None):
        default_outer, default_inner = loops_for(ipc)
        self.outer_loop = default_outer if outer_loop is None else outer_loop
        self.inner_loop = default_inner if inner_loop is None else inner_loop  # 0: the network never trains
        if self.outer_loop < 1 or self.inner_loop < 0:
            raise ConfigError(f"DC needs outer_loop >= 1 and inner_loop >= 0, got {self.outer_loop}, {self.inner_loop}")
        super().__init__(real, net, batch_real, dsa, seed, net_kwargs)
        self.lr_net, self.batch_train = lr_net, batch_train
        self.net, self.at_step = None, -1  # the network and the step it is ready for

    def _net_for(self, step: int, images: torch.Tensor, labels: torch.Tensor) -> torch.nn.Module:
        round_, within = divmod(step, self.outer_loop)
        if within == 0:
            net = fresh_net(self.net_name, self.real, derive_seed(self.seed, round_), images.device, **self.net_kwargs)
        elif self.net is not None and self.at_step == step - 1:
            # the images moved: the network follows them. Trained as a copy, so a run stopped
            # inside these epochs checkpoints the network of step - 1 whole, never half-trained
            net = copy.deepcopy(self.net).to(images.device)
            self._train_inner(net, images.detach(), labels, step)
        elif self.net is not None and self.at_step == step:  # resumed: loaded on the CPU
            net = self.net.to(images.device)
        else:
            raise RuntimeError(f"DC network state is for step {self.at_step}, not {step - 1}")
        self.net, self.at_step = net, step
        return net

    def _train_inner(self, net: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, step: int) -> None:
        """inner_loop epochs of plain SGD on the synthetic set, as the DC code does between updates."""
        opt = torch.optim.SGD(net.parameters(), lr=self.lr_net)
        g = seeded(self.seed, step, 0x1)
        for epoch in range(self.inner_loop):
            perm = torch.randperm(len(labels), generator=g).to(images.device)
            train_epoch(net, opt, images, labels, perm, self.batch_train, self.dsa,
                        lambda start: derive_seed(self.seed, step, epoch, start, 0x2))

    def __call__(self, images: torch.Tensor, labels: torch.Tensor, step: int, units: list[int],
                 lr: torch.Tensor | None = None) -> torch.Tensor:
        net = self._net_for(step, images, labels)
        params = [p for p in net.parameters() if p.requires_grad]
        loss = images.new_zeros(())
        for c, real_c, syn_c in class_batches(self.real, images, labels, units, self.batch_real, self.dsa,
                                              self.seed, step):
            y_real = torch.full((len(real_c),), c, device=images.device)
            g_real = [g.detach() for g in torch.autograd.grad(F.cross_entropy(net(real_c), y_real), params)]
            y_syn = torch.full((len(syn_c),), c, device=images.device)
            g_syn = torch.autograd.grad(F.cross_entropy(net(syn_c), y_syn), params, create_graph=True)
            loss = loss + layerwise_distance(g_syn, g_real)
        return loss

    def state_dict(self) -> dict:
        return {"at_step": self.at_step, "net": None if self.net is None else self.net.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.at_step = state["at_step"]
        if state["net"] is not None:
            round_ = self.at_step // self.outer_loop
            self.net = fresh_net(self.net_name, self.real, derive_seed(self.seed, round_), "cpu", **self.net_kwargs)
            self.net.load_state_dict(state["net"])
