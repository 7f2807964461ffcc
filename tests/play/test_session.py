"""The player without a browser: controls and camera motion, the generation loop (frames, the
true view, resets, restart), recordings that replay through rollout to the same frames, and the
websocket protocol (one generation at a time)."""

import json
import math

import ml_collections
import numpy as np
import pytest

from lssvwm.evaluation import paths, reset
from lssvwm.evaluation.rollouts import RolloutOptions, run_rollout
from lssvwm.models import WorldModelConfig
from lssvwm.play.controls import MazeMotion, PlayerError, controls_for
from lssvwm.play.recording import save_recording
from lssvwm.play.session import PlayOptions, PlaySession

CONTEXT = 8


def open_maze(rows=3, cols=3) -> np.ndarray:
    """Walls around a free (2 cols + 1) x (2 rows + 1) block grid's inside."""
    solid = np.zeros((2 * cols + 1, 2 * rows + 1), bool)
    solid[0, :] = solid[-1, :] = solid[:, 0] = solid[:, -1] = True
    return solid


def test_maze_motion_moves_turns_and_stops_at_walls():
    motion = MazeMotion(step_m=0.5, turn_rad=math.pi / 6, solid=open_maze())
    start = np.array([1.5, 1.5, 0.0], np.float32)  # facing +x
    pose, blocked = motion.move("forward", start)
    np.testing.assert_allclose(pose, [2.0, 1.5, 0.0], atol=1e-6)
    assert not blocked
    pose, _ = motion.move("turn_left", start)
    np.testing.assert_allclose(pose, [1.5, 1.5, math.pi / 6], atol=1e-6)
    pose, _ = motion.move("turn_right", start)
    np.testing.assert_allclose(pose, [1.5, 1.5, 2 * math.pi - math.pi / 6], atol=1e-6)
    pose, blocked = motion.move("backward", start)  # x = 1.0: within the margin of wall x < 1
    assert blocked and np.array_equal(pose, start)
    pose, blocked = motion.move("noop", start)
    assert not blocked and np.array_equal(pose, start)


def _data(dataset: str) -> ml_collections.ConfigDict:
    data = ml_collections.ConfigDict({"dataset": dataset})
    if dataset == "maze3d":
        data.maze3d = ml_collections.ConfigDict({"steps_per_block": 2, "turns_per_circle": 12})
    return data


def test_controls_of_each_model_and_dataset(tiny_loaded_run):
    discrete = tiny_loaded_run.model_config
    controls = controls_for(discrete, _data("maze3d"), open_maze())
    assert controls.kind == "actions"
    assert controls.names == ("noop", "forward", "backward", "turn_left", "turn_right")
    assert ("ArrowUp", "w") == controls.controls[1].keys
    start = np.array([1.5, 1.5, math.pi], np.float32)  # facing -x, a wall 0.5 m ahead
    step = controls.apply("forward", start)
    assert step.blocked and step.conditioning == 0  # refused: a no-op is what the model gets
    assert controls.apply("turn_left", start).conditioning == 3
    # the motion's step sizes are the dataset's: 1/2 m, 30 degrees
    assert controls.motion.step_m == 0.5 and math.isclose(controls.motion.turn_rad, math.pi / 6)

    pose_model = WorldModelConfig.from_mapping({**discrete.to_dict(), "action_mode": "pose"})
    controls = controls_for(pose_model, _data("maze3d"), open_maze())
    assert controls.kind == "poses"
    step = controls.apply("forward", np.array([1.5, 1.5, 0.0], np.float32))
    np.testing.assert_allclose(step.conditioning, [2.0, 1.5, 0.0], atol=1e-6)
    with pytest.raises(PlayerError, match="maze3d only .*'video_folder'"):
        controls_for(pose_model, _data("video_folder"))
    controls = controls_for(discrete, _data("video_folder"))  # no action names: the digits
    assert controls.names[:2] == ("action_0", "action_1") and controls.controls[4].keys == ("4",)
    assert controls.apply("action_2", None).conditioning == 2
    many = WorldModelConfig.from_mapping({**discrete.to_dict(), "num_actions": 12})
    with pytest.raises(PlayerError, match="12 actions"):
        controls_for(many, _data("video_folder"))
    with pytest.raises(PlayerError, match="5 actions but memory_maze has 6"):
        controls_for(discrete, _data("memory_maze"))


@pytest.fixture(scope="module")
def session(tiny_loaded_run):
    return PlaySession(tiny_loaded_run, PlayOptions(context=CONTEXT), log=lambda *_: None)


def test_session_bad_options(tiny_loaded_run):
    with pytest.raises(PlayerError, match="--episode=9 is out of range: split 'test' has 3"):
        PlaySession(tiny_loaded_run, PlayOptions(episode=9))
    with pytest.raises(PlayerError, match="context of 60 frames from frame 8 does not fit"):
        PlaySession(tiny_loaded_run, PlayOptions(context=60, start=8))


def test_a_press_is_a_frame_and_turning_differs_from_moving(session):
    session.restart()
    assert session.frame_count == 0 and session.fps is None
    bytes_after_context = session.state_bytes
    session.step("turn_left")
    [forward] = session.step("forward")
    assert forward.frame_HWC.shape == (16, 16, 3) and forward.frame_HWC.dtype == np.uint8
    assert forward.index == 1 and session.frame_count == 2 and forward.control == "forward"
    assert forward.state_bytes == session.state_bytes == bytes_after_context  # constant memory
    # the side panel is the maze itself at the tracked pose
    np.testing.assert_array_equal(forward.truth_HWC, session.view.render(session.poses[-1]))
    assert session.map_HWC().ndim == 3

    session.restart()  # the same state, another key
    session.step("turn_left")
    [turn] = session.step("turn_left")
    assert not np.array_equal(turn.frame_HWC, forward.frame_HWC)
    assert not np.array_equal(turn.truth_HWC, forward.truth_HWC)
    assert session.poses[-1][2] != session.poses[-2][2]  # turned, did not move
    np.testing.assert_array_equal(session.poses[-1][:2], session.poses[-2][:2])

    session.restart()  # deterministic: the same keys give the same frames
    session.step("turn_left")
    [again] = session.step("forward")
    np.testing.assert_array_equal(again.frame_HWC, forward.frame_HWC)


def test_recording_replays_through_rollout(session, tiny_loaded_run, tmp_path):
    session.restart()
    for control in ("forward", "turn_left", "turn_left", "forward"):
        session.step(control)
    session.reset_memory()
    session.reset_memory()  # twice before one frame: one reset
    for control in ("backward", "noop", "turn_right"):
        session.step(control)
    assert session.resets == [4]
    record = save_recording(session, tmp_path / "rec", video_format="gif")
    assert record["frames"] == 7 and record["resets_before_frames"] == [4]
    assert "--reset=at:4:ssm" in record["replay"] and "--actions=" in record["replay"]
    assert (tmp_path / "rec" / record["video"]).stat().st_size > 0
    played = np.load(tmp_path / "rec" / "frames.npy")
    assert played.shape == (7, 16, 16, 3)

    actions = paths.load_path_file(tmp_path / "rec" / "actions.json", "actions", num_actions=5)
    np.testing.assert_array_equal(actions, session.path_array())
    replay = run_rollout(
        tiny_loaded_run,
        RolloutOptions(
            frames=None,
            output_dir=tmp_path / "replay",
            context=CONTEXT,
            actions=actions,
            reset_policy=reset.reset_policy_from_flag("at:4:ssm"),
            save_frames=True,
            video_format="gif",
        ),
        log=lambda *_: None,
    )
    assert replay["resets_before_frames"] == [4]
    np.testing.assert_array_equal(np.load(tmp_path / "replay" / "frames.npy"), played)


def test_nothing_to_record(session, tmp_path):
    session.restart()
    with pytest.raises(PlayerError, match="nothing to record"):
        save_recording(session, tmp_path)


def test_websocket_protocol_one_generation_at_a_time(session, tmp_path):
    from starlette.testclient import TestClient

    from lssvwm.play.server import BUSY_CLOSE_CODE, Player, create_app

    session.restart()
    player = Player(session, hold_fps=1.0, record_dir=tmp_path, video_format="gif")
    client = TestClient(create_app(player))
    page = client.get("/")
    assert page.status_code == 200 and "/static/play.js" in page.text
    assert "image-rendering: pixelated" in page.text
    assert client.get("/static/play.js").status_code == 200
    with client.websocket_connect("/ws") as socket:
        hello = socket.receive_json()
        assert hello["type"] == "hello" and hello["frame_count"] == 0
        assert [c["name"] for c in hello["controls"]][:2] == ["noop", "forward"]
        assert hello["image"].startswith("data:image/png;base64,") and hello["map"]
        socket.send_json({"type": "press", "control": "turn_left", "id": 7})
        socket.send_json({"type": "release", "control": "turn_left"})
        frame = socket.receive_json()
        assert frame["type"] == "frame" and frame["press_id"] == 7 and frame["frame_count"] == 1
        assert frame["truth"].startswith("data:image/png") and frame["state_bytes"] > 0

        with client.websocket_connect("/ws") as second:  # another tab: told, then closed
            busy = second.receive_json()
            assert busy["type"] == "busy" and "one generation runs at a time" in busy["message"]
            with pytest.raises(Exception) as closed:
                second.receive_json()
            assert getattr(closed.value, "code", BUSY_CLOSE_CODE) == BUSY_CLOSE_CODE

        socket.send_json({"type": "reset"})
        status = socket.receive_json()
        assert status["type"] == "status"
        assert "memory reset (ssm) before frame 1" in status["message"]
        socket.send_json({"type": "press", "control": "noop", "id": 8})
        socket.send_json({"type": "release", "control": "noop"})
        assert socket.receive_json()["press_id"] == 8
        socket.send_json({"type": "record"})
        status = socket.receive_json()
        assert status["type"] == "status" and "recorded 2 frames" in status["message"]
        written = json.loads((tmp_path / "play_000" / "play.json").read_text())
        assert written["resets_before_frames"] == [1]
        socket.send_json({"type": "restart"})
        again = socket.receive_json()
        assert again["type"] == "hello" and again["frame_count"] == 0
    assert session.frame_count == 0
