"""Streaming generation: the carried cache of LSSVWM does not grow with the rollout length, the
full-context control's does; reset policies act where they say; the teacher-forced history
equals its parallel-prefill reference and the blind one ignores what the frames showed.

The LSSVWM model is the tiny run's (16x16 frames), the full-context control the same network
with the `causal_full` mixer; contexts of 24 frames and batch 1, as the end-to-end tests use,
so the compiled prefill and unit are shared.
"""

import jax
import numpy as np
import pytest
from conftest import random_frames, random_model

from lssvwm.diffusion import Sampler
from lssvwm.evaluation import reset
from lssvwm.evaluation.streaming import stream_generate

CONTEXT = 24


@pytest.fixture(scope="module")
def models(tiny_loaded_run):
    config = tiny_loaded_run.model_config
    return {
        "lssvwm": tiny_loaded_run.model,
        "causal_full": random_model(config.replace(mixer="causal_full"), seed=3),
    }


def stream(model, diffusion_config, context, actions, **options):
    """`stream_generate` after CONTEXT frames, one frame per action after them, seed 0."""
    return stream_generate(
        Sampler(model, diffusion_config),
        context,
        actions[:, :CONTEXT],
        actions[:, CONTEXT:],
        jax.random.PRNGKey(0),
        **options,
    )


def rollout(model, frames, diffusion_config, policy=reset.NEVER_RESET):
    context = random_frames((1, CONTEXT, *model.config.image_size, 3))
    actions = np.arange(CONTEXT + frames, dtype=np.int32)[None] % 5
    return stream(model, diffusion_config, context, actions, reset_policy=policy)


# causal_full's growing cache is slow to stream here (~30 s); its streaming equals the parallel
# pass in tests/models, and the default run keeps LSSVWM's fixed-size case.
@pytest.mark.parametrize("mixer", ["lssvwm", pytest.param("causal_full", marks=pytest.mark.slow)])
def test_cache_bytes_with_4x_more_frames(mixer, models, tiny_loaded_run):
    model, diffusion = models[mixer], tiny_loaded_run.diffusion_config
    short = rollout(model, 16, diffusion)
    long = rollout(model, 64, diffusion)
    assert short.frames.shape == (1, 16, 16, 16, 3) and long.frames.shape == (1, 64, 16, 16, 3)
    assert len(long.per_frame_seconds) == 64 and min(long.per_frame_seconds) > 0
    if mixer == "lssvwm":  # SSM states + a ring of k frames: fixed size
        assert long.cache_bytes == short.cache_bytes == long.cache_bytes_after_prefill
    else:  # keys/values of every frame seen (capacity doubles: 24 -> 48 -> 88 frames)
        assert long.cache_bytes > short.cache_bytes > short.cache_bytes_after_prefill
        per_frame = short.cache_bytes_after_prefill // CONTEXT
        assert long.cache_bytes >= (CONTEXT + 64) * per_frame
    # The same prefix is generated either way (a unit's noise depends on its index only).
    np.testing.assert_allclose(long.frames[:, :16], short.frames, atol=1e-5)


def test_reset_policy_resets_where_it_says(models, tiny_loaded_run):
    model, diffusion = models["lssvwm"], tiny_loaded_run.diffusion_config
    carried = rollout(model, 6, diffusion)
    cut = rollout(model, 6, diffusion, reset.ResetEvery(4))
    assert carried.resets == [] and cut.resets == [4]
    np.testing.assert_allclose(cut.frames[:, :4], carried.frames[:, :4], atol=1e-5)
    assert np.abs(cut.frames[:, 4:] - carried.frames[:, 4:]).max() > 1e-3
    # Zeroing the SSM state right after the context changes the very first generated frame.
    forget = rollout(model, 6, diffusion, reset.ResetAt((0,), scope="ssm"))
    assert forget.resets == [0]
    assert np.abs(forget.frames[:, :1] - carried.frames[:, :1]).max() > 1e-3


def test_reset_policy_flags():
    assert reset.reset_policy_from_flag("never") is reset.NEVER_RESET
    assert reset.reset_policy_from_flag("0") is reset.NEVER_RESET
    assert reset.reset_policy_from_flag("every:64") == reset.ResetEvery(64)
    assert reset.reset_policy_from_flag("8") == reset.ResetEvery(8)
    every = reset.ResetEvery(3)
    assert [f for f in range(10) if every(f, 2) is not None] == [3, 6, 9]
    assert reset.reset_policy_from_flag("every:8:ssm") == reset.ResetEvery(8, scope="ssm")
    at = reset.reset_policy_from_flag("at:0,5:ssm")
    assert at == reset.ResetAt((0, 5), scope="ssm")
    assert [f for f in range(10) if at(f, 2) is not None] == [0, 5]
    assert reset.describe(at) == "before generated frames 0, 5 (SSM state only)"
    with pytest.raises(ValueError, match="'at:' takes frame numbers"):
        reset.reset_policy_from_flag("at:first")
    with pytest.raises(ValueError, match="reset frames must be >= 0"):
        reset.ResetAt((-1,))
    with pytest.raises(ValueError, match="unknown reset policy"):
        reset.reset_policy_from_flag("sometimes")
    with pytest.raises(ValueError, match="unknown reset scope"):
        reset.reset_policy_from_flag("every:8:kv")


@pytest.mark.parametrize("scope", ["all", "ssm"])
def test_reset_scope_forgets_what_it_says_for_flagged_streams_only(scope, models, tiny_loaded_run):
    model = models["lssvwm"]
    sampler = Sampler(model, tiny_loaded_run.diffusion_config)
    context = random_frames((2, CONTEXT, *model.config.image_size, 3))
    actions = np.arange(2 * CONTEXT, dtype=np.int32).reshape(2, CONTEXT) % 5
    cache = sampler.prefill(context, actions, jax.random.PRNGKey(1))
    after = model.reset_cache(cache, np.array([False, True]), scope=scope)
    for before_layer, after_layer in zip(cache.layers, after.layers, strict=True):
        for old, new in zip(
            jax.tree.leaves(before_layer.ssm), jax.tree.leaves(after_layer.ssm), strict=True
        ):  # leading axis: batch x blocks, stream-major
            half = old.shape[0] // 2
            np.testing.assert_array_equal(new[:half], old[:half])
            assert np.abs(np.asarray(old[half:])).max() > 0 and not np.asarray(new[half:]).any()
        kv_kept = all(
            np.array_equal(a, b)
            for a, b in zip(
                jax.tree.leaves(before_layer.kv), jax.tree.leaves(after_layer.kv), strict=True
            )
        )
        assert kv_kept == (scope == "ssm")
    with pytest.raises(ValueError, match="unknown reset scope"):
        model.reset_cache(cache, np.array([False, True]), scope="kv")


def _history_stream(model, diffusion_config, history, context, truth, actions):
    return stream(model, diffusion_config, context, actions, history=history, truth_frames=truth)


def test_history_modes_against_the_parallel_prefill(models, tiny_loaded_run):
    """Teacher forcing: generated frame j is what the sampler draws after prefilling the context
    and the first j true frames in one parallel pass. Blind: after the context and j frames of
    pure noise (what the frames show cannot matter). All modes draw the same first frame."""
    model, diffusion = models["lssvwm"], tiny_loaded_run.diffusion_config
    assert diffusion.context_noise == 0.0  # the prefill reference feeds frames clean
    horizon, size = 4, model.config.image_size
    context = random_frames((1, CONTEXT, *size, 3), seed=1)
    truth = random_frames((1, horizon, *size, 3), seed=2)
    actions = np.arange(CONTEXT + horizon, dtype=np.int32)[None] % 5
    streams = {
        h: _history_stream(model, diffusion, h, context, truth, actions)
        for h in ("generated", "truth", "blind")
    }
    sampler = Sampler(model, diffusion)
    rng_generate = jax.random.split(jax.random.PRNGKey(0))[1]  # as stream_generate splits
    for j in range(horizon):
        cache = sampler.prefill(
            np.concatenate([context, truth[:, :j]], axis=1), actions[:, : CONTEXT + j], rng_generate
        )
        want = sampler.predict_unit(
            cache, actions[:, CONTEXT + j : CONTEXT + j + 1], rng_generate, j
        )
        np.testing.assert_allclose(streams["truth"].frames[:, j : j + 1], want, atol=2e-4)
    for h in ("truth", "blind"):
        np.testing.assert_allclose(
            streams[h].frames[:, :1], streams["generated"].frames[:, :1], atol=1e-5
        )
        assert np.abs(streams[h].frames[:, 1:] - streams["generated"].frames[:, 1:]).max() > 1e-3
    # Blind: the history frames' content is replaced by noise, so other truths change nothing.
    other = _history_stream(model, diffusion, "blind", context, -truth, actions)
    np.testing.assert_allclose(other.frames, streams["blind"].frames, atol=1e-5)
    other = _history_stream(model, diffusion, "truth", context, -truth, actions)
    assert np.abs(other.frames[:, 1:] - streams["truth"].frames[:, 1:]).max() > 1e-3


def test_history_mode_errors(models, tiny_loaded_run):
    model, diffusion = models["lssvwm"], tiny_loaded_run.diffusion_config
    context = random_frames((1, CONTEXT, *model.config.image_size, 3))
    actions = np.zeros((1, CONTEXT + 2), np.int32)
    with pytest.raises(ValueError, match="needs the ground-truth frames"):
        _history_stream(model, diffusion, "truth", context, None, actions)
    with pytest.raises(ValueError, match="truth frames have shape"):
        _history_stream(model, diffusion, "truth", context, context[:, :3], actions)
    with pytest.raises(ValueError, match="unknown history 'dreamt'"):
        _history_stream(model, diffusion, "dreamt", context, None, actions)
    with pytest.raises(ValueError, match="noise_level must be None or in"):
        Sampler(model, diffusion).commit_unit(
            None, context[:, :1], actions[:, :1], None, 0, noise_level=2.0
        )
