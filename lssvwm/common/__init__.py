"""What training and evaluation share, so that neither imports the other.

Modules (none imports another part of lssvwm, except image_metrics -> frames):
  frames         pixel ranges: uint8 [0, 255] <-> the model's [-1, 1] <-> [0, 1]
  image_metrics  PSNR and SSIM per frame (JAX; SSIM checked against scikit-image)
  video          generated-beside-truth movies, written as GIF or mp4
  progress       the rate / ETA of long jobs and their log lines; format_duration
  checkpointing  orbax checkpoints of a run (train state, data position, meta) and the one
                 comparison of a checkpoint's meta with a config

Nothing is imported here: `lssvwm.models` reads `frames` without pulling in orbax.
"""
