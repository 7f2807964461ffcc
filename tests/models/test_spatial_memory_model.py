"""The spatial_memory mixer as a world model: streaming equals the parallel pass (ring and voxel
stores, frames not written above the write level), the store is what carries the memory, a reset
forgets it, its bytes stay constant, training inputs (clean frames, dropout) behave, and the
RGB-D / camera-packing adapter round-trips (lssvwm.models.inputs)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lssvwm.data.maze_render import camera_to_world
from lssvwm.models import WorldModel, WorldModelConfig, inputs
from lssvwm.models.spatial_memory import WRITE_MAX_LEVEL
from tests.random_weights import random_split

BATCH, FRAMES, PREFILL = 2, 10, 3
SIZE, PATCH = 16, 4
TINY = dict(
    image_size=(SIZE, SIZE),
    patch_size=PATCH,  # 4 x 4 token grid
    width=16,
    depth=1,  # one block: the memory paths are what is tested (model_for("ring") has two)
    num_heads=2,
    mlp_ratio=2.0,
    mixer="spatial_memory",
    attention_window=2,
    max_frames=FRAMES,
    frequency_dim=16,
    pose_scale=5.0,
    action_mode="pose_and_motion",
    memory_frames=3,  # smaller than the sequence: the ring evicts
    memory_slots=11,  # few voxel slots: hash collisions happen
    memory_voxel_size=0.4,
    memory_layers="all",
)


DEPTHS = {"all": 2, "input": 1}  # memory injected before every block needs two to show it


def config_for(**changes):
    return WorldModelConfig(**{**TINY, **changes})


@functools.cache
def model_for(store="ring", layers="all"):
    """Random parameters (the init's zero projections would hide the memory)."""
    config = config_for(memory_store=store, memory_layers=layers, depth=DEPTHS[layers])
    return random_split(lambda: WorldModel(config, rngs=nnx.Rngs(0)))


@functools.partial(jax.jit, static_argnums=(0, 1))
def run(graphdef, method, state, *args, **kwargs):
    return getattr(nnx.merge(graphdef, state), method)(*args, **kwargs)


def episode_fields(seed=0, frames=FRAMES):
    """A random walk in a maze-like world: RGB, depth with sky, poses, cameras, intrinsics."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(size=(BATCH, frames, 3)) * np.array([0.3, 0.3, 0.4])
    position = (np.cumsum(steps, axis=1) + np.array([2.5, 2.5, 0.0])).astype(np.float32)
    depth = rng.uniform(0.4, 4.0, (BATCH, frames, SIZE, SIZE)).astype(np.float32)
    depth[:, :, :3] = np.inf  # sky rows
    return {
        "frames": rng.integers(0, 256, (BATCH, frames, SIZE, SIZE, 3), dtype=np.uint8),
        "depth": depth,
        "position": position,
        "camera_to_world": np.stack([camera_to_world(p, 0.4) for p in position]),
        "intrinsics": np.broadcast_to(
            np.array([[10.0, 0, 8], [0, 10.0, 8], [0, 0, 1]], np.float32), (BATCH, 3, 3)
        ),
    }


def model_inputs(config, seed=0, max_level=0.8):
    fields = episode_fields(seed)
    frames = jnp.asarray(inputs.model_frames(fields, config))
    actions = jnp.asarray(inputs.model_actions(fields, config))
    noise = jnp.asarray(np.random.default_rng(seed + 1).uniform(0, max_level, (BATCH, FRAMES)))
    return frames, noise.astype(jnp.float32), actions


def stream(graphdef, state, frames, noise, actions):
    prefix = lambda a: a[:, :PREFILL]
    y, cache = run(graphdef, "prefill", state, *map(prefix, (frames, noise, actions)))
    outputs, sizes = [y], [cache.nbytes]
    for t in range(PREFILL, FRAMES):
        unit = lambda a, t=t: a[:, t : t + 1]
        y, cache = run(graphdef, "step", state, *map(unit, (frames, noise, actions)), cache)
        outputs.append(y)
        sizes.append(cache.nbytes)
    return jnp.concatenate(outputs, axis=1), cache, sizes


@pytest.mark.parametrize("store,layers", [("ring", "all"), ("voxel", "input")])
def test_streaming_equals_the_parallel_pass(store, layers):
    """Noise levels up to 0.8: some frames are above the write level and must not be stored,
    by the parallel pass and the stream alike."""
    graphdef, state = model_for(store, layers)
    config = config_for(memory_store=store, memory_layers=layers, depth=DEPTHS[layers])
    frames, noise, actions = model_inputs(config)
    assert bool(jnp.any(noise > WRITE_MAX_LEVEL)) and bool(jnp.any(noise <= WRITE_MAX_LEVEL))
    y_parallel = run(graphdef, "__call__", state, frames, noise, actions)
    assert y_parallel.shape == (BATCH, FRAMES, SIZE, SIZE, 4)
    y_stream, cache, sizes = stream(graphdef, state, frames, noise, actions)
    np.testing.assert_allclose(y_stream, y_parallel, rtol=2e-4, atol=2e-4)
    assert len(set(sizes)) == 1, sizes  # a bounded store: the same bytes after every frame
    assert int(cache.memory.next_frame_B[0]) == FRAMES


def test_a_carried_store_continues_the_sequence():
    """Two parallel windows with the cache (store included) carried between them equal one pass
    over both: what state-carrying training relies on."""
    graphdef, state = model_for()
    frames, noise, actions = model_inputs(config_for())
    y_whole = run(graphdef, "__call__", state, frames, noise, actions)
    half = FRAMES // 2
    first, second = (lambda a: a[:, :half]), (lambda a: a[:, half:])
    y_first, cache = run(graphdef, "prefill", state, *map(first, (frames, noise, actions)))
    y_second, _ = run(graphdef, "prefill", state, *map(second, (frames, noise, actions)), cache)
    np.testing.assert_allclose(
        jnp.concatenate([y_first, y_second], axis=1), y_whole, rtol=2e-4, atol=2e-4
    )


def test_the_store_is_the_memory_and_reset_forgets_it():
    graphdef, state = model_for()
    model = nnx.merge(graphdef, state)
    frames, noise, actions = model_inputs(config_for(), max_level=0.3)
    head = lambda a: a[:, :PREFILL]  # frame 0 is in the store, frames 1, 2 still pending
    _, cache = run(graphdef, "prefill", state, *map(head, (frames, noise, actions)))
    assert int(jnp.sum(cache.memory.slots.valid_BE)) > 0
    forgotten = model.reset_cache(cache, jnp.array([True, False]), scope="ssm")
    assert not bool(jnp.any(forgotten.memory.slots.valid_BE[0]))
    np.testing.assert_array_equal(
        forgotten.memory.slots.valid_BE[1], cache.memory.slots.valid_BE[1]
    )
    # the attention cache stays under scope "ssm"
    for kept, before in zip(forgotten.layers, cache.layers, strict=True):
        np.testing.assert_array_equal(kept.kv.filled, before.kv.filled)
    unit = lambda a: a[:, PREFILL : PREFILL + 1]
    y, _ = run(graphdef, "step", state, *map(unit, (frames, noise, actions)), cache)
    y_forgot, _ = run(graphdef, "step", state, *map(unit, (frames, noise, actions)), forgotten)
    assert np.abs(y_forgot[0] - y[0]).max() > 1e-3  # stream 0 lost its memory
    np.testing.assert_allclose(y_forgot[1], y[1], atol=1e-6)  # stream 1 did not


def test_clean_frames_are_what_training_remembers():
    """Training hands the clean window: the noisy inputs then do not change what is stored
    (only the frames' own, current-frame inputs), and the memory dropout rng changes the output."""
    graphdef, state = model_for()
    frames, noise, actions = model_inputs(config_for())
    noisy = frames + 0.5 * jax.random.normal(jax.random.PRNGKey(0), frames.shape)
    y_clean_memory = run(graphdef, "__call__", state, noisy, noise, actions, clean_frames=frames)
    y_noisy_memory = run(graphdef, "__call__", state, noisy, noise, actions)
    assert np.abs(y_clean_memory - y_noisy_memory).max() > 1e-3
    # frames before any entry is visible (t <= k) do not depend on what is remembered
    np.testing.assert_allclose(y_clean_memory[:, :3], y_noisy_memory[:, :3], atol=1e-5)
    y_dropout = run(
        graphdef,
        "__call__",
        state,
        noisy,
        noise,
        actions,
        clean_frames=frames,
        rng=jax.random.PRNGKey(3),
    )
    assert np.abs(y_dropout - y_clean_memory).max() > 1e-4


def test_store_bytes_do_not_grow_with_the_rollout():
    """The same store bytes after 100 and after 1,000 committed frames (constant cost)."""
    graphdef, state = model_for("voxel", "input")
    model = nnx.merge(graphdef, state)
    config = config_for(memory_store="voxel", memory_layers="input")
    frames, _, actions = model_inputs(config)

    @jax.jit
    def commit_many(cache, count):
        def body(i, cache):
            t = i % FRAMES
            unit = lambda a: jax.lax.dynamic_slice_in_dim(a, t, 1, axis=1)
            return nnx.merge(graphdef, state).commit(unit(frames), unit(actions), cache)

        return jax.lax.fori_loop(0, count, body, cache)

    cache = model.init_cache(BATCH)
    after_100 = commit_many(cache, 100)
    after_1000 = commit_many(after_100, 900)
    assert int(after_1000.memory.next_frame_B[0]) == 1000
    assert after_100.nbytes == after_1000.nbytes == cache.nbytes
    assert int(jnp.sum(after_1000.memory.slots.valid_BE)) > 0


def test_depth_channel_and_camera_packing_round_trip():
    fields = episode_fields()
    config = config_for()
    assert config.channels == 4  # RGB data: the mixer adds the depth channel
    frames = inputs.model_frames(fields, config)
    assert frames.shape[-1] == 4 and frames.min() >= -1 and frames.max() <= 1
    depth = inputs.decode_depth(frames[..., 3], config.depth_near)
    finite = np.isfinite(fields["depth"])
    np.testing.assert_allclose(depth[finite], fields["depth"][finite], rtol=1e-5)
    assert np.all(np.isinf(depth[~finite]))
    conditioning, c2w, intrinsics = inputs.split_camera(
        jnp.asarray(inputs.model_actions(fields, config))
    )
    np.testing.assert_allclose(conditioning, fields["position"], rtol=1e-6)
    np.testing.assert_allclose(c2w, fields["camera_to_world"], rtol=1e-6)
    np.testing.assert_allclose(intrinsics[:, 0], fields["intrinsics"], rtol=1e-6)
    discrete = config.replace(action_mode="discrete", num_actions=5)
    fields["actions"] = np.arange(BATCH * FRAMES, dtype=np.int32).reshape(BATCH, FRAMES) % 5
    packed = jnp.asarray(inputs.model_actions(fields, discrete))
    unpacked = inputs.unpack_conditioning(inputs.split_camera(packed)[0], discrete)
    np.testing.assert_array_equal(unpacked, fields["actions"])


def test_missing_depth_is_named_and_config_errors_are_clear():
    config = config_for()
    with pytest.raises(ValueError, match="no 'depth' field"):
        inputs.check_fields_present(config, ("frames", "position", "camera_to_world"), "dataset x")
    with pytest.raises(ValueError, match="channels must be 4"):
        config_for(channels=5)
    with pytest.raises(ValueError, match="exact sliding window"):
        config_for(attention_window=4, attention_chunk=2)
    with pytest.raises(ValueError, match="memory_store"):
        config_for(memory_store="cloud")
    with pytest.raises(ValueError, match="memory_dropout"):
        config_for(memory_dropout=1.0)
