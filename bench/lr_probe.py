"""Learning rates for the presets of sets that are not pixels, derived from the pixel presets' image lrs.

    python bench/lr_probe.py [--prior glad] [--objectives dc dm mtt] [--ipc 1]
    python bench/lr_probe.py --prior diffusion --objectives dm
    python bench/lr_probe.py --prior haba --ipc 10      # bases and hallucinators

A latent lr is only meaningful relative to how far a step moves the images. For one
distillation step of each objective, at the glad preset's initial latents:

    g_x   = dL/dimages                      (what a pixel step follows)
    g_t   = J^T g_x                          (the latent group's gradient, via push_grad)
    pixel step:   |dx| = lr_pixel |g_x|
    latent step:  |dx| ~ lr |J g_t|          (first order; J g_t by a finite difference)

so `matched_lr = lr_pixel |g_x| / |J g_t|` is the latent lr whose first SGD step moves the
images as far as the pixel preset's first step (both without momentum). The ratio
|J g_t| / |g_x| is a property of the generator around the latents (how strongly it
amplifies a latent step into pixels), so the same probe tells the lr for any objective.
Each group (latents for z/w/w+ and for diffusion's z_T; f and w for F_n; HaBa's bases and
hallucinators) is probed on its own. Writes bench/results/<prior>_lr_probe.json.
"""
from __future__ import annotations

import argparse
import time

import torch

from distill import prior_now  # bench/distill.py (the script's own folder)
from resumable import RESULTS, machine, run_parts  # bench/resumable.py

# the latent spaces probed per prior (overrides of its preset)
PROBED = {"glad": [["synset.space=w+"], ["synset.space=f", "synset.layer=1"], ["synset.space=f", "synset.layer=2"],
                   ["synset.space=w"]],
          "diffusion": [[]], "minimax": [[]],
          # named by its views: the parts measured before synset.views existed rendered one per basis
          "haba": [["synset.views=all"]]}


def probe(prior: str, objective: str, ipc: int, over: list[str]) -> dict:
    from genprior.data import cache_dir, load_split
    from genprior.context import RunContext
    from genprior.config import check, compose
    from genprior.run import build

    cfg = compose([f"{prior}={objective}", f"ipc={ipc}", *over])
    pixel_lr = float(compose([f"pixel={objective}"]).synset.optim.images.lr)
    d = cfg.dataset
    real = load_split(d.name, "train", d.root, d.resolution, space=d.space)
    plan = check(cfg)
    synset, obj = build(plan, RunContext(real, cfg.ipc, cfg.seed, plan.dataset, cache_dir=cache_dir()))
    synset.begin_step(0)  # HaBa (views=one): each basis through the hallucinator step 0 draws for it
    images = synset.render_all(cfg.chunk).requires_grad_(True)
    loss = obj(images, synset.labels, 0, list(range(obj.units())), synset.lr)
    g_x, = torch.autograd.grad(loss, images)
    synset.push_grad(g_x, cfg.chunk)
    out = {"loss": float(loss.detach()), "pixel_lr": pixel_lr, "grad_images_norm": float(g_x.norm()), "groups": {}}
    for name, params in synset.groups().items():
        g = [p.grad.clone() for p in params]
        g_norm = torch.sqrt(sum((x ** 2).sum() for x in g))
        p_norm = torch.sqrt(sum((p.detach() ** 2).sum() for p in params))
        eps = 1e-3 * float(p_norm / g_norm)  # a step of 0.1 % of the group's norm: linear regime
        saved = [p.detach().clone() for p in params]
        with torch.no_grad():
            for p, gp in zip(params, g):
                p.sub_(eps * gp)
            moved = synset.render_all(cfg.chunk)
            for p, s in zip(params, saved):
                p.copy_(s)
        jg = float((moved - images.detach()).norm()) / eps  # |J g_t|
        out["groups"][name] = {"grad_norm": float(g_norm), "param_norm": float(p_norm),
                               "image_change_per_unit_lr": jg,
                               "matched_lr": pixel_lr * float(g_x.norm()) / jg,
                               "preset_lr": float(cfg.synset.optim[name].lr)}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prior", default="glad", choices=sorted(PROBED))
    p.add_argument("--objectives", nargs="+", default=["dm", "dc", "mtt"])
    p.add_argument("--ipc", type=int, default=1)
    a = p.parse_args()
    torch.manual_seed(0)

    def name(o, over):  # glad's keys as before the script served other priors: dm_ipc1_w+, dm_ipc1_f1
        return f"{o}_ipc{a.ipc}_" + "".join(x.split("=")[1] for x in over) if over else f"{o}_ipc{a.ipc}"
    parts = [(name(o, over), lambda o=o, over=over: probe(a.prior, o, a.ipc, over))
             for o in a.objectives for over in PROBED[a.prior]]

    def show(figures):
        return ", ".join(f"{k}: matched lr {v['matched_lr']:.3g} (preset {v['preset_lr']:.3g})"
                         for k, v in figures["groups"].items())
    t0 = time.time()
    from genprior.config import compose

    # the figures are the generator's: a retrained one measures again (bench/resumable.py run_parts)
    key = prior_now(compose([f"{a.prior}=dm"]))
    run_parts(parts, RESULTS / f"{a.prior}_lr_probe.json", {"machine": machine()}, show, key=key)
    print(f"{time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
