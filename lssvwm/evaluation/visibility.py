"""Frames since a view was last seen (ARCHITECTURE.md), from depth and camera poses.

    coverage = coverage_matrix(target_depth, target_c2w, context_depth, context_c2w, K)  [M, N]
    distance = frames_since_seen(target_depth, target_c2w, context_depth, context_c2w, K,
                                 target_frame=N + arange(M))                            [M]

A context frame i *covers* a target view when at least half of the target's pixels (those with
a finite depth) reproject into frame i and are visible there: unprojected with the target's
depth and pose (OpenCV axes, depth = camera z, pixel centres at +0.5), projected into frame i,
in front of its camera, inside its image, and not hidden -- the depth frame i stores at that
pixel agrees with the point's camera z within `relative_tolerance * z + absolute_tolerance`.
A generated frame at position t of the stream (context frames are 0 .. N-1) has distance
t - i*, where i* is the latest covering context frame, and `NEVER_SEEN` (-1) when no context
frame covers it.

The search runs backwards over blocks of context frames and stops once every target has its
latest covering frame, so the usual case (recently seen views) reads only the last blocks.
`coverage_reference` is the plain per-pixel loop the tests compare against.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

NEVER_SEEN = -1
COVERAGE_THRESHOLD = 0.5
RELATIVE_TOLERANCE = 0.05
ABSOLUTE_TOLERANCE = 0.02
_NEAR = 1e-4  # camera z below this is behind (or on) the camera


def unproject(depth_HW, camera_to_world_44, intrinsics_33):
    """World points [H, W, 3] of every pixel centre and whether its depth is finite [H, W]."""
    height, width = depth_HW.shape[-2:]
    u = jnp.arange(width, dtype=jnp.float32) + 0.5
    v = jnp.arange(height, dtype=jnp.float32) + 0.5
    xc = (u[None, :] - intrinsics_33[0, 2]) / intrinsics_33[0, 0]
    yc = (v[:, None] - intrinsics_33[1, 2]) / intrinsics_33[1, 1]
    finite = jnp.isfinite(depth_HW)
    z = jnp.where(finite, depth_HW, 0.0)  # masked before use: inf would poison the products
    camera = jnp.stack([z * xc, z * yc, z], axis=-1)
    world = camera @ camera_to_world_44[:3, :3].T + camera_to_world_44[:3, 3]
    return world, finite


def visible_fraction(
    points_P3,
    valid_P,
    depth_HW,
    camera_to_world_44,
    intrinsics_33,
    relative_tolerance: float = RELATIVE_TOLERANCE,
    absolute_tolerance: float = ABSOLUTE_TOLERANCE,
) -> jax.Array:
    """Fraction of the valid points [P, 3] that a camera (pose, intrinsics, its depth [H, W])
    sees: in front, inside the image, and at the depth it stores there (within tolerance)."""
    height, width = depth_HW.shape
    rotation, origin = camera_to_world_44[:3, :3], camera_to_world_44[:3, 3]
    camera = (points_P3 - origin) @ rotation  # world -> camera: R^T (p - o)
    z = camera[:, 2]
    in_front = z > _NEAR
    safe_z = jnp.where(in_front, z, 1.0)
    u = intrinsics_33[0, 0] * camera[:, 0] / safe_z + intrinsics_33[0, 2]
    v = intrinsics_33[1, 1] * camera[:, 1] / safe_z + intrinsics_33[1, 2]
    column, row = jnp.floor(u), jnp.floor(v)
    inside = in_front & (column >= 0) & (column < width) & (row >= 0) & (row < height)
    stored = depth_HW[
        jnp.clip(row, 0, height - 1).astype(jnp.int32),
        jnp.clip(column, 0, width - 1).astype(jnp.int32),
    ]
    agrees = jnp.abs(stored - z) <= relative_tolerance * z + absolute_tolerance
    seen = valid_P & inside & jnp.isfinite(stored) & agrees
    return jnp.sum(seen) / jnp.maximum(jnp.sum(valid_P), 1)


@functools.partial(jax.jit, static_argnames=("relative_tolerance", "absolute_tolerance"))
def coverage_matrix(
    target_depth_MHW,
    target_c2w_M44,
    context_depth_NHW,
    context_c2w_N44,
    intrinsics_33,
    *,
    relative_tolerance: float = RELATIVE_TOLERANCE,
    absolute_tolerance: float = ABSOLUTE_TOLERANCE,
) -> jax.Array:
    """[M, N]: the fraction of target view m's pixels that context frame n sees."""
    height, width = target_depth_MHW.shape[1:]
    points, valid = jax.vmap(unproject, in_axes=(0, 0, None))(
        target_depth_MHW, target_c2w_M44, intrinsics_33
    )
    points = points.reshape(-1, height * width, 3)
    valid = valid.reshape(-1, height * width)
    per_context = jax.vmap(  # over context frames (inner) and target views (outer)
        visible_fraction, in_axes=(None, None, 0, 0, None, None, None)
    )
    per_pair = jax.vmap(per_context, in_axes=(0, 0, None, None, None, None, None))
    return per_pair(
        points,
        valid,
        context_depth_NHW,
        context_c2w_N44,
        intrinsics_33,
        relative_tolerance,
        absolute_tolerance,
    )


def latest_covering_frame(
    target_depth_MHW,
    target_c2w_M44,
    context_depth_NHW,
    context_c2w_N44,
    intrinsics_33,
    *,
    threshold: float = COVERAGE_THRESHOLD,
    block: int = 16,
) -> np.ndarray:
    """[M] index of the latest context frame covering each target view (-1: none)."""
    target_depth_MHW = np.asarray(target_depth_MHW, np.float32)
    context_depth_NHW = np.asarray(context_depth_NHW, np.float32)
    _check_geometry(target_depth_MHW, target_c2w_M44, context_depth_NHW, context_c2w_N44)
    num_targets, num_context = target_depth_MHW.shape[0], context_depth_NHW.shape[0]
    target_c2w_M44 = np.asarray(target_c2w_M44, np.float32)
    context_c2w_N44 = np.asarray(context_c2w_N44, np.float32)
    latest = np.full(num_targets, -1, np.int64)
    intrinsics = jnp.asarray(intrinsics_33, jnp.float32)
    for end in range(num_context, 0, -block):
        todo = np.flatnonzero(latest < 0)
        if todo.size == 0:
            break
        # Only the targets still unresolved, padded (with repeats) to a power of two, and a
        # fixed block of context frames (the first block padded with copies of frame `start`,
        # whose columns are ignored): few shapes, so few compiles.
        rows = np.resize(todo, min(_next_power_of_two(todo.size), max(num_targets, 1)))
        rows[todo.size :] = todo[-1]
        start = max(0, end - block)
        index = np.clip(np.arange(end - block, end), start, None)
        coverage = np.array(  # a writable copy
            coverage_matrix(
                target_depth_MHW[rows],
                target_c2w_M44[rows],
                context_depth_NHW[index],
                context_c2w_N44[index],
                intrinsics,
            )
        )[: todo.size]
        coverage[:, : block - (end - start)] = 0.0
        covered = coverage >= threshold
        # Latest covering frame in this block per target (columns are in frame order).
        last = block - 1 - np.argmax(covered[:, ::-1], axis=1)
        found = covered.any(axis=1)
        latest[todo[found]] = index[last[found]]
    return latest


def _next_power_of_two(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def frames_since_seen(
    target_depth_MHW,
    target_c2w_M44,
    context_depth_NHW,
    context_c2w_N44,
    intrinsics_33,
    target_frame_M,
    *,
    threshold: float = COVERAGE_THRESHOLD,
) -> np.ndarray:
    """[M] frames between each target (at stream position `target_frame_M`) and the latest
    context frame covering its view; NEVER_SEEN (-1) where no context frame does."""
    latest = latest_covering_frame(
        target_depth_MHW,
        target_c2w_M44,
        context_depth_NHW,
        context_c2w_N44,
        intrinsics_33,
        threshold=threshold,
    )
    target_frame_M = np.asarray(target_frame_M, np.int64)
    if target_frame_M.shape != latest.shape:
        raise ValueError(
            f"target_frame must give one stream position per target view {latest.shape}, got "
            f"{target_frame_M.shape}"
        )
    if np.any(target_frame_M < context_depth_NHW.shape[0]):
        raise ValueError("target frames must come after the context (positions >= N)")
    return np.where(latest >= 0, target_frame_M - latest, NEVER_SEEN)


def _check_geometry(target_depth, target_c2w, context_depth, context_c2w) -> None:
    if target_depth.ndim != 3 or context_depth.ndim != 3:
        raise ValueError(
            f"depth must be [frames, H, W]; got target {target_depth.shape}, context "
            f"{context_depth.shape}"
        )
    if target_depth.shape[1:] != context_depth.shape[1:]:
        raise ValueError(
            f"target and context depth differ in size: {target_depth.shape[1:]} vs "
            f"{context_depth.shape[1:]}"
        )
    for name, depth, pose in (
        ("target", target_depth, target_c2w),
        ("context", context_depth, context_c2w),
    ):
        if np.shape(pose) != (depth.shape[0], 4, 4):
            raise ValueError(
                f"{name} camera_to_world must be [{depth.shape[0]}, 4, 4], got {np.shape(pose)}"
            )


def coverage_reference(
    target_depth_HW,
    target_c2w_44,
    context_depth_HW,
    context_c2w_44,
    intrinsics_33,
    relative_tolerance: float = RELATIVE_TOLERANCE,
    absolute_tolerance: float = ABSOLUTE_TOLERANCE,
) -> float:
    """`coverage_matrix` for one pair, pixel by pixel in float64 (the tests' reference)."""
    height, width = target_depth_HW.shape
    K = np.asarray(intrinsics_33, np.float64)
    source, destination = np.asarray(target_c2w_44, np.float64), np.asarray(context_c2w_44)
    seen = valid = 0
    for row in range(height):
        for column in range(width):
            z = float(target_depth_HW[row, column])
            if not np.isfinite(z):
                continue
            valid += 1
            camera = np.array(
                [z * (column + 0.5 - K[0, 2]) / K[0, 0], z * (row + 0.5 - K[1, 2]) / K[1, 1], z]
            )
            world = source[:3, :3] @ camera + source[:3, 3]
            local = destination[:3, :3].T @ (world - destination[:3, 3])
            if local[2] <= _NEAR:
                continue
            u = K[0, 0] * local[0] / local[2] + K[0, 2]
            v = K[1, 1] * local[1] / local[2] + K[1, 2]
            c, r = int(np.floor(u)), int(np.floor(v))
            if not (0 <= c < width and 0 <= r < height):
                continue
            stored = float(context_depth_HW[r, c])
            tolerance = relative_tolerance * local[2] + absolute_tolerance
            if np.isfinite(stored) and abs(stored - local[2]) <= tolerance:
                seen += 1
    return seen / max(valid, 1)
