"""Evaluation slicing: retrieval ground truth is exactly the reversed context."""

import numpy as np
import pytest
from test_maze3d_world import TINY, _replay

from lssvwm.data import eval_tasks, maze3d, maze_explorer, sources


@pytest.fixture(scope="module")
def episode():
    params = maze3d.Maze3dParams(**{**TINY.to_dict(), "episode_length": 128})
    return maze3d.generate_episode(params, "test", 0)


def test_retrieval_target_is_the_reversed_context(episode):
    task = eval_tasks.retrieval_task(
        episode, 100, 99, inverse_action=maze_explorer.INVERSE_ACTION, episode_id=7
    )
    assert task.context["frames"].shape[0] == 100 and task.target["frames"].shape[0] == 99
    # Generated frame N + j copies context frame N - 2 - j: the context reversed, minus its
    # last frame (where the walk back starts).
    for name in ("frames", "depth", "camera_to_world", "position"):
        np.testing.assert_array_equal(task.target[name], task.context[name][::-1][1:], name)
    np.testing.assert_array_equal(task.source_index, 98 - np.arange(99))
    np.testing.assert_array_equal(task.target["intrinsics"], episode["intrinsics"])
    assert task.episode_id == 7


def test_retrieval_actions_walk_back_through_the_context_poses(episode):
    context, horizon = 90, 60
    task = eval_tasks.retrieval_task(
        episode, context, horizon, inverse_action=maze_explorer.INVERSE_ACTION
    )
    # From the last context pose, the inverse actions replay exactly the target poses.
    actions = np.concatenate([[0], task.target["actions"]])
    start = task.context["position"][-1]
    replayed = _replay(start, actions, TINY)[1:]
    np.testing.assert_allclose(replayed[:, :2], task.target["position"][:, :2], atol=1e-4)
    wrapped = np.angle(np.exp(1j * (replayed[:, 2] - task.target["position"][:, 2])))
    np.testing.assert_allclose(wrapped, 0, atol=1e-4)
    assert "actions" not in eval_tasks.retrieval_task(episode, context, horizon).target


def test_reasoning_target_continues_the_episode(episode):
    task = eval_tasks.reasoning_task(episode, 96, 32)
    np.testing.assert_array_equal(task.context["frames"], episode["frames"][:96])
    np.testing.assert_array_equal(task.target["frames"], episode["frames"][96:128])
    np.testing.assert_array_equal(task.target["actions"], episode["actions"][96:128])


def test_lengths_are_checked(episode):
    with pytest.raises(ValueError, match="horizon 100 exceeds the maximum 99"):
        eval_tasks.retrieval_task(episode, 100, 100)
    with pytest.raises(ValueError, match="context 200 is longer than the episode"):
        eval_tasks.reasoning_task(episode, 200, 10)
    with pytest.raises(ValueError, match="horizon 40 exceeds the maximum 32"):
        eval_tasks.reasoning_task(episode, 96, 40)


def test_iterate_tasks_over_built_splits(tmp_path):
    builder = maze3d.Maze3d(
        config=maze3d.Maze3d.builder_config_for(TINY.to_dict()), data_dir=tmp_path, num_workers=0
    )
    builder.download_and_prepare()
    test = sources.SegmentSource(builder, "test", fields=("frames", "actions", "position"))
    (task,) = eval_tasks.iterate_tasks(
        test, "retrieval", 40, 39, inverse_action=maze_explorer.INVERSE_ACTION
    )
    np.testing.assert_array_equal(task.target["frames"], task.context["frames"][::-1][1:])
    reasoning = sources.SegmentSource(builder, "reasoning", fields=("frames", "position"))
    context, horizon = TINY.reasoning_context, TINY.reasoning_horizon
    (task,) = eval_tasks.iterate_tasks(reasoning, "reasoning", context, horizon)
    # The continuation walks through places of the context (after finishing the step in
    # progress at the switch): every target block was visited in the context.
    slack = TINY.turns_per_circle // 2 + TINY.steps_per_block
    seen = {tuple(b) for b in np.floor(task.context["position"][:, :2]).astype(int)}
    seen |= {tuple(b) for b in np.floor(task.target["position"][:slack, :2]).astype(int)}
    later = {tuple(b) for b in np.floor(task.target["position"][slack:, :2]).astype(int)}
    assert later <= seen
    with pytest.raises(ValueError, match="unknown task"):
        next(eval_tasks.iterate_tasks(test, "copying", 4, 2))
