"""Training the project's own diffusion model: a class-conditional UNet2DModel on pixels.

    python -m generators.train arch=unet dataset=fashion_mnist steps=8000 batch=64 \
        out=assets/generators/fashion_mnist_unet

The DDPM objective (Ho et al. 2020): at a uniform timestep t, x_t = sqrt(a_t) x0 +
sqrt(1 - a_t) eps, and the network predicts, under a mean squared error, v = sqrt(a_t) eps
- sqrt(1 - a_t) x0 (Salimans & Ho 2022) by default, or eps. With the cosine schedule a_T is
2e-9: an eps-predictor's x0 = (x - sqrt(1 - a) eps) / sqrt(a) would multiply its error by
2e4 at the first sampling step, a v-predictor's x0 = sqrt(a) x - sqrt(1 - a) v does not. Each label
is replaced by the null class (index = number of classes) with probability
`label_dropout`, so the one network is also the unconditional model that classifier-free
guidance subtracts (Ho & Salimans 2022). AdamW; an EMA of the weights
(generators/ema.py) is the model that is saved, as a diffusers pipeline
folder (generators/diffusion.py's save_diffusion).

The loop, its checkpoints and their resumption are generators/train.py's, shared with
the GANs: every random draw of step s comes from seeds derived from (seed, s), so a
resumed run equals an uninterrupted one.
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from generators.diffusion import DiffusionGenerator, PixelUNet, save_diffusion, training_batch, training_target
from generators.ema import update_ema
from generators.train import FORMAT
from genprior.data import Split, to_unit
from genprior.options import option
from genprior.rng import derive_seed, seeded

DIFFUSION_ARCHS = ("unet",)
# A small UNet for 28-32 px images: 28 -> 14 -> 7 (the last down block keeps its size),
# attention at the coarsest level only: 1.6 M parameters for FashionMNIST, 1.9 s per batch of
# 64 on one CPU thread (attention at 14 px as well: 1.7 M, 2.5 s).
UNET_DEFAULTS = dict(block_out_channels=[32, 64, 64], layers_per_block=2, norm_num_groups=8,
                     down_block_types=["DownBlock2D", "DownBlock2D", "AttnDownBlock2D"],
                     up_block_types=["AttnUpBlock2D", "UpBlock2D", "UpBlock2D"], attention_head_dim=16)


@dataclass
class DiffusionSpec:
    arch: str = option("unet", choices=DIFFUSION_ARCHS)
    dataset: str = "fashion_mnist"
    resolution: int | None = option(None, min=8)  # None: the data set's native resolution
    steps: int = option(8000, min=0)  # not part of the identity: a larger value extends a run
    batch: int = option(64, min=1)
    lr: float = option(3e-4, above=0)
    weight_decay: float = option(0.0, min=0)
    label_dropout: float = option(0.1, min=0, below=1)  # p(label -> null class): classifier-free guidance
    timesteps: int = option(1000, min=2)
    beta_schedule: str = option("squaredcos_cap_v2", choices=("linear", "scaled_linear", "squaredcos_cap_v2"))
    prediction: str = option("v_prediction", choices=("v_prediction", "epsilon"))
    ema_kimg: float = option(50.0, above=0)  # EMA half-life in thousands of images ...
    ema_rampup: float = option(0.1, min=0)  # ... but at most this fraction of the images seen so far
    seed: int = option(0, min=0)
    unet_kwargs: dict = field(default_factory=dict)  # over UNET_DEFAULTS
    # how the grid and FID at the end sample (not part of the identity)
    sample_steps: int = option(20, min=1)
    sample_guidance: float = option(1.0, min=0)

    def resolved(self) -> "DiffusionSpec":
        return DiffusionSpec(**{**asdict(self), "unet_kwargs": {**UNET_DEFAULTS, **self.unet_kwargs}})

    def identity(self) -> dict:
        d = asdict(self)
        for k in ("steps", "sample_steps", "sample_guidance"):
            d.pop(k)
        d["format"] = FORMAT
        return d

    @property
    def trainer(self):
        return DiffusionTrainer


class DiffusionTrainer:
    """A diffusion model's training state (the UNet, its EMA, AdamW) and its step."""

    def __init__(self, spec: DiffusionSpec, real: Split, device):
        from diffusers import DDIMScheduler, UNet2DModel

        self.spec = spec
        self.images = (to_unit(real.images, real.info.name, space="normalized") * 2 - 1).to(device)
        self.labels = real.labels.to(device)
        self.num_classes = real.info.num_classes
        channels, resolution = real.images.shape[1], real.images.shape[-1]
        torch.manual_seed(derive_seed(spec.seed, 2 ** 31))  # the initial weights
        self.unet = UNet2DModel(sample_size=resolution, in_channels=channels, out_channels=channels,
                                num_class_embeds=self.num_classes + 1, **spec.unet_kwargs).to(device).train()
        self.ema = copy.deepcopy(self.unet).eval().requires_grad_(False)
        self.opt = torch.optim.AdamW(self.unet.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
        # trailing spacing: a few-step sampler starts at the last timestep, from pure noise
        self.scheduler = DDIMScheduler(num_train_timesteps=spec.timesteps, beta_schedule=spec.beta_schedule,
                                       clip_sample=False, set_alpha_to_one=True, prediction_type=spec.prediction,
                                       timestep_spacing="trailing")
        self.alphas = self.scheduler.alphas_cumprod.to(device)
        self.parts = {"unet": self.unet, "ema": self.ema, "opt": self.opt}
        self.generator = DiffusionGenerator(PixelUNet(self.ema), self.scheduler, self.num_classes,
                                            null_label=self.num_classes, steps=spec.sample_steps,
                                            guidance=spec.sample_guidance).to(device)  # its buffers too
        self.describe = f"UNet {sum(p.numel() for p in self.unet.parameters()):,} params"

    def step(self, step: int) -> dict:
        s = self.spec
        x0, _, labels, t, eps = training_batch(self.images, self.labels, s.batch, s.label_dropout, self.num_classes,
                                               s.timesteps, seeded(s.seed, step))  # num_classes: the null class
        a = self.alphas[t].view(-1, 1, 1, 1)
        loss = F.mse_loss(self.unet(a.sqrt() * x0 + (1 - a).sqrt() * eps, t, class_labels=labels).sample,
                          training_target(s.prediction, x0, eps, a))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        update_ema(self.ema, self.unet, (step + 1) * s.batch, s.batch, s.ema_kimg, s.ema_rampup)
        return {"loss": loss.item()}

    def save(self, out: Path, info: dict) -> Path:
        # a CPU copy: the EMA UNet is also the sampling generator's, which stays on its device
        return save_diffusion(copy.deepcopy(self.ema).cpu(), self.scheduler, out, self.num_classes, self.num_classes,
                              dict(info, sampler={"steps": self.spec.sample_steps,
                                                  "guidance": self.spec.sample_guidance}))
