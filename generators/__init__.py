"""Generator zoo: train, load and sample the generators whose latents parameterize synthetic sets."""
