"""Generator zoo: train, load and sample the generators whose latents parameterize synthetic sets.

    base       the protocol (latent spec, sample_latents, decode); StyleGenerator adds w / w+ / f
    diffusion  diffusers models (pixel UNet, DiT + VAE, Stable Diffusion): z_T -> a differentiable DDIM sampler
    stylegan2  native class-conditional StyleGAN2 + discriminator
    dcgan      class-conditional DCGAN + discriminator
    foreign    gan-face-generate's DCGAN, NVlabs network pickles (opt-in)
    io         save_generator / load_generator (safetensors + JSON), GENERATORS
    train      python -m generators.train arch=... dataset=... out=...
    ema        update_ema: the weight average every training saves (GANs, diffusion models, Minimax)

Usable on its own: at import it takes only genprior's ground floor (docs/design.md, "Who imports
whom"), and never the run loop, the synsets, the objectives or the judging (genprior.run,
synsets/, objectives/, evaluate), so a generator trains and samples without the distillation side:

    at import   genprior.{data, errors, files, host, options, progress, rng, shipped}
    lazily      genprior.{export, metrics}   (inside train.py: the sample grid, the FID)

tests/generators/test_imports.py holds these two lines to the code's imports.
"""
