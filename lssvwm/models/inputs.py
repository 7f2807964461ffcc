"""What a world model reads of an episode: the one adapter from dataset fields to model inputs.

    fields  = episode_fields(model_config)            # the dataset fields to read
    frames  = model_frames(batch, model_config)       # float32 [..., T, H, W, C] in [-1, 1]
    actions = model_actions(batch, model_config)      # what `WorldModel` takes as `actions`
    rgb     = rgb_of(frames_or_uint8)                 # the channels image metrics look at

Most models see RGB frames and are conditioned on one field (`actions`, or `position` for the
pose modes). The `spatial_memory` mixer also needs geometry and generates depth:

  * its frames are RGB-D (`channels=4`): the fourth channel is the disparity
    `depth_near / depth` mapped to [-1, 1] (sky, depth = +inf, is -1). Disparity keeps the
    near field, where depth matters for occlusion, finely resolved and sends +inf to a finite
    value. The model predicts it like any channel, so a rollout writes generated frames into
    its memory with the depth it predicted itself, no depth oracle needed;
  * its actions carry the camera: the conditioning field (as float, [..., T, A]) followed by
    CAMERA_FEATURES = 16 numbers per frame (the top three rows of camera_to_world, then
    fx, fy, cx, cy). Packing the camera into the per-frame action array lets every caller that
    slices, batches or shuffles actions along time (sampler, streaming, evaluation tasks) handle
    the spatial model without knowing about it; the model splits it back (`split_camera`).

Functions take numpy or jax arrays (they run on the host and inside jitted steps alike).
"""

from __future__ import annotations

from collections.abc import Mapping

import jax.numpy as jnp
import numpy as np

from lssvwm.common.frames import uint8_to_model_range
from lssvwm.nn.embed import ACTION_FIELDS

CAMERA_FEATURES = 16  # 3x4 camera-to-world rows + (fx, fy, cx, cy)
GEOMETRY_FIELDS = ("depth", "camera_to_world", "intrinsics")
RGB = 3


def _xp(array):
    return np if isinstance(array, np.ndarray) else jnp


def needs_geometry(model_config) -> bool:
    """Whether the model reads depth and camera poses (the spatial-memory mixer)."""
    return model_config.mixer == "spatial_memory"


def episode_fields(model_config) -> tuple[str, ...]:
    """The dataset fields a model's inputs are made of (frames first)."""
    fields = ("frames", ACTION_FIELDS[model_config.action_mode])
    if needs_geometry(model_config):
        fields += GEOMETRY_FIELDS
    return tuple(dict.fromkeys(fields))


def check_fields_present(model_config, present, where: str) -> None:
    """A one-line error naming the first field the model needs that `present` lacks."""
    for name in episode_fields(model_config):
        if name not in present:
            raise ValueError(
                f"{where} has no {name!r} field, which the {model_config.mixer} model "
                f"({model_config.action_mode} conditioning) needs; it stores {sorted(present)}"
            )


# ---- frames ---------------------------------------------------------------------------------


def encode_depth(depth, depth_near: float):
    """Depth (camera z, metres; +inf = sky) -> the depth channel in [-1, 1] (disparity)."""
    xp = _xp(depth)
    depth = xp.asarray(depth, xp.float32)
    disparity = xp.where(depth > 0, depth_near / xp.maximum(depth, 1e-12), 0.0)
    return xp.clip(disparity, 0.0, 1.0) * 2.0 - 1.0


# Disparities below this decode to +inf (sky): a predicted channel never reaches exactly -1.
MIN_DISPARITY = 1e-3


def decode_depth(channel, depth_near: float):
    """Inverse of `encode_depth`: [-1, 1] -> depth in metres, +inf below MIN_DISPARITY."""
    xp = _xp(channel)
    disparity = (xp.asarray(channel, xp.float32) + 1.0) * 0.5
    return xp.where(
        disparity > MIN_DISPARITY, depth_near / xp.maximum(disparity, MIN_DISPARITY), xp.inf
    )


def model_frames(batch: Mapping, model_config):
    """float32 [..., T, H, W, C] in [-1, 1]: RGB, plus the depth channel for RGB-D models."""
    rgb = uint8_to_model_range(batch["frames"])
    if model_config.channels == RGB:
        return rgb
    if model_config.channels != RGB + 1 or "depth" not in batch:
        raise ValueError(
            f"a {model_config.channels}-channel model needs RGB frames and a 'depth' field "
            f"(got fields {sorted(batch)})"
        )
    xp = _xp(rgb)
    depth = encode_depth(batch["depth"], model_config.depth_near)
    return xp.concatenate([rgb, depth[..., None]], axis=-1)


def rgb_of(frames):
    """The RGB channels of model frames or uint8 frames (image metrics and videos)."""
    return frames[..., :RGB]


# ---- actions --------------------------------------------------------------------------------


def pack_camera(camera_to_world, intrinsics):
    """[..., T, 4, 4] poses and [..., 3, 3] (per episode) or [..., T, 3, 3] intrinsics ->
    [..., T, 16] camera features."""
    xp = _xp(camera_to_world)
    camera_to_world = xp.asarray(camera_to_world, xp.float32)
    intrinsics = xp.asarray(intrinsics, xp.float32)
    if intrinsics.ndim == camera_to_world.ndim - 1:  # one per episode: broadcast over T
        intrinsics = xp.broadcast_to(
            intrinsics[..., None, :, :], (*camera_to_world.shape[:-2], 3, 3)
        )
    rows = camera_to_world[..., :3, :].reshape(*camera_to_world.shape[:-2], 12)
    focal_centre = xp.stack(
        [
            intrinsics[..., 0, 0],
            intrinsics[..., 1, 1],
            intrinsics[..., 0, 2],
            intrinsics[..., 1, 2],
        ],
        axis=-1,
    )
    return xp.concatenate([rows, focal_centre], axis=-1)


def split_camera(actions):
    """Inverse of the packing in `model_actions` for jax arrays: (conditioning [..., T, A],
    camera_to_world [..., T, 4, 4], intrinsics [..., T, 3, 3])."""
    conditioning, camera = actions[..., :-CAMERA_FEATURES], actions[..., -CAMERA_FEATURES:]
    lead = camera.shape[:-1]
    bottom = jnp.broadcast_to(jnp.asarray([0.0, 0.0, 0.0, 1.0], camera.dtype), (*lead, 1, 4))
    camera_to_world = jnp.concatenate([camera[..., :12].reshape(*lead, 3, 4), bottom], axis=-2)
    fx, fy, cx, cy = (camera[..., 12 + i] for i in range(4))
    zero, one = jnp.zeros_like(fx), jnp.ones_like(fx)
    intrinsics = jnp.stack(
        [
            jnp.stack([fx, zero, cx], -1),
            jnp.stack([zero, fy, cy], -1),
            jnp.stack([zero, zero, one], -1),
        ],
        axis=-2,
    )
    return conditioning, camera_to_world, intrinsics


def model_actions(batch: Mapping, model_config):
    """What the model takes as `actions`: the conditioning field, with the camera packed after it
    (as float) for models that need geometry (module docstring)."""
    conditioning = batch[ACTION_FIELDS[model_config.action_mode]]
    if not needs_geometry(model_config):
        return conditioning
    xp = _xp(batch["camera_to_world"])
    conditioning = xp.asarray(conditioning).astype(xp.float32)
    if model_config.action_mode == "discrete":
        conditioning = conditioning[..., None]
    camera = pack_camera(batch["camera_to_world"], batch["intrinsics"])
    return xp.concatenate([conditioning, camera], axis=-1)


def unpack_conditioning(conditioning, model_config):
    """The conditioning part of split actions in the dtype and shape the embedding takes."""
    if model_config.action_mode == "discrete":
        return conditioning[..., 0].astype(jnp.int32)
    return conditioning
