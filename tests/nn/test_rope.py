"""Rotary embeddings: frame-index pairs and pose pairs stay apart; pose rotation makes attention
logits a function of the pose difference."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lssvwm.nn.attention import FrameLocalAttention
from lssvwm.nn.rope import apply_pose_rotation, apply_rope, pose_angles


def test_frame_rotation_with_pairs_leaves_the_pose_pairs_alone():
    x = jnp.asarray(np.random.default_rng(0).standard_normal((1, 5, 2, 3, 8)), jnp.float32)
    rotated = apply_rope(x, np.arange(5) * 7, base=100.0, pairs=3)  # pairs (3, 7) untouched
    np.testing.assert_array_equal(rotated[..., 3], x[..., 3])
    np.testing.assert_array_equal(rotated[..., 7], x[..., 7])
    np.testing.assert_allclose(
        apply_rope(x, np.arange(5), base=100.0, pairs=4),
        apply_rope(x, np.arange(5), base=100.0),
        atol=1e-6,
    )


def test_pose_angles_span_the_scene_to_the_step():
    poses = jnp.asarray([[[1.0, 2.0, 0.5]]])
    angles = pose_angles(poses, 3, pose_scale=8.0, step_scale=0.5)
    speeds = np.pi / 8.0 * 16.0 ** np.array([0.0, 0.5, 1.0])  # pi/8 .. pi/0.5
    np.testing.assert_allclose(
        angles[0, 0], np.concatenate([speeds, 2 * speeds, 0.5 * np.array([1, 2, 4])]), rtol=1e-6
    )
    with pytest.raises(ValueError, match="frequencies >= 1"):
        pose_angles(poses, 0, pose_scale=8.0, step_scale=0.5)


def test_pose_rotated_logits_depend_on_the_pose_difference_and_peak_at_the_same_pose():
    rng = np.random.default_rng(1)
    q, k = (jnp.asarray(rng.standard_normal((1, 1, 1, 1, 16)), jnp.float32) for _ in range(2))
    angles = lambda pose: pose_angles(
        jnp.asarray([[pose]], jnp.float32), 2, pose_scale=11.0, step_scale=0.5
    )

    def logit(query_pose, key_pose):
        rq = apply_pose_rotation(q, angles(query_pose))
        rk = apply_pose_rotation(k, angles(key_pose))
        return float(jnp.sum(rq * rk))

    a, b, shift = [1.0, 2.0, 0.3], [3.5, 0.5, 1.3], np.array([2.0, -1.0, 0.7])
    assert logit(a, b) == pytest.approx(logit(list(a + shift), list(b + shift)), abs=1e-4)
    # With the query equal to the key on the pose pairs, the same pose scores highest.
    same = lambda pose_q, pose_k: float(
        jnp.sum(apply_pose_rotation(k, angles(pose_q)) * apply_pose_rotation(k, angles(pose_k)))
    )
    here = [2.0, 3.0, 0.0]
    for other in ([2.5, 3.0, 0.0], [2.0, 2.5, 0.0], [2.0, 3.0, np.pi / 6], [7.0, 1.0, 2.0]):
        assert same(here, here) > same(here, other)


def test_attention_with_pose_pairs_needs_the_angles():
    layer = FrameLocalAttention(16, 2, rngs=nnx.Rngs(0), window=None, pose_pairs=3)
    x = jnp.zeros((1, 2, 3, 16))
    with pytest.raises(ValueError, match="needs pose_angles"):
        layer(x)
    assert layer(x, None, jnp.zeros((1, 2, 3))).shape == x.shape
    with pytest.raises(ValueError, match="pose_pairs must be in"):
        FrameLocalAttention(16, 2, rngs=nnx.Rngs(0), window=None, pose_pairs=4)
