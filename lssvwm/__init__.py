"""lssvwm: long-context state-space video world models in JAX.

Shape suffixes: capitals after a name spell its axes, `frames_BTHWC` = [batch, frames, height,
width, channels]. The one glossary:
  B     batch (windows, streams); 1 a broadcast axis; 3 a 3-vector (xyz, pose), 33 / 44 matrices
  T     frames (time); U frames of one generation unit; F new frames written into a cache
  H W   height and width in pixels (`frames_BTHWC`); lower-case h w the same in tokens, the
        patch grid (`x_BThwD`); S tokens of one frame, h * w (`x_BTSD`; n in spatial memory)
  C     channels: of a frame (3 RGB, 4 RGB-D) or of a layer (Mamba's conv, `x_BLC`)
  D     model width (features per token); P patch features in `embed` (`patches_BTHWP`)
  L     length of a scanned sequence (`u_BLD`); K conv taps (`conv_BKC`) or filter taps
  E     entries of the spatial memory (`feature_BED`); Mamba's inner width H * P (`z_BLE`);
        in evaluation, episodes (`distance_EM`: M generated frames, `sums_EK`: K bins)
SSM and attention heads (lssvwm/ssm, nn/mamba2*, nn/attention*) reuse letters:
  H     heads, not height (`x_BLHP`); P head dim; G head groups sharing B and C, R = H / G
  N     SSM state size (`state_BGNRP`); J chunk, Q target and S source token in a chunk
  B, C  as array *names* are the SSM's input and read-out matrices (`C_BJQGN`), not suffixes
Arrays without a suffix say their shape in a comment or docstring (`[b, t, H, W, C]`).
"""

__version__ = "0.1.0"
