"""Trainer, length curriculum, state carrying / reset, checkpointing and metric writers.

Modules (the loop itself is `lssvwm/train.py`, readable top to bottom):
  optimizer     AdamW + warm-up/cosine + clipping from the config's `optimizer` section
  ema           the parameter EMA (with warm-up of the decay)
  train_state   the train state pytree and the jitted, donating train step
  checkpointing orbax CheckpointManager: state + data position + run meta, clear errors
  metrics       metrics.jsonl + TensorBoard (tensorboardX) writer, progress line
  evaluation    the held-out figures of eval_final.json
  videos        sample GIFs: generated continuation beside the truth
"""
