"""Noise schedules, the diffusion-forcing objective with clean-prefix training, samplers."""
