"""Trainer, length curriculum, state carrying / reset and the metric writer.

Modules (the loop itself is `lssvwm/train.py`, readable top to bottom; checkpoints, the progress
line, PSNR and GIF writing are shared with evaluation in `lssvwm.common`):
  optimizer       AdamW + warm-up/cosine + clipping from the config's `optimizer` section
  ema             the parameter EMA (with warm-up of the decay)
  train_state     the train state pytree and the jitted, donating train step
  state_carrying  TBPTT state carrying and the initial-state policies in the train step
  state_policies  reset / initial-state policies of state carrying
  curriculum      window length and batch size by step
  metrics         metrics.jsonl + TensorBoard (tensorboardX) writer
  evaluation      the held-out figures of eval_final.json
  videos          sample GIFs: generated continuation beside the truth
"""
