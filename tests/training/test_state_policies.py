"""Reset policies: per-stream masks (when), and initial states that restart exactly the flagged
streams (zeros, noise, state passing) while every other stream's cache stays bit for bit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from micro_model import BATCH, WINDOW, merged, micro_model, run, window_inputs

from lssvwm.training.state_policies import ResetPolicy

START = np.array([True, False, False])


def test_episode_start_policy_resets_only_episode_starts():
    policy = ResetPolicy()
    for index in (0, 1, 7):
        np.testing.assert_array_equal(policy.reset_mask(index, START), START)


def test_every_n_counts_from_each_streams_episode_start():
    policy = ResetPolicy(reset="every", every=3)
    index = np.array([0, 3, 4])
    np.testing.assert_array_equal(policy.reset_mask(index, [False, False, False]), [1, 1, 0])
    np.testing.assert_array_equal(policy.reset_mask(4, START), [1, 0, 0])
    np.testing.assert_array_equal(policy.reset_mask(6, START), [1, 1, 1])


def test_random_reset_is_per_stream_with_the_asked_rate():
    policy = ResetPolicy(reset="random", prob=0.25)
    draws = jax.vmap(lambda key: policy.reset_mask(1, jnp.zeros(64, bool), key))(
        jax.random.split(jax.random.PRNGKey(0), 200)
    )
    rate = float(draws.mean())
    assert abs(rate - 0.25) < 0.01  # 12,800 draws: std 0.004
    per_row = np.asarray(draws.mean(axis=1))
    assert 0 < per_row.min() and per_row.max() < 1  # per stream, never whole-batch
    started = policy.reset_mask(1, START, jax.random.PRNGKey(1))
    assert bool(started[0])  # an episode start always resets
    with pytest.raises(ValueError, match="needs an rng"):
        policy.reset_mask(1, START)


def test_per_frame_keeps_the_cadence():
    every = ResetPolicy(reset="every", every=2).per_frame(8)
    assert every.every == 16
    rare = ResetPolicy(reset="random", prob=0.5).per_frame(4)
    assert (1 - rare.prob) ** 4 == pytest.approx(0.5)  # same chance over one window


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(reset="sometimes"), "state.reset"),
        (dict(initial="learned"), "state.initial"),
        (dict(reset="every", every=0), "reset_every"),
        (dict(reset="random", prob=0.0), "reset_prob > 0"),
        (dict(noise_std=-1.0), "noise_std"),
    ],
)
def test_bad_policies_name_the_field(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ResetPolicy(**kwargs)


def test_from_config_reads_the_state_section():
    section = dict(carry=True, reset="every", reset_every=4, initial="noise", noise_std=0.5)
    assert ResetPolicy.from_config(section) == ResetPolicy("every", 4, 0.0, "noise", 0.5)
    assert ResetPolicy.from_config(None) == ResetPolicy()


# ---- initial states on a real cache ------------------------------------------------------------


@pytest.fixture(scope="module")
def model_and_cache():
    """The micro model and its cache after one window (every part non-empty)."""
    graphdef, state = micro_model()
    frames, level, actions = window_inputs(WINDOW)
    model = merged()
    _, cache = run(graphdef, "prefill", state, frames, level, actions, model.init_cache(BATCH))
    return model, cache


def _stream(cache, b):
    """All of stream b's cache arrays (SSM and conv states of every block, KV and filled)."""
    parts = []
    for layer in cache.layers:
        blocks = layer.ssm.ssm.shape[0] // BATCH
        parts += [
            np.asarray(layer.ssm.ssm[b * blocks : (b + 1) * blocks]),
            np.asarray(layer.ssm.conv[b * blocks : (b + 1) * blocks]),
            np.asarray(layer.kv.keys[b]),
            np.asarray(layer.kv.values[b]),
            np.asarray(layer.kv.filled[b]),
        ]
    return parts


def _ssm(cache, b, layer):
    states = cache.layers[layer].ssm.ssm
    blocks = states.shape[0] // BATCH
    return np.asarray(states[b * blocks : (b + 1) * blocks])


MASK = np.array([True, False, True])


@pytest.mark.parametrize("initial", ["zeros", "noise", "passing"])
def test_initial_state_restarts_exactly_the_flagged_streams(model_and_cache, initial):
    model, cache = model_and_cache
    assert all(np.abs(part).sum() > 0 for b in range(BATCH) for part in _stream(cache, b))
    policy = ResetPolicy(initial=initial, noise_std=0.5)
    out = policy.initial_state(model, cache, MASK, jax.random.PRNGKey(3))
    assert jax.tree.structure(out) == jax.tree.structure(cache)
    for b in np.flatnonzero(~MASK):  # untouched, bit for bit
        for got, want in zip(_stream(out, b), _stream(cache, b), strict=True):
            np.testing.assert_array_equal(got, want)
    for b in np.flatnonzero(MASK):
        for layer in out.layers:  # conv states and attention history always restart empty
            blocks = layer.ssm.conv.shape[0] // BATCH
            assert not np.asarray(layer.ssm.conv[b * blocks : (b + 1) * blocks]).any()
            assert int(layer.kv.filled[b]) == 0
        for layer in range(len(out.layers)):
            ssm = _ssm(out, b, layer)
            if initial == "zeros":
                assert not ssm.any()
            elif initial == "noise":
                assert 0.4 < ssm.std() < 0.6 and abs(ssm.mean()) < 0.1
            else:  # the pre-reset state of some stream of the batch
                donors = [d for d in range(BATCH) if np.array_equal(ssm, _ssm(cache, d, layer))]
                assert donors, "a passed state must be some stream's final state"


def test_state_passing_draws_donors_from_a_permutation(model_and_cache):
    model, cache = model_and_cache
    policy = ResetPolicy(initial="passing")
    everyone = np.ones(BATCH, bool)
    seen = set()
    for seed in range(12):
        out = policy.initial_state(model, cache, everyone, jax.random.PRNGKey(seed))
        donors = tuple(
            next(d for d in range(BATCH) if np.array_equal(_ssm(out, b, 0), _ssm(cache, d, 0)))
            for b in range(BATCH)
        )
        assert sorted(donors) == list(range(BATCH))  # a permutation: each state passed once
        seen.add(donors)
    assert len(seen) > 1


def test_noise_and_passing_need_an_ssm():
    model = merged(mixer="causal_window")
    cache = model.init_cache(BATCH)
    with pytest.raises(ValueError, match="has none"):
        ResetPolicy(initial="noise").initial_state(model, cache, MASK, jax.random.PRNGKey(0))
    zeros = ResetPolicy().initial_state(model, cache, MASK)  # zeros works for any mixer
    assert jax.tree.structure(zeros) == jax.tree.structure(cache)
