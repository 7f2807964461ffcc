"""Trainer, length curriculum, state carrying / reset, checkpointing and metric writers."""
