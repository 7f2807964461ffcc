"""Neural-network layers (Flax NNX): Mamba-2 mixer, block-wise scan, attention, DiT blocks."""
