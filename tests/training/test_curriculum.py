"""Length curriculum: the schedule is exact and a pure function of the step, the pipelines follow
it (random windows and TBPTT streams) and resume exactly mid-stage, and the clean-prefix rule
applies to each stage's own window."""

import fake_episodes
import jax
import numpy as np
import pytest

from lssvwm.data import pipeline
from lssvwm.diffusion import DiffusionConfig, training_noise_levels
from lssvwm.training.curriculum import Curriculum, Stage, default_config


def config(**fields):
    section = default_config()
    section.update(fields)
    return section


def test_stages_schedule_is_exact_at_every_step():
    curriculum = Curriculum.from_config(
        config(kind="stages", lengths=(8, 16, 32), stage_steps=(10, 25)),
        window_length=32,
        batch_size=4,
    )
    expected = [8] * 10 + [16] * 15 + [32] * 20
    assert [curriculum.shape_at(s)[0] for s in range(45)] == expected
    assert {curriculum.shape_at(s)[1] for s in range(45)} == {4}
    assert curriculum.stage_at(25) == Stage(2, 25, 32, 4)
    assert curriculum.as_tuples() == ((0, 8, 4), (10, 16, 4), (25, 32, 4))
    assert curriculum.distinct_shapes(total_steps=20) == {(8, 4), (16, 4)}


def test_constant_tokens_scales_the_batch_and_never_exceeds_the_final_stage():
    curriculum = Curriculum.from_config(
        config(
            kind="stages",
            lengths=(8, 12, 32),
            stage_steps=(5, 9),
            constant_tokens=True,
            batch_multiple=2,
        ),
        window_length=32,
        batch_size=4,
    )
    # 4 x 32 = 128 frames per step: 8 frames -> 16 windows; 12 -> 10.67 -> 10 (multiple of 2).
    assert [s.batch_size for s in curriculum.stages] == [16, 10, 4]
    assert all(s.frames_per_step <= 128 for s in curriculum.stages)


def test_linear_warmup_matches_the_formula_and_has_one_stage_per_bucket():
    start, final, warmup, bucket = 8, 32, 30, 8
    curriculum = Curriculum.from_config(
        config(kind="linear", start_length=start, warmup_steps=warmup, bucket=bucket),
        window_length=final,
        batch_size=2,
    )
    for step in range(60):
        # floor((start + (final - start) * min(step / warmup, 1)) / bucket) * bucket, exactly
        progress = min(step, warmup) * (final - start)
        expected = start + (progress // (warmup * bucket)) * bucket
        assert curriculum.shape_at(step) == (expected, 2), step
    assert [s.window_length for s in curriculum.stages] == [8, 16, 24, 32]
    assert curriculum.stages[-1].start_step == warmup


@pytest.mark.parametrize(
    "fields,match",
    [
        (dict(kind="stages", lengths=(8, 16), stage_steps=(5,)), "must equal training.window"),
        (dict(kind="stages", lengths=(8, 32), stage_steps=()), "one start step per stage"),
        (dict(kind="stages", lengths=(8, 16, 32), stage_steps=(5, 5)), "must increase"),
        (dict(kind="stages", lengths=(6, 32), stage_steps=(5,)), "whole number of the model"),
        (dict(kind="linear", start_length=12, warmup_steps=10), "multiples of curriculum.bucket"),
        (dict(kind="linear", start_length=8, warmup_steps=0), "warmup_steps"),
        (dict(kind="cosine"), "curriculum.kind"),
    ],
)
def test_bad_curricula_are_rejected_with_the_field_named(fields, match):
    with pytest.raises(ValueError, match=match):
        Curriculum.from_config(config(**fields), window_length=32, batch_size=4, unit=4)


def test_unknown_key_and_no_section():
    with pytest.raises(ValueError, match="lenghts"):
        Curriculum.from_config(
            {"kind": "stages", "lenghts": (8, 32)}, window_length=32, batch_size=4
        )
    assert Curriculum.from_config(None, window_length=32, batch_size=4).as_tuples() == ((0, 32, 4),)


def test_clean_prefix_applies_to_each_stages_own_window():
    diffusion = DiffusionConfig(clean_prefix_prob=1.0, clean_prefix_min_fraction=0.5)
    curriculum = Curriculum.from_stages((8, 32), (3,), 2)
    curriculum.check_clean_prefix(diffusion)
    for length, _ in curriculum.distinct_shapes():
        _, clean = training_noise_levels(jax.random.PRNGKey(0), (256, length), diffusion)
        prefix = np.asarray(clean).sum(axis=1)
        assert prefix.min() > length // 2 and prefix.max() <= length - 1  # > half the *current*
        assert len(set(prefix.tolist())) == length - 1 - length // 2  # every allowed length
    too_short = Curriculum.from_stages((2, 32), (3,), 2)
    with pytest.raises(ValueError, match="stage 0.*no clean-prefix length"):
        too_short.check_clean_prefix(diffusion)


# ---- pipelines ---------------------------------------------------------------------------------

STAGES = ((0, 4, 2), (3, 8, 1), (7, 4, 4))  # (start step, window length, batch size)


@pytest.fixture(scope="module")
def source():
    return fake_episodes.FakeSource(episodes=5, segments=4, segment_length=4)  # 16 frames each


def _check_window(batch, slot, length):
    episode, frames = fake_episodes.decode(batch["frames"][slot])
    assert episode + 100 == batch["episode_id"][slot]
    np.testing.assert_array_equal(frames, batch["start_frame"][slot] + np.arange(length))


def test_random_windows_follow_the_stages_and_resume_exactly(source):
    kwargs = dict(stages=STAGES, seed=3, num_threads=1, prefetch=1)
    iterator = pipeline.TrainingWindows(source, **kwargs)
    batches = [next(iterator) for _ in range(10)]
    for step, batch in enumerate(batches):
        _, length, size = STAGES[np.searchsorted([s[0] for s in STAGES], step, "right") - 1]
        assert batch["frames"].shape[:2] == (size, length)
        expected = pipeline.training_batch(source, length, size, seed=3, step=step)
        np.testing.assert_array_equal(batch["frames"], expected["frames"])
        for slot in range(size):
            _check_window(batch, slot, length)
    for resume_at in (2, 3, 5, 7):  # before, at and after stage boundaries
        resumed = pipeline.TrainingWindows(source, **kwargs, start_step=resume_at)
        for batch in batches[resume_at:]:
            np.testing.assert_array_equal(next(resumed)["frames"], batch["frames"])


def test_streams_restart_episodes_at_each_stage_and_resume_exactly(source):
    # 16-frame episodes: 4 windows of 4 (stage 0, cut short after 3), 2 of 8, 4 of 4.
    kwargs = dict(stages=STAGES, seed=1, num_threads=1, prefetch=1)
    stream = pipeline.ConsecutiveWindows(source, **kwargs)
    batches = [next(stream) for _ in range(15)]
    starts = {0: [0, 4, 8], 3: [0, 8, 0, 8], 7: [0, 4, 8, 12, 0, 4, 8, 12]}
    expected_start = [v for k in sorted(starts) for v in starts[k]]
    first_episodes = []
    for step, batch in enumerate(batches):
        size, length = batch["frames"].shape[:2]
        for slot in range(size):
            _check_window(batch, slot, length)
            assert batch["start_frame"][slot] == expected_start[step]
            assert batch["episode_start"][slot] == (expected_start[step] == 0)
            assert not batch["is_first"][slot, 1:].any()
            if step > 0 and not batch["episode_start"][slot]:  # continues its previous window
                assert batch["episode_id"][slot] == batches[step - 1]["episode_id"][slot]
            if batch["episode_start"][slot]:
                first_episodes.append(int(batch["episode_id"][slot]))
    # Episodes are dealt from per-epoch permutations: stage 0 took 2, stage 1 took 2 (two
    # rounds of 1), so stage 2's first round completes epoch 0 (1) and starts epoch 1 (3).
    assert sorted(first_episodes[:5]) == list(range(100, 105))
    for resume_at in (2, 3, 4, 7, 9):
        resumed = pipeline.ConsecutiveWindows(source, **kwargs, start_step=resume_at)
        for batch in batches[resume_at:]:
            got = next(resumed)
            for key in ("frames", "episode_id", "start_frame", "episode_start"):
                np.testing.assert_array_equal(got[key], batch[key])


def test_one_stage_stream_is_the_plain_stream(source):
    for step in range(12):
        for slot in range(2):
            plain = pipeline.stream_window(source.index, 4, 2, 7, step, slot)
            staged = pipeline.staged_stream_window(source.index, ((0, 4, 2),), 7, step, slot)
            assert staged == (*plain, 4)
    with pytest.raises(ValueError, match="either stages or"):
        pipeline.TrainingWindows(source, window_length=4, batch_size=2, seed=0, stages=STAGES)
    with pytest.raises(ValueError, match="exceeds the episode length"):
        pipeline.ConsecutiveWindows(source, stages=((0, 4, 2), (5, 32, 2)), seed=0)
