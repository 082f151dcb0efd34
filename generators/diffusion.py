"""Diffusion models as generators: the latent is the initial noise, decoding is a short sampler.

A `DiffusionGenerator` has one latent kind, "z": the initial noise z_T of a sampler, in
the denoiser's input space (pixels, or a VAE's latents). `decode(z, labels)` runs a
few-step DDIM sampler written here rather than diffusers' pipelines, for two reasons:
the pipelines run under `torch.no_grad()`, and diffusers' `DDIMScheduler` clamps its
x0 prediction by default (`clip_sample=True`), which zeroes the gradient of every
clamped pixel. The loop below is differentiable end to end, so dL/dimages reaches z_T.

Three denoisers give different networks one signature, `denoiser(x_t, t, labels)`:

    PixelUNet   a class-conditional `UNet2DModel` on pixels; genprior.json beside its
                model_index.json says how many embeddings are classes and which one is the
                null class that classifier-free guidance needs (without it, every embedding
                is a class and there is no null class); the project's own FashionMNIST
                model is one (assets/generators/)
    LatentDiT   `DiTTransformer2DModel` on `AutoencoderKL` latents (the backbone Minimax
                fine-tunes), the data set's labels mapped to the model's (ImageNet) classes
    PromptUNet  a Stable-Diffusion folder: `UNet2DConditionModel` with a transformers text
                encoder, each class's name as its prompt (D4M-style, any labeled data set)

`load_diffusion(path)` reads any of them from a diffusers folder (`from_pretrained`);
a hub id works online, and offline (HF_HUB_OFFLINE) fails at once with one line.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

from generators.base import Generator, frozen, randn
from genprior.errors import ConfigError, one_line
from genprior.host import hub_offline

PREDICTIONS = ("epsilon", "v_prediction", "sample")


# ---------------------------------------------------------------- the sampler

def ddim_sample(denoiser, z: torch.Tensor, labels: torch.Tensor | None, alphas_cumprod: torch.Tensor,
                timesteps: list[int], prediction: str = "epsilon", guidance: float = 1.0,
                null_label: int | None = None, grad_checkpoint: bool = False, skip: float = 0.0,
                final_alpha: float = 1.0) -> torch.Tensor:
    """Deterministic DDIM (eta = 0) from z = x_T along `timesteps` (descending); returns x_0.

    Each step predicts x0 and eps from the denoiser's output, then moves back by
    T // steps timesteps (as diffusers' DDIMScheduler does, whatever the spacing):
    x_prev = sqrt(a_prev) x0 + sqrt(1 - a_prev) eps, with a_prev = `final_alpha` past
    timestep 0 (1 with diffusers' `set_alpha_to_one`). Nothing is clamped.
    guidance > 1: classifier-free guidance, eps_null + guidance (eps_class - eps_null).
    grad_checkpoint: keep only each step's input for the backward pass (memory of one step).
    skip > 0: an LD3M-style skip from z_T (Moser et al. 2024) that keeps gradients reaching the
    noise through long chains: after step i of N (i = 0..N-1), x <- (1 - g_i) x + g_i z_T with
    g_i = skip (1 - (i + 1) / N), falling linearly to 0 at the last step (so the output itself
    is never mixed with noise; the largest weight, after the first step, is skip (N - 1) / N)."""
    x, n = z, len(timesteps)
    ratio = len(alphas_cumprod) // n
    for i, t in enumerate(timesteps):
        a_t = alphas_cumprod[t]
        a_prev = alphas_cumprod[t - ratio] if t - ratio >= 0 else alphas_cumprod.new_tensor(final_alpha)
        t_batch = torch.full((len(x),), t, device=x.device, dtype=torch.long)
        if grad_checkpoint and torch.is_grad_enabled():
            out = checkpoint(_guided, denoiser, x, t_batch, labels, guidance, null_label, use_reentrant=False)
        else:
            out = _guided(denoiser, x, t_batch, labels, guidance, null_label)
        x0, eps = x0_and_eps(out, x, a_t, prediction)
        x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
        if skip and i + 1 < n:
            g = skip * (1 - (i + 1) / n)
            x = (1 - g) * x + g * z
    return x


def _guided(denoiser, x, t, labels, guidance: float, null_label: int | None) -> torch.Tensor:
    if guidance == 1.0:
        return denoiser(x, t, labels)
    both = denoiser(torch.cat([x, x]), torch.cat([t, t]), torch.cat([labels, torch.full_like(labels, null_label)]))
    cond, null = both.chunk(2)
    return null + guidance * (cond - null)


def training_batch(images: torch.Tensor, labels: torch.Tensor, batch: int, label_dropout: float, null_label: int,
                   timesteps: int, g: torch.Generator):
    """A batch of the diffusion loss, every draw from `g` (CPU) in the one order both trainers share
    (generators/train_diffusion.py, generators/minimax.py): items, label dropout to the null class
    (classifier-free guidance's training), timesteps, noise. -> x0, classes, the labels the model
    sees (dropped ones null), t, eps."""
    device = images.device
    idx = torch.randint(len(labels), (batch,), generator=g).to(device)
    x0, classes = images[idx], labels[idx]
    dropped = (torch.rand(batch, generator=g) < label_dropout).to(device)
    t = torch.randint(timesteps, (batch,), generator=g).to(device)
    eps = torch.randn(x0.shape, generator=g).to(device)
    return x0, classes, torch.where(dropped, null_label, classes), t, eps


def training_target(prediction: str, x0: torch.Tensor, eps: torch.Tensor, a_t: torch.Tensor) -> torch.Tensor:
    """What a network of this parameterization learns to output at x_t = sqrt(a) x0 + sqrt(1 - a) eps:
    eps, v = sqrt(a) eps - sqrt(1 - a) x0, or x0 itself ("sample"). x0_and_eps inverts it."""
    if prediction == "epsilon":
        return eps
    if prediction == "v_prediction":
        return a_t.sqrt() * eps - (1 - a_t).sqrt() * x0
    return x0


def x0_and_eps(out: torch.Tensor, x: torch.Tensor, a_t: torch.Tensor, prediction: str):
    """The (x0, eps) that a network output `out` at x_t = `x` stands for, in its parameterization."""
    s, r = a_t.sqrt(), (1 - a_t).sqrt()
    if prediction == "epsilon":
        return (x - r * out) / s, out
    if prediction == "v_prediction":
        return s * x - r * out, s * out + r * x
    return out, (x - s * out) / r  # "sample": the network predicts x0


# ---------------------------------------------------------------- denoisers: one signature

class PixelUNet(nn.Module):
    """UNet2DModel on pixels; labels are the model's own class indices."""

    def __init__(self, unet):
        super().__init__()
        self.unet = unet
        c = unet.config
        self.shape = (c.in_channels, *_pair(c.sample_size))
        self.num_embeds = c.num_class_embeds or 0

    def forward(self, x, t, labels):
        return self.unet(x, t, class_labels=labels if self.num_embeds else None).sample


class LatentDiT(nn.Module):
    """DiTTransformer2DModel on VAE latents; a learned-sigma output keeps its mean half."""

    def __init__(self, transformer):
        super().__init__()
        self.transformer = transformer
        c = transformer.config
        self.shape = (c.in_channels, c.sample_size, c.sample_size)
        self.num_embeds = c.num_embeds_ada_norm + 1  # DiT's label table has a null class at the end

    def forward(self, x, t, labels):
        out = self.transformer(x, timestep=t, class_labels=labels).sample
        return out[:, : x.shape[1]]


class PromptUNet(nn.Module):
    """UNet2DConditionModel with text embeddings of one prompt per class, plus "" as the null class."""

    def __init__(self, unet, prompt_embeddings: torch.Tensor):
        super().__init__()
        self.unet = unet
        self.register_buffer("prompts", prompt_embeddings)  # [classes + 1, tokens, dim], computed once
        c = unet.config
        self.shape = (c.in_channels, *_pair(c.sample_size))
        self.num_embeds = len(prompt_embeddings)

    def forward(self, x, t, labels):
        return self.unet(x, t, encoder_hidden_states=self.prompts[labels]).sample


def _pair(size) -> tuple[int, int]:
    if size is None:  # diffusers' default; the sampler's noise needs a size
        raise ConfigError("the UNet's config.json has no sample_size: set it to the size of the images it makes")
    return (size, size) if isinstance(size, int) else tuple(size)


# ---------------------------------------------------------------- the generator

class DiffusionGenerator(Generator):
    """z [N, C, H, W] (the sampler's initial noise) -> images in [-1, 1].

    `class_map[c]` is the model's class index for data-set class c (identity by default);
    `null_label` the model's null class (None: no classifier-free guidance)."""

    arch = "diffusion"

    def __init__(self, denoiser: nn.Module, scheduler, num_classes: int, null_label: int | None = None,
                 class_map: list[int] | None = None, vae=None, steps: int = 10, guidance: float = 1.0,
                 grad_checkpoint: bool = False, skip: float = 0.0):
        super().__init__()
        self.denoiser, self.vae, self.scheduler = denoiser, vae, scheduler
        self.num_classes, self.null_label = num_classes, null_label
        if class_map is not None and len(class_map) != num_classes:
            raise ConfigError(f"class_map has {len(class_map)} entries for {num_classes} classes")
        self.register_buffer("class_map", torch.tensor(class_map if class_map is not None else range(num_classes),
                                                       dtype=torch.long), persistent=False)
        config = scheduler.config
        if config.prediction_type not in PREDICTIONS:
            raise ConfigError(f"unknown prediction_type {config.prediction_type!r}; valid: {', '.join(PREDICTIONS)}")
        self.register_buffer("alphas_cumprod", scheduler.alphas_cumprod.clone().float(), persistent=False)
        self.latent_shape = tuple(denoiser.shape)
        if vae is None:
            self.channels, self.resolution = self.latent_shape[0], self.latent_shape[-1]
        else:
            self.channels = vae.config.out_channels
            self.resolution = self.latent_shape[-1] * 2 ** (len(vae.config.block_out_channels) - 1)
        self.grad_checkpoint, self.skip = grad_checkpoint, skip
        self.set_sampler(steps, guidance)

    def identity(self) -> dict:
        """The scheduler's configuration (noise schedule, parameterization, timestep spacing): the
        same weights under another schedule sample other images. Versions and names left out. (The
        sampler's steps, guidance and skip are the run's config keys, compared on every resumption.)"""
        return {"scheduler": {k: v for k, v in self.scheduler.config.items() if not k.startswith("_")}}

    def set_sampler(self, steps: int, guidance: float = 1.0) -> None:
        """Sampling steps (timesteps spaced as the model's scheduler config says) and guidance scale."""
        total = self.scheduler.config.num_train_timesteps
        if not isinstance(steps, int) or not 1 <= steps <= total:
            raise ConfigError(f"sampling steps must be in 1..{total} (the model's schedule has {total}), got {steps!r}")
        if guidance != 1.0 and self.null_label is None:
            raise ConfigError(f"guidance {guidance} needs a null class, and this {self.arch} model has none "
                              f"(its class embeddings are all real classes); use guidance 1.0")
        self.scheduler.set_timesteps(steps)
        self.timesteps = [int(t) for t in self.scheduler.timesteps]
        self.steps, self.guidance = steps, float(guidance)

    @property
    def latent_spec(self) -> dict:
        return {"z": self.latent_shape}

    def sample_latents(self, labels, kind="z", generator=None, truncation=1.0):
        self.check_kind(kind)
        if truncation != 1.0:
            raise ConfigError(f"{self.arch}: truncation applies to GAN w latents; a diffusion latent is plain noise")
        return randn((len(labels), *self.latent_shape), generator, self._device())

    def decode(self, latents, labels=None, kind="z"):
        self.check_kind(kind)
        if tuple(latents.shape[1:]) != self.latent_shape:
            raise ConfigError(f"{self.arch}: z must be [N, {', '.join(map(str, self.latent_shape))}], "
                              f"got {list(latents.shape)}")
        labels = self.check_labels(labels, len(latents))
        model_labels = self.class_map[labels] if labels is not None else None
        x = ddim_sample(self.denoiser, latents, model_labels, self.alphas_cumprod, self.timesteps,
                        self.scheduler.config.prediction_type, self.guidance, self.null_label,
                        self.grad_checkpoint, self.skip, float(self.scheduler.final_alpha_cumprod))
        if self.vae is not None:
            x = self.vae.decode(x / self.vae.config.scaling_factor).sample
        return x


# ---------------------------------------------------------------- loading diffusers folders

def load_diffusion(path: str | Path, class_names: list[str] | None = None, class_map: list[int] | None = None,
                   prompt: str = "a photo of a {}", steps: int = 10, guidance: float = 1.0,
                   grad_checkpoint: bool = False, skip: float = 0.0) -> DiffusionGenerator:
    """A frozen DiffusionGenerator from a diffusers pipeline folder (model_index.json) or hub id.

    Pixel UNets number their classes themselves (genprior.json beside model_index.json says
    how many and which is null); a DiT takes `class_map` (data-set class -> model class,
    e.g. ImageNette's ImageNet indices); a Stable-Diffusion folder takes `class_names`."""
    from diffusers import AutoencoderKL, DDIMScheduler

    root = local_folder(path)
    index = _read_json(root, "model_index.json")
    # never clamp x0, neither at 1 (clip_sample) nor at a percentile (dynamic thresholding): both cut
    # gradients. ddim_sample applies neither; the scheduler's config then says what is done
    scheduler = _load(DDIMScheduler, root, "scheduler", clip_sample=False, thresholding=False)
    vae = None
    if "transformer" in index:
        from diffusers import DiTTransformer2DModel

        denoiser = LatentDiT(_load(DiTTransformer2DModel, root, "transformer"))
        vae = _load(AutoencoderKL, root, "vae")
        if class_map is None:
            raise ConfigError(f"{root} is a class-conditional DiT: map the data set's classes to its "
                              f"{denoiser.num_embeds - 1} classes (class_map)")
        num_classes, null = len(class_map), denoiser.num_embeds - 1
        if max(class_map) >= null:
            raise ConfigError(f"class_map reaches class {max(class_map)}, the DiT has 0..{null - 1}")
    elif "text_encoder" in index:
        from diffusers import UNet2DConditionModel

        if not class_names:
            raise ConfigError(f"{root} is a text-conditioned model: it needs the data set's class names as prompts")
        unet = _load(UNet2DConditionModel, root, "unet")
        vae = _load(AutoencoderKL, root, "vae") if "vae" in index else None
        denoiser = PromptUNet(unet, _prompt_embeddings(root, [prompt.format(n) for n in class_names] + [""]))
        num_classes, null = len(class_names), len(class_names)
        class_map = None
    elif "unet" in index:
        from diffusers import UNet2DModel

        denoiser = PixelUNet(_load(UNet2DModel, root, "unet"))
        num_classes, null = _pixel_classes(root, denoiser.num_embeds, class_names)
        class_map = None
    else:
        raise ConfigError(f"{root}/model_index.json names no transformer or unet: not a diffusion pipeline folder")
    g = DiffusionGenerator(denoiser, scheduler, num_classes, null, class_map, vae, steps, guidance,
                           grad_checkpoint, skip)
    g.info = _read_json(root, "genprior.json", required=False).get("info", {})
    return frozen(g)


def _pixel_classes(root: Path, embeds: int, class_names: list[str] | None) -> tuple[int, int | None]:
    """A pixel UNet's (classes, null class) from its genprior.json, checked against its embeddings."""
    info = _read_json(root, "genprior.json", required=False)
    if "num_classes" not in info and "null_label" not in info:
        if class_names and embeds == len(class_names) + 1:  # likely a null class that nothing names
            raise ConfigError(f"{root}: {embeds} class embeddings for {len(class_names)} classes; if the last is the "
                              f"null class, write {root / 'genprior.json'}: "
                              f'{{"num_classes": {len(class_names)}, "null_label": {len(class_names)}}}')
        return embeds, None
    classes, null = info.get("num_classes", embeds), info.get("null_label")
    if not isinstance(classes, int) or not 0 <= classes <= embeds:
        raise ConfigError(f"{root}/genprior.json: num_classes must be an integer in 0..{embeds} "
                          f"(the UNet's class embeddings), got {classes!r}")
    if null is not None and (not isinstance(null, int) or not classes <= null < embeds):
        raise ConfigError(f"{root}/genprior.json: null_label must be null or an integer in {classes}..{embeds - 1} "
                          f"(an embedding that is not a class), got {null!r}")
    return classes, null


def local_folder(path: str | Path) -> Path:
    """A local folder, or a hub id fetched into the cache (online only: offline it is one line)."""
    p = Path(path)
    if p.is_dir():
        return p
    # owner/name, unless its first part is a local folder (runs/my_unet not written yet is a missing folder)
    looks_like_hub_id = (len(str(path).split("/")) == 2 and not str(path).startswith((".", "/", "~"))
                         and not Path(str(path).split("/")[0]).is_dir())
    if not looks_like_hub_id:
        raise ConfigError(f"diffusion model folder not found: {path}")
    if hub_offline():
        raise ConfigError(f"{path} is a hub id and HF_HUB_OFFLINE is set: download it where there is a network "
                          f"(huggingface-cli download {path} --local-dir DIR) and pass the folder instead")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(str(path)))
    except Exception as e:  # no network, no such repository, gated model
        raise ConfigError(f"{path}: no such local folder, and not fetched from the hub as a model id "
                          f"({type(e).__name__}: {one_line(e)}); pass a local diffusers folder") from None


def _read_json(root: Path, name: str, required: bool = True) -> dict:
    f = root / name
    if not f.is_file():
        if required:
            raise ConfigError(f"{root} has no {name}: not a diffusers pipeline folder")
        return {}
    try:
        doc = json.loads(f.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"{f} is not readable JSON ({type(e).__name__})") from None
    return doc if isinstance(doc, dict) else {}


def _load(cls, root: Path, subfolder: str, **overrides):
    """cls.from_pretrained(root/subfolder) offline, with a missing or broken file as one line."""
    folder = root / subfolder
    if not folder.is_dir():
        raise ConfigError(f"{root} has no {subfolder}/ folder (model_index.json lists it)")
    try:
        return cls.from_pretrained(str(folder), local_files_only=True, **overrides)
    except (OSError, ValueError, EnvironmentError) as e:
        raise ConfigError(f"{folder}: {cls.__name__} does not load ({one_line(e)})") from None


@torch.no_grad()
def _prompt_embeddings(root: Path, prompts: list[str]) -> torch.Tensor:
    from transformers import AutoTokenizer, CLIPTextModel

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(root / "tokenizer"), local_files_only=True)
        encoder = CLIPTextModel.from_pretrained(str(root / "text_encoder"), local_files_only=True).eval()
    except (OSError, ValueError) as e:
        raise ConfigError(f"{root}: the text encoder or tokenizer does not load ({one_line(e)})") from None
    tokens = tokenizer(prompts, padding="max_length", truncation=True, return_tensors="pt",
                       max_length=min(tokenizer.model_max_length, encoder.config.max_position_embeddings))
    return encoder(tokens.input_ids)[0]


def save_diffusion(unet, scheduler, path: str | Path, num_classes: int, null_label: int | None, info: dict) -> Path:
    """The project's own pixel UNet as a diffusers pipeline folder (unet/, scheduler/, model_index.json)
    plus genprior.json: how its classes are numbered and how it was made. Written to a temporary
    folder, then renamed into place."""
    import diffusers

    from genprior.files import replace_folder, staged_folder

    path = Path(path)
    with staged_folder(path) as tmp:  # a failed save leaves nothing beside the model
        unet.save_pretrained(str(tmp / "unet"))
        scheduler.save_pretrained(str(tmp / "scheduler"))
        # diffusers' DDIMPipeline loads the folder, but its sampling passes no class labels, which a
        # class-conditional UNet requires: such a model samples through load_diffusion (genprior.json)
        (tmp / "model_index.json").write_text(json.dumps(
            {"_class_name": "DDIMPipeline", "_diffusers_version": diffusers.__version__,
             "scheduler": ["diffusers", type(scheduler).__name__], "unet": ["diffusers", "UNet2DModel"]}, indent=2) + "\n")
        (tmp / "genprior.json").write_text(json.dumps({"num_classes": num_classes, "null_label": null_label,
                                                       "info": info}, indent=2, sort_keys=True) + "\n")
        return replace_folder(tmp, path)
