"""Patch embedding geometry, position embeddings and per-frame conditioning features."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lssvwm.nn.embed import (
    FrameConditioning,
    patchify,
    pose_feature_count,
    pose_features,
    pose_mode_features,
    relative_pose_features,
    sincos_2d,
    unpatchify,
)


def test_patchify_round_trip_and_layout():
    frames = jnp.arange(1 * 2 * 4 * 6 * 3, dtype=jnp.float32).reshape(1, 2, 4, 6, 3)
    patches = patchify(frames, 2)
    assert patches.shape == (1, 2, 2, 3, 12)
    # Token (row 1, column 2) holds pixels rows 2-3, columns 4-5, row-major, channels last.
    np.testing.assert_array_equal(patches[0, 1, 1, 2], frames[0, 1, 2:4, 4:6].reshape(-1))
    np.testing.assert_array_equal(unpatchify(patches, 2, 3), frames)


def test_sincos_2d_distinguishes_every_position():
    table = sincos_2d(3, 5, 16)
    assert table.shape == (3, 5, 16)
    flat = table.reshape(15, 16)
    distances = np.linalg.norm(flat[:, None] - flat[None], axis=-1)
    assert np.all(distances[~np.eye(15, dtype=bool)] > 1e-3)
    with pytest.raises(ValueError, match="% 4"):
        sincos_2d(2, 2, 6)


def test_pose_features():
    poses = jnp.array([[[2.0, -1.0, np.pi / 2]]])
    np.testing.assert_allclose(pose_features(poses, 4.0), [[[0.5, -0.25, 0.0, 1.0]]], atol=1e-6)


def test_pose_fourier_features_extend_the_raw_ones_and_make_a_shift_invariant_kernel():
    rng = np.random.default_rng(0)
    poses = jnp.asarray(rng.uniform(-5, 5, (2, 7, 3)), jnp.float32)
    three = pose_features(poses, 11.0, frequencies=3)
    assert three.shape == (2, 7, pose_feature_count("pose", 3)) == (2, 7, 4 + 6 * 3)
    np.testing.assert_allclose(three[..., :4], pose_features(poses, 11.0), atol=1e-6)
    assert pose_feature_count("pose_and_motion", 3) == 8 + 18
    assert pose_feature_count("relative_pose", 3) == 4  # nothing absolute to encode
    # The octave-j block: sin and cos of (2^j pi x / s, 2^j pi y / s, 2^(j+1) psi).
    x, y, psi = (poses[..., i] for i in range(3))
    octave_1 = three[..., 4 + 6 : 4 + 12]
    expected = jnp.stack(
        [
            jnp.sin(2 * jnp.pi * x / 11),
            jnp.sin(2 * jnp.pi * y / 11),
            jnp.sin(4 * psi),
            jnp.cos(2 * jnp.pi * x / 11),
            jnp.cos(2 * jnp.pi * y / 11),
            jnp.cos(4 * psi),
        ],
        axis=-1,
    )
    np.testing.assert_allclose(octave_1, expected, atol=1e-5)

    # The point of them: the dot product of two poses' Fourier features is a function of the
    # pose difference alone, largest when the poses agree.
    def kernel(a, b):
        fa, fb = (pose_features(jnp.asarray(p, jnp.float32), 11.0, 4)[..., 4:] for p in (a, b))
        return float(jnp.sum(fa * fb))

    shift = np.array([1.3, -2.1, 0.7])
    a, b = np.array([0.5, 1.0, 0.2]), np.array([1.0, 0.5, 0.9])
    assert kernel(a, b) == pytest.approx(kernel(a + shift, b + shift), abs=1e-4)
    assert kernel(a, a) > kernel(a, a + [0.5, 0.0, 0.0]) and kernel(a, a) == pytest.approx(12.0)


def test_relative_pose_features_in_previous_heading_frame():
    # First frame: no previous pose, no motion. Then, facing +y (psi = pi/2), moving +y by 2 is
    # "forward 2" (1 at scale 2); then turning left by pi/2 on the spot.
    poses = jnp.array([[[1.0, 1.0, np.pi / 2], [1.0, 3.0, np.pi / 2], [1.0, 3.0, np.pi]]])
    features = relative_pose_features(poses, None, None, scale=2.0)
    expected = [[0.0, 0.0, 1.0, 0.0], [1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
    np.testing.assert_allclose(features[0], expected, atol=1e-6)
    # With a previous pose (facing +x at the origin) the first frame moves from it.
    previous = jnp.array([[0.0, 0.0, 0.0]])
    first = relative_pose_features(poses[:, :1], previous, jnp.array([True]), scale=1.0)
    np.testing.assert_allclose(first[0, 0], [1.0, 1.0, 0.0, 1.0], atol=1e-6)
    # ... unless the stream was reset (no previous pose): no motion.
    first = relative_pose_features(poses[:, :1], previous, jnp.array([False]), scale=1.0)
    np.testing.assert_allclose(first[0, 0], [0.0, 0.0, 1.0, 0.0], atol=1e-6)


def test_pose_and_motion_features_are_absolute_then_relative():
    poses = jnp.array([[[1.0, 1.0, np.pi / 2], [1.0, 3.0, np.pi / 2], [1.0, 3.0, np.pi]]])
    previous, has_previous = jnp.array([[1.0, 0.0, np.pi / 2]]), jnp.array([True])
    both = pose_mode_features(
        "pose_and_motion", poses, previous, has_previous, pose_scale=4.0, relative_pose_scale=2.0
    )
    assert both.shape == (1, 3, 8)
    np.testing.assert_allclose(both[..., :4], pose_features(poses, 4.0), atol=1e-6)
    np.testing.assert_allclose(
        both[..., 4:], relative_pose_features(poses, previous, has_previous, 2.0), atol=1e-6
    )
    # The first frame's motion comes from the previous pose: forward by 1 m = 0.5 at scale 2.
    np.testing.assert_allclose(both[0, 0, 4:], [0.5, 0.0, 1.0, 0.0], atol=1e-6)
    with pytest.raises(ValueError, match="not a pose action mode"):
        pose_mode_features("discrete", poses, None, None, pose_scale=1.0, relative_pose_scale=1.0)


def test_conditioning_checks_actions():
    cond = nnx.eval_shape(
        lambda: FrameConditioning(8, action_mode="discrete", num_actions=3, rngs=nnx.Rngs(0))
    )
    with pytest.raises(ValueError, match="discrete actions must be int"):
        cond.check_actions(jnp.zeros((2, 4, 3)), (2, 4))
    with pytest.raises(ValueError, match="action_mode must be one of"):
        FrameConditioning(8, action_mode="joystick", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="num_actions"):
        FrameConditioning(8, action_mode="discrete", rngs=nnx.Rngs(0))
