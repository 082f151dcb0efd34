"""Diffusion priors: the synthetic set as the initial noises z_T of a frozen diffusion model.

Each image is sample(z_T, class): a short differentiable DDIM sampler through the model
(generators/diffusion.py), with classifier-free guidance where the model has a null
class. The latents z_T are the parameters; they start as N(0, I) draws from the run
seed, so a set that no objective refines (iterations=0: the `sample` presets) is plain
class-conditional sampling, and DC/DM/MTT refine that start, GLaD-style, through the
sampler (LD3M's setting). A z_T costs C x H x W floats: for a pixel model, exactly what
the image it renders would. The set is saved and judged as the sampler renders it, in
floats and unclamped (a sampler overshoots [-1, 1] a little); the Minimax code saves its
samples as 8-bit PNGs, clamped and quantized, and trains on those.

With `minimax` set, the model is first fine-tuned with the Minimax criteria on the
train split (generators/minimax.py), then frozen. The fine-tune is a cached artifact
(genprior/artifacts.py) keyed by the base model's files, the data set and every
fine-tune setting, so a second run reuses it. Under several processes, all of them
fine-tune together (data-parallel) and rank 0 writes the artifact.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from genprior import artifacts
from genprior.data import Split, to_unit
from genprior.errors import ConfigError
from genprior.options import option, spec_from
from genprior.rng import seeded
from genprior.synsets.latent import LatentSynset, check_fit

MINIMAX_FORMAT = "genprior.minimax/1"


class DiffusionSynset(LatentSynset):
    @dataclass
    class Options:  # configs/synset/diffusion.yaml says what each one means
        generator: str = option()
        steps: int = option(min=1)
        guidance: float = option(min=0)
        grad_checkpoint: bool = option()
        skip: float = option(min=0, below=1)
        prompt: str = option()
        class_map: list[int] | None = option(min=0)
        minimax: dict | None = option()
        finetune: bool | list[str] = option()

        def __post_init__(self):
            self.minimax_spec()  # its keys are checked with the rest, before any work

        def minimax_spec(self):
            from generators.minimax import MinimaxSpec

            return None if self.minimax is None else spec_from(MinimaxSpec, self.minimax, "synset.minimax",
                                                               strings=False)

    @classmethod
    def from_config(cls, o: Options, ctx) -> "DiffusionSynset":
        from generators.diffusion import load_diffusion
        from genprior.shipped import shipped

        info = ctx.real.info
        path, setup = shipped(o.generator), None
        if o.minimax is not None:
            t0 = time.time()
            path, built = minimax_model(path, o.minimax_spec(), ctx)
            setup = f"Minimax fine-tune {f'built in {time.time() - t0:.0f}s' if built else 'cached'} ({path.parent})"
        g = load_diffusion(path, class_names=list(info.class_names),
                           class_map=o.class_map or list(info.imagenet_classes) or None, prompt=o.prompt,
                           steps=o.steps, guidance=o.guidance, grad_checkpoint=o.grad_checkpoint, skip=o.skip)
        synset = cls(ctx.real, ctx.ipc, g, finetune=o.finetune, seed=ctx.seed, data_space=ctx.dataset.space,
                     data_root=ctx.dataset.root)
        synset.setup = setup
        return synset

    @classmethod
    def prior_digest_now(cls, section: dict) -> str | None:
        # a Minimax fine-tune is built from its base UNet and the digest recorded is the fine-tune's:
        # telling whether the base changed would take the fine-tune again
        if section.get("minimax") is not None:
            return None
        from generators.diffusion import load_diffusion
        from genprior.shipped import shipped

        return artifacts.module_digest(load_diffusion(shipped(section["generator"])))

    def __init__(self, real: Split, ipc: int, generator, finetune: bool | list[str] = False, seed: int = 0,
                 data_space: str = "normalized", data_root: str | None = None):
        super().__init__(real, ipc, generator, finetune, data_space, data_root)
        with torch.no_grad():  # drawn on CPU from the run seed, then moved
            self.latents = nn.Parameter(generator.sample_latents(self.labels, "z", seeded(seed, 0xD1F)).clone())

    def decode(self, index: torch.Tensor) -> torch.Tensor:
        return self.generator.decode(self.latents[index], self.labels[index])

    def latent_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"latents": [self.latents]}

    def latents_counted(self) -> str:
        return "initial noises z_T"


def minimax_model(base: Path, spec, ctx) -> tuple[Path, bool]:
    """The Minimax fine-tune of the pixel UNet folder `base` on ctx's train split, and whether this
    call built it (else it was cached)."""
    from generators.diffusion import load_diffusion, local_folder, save_diffusion
    from generators.minimax import minimax_finetune

    base = local_folder(base)  # a hub id as its downloaded folder: the files are the identity
    g = load_diffusion(base, class_names=list(ctx.real.info.class_names))
    unet = getattr(g.denoiser, "unet", None)
    if g.vae is not None or type(g.denoiser).__name__ != "PixelUNet":
        raise ConfigError(f"Minimax fine-tuning here takes a pixel UNet folder; {base} is a "
                          f"{type(g.denoiser).__name__} (latent and text-conditioned models: not supported)")
    real = ctx.real
    check_fit(g, real)  # before minutes of fine-tuning a model that could not render this data set
    if g.null_label is None:
        raise ConfigError(f"{base} has no null class: Minimax keeps classifier-free guidance, which needs one")
    identity = {"format": MINIMAX_FORMAT, "base": artifacts.files_digest(base), "dataset": real.info.name,
                "resolution": real.images.shape[-1], "spec": spec.identity()}
    directory = artifacts.default_dir(ctx.cache_dir, "minimax", real.info.name, identity)
    built = not (directory / artifacts.MANIFEST).is_file()  # the same answer on every rank: nobody wrote yet
    if built:
        artifacts.check_buildable(directory, "Minimax fine-tune")  # every rank, before the collective fine-tune
        # the data's pixels, whatever value space the run distills in (the key names no space)
        images = (to_unit(real.images, real.info.name, ctx.dataset.space, ctx.dataset.root) * 2 - 1).to(ctx.device)
        tuned, logs = minimax_finetune(unet.to(ctx.device), g.alphas_cumprod, g.scheduler.config.prediction_type,
                                       images, real.labels.to(ctx.device), g.null_label, spec,
                                       progress=ctx.rank == 0)
        if ctx.rank == 0:
            info = dict(g.info, minimax={"spec": spec.identity(), "base": str(base), "last_step": logs})
            artifacts.build_once(directory, identity,
                                 lambda tmp: save_diffusion(tuned.cpu(), g.scheduler, tmp / "model", g.num_classes,
                                                            g.null_label, info), "Minimax fine-tune")
    ctx.barrier()
    artifacts.check_manifest(directory, identity, "Minimax fine-tune", required=True)
    return directory / "model", built
