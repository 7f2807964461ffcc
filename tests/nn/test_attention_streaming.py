"""Streaming frame-local attention: prefill + step/commit equals the parallel pass; cache sizes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lssvwm.nn.attention import FrameLocalAttention, KVCache
from lssvwm.nn.attention_cache import overflowed

BATCH, FRAMES, TOKENS, WIDTH, HEADS = 2, 12, 3, 16, 2
ATOL = 2e-5

# name: (window, chunk_size, prefill pieces in frames). Pieces are whole chunks; a second piece
# is prefilled on top of the cache of the first (a partly filled ring or a growing cache).
CONFIGS = {
    "sliding": (3, None, (2, 2)),
    "chunked": (4, 2, (4,)),
    "full": (None, None, (2, 2)),
}


class Jitted:
    """The layer's methods under jax.jit (each input shape compiles once)."""

    def __init__(self, layer):
        self.layer = layer
        graphdef, self.state = nnx.split(layer)

        def method(name):
            fn = jax.jit(lambda state, *args: getattr(nnx.merge(graphdef, state), name)(*args))
            return lambda *args: fn(self.state, *args)

        self.call, self.prefill, self.step = method("__call__"), method("prefill"), method("step")
        self.commit = method("commit")


def _layer(name):
    window, chunk, _ = CONFIGS[name]
    return FrameLocalAttention(
        WIDTH, HEADS, rngs=nnx.Rngs(1), window=window, chunk_size=chunk, rope_base=100.0
    )


def _frames(frames=FRAMES, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((BATCH, frames, TOKENS, WIDTH)).astype(np.float32)


def _stream(jitted, x, cache):
    """Steps through x one unit at a time, committing each unit; returns outputs and caches."""
    unit = jitted.layer.unit
    # A growing cache needs its room reserved outside jit; reserving the whole horizon at once
    # (as a sampler that knows it can) keeps the jitted step at one shape.
    cache = jitted.layer.reserve(cache, x.shape[1])
    outputs, caches = [], []
    for start in range(0, x.shape[1], unit):
        y, kv = jitted.step(x[:, start : start + unit], cache)
        cache = jitted.commit(cache, kv)
        outputs.append(y)
        caches.append(cache)
    return jnp.concatenate(outputs, axis=1), caches


@pytest.mark.parametrize("name", list(CONFIGS))
def test_prefill_then_steps_equal_parallel_pass(name):
    jitted = Jitted(_layer(name))
    x = _frames()
    parallel = jitted.call(x)

    cache, outputs, start = None, [], 0
    for piece in CONFIGS[name][2]:
        y, cache = jitted.prefill(x[:, start : start + piece], *([] if cache is None else [cache]))
        outputs.append(y)
        start += piece
    prefilled = cache
    streamed, caches = _stream(jitted, x[:, start:], cache)
    outputs.append(streamed)
    np.testing.assert_allclose(jnp.concatenate(outputs, axis=1), parallel, atol=ATOL)

    # A parallel pass continuing from the prefilled cache (context carried between windows).
    np.testing.assert_allclose(jitted.call(x[:, start:], prefilled), parallel[:, start:], atol=ATOL)

    sizes = [c.nbytes for c in caches]
    if name == "full":
        assert sizes[-1] > prefilled.nbytes  # grows with the frames processed
        assert caches[-1].capacity >= FRAMES
        np.testing.assert_array_equal(caches[-1].filled, FRAMES)
    else:
        assert set(sizes) == {prefilled.nbytes}  # a ring: the same size whatever was processed
        assert caches[-1].capacity == jitted.layer.cache_frames


def test_step_from_empty_cache_equals_parallel_pass():
    jitted = Jitted(_layer("sliding"))
    x = _frames(frames=6, seed=3)
    streamed, _ = _stream(jitted, x, jitted.layer.init_cache(BATCH, TOKENS))
    np.testing.assert_allclose(streamed, jitted.call(x), atol=ATOL)


def test_step_reads_without_committing_and_ignores_ring_position():
    jitted = Jitted(_layer("sliding"))
    x = _frames(frames=7, seed=4)
    _, cache = jitted.prefill(x[:, :6])
    y, kv = jitted.step(x[:, 6:], cache)
    y_again, _ = jitted.step(x[:, 6:], cache)  # the cache was not changed by the first step
    np.testing.assert_array_equal(y, y_again)

    # The same frames stored at other ring slots give the same outputs (relative positions only).
    for shift in (1, 2):
        rotated = cache.replace(
            keys=jnp.roll(cache.keys, shift, axis=1),
            values=jnp.roll(cache.values, shift, axis=1),
            next_slot=(cache.next_slot + shift) % cache.capacity,
        )
        np.testing.assert_allclose(jitted.step(x[:, 6:], rotated)[0], y, atol=1e-6)


def test_reset_empties_one_stream():
    jitted = Jitted(_layer("sliding"))
    x = _frames(frames=5, seed=5)
    _, cache = jitted.prefill(x[:, :4])
    reset = cache.reset(np.array([True, False]))
    y_reset, _ = jitted.step(x[:, 4:], reset)
    y_fresh, _ = jitted.step(x[:, 4:], jitted.layer.init_cache(BATCH, TOKENS))
    y_kept, _ = jitted.step(x[:, 4:], cache)
    np.testing.assert_allclose(y_reset[0], y_fresh[0], atol=1e-6)
    np.testing.assert_array_equal(y_reset[1], y_kept[1])


def test_jitted_commit_past_growing_capacity_poisons_outputs():
    jitted = Jitted(_layer("full"))
    x = _frames(frames=4, seed=6)
    _, cache = jitted.prefill(x[:, :3])  # capacity 3, full
    assert isinstance(cache, KVCache) and cache.capacity == 3
    y, kv = jitted.step(x[:, 3:], cache)
    assert np.isfinite(np.asarray(y)).all()
    lost = jitted.commit(cache, kv)  # under jit: no room, the frame is dropped
    assert lost.capacity == 3 and bool(overflowed(lost).all())
    assert np.isnan(np.asarray(jitted.step(x[:, 3:], lost)[0])).all()
    grown = jitted.layer.commit(cache, kv)  # eager: grows (doubling) instead
    assert grown.capacity == 6 and not bool(overflowed(grown).any())
