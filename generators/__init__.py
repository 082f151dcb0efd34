"""Generator zoo: train, load and sample the generators whose latents parameterize synthetic sets.

    base       the protocol (latent spec, sample_latents, decode); StyleGenerator adds w / w+ / f
    diffusion  diffusers models (pixel UNet, DiT + VAE, Stable Diffusion): z_T -> a differentiable DDIM sampler
    stylegan2  native class-conditional StyleGAN2 + discriminator
    dcgan      class-conditional DCGAN + discriminator
    foreign    gan-face-generate's DCGAN, NVlabs network pickles (opt-in)
    io         save_generator / load_generator (safetensors + JSON), GENERATORS
    train      python -m generators.train arch=... dataset=... out=...

Usable on its own: imports genprior.data / errors / rng only (genprior.metrics lazily, for FID).
"""
