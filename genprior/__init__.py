"""genprior: generative-prior dataset distillation."""
