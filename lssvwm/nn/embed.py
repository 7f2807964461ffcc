"""Embeddings of the world model: patches with spatial positions, and per-frame conditioning.

  PatchEmbed          frames [b, t, H, W, C] -> tokens [b, t, hp, wp, d] + fixed 2-D sin-cos
                      position embedding of the token's place in the frame. There is no
                      frame-index embedding: time enters only through the causal mixers (SSM
                      order, RoPE relative inside the attention window), so rollouts can run past
                      the training length.
  Unpatchify          tokens -> [b, t, H, W, C_out] through a final AdaLN and a zero-initialised
                      projection (DiT's final layer).
  FrameConditioning   per-frame noise level [b, t] and action [b, t] / pose [b, t, 3] ->
                      conditioning vector [b, t, d] (action embedding added to the noise-level
                      embedding). Every frame keeps its own vector: a per-clip vector would let
                      one frame's noise level leak into the others.

Action modes:
  discrete        actions int [b, t]: a learned embedding of actions[t] (the action that led to
                  frame t).
  pose            poses [b, t, 3] = (x, y, heading psi): features (x / s, y / s, cos psi, sin psi)
                  with s = pose_scale (the maze size), through an MLP. Absolute, so no path
                  integration is needed to revisit a place. With `pose_frequencies` = n > 0,
                  Fourier features follow: sin/cos(2^j pi x / s), sin/cos(2^j pi y / s) and
                  sin/cos(2^(j+1) psi) for j < n. Why: retrieving a view by its pose asks
                  attention for a sharp pose-similarity kernel; a dot product of these features
                  is one (a sum of cosines of the pose difference), while an MLP on the four raw
                  features must first build high frequencies itself, which small networks learn
                  slowly (the spectral bias of NeRF's positional-encoding argument).
  relative_pose   the motion from frame t-1 to t in frame t-1's heading frame:
                  (dx', dy') / relative_pose_scale, cos dpsi, sin dpsi, through an MLP. The first
                  frame of a call uses the previous pose handed in (from the streaming cache) or,
                  without one, no motion.
  pose_and_motion both: the absolute features (where the frame was taken, for revisits) next to
                  the relative ones (how the camera just moved, which decides the next frame's
                  content). With absolute poses alone a small model must difference consecutive
                  frames' poses itself to see the motion, and measured it hardly does: maze3d
                  LSSVWM after 2,000 steps, validation loss with true vs shuffled poses 0.0750 vs
                  0.0793 (`pose`) against 0.0653 vs 0.1027 (`pose_and_motion`).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lssvwm.nn.partitioning import constrain, logical

ACTION_MODES = ("discrete", "pose", "relative_pose", "pose_and_motion")
# Modes whose features need the previous frame's pose (carried in the streaming cache).
MOTION_MODES = ("relative_pose", "pose_and_motion")
# The episode field each mode conditions on (training and evaluation read the same).
ACTION_FIELDS = {
    "discrete": "actions",
    "pose": "position",
    "relative_pose": "position",
    "pose_and_motion": "position",
}
# Pose-feature width of each pose mode without Fourier features (`pose_feature_count` with them).
POSE_FEATURES = {"pose": 4, "relative_pose": 4, "pose_and_motion": 8}
FOURIER_PER_FREQUENCY = 6  # sin and cos of x, y and the heading harmonic
TOKEN_NAMES = ("batch", "time", "height", "width", "embed")


def dense(in_features, out_features, names, *, rngs, zero=False, dtype=None, param_dtype=None):
    """nnx.Linear with logical axis names (`names` = (in, out)) and optional zero init."""
    kernel_init = nnx.initializers.zeros_init() if zero else nnx.initializers.lecun_normal()
    return nnx.Linear(
        in_features,
        out_features,
        kernel_init=logical(kernel_init, names),
        bias_init=logical(nnx.initializers.zeros_init(), names[1:]),
        dtype=dtype,
        param_dtype=param_dtype or jnp.float32,
        rngs=rngs,
    )


@functools.lru_cache(maxsize=16)
def sincos_2d(grid_h: int, grid_w: int, dim: int) -> np.ndarray:
    """Fixed 2-D sin-cos position embedding [grid_h, grid_w, dim] (half rows, half columns)."""
    if dim % 4:
        raise ValueError(f"2-D sin-cos position embedding needs width % 4 == 0, got {dim}")
    quarter = dim // 4
    omega = 1.0 / 10_000 ** (np.arange(quarter, dtype=np.float64) / quarter)

    def one_axis(n):
        angles = np.arange(n, dtype=np.float64)[:, None] * omega[None]
        return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)  # [n, dim / 2]

    rows = np.broadcast_to(one_axis(grid_h)[:, None], (grid_h, grid_w, dim // 2))
    cols = np.broadcast_to(one_axis(grid_w)[None, :], (grid_h, grid_w, dim // 2))
    table = np.concatenate([rows, cols], axis=-1).astype(np.float32)
    table.setflags(write=False)  # shared by the cache
    return table


def sinusoidal_features(values: jax.Array, dim: int, max_period: float = 10_000.0) -> jax.Array:
    """[...] scalars -> [..., dim] sin/cos features at geometric frequencies (DiT timesteps)."""
    if dim % 2:
        raise ValueError(f"sinusoidal features need an even dim, got {dim}")
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
    angles = values.astype(jnp.float32)[..., None] * freqs
    return jnp.concatenate([jnp.cos(angles), jnp.sin(angles)], axis=-1)


def patchify(frames_BTHWC: jax.Array, patch_size: int) -> jax.Array:
    """[b, t, H, W, C] -> [b, t, H/p, W/p, p * p * C] (row-major pixels inside a patch)."""
    b, t, h, w, c = frames_BTHWC.shape
    p = patch_size
    patches = frames_BTHWC.reshape(b, t, h // p, p, w // p, p, c).transpose(0, 1, 2, 4, 3, 5, 6)
    return patches.reshape(b, t, h // p, w // p, p * p * c)


def unpatchify(patches_BTHWP: jax.Array, patch_size: int, channels: int) -> jax.Array:
    """Inverse of `patchify`: [b, t, hp, wp, p * p * C] -> [b, t, hp * p, wp * p, C]."""
    b, t, hp, wp, _ = patches_BTHWP.shape
    p = patch_size
    frames = patches_BTHWP.reshape(b, t, hp, wp, p, p, channels).transpose(0, 1, 2, 4, 3, 5, 6)
    return frames.reshape(b, t, hp * p, wp * p, channels)


class PatchEmbed(nnx.Module):
    """[b, t, H, W, C] frames -> [b, t, H/p, W/p, d] tokens with spatial position embeddings."""

    def __init__(
        self,
        image_hw: tuple[int, int],
        channels: int,
        patch_size: int,
        width: int,
        *,
        rngs: nnx.Rngs,
        dtype=None,
        param_dtype=jnp.float32,
    ):
        h, w = image_hw
        if h % patch_size or w % patch_size:
            raise ValueError(f"patch size {patch_size} does not divide the image size {image_hw}")
        self.image_hw = (h, w)
        self.channels = channels
        self.patch_size = patch_size
        self.grid_hw = (h // patch_size, w // patch_size)
        self.dtype = dtype
        self.proj = dense(
            patch_size * patch_size * channels,
            width,
            ("patch", "embed"),
            rngs=rngs,
            dtype=dtype,
            param_dtype=param_dtype,
        )
        self.width = width

    def __call__(self, frames_BTHWC: jax.Array) -> jax.Array:
        expected = (*self.image_hw, self.channels)
        if frames_BTHWC.ndim != 5 or tuple(frames_BTHWC.shape[2:]) != expected:
            raise ValueError(
                f"frames must be [b, t, {', '.join(map(str, expected))}], got {frames_BTHWC.shape}"
            )
        tokens = self.features(frames_BTHWC)
        # A fixed function of the grid (not a parameter): a compile-time constant under jit.
        pos_embed = sincos_2d(*self.grid_hw, self.width)
        tokens = tokens + jnp.asarray(pos_embed, tokens.dtype)
        return constrain(tokens, TOKEN_NAMES)

    def features(self, frames_BTHWC: jax.Array) -> jax.Array:
        """The patches' linear embedding [b, t, hp, wp, d] without the position embedding (what a
        spatial memory stores: a token's content, not the grid cell it was seen in)."""
        return self.proj(patchify(frames_BTHWC, self.patch_size))


def layer_norm(x: jax.Array, eps: float = 1e-6) -> jax.Array:
    """LayerNorm without learned affine (AdaLN supplies scale and shift), in float32."""
    x32 = x.astype(jnp.float32)
    mean = jnp.mean(x32, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x32 - mean), axis=-1, keepdims=True)
    return ((x32 - mean) * jax.lax.rsqrt(var + eps)).astype(x.dtype)


def per_frame(v_BTD: jax.Array) -> jax.Array:
    """[b, t, d] -> [b, t, 1, 1, d]: broadcast a frame's vector over its tokens."""
    return v_BTD[:, :, None, None, :]


class Unpatchify(nnx.Module):
    """Final AdaLN + zero-initialised projection: [b, t, hp, wp, d] -> [b, t, H, W, C_out].

    The projection computes in float32 whatever `dtype` is (the output head, as MaxText's
    `logits_dot_in_fp32`): the prediction, and so the diffusion loss, is not rounded to the
    compute dtype. In float32 it is the same computation as before (bitwise).
    """

    def __init__(
        self,
        width: int,
        patch_size: int,
        out_channels: int,
        *,
        rngs: nnx.Rngs,
        dtype=None,
        param_dtype=jnp.float32,
    ):
        self.patch_size = patch_size
        self.out_channels = out_channels
        self.modulation = dense(
            width,
            2 * width,
            ("cond", "embed"),
            rngs=rngs,
            zero=True,
            dtype=dtype,
            param_dtype=param_dtype,
        )
        self.proj = dense(
            width,
            patch_size * patch_size * out_channels,
            ("embed", "patch"),
            rngs=rngs,
            zero=True,
            dtype=jnp.float32,
            param_dtype=param_dtype,
        )

    def __call__(self, tokens_BTHWD: jax.Array, cond_BTD: jax.Array) -> jax.Array:
        shift, scale = jnp.split(self.modulation(jax.nn.silu(cond_BTD)), 2, axis=-1)
        x = layer_norm(tokens_BTHWD) * (1 + per_frame(scale)) + per_frame(shift)
        return unpatchify(self.proj(x), self.patch_size, self.out_channels)


def pose_feature_count(mode: str, frequencies: int = 0) -> int:
    """Width of `pose_mode_features` for `mode` with `frequencies` Fourier octaves."""
    absolute = mode in ("pose", "pose_and_motion")
    return POSE_FEATURES[mode] + (FOURIER_PER_FREQUENCY * frequencies if absolute else 0)


def pose_features(poses_BT3: jax.Array, pose_scale: float, frequencies: int = 0) -> jax.Array:
    """Absolute pose (x, y, psi) -> (x / s, y / s, cos psi, sin psi) [+ Fourier features].

    With `frequencies` = n: then, for j < n, sin and cos of 2^j pi x / s, of 2^j pi y / s and
    of 2^(j+1) psi (module docstring).
    """
    xy = poses_BT3[..., :2] / pose_scale
    psi = poses_BT3[..., 2:3]
    parts = [xy, jnp.cos(psi), jnp.sin(psi)]
    for j in range(frequencies):
        angles = jnp.concatenate([(2.0**j * jnp.pi) * xy, 2.0 ** (j + 1) * psi], axis=-1)
        parts += [jnp.sin(angles), jnp.cos(angles)]
    return jnp.concatenate(parts, axis=-1)


def relative_pose_features(
    poses_BT3: jax.Array,
    previous_B3: jax.Array | None,
    has_previous_B: jax.Array | None,
    scale: float,
) -> jax.Array:
    """Motion t-1 -> t in frame t-1's heading frame: (dx', dy') / scale, cos dpsi, sin dpsi.

    The first frame moves from `previous_B3` where `has_previous_B`, and does not move otherwise.
    """
    poses = poses_BT3.astype(jnp.float32)
    first = poses[:, :1]
    if previous_B3 is not None:
        prev_first = previous_B3.astype(jnp.float32)[:, None]
        first = jnp.where(has_previous_B[:, None, None], prev_first, first)
    before = jnp.concatenate([first, poses[:, :-1]], axis=1)
    delta = poses - before
    cos_prev, sin_prev = jnp.cos(before[..., 2]), jnp.sin(before[..., 2])
    forward = cos_prev * delta[..., 0] + sin_prev * delta[..., 1]
    left = -sin_prev * delta[..., 0] + cos_prev * delta[..., 1]
    turn = delta[..., 2]
    return jnp.stack([forward / scale, left / scale, jnp.cos(turn), jnp.sin(turn)], axis=-1)


def pose_mode_features(
    mode: str,
    poses_BT3: jax.Array,
    previous_B3: jax.Array | None,
    has_previous_B: jax.Array | None,
    *,
    pose_scale: float,
    relative_pose_scale: float,
    pose_frequencies: int = 0,
) -> jax.Array:
    """The features [b, t, pose_feature_count(mode, pose_frequencies)] of a pose action mode
    (module docstring)."""
    parts = []
    if mode in ("pose", "pose_and_motion"):
        parts.append(pose_features(poses_BT3.astype(jnp.float32), pose_scale, pose_frequencies))
    if mode in MOTION_MODES:
        parts.append(
            relative_pose_features(poses_BT3, previous_B3, has_previous_B, relative_pose_scale)
        )
    if not parts:
        raise ValueError(f"{mode!r} is not a pose action mode; pose modes: {list(POSE_FEATURES)}")
    return jnp.concatenate(parts, axis=-1)


class FrameConditioning(nnx.Module):
    """Per-frame conditioning [b, t, d] = noise-level embedding + action embedding.

    Args:
      width: d.
      action_mode: one of ACTION_MODES (module docstring).
      num_actions: discrete vocabulary size (discrete mode).
      pose_scale: metres that map to 1 in absolute pose features (the maze size).
      relative_pose_scale: metres per unit in relative pose features (a typical step).
      pose_frequencies: Fourier octaves of the absolute pose (0: the raw features only).
      frequency_dim: sinusoidal features of the noise level.
      noise_level_scale: multiplies the noise level before the features (levels in [0, 1] ->
        [0, 1000], the range DiT's timestep features are made for).
    """

    def __init__(
        self,
        width: int,
        *,
        action_mode: str,
        num_actions: int = 0,
        pose_scale: float = 1.0,
        relative_pose_scale: float = 1.0,
        pose_frequencies: int = 0,
        frequency_dim: int = 256,
        noise_level_scale: float = 1000.0,
        rngs: nnx.Rngs,
        param_dtype=jnp.float32,
    ):
        if action_mode not in ACTION_MODES:
            raise ValueError(f"action_mode must be one of {ACTION_MODES}, got {action_mode!r}")
        if action_mode == "discrete" and num_actions < 1:
            raise ValueError(f"discrete actions need num_actions >= 1, got {num_actions}")
        self.action_mode = action_mode
        self.num_actions = num_actions
        self.pose_scale = pose_scale
        self.relative_pose_scale = relative_pose_scale
        self.pose_frequencies = pose_frequencies
        self.frequency_dim = frequency_dim
        self.noise_level_scale = noise_level_scale
        kw = dict(rngs=rngs, param_dtype=param_dtype)
        self.noise_in = dense(frequency_dim, width, ("cond", "embed"), **kw)
        self.noise_out = dense(width, width, ("embed", "embed"), **kw)
        if action_mode == "discrete":
            self.action_table = nnx.Embed(
                num_actions,
                width,
                embedding_init=logical(nnx.initializers.normal(0.02), ("vocab", "embed")),
                param_dtype=param_dtype,
                rngs=rngs,
            )
        else:
            features = pose_feature_count(action_mode, pose_frequencies)
            self.action_in = dense(features, width, ("cond", "embed"), **kw)
            self.action_out = dense(width, width, ("embed", "embed"), **kw)

    def check_actions(self, actions, batch_frames: tuple[int, int]) -> None:
        """Raises a clear error when `actions` do not fit the mode and [b, t]."""
        b, t = batch_frames
        if self.action_mode == "discrete":
            if actions.shape != (b, t) or not jnp.issubdtype(actions.dtype, jnp.integer):
                raise ValueError(
                    f"discrete actions must be int [b, t] = {(b, t)}, got {actions.dtype} "
                    f"{actions.shape}"
                )
        elif actions.shape != (b, t, 3):
            raise ValueError(
                f"{self.action_mode} actions must be poses (x, y, heading) [b, t, 3] = "
                f"{(b, t, 3)}, got {actions.shape}"
            )

    def __call__(
        self,
        noise_level_BT: jax.Array,
        actions,
        *,
        previous_pose_B3: jax.Array | None = None,
        has_previous_B: jax.Array | None = None,
    ) -> jax.Array:
        """Returns cond [b, t, d]. The previous pose is used by the MOTION_MODES only."""
        if noise_level_BT.ndim != 2:
            raise ValueError(f"noise level must be per frame [b, t], got {noise_level_BT.shape}")
        self.check_actions(actions, noise_level_BT.shape)
        features = sinusoidal_features(noise_level_BT * self.noise_level_scale, self.frequency_dim)
        noise = self.noise_out(jax.nn.silu(self.noise_in(features)))
        if self.action_mode == "discrete":
            action = self.action_table(actions)
        else:
            pose = pose_mode_features(
                self.action_mode,
                actions,
                previous_pose_B3,
                has_previous_B,
                pose_scale=self.pose_scale,
                relative_pose_scale=self.relative_pose_scale,
                pose_frequencies=self.pose_frequencies,
            )
            action = self.action_out(jax.nn.silu(self.action_in(pose)))
        return constrain(noise + action.astype(noise.dtype), ("batch", "time", "embed"))
