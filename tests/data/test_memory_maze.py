"""Memory Maze recording: the episode contract, geometry and the `memory_maze` TFDS builder.

Geometry is checked two ways (ARCHITECTURE.md "Datasets", geometry convention):
  * exactly, against MuJoCo's own ray caster: the ray of each pixel centre built from the stored
    pose and intrinsics by the documented unprojection formula hits the scene at the stored
    depth (mj_ray returns the distance in units of the ray vector, which is camera z here);
  * by reprojection: a frame unprojected with its depth and pose lands in a nearby frame on the
    same colours where the depths agree, better than under the plausible mistakes (OpenGL axes
    kept, one axis flipped, depth taken as ray length, pixel centre at the corner).

The tests that run MuJoCo are skipped where the optional extra is not installed.
"""

import copy
import importlib.util
import json
import sys

import numpy as np
import pytest

from lssvwm.data import memory_maze_env as mme
from lssvwm.data.episodes import validate_episode
from lssvwm.data.memory_maze import DEFAULT_PARAMS, MemoryMaze, MemoryMazeConfig

HAVE_MEMORY_MAZE = all(importlib.util.find_spec(m) for m in ("memory_maze", "mujoco", "gym"))
needs_memory_maze = pytest.mark.skipif(
    not HAVE_MEMORY_MAZE,
    reason="needs the optional extra: pip install 'lssvwm[memory-maze]' "
    "(memory-maze, gym, dm-control, mujoco 3.x) and OSMesa or EGL for off-screen rendering",
)

MAZE_SIZE, IMAGE_SIZE, LENGTH = 9, 64, 40
WORLD_OFFSET = np.array([MAZE_SIZE, MAZE_SIZE, 0.0])  # half the maze (2 m cells): corner origin
RAY_CHECK_FRAMES = (0, 13, 26, 39)


# ---------------------------------------------------------------------------------------------
# Geometry helpers of the tests: ARCHITECTURE.md's formulas, written out independently.
# ---------------------------------------------------------------------------------------------


def _pixel_rays_cam(K, height, width, offset=0.5, normalise=False):
    """[H, W, 3] camera-frame rays with z = 1 through (u + offset, v + offset)."""
    v, u = np.mgrid[0:height, 0:width] + offset
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones(u.shape)], -1)
    if normalise:  # the "depth is ray length" mistake
        rays /= np.linalg.norm(rays, axis=-1, keepdims=True)
    return rays


def _unproject(depth_HW, K, c2w, **ray_kwargs):
    """World points [H, W, 3] = camera_to_world @ [z (u+.5-cx)/fx, z (v+.5-cy)/fy, z, 1]."""
    rays = _pixel_rays_cam(K, *depth_HW.shape, **ray_kwargs)
    points_cam = rays * depth_HW[..., None]
    return points_cam @ c2w[:3, :3].T + c2w[:3, 3]


def _project(points, K, c2w):
    """Continuous pixel coordinates (u, v) (pixel centres at +0.5) and camera z of world points."""
    cam = (points - c2w[:3, 3]) @ c2w[:3, :3]
    z = cam[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = K[0, 0] * cam[..., 0] / z + K[0, 2]
        v = K[1, 1] * cam[..., 1] / z + K[1, 2]
    return u, v, z


def _reprojection_score(episode, pairs, pose_fix=lambda c: c, **ray_kwargs):
    """(fraction of pixels landing on agreeing depth, mean colour error there) over pairs."""
    frames = episode["frames"].astype(np.float64)
    depth, K = episode["depth"], episode["intrinsics"].astype(np.float64)
    poses = [pose_fix(p.astype(np.float64)) for p in episode["camera_to_world"]]
    h, w = depth.shape[1:]
    agree_fractions, errors = [], []
    for s, t in pairs:
        finite = np.isfinite(depth[s])
        points = _unproject(np.where(finite, depth[s], 1.0), K, poses[s], **ray_kwargs)
        u, v, z = _project(points, K, poses[t])
        ui = np.floor(np.nan_to_num(u, nan=-1)).astype(int)
        vi = np.floor(np.nan_to_num(v, nan=-1)).astype(int)
        inside = finite & (z > 0.05) & (ui >= 0) & (ui < w) & (vi >= 0) & (vi < h)
        ui, vi = np.clip(ui, 0, w - 1), np.clip(vi, 0, h - 1)
        target_depth = depth[t][vi, ui]
        agree = inside & (np.abs(z - target_depth) < 0.03 * target_depth)
        agree_fractions.append(agree.sum() / finite.sum())
        colour_error = np.abs(frames[s] - frames[t][vi, ui]).mean(-1)
        errors.append(colour_error[agree].mean() if agree.any() else 255.0)
    return float(np.mean(agree_fractions)), float(np.mean(errors))


# ---------------------------------------------------------------------------------------------
# Pure conversions (no MuJoCo needed).
# ---------------------------------------------------------------------------------------------


def test_camera_pose_conversion_matches_the_maze3d_convention():
    """A level MuJoCo camera with heading psi gives ARCHITECTURE.md's OpenCV axes."""
    rng = np.random.default_rng(0)
    for psi in rng.uniform(-np.pi, np.pi, 8):
        forward = np.array([np.cos(psi), np.sin(psi), 0.0])
        right = np.array([np.sin(psi), -np.cos(psi), 0.0])
        up = np.array([0.0, 0.0, 1.0])
        cam_xmat = np.stack([right, up, -forward], axis=1)  # OpenGL: x right, y up, z back
        position = rng.normal(size=3)
        pose = mme.camera_to_world_opencv(position, cam_xmat.reshape(-1), WORLD_OFFSET)
        np.testing.assert_allclose(pose[:3, 0], right, atol=1e-6)
        np.testing.assert_allclose(pose[:3, 1], [0, 0, -1], atol=1e-6)
        np.testing.assert_allclose(pose[:3, 2], forward, atol=1e-6)
        np.testing.assert_allclose(pose[:3, 3], position + WORLD_OFFSET, atol=1e-6)
        np.testing.assert_array_equal(pose[3], [0, 0, 0, 1])
        assert pose.dtype == np.float32


def test_intrinsics_from_vertical_field_of_view():
    K = mme.intrinsics_from_fovy(80.0, 48, 64)
    assert K.dtype == np.float32 and K[0, 0] == K[1, 1]  # square pixels
    np.testing.assert_allclose(K[:2, 2], [32.0, 24.0])
    # A point at the upper edge of the field of view projects onto the top image border.
    half = np.radians(40.0)
    u, v, _ = _project(np.array([0.0, -np.tan(half), 1.0]), K, np.eye(4))
    np.testing.assert_allclose([u, v], [32.0, 0.0], atol=1e-4)
    with pytest.raises(ValueError, match="fovy"):
        mme.intrinsics_from_fovy(180.0, 64, 64)


def test_sky_depth_becomes_inf():
    depth = np.array([[0.5, 899.0], [14.0, 332.0]], np.float32)  # sky: > 1325 / 4
    out = mme.depth_with_sky_as_inf(depth, far_plane=1325.0)
    np.testing.assert_array_equal(out, [[0.5, np.inf], [14.0, np.inf]])
    assert out.dtype == np.float32


def test_config_and_builder_params_are_checked():
    with pytest.raises(ValueError, match="maze_size"):
        MemoryMazeConfig(maze_size=10)
    with pytest.raises(ValueError, match="episode_length"):
        MemoryMazeConfig(episode_length=0)
    with pytest.raises(ValueError, match="mazesize"):
        MemoryMaze.builder_config_for({"mazesize": 9})
    with pytest.raises(ValueError, match="data.memory_maze.explorer.speed is unknown"):
        MemoryMaze.builder_config_for({"explorer": {"speed": 2}})
    with pytest.raises(ValueError, match="multiple of segment_length"):
        MemoryMaze.builder_config_for({"episode_length": 100, "segment_length": 64})
    # Params equal to a preset (after defaults fill in) select it; any change gets its own name.
    assert MemoryMaze.builder_config_for({}).name == "9x9"
    assert MemoryMaze.builder_config_for(dict(DEFAULT_PARAMS)).name == "9x9"
    custom = MemoryMaze.builder_config_for({"seed": 1})
    assert custom.name.startswith("custom_") and custom.params["seed"] == 1


def test_episode_seeds_differ_by_split_and_index():
    seeds = {mme.episode_seeds(0, i, split)[0] for i in range(5) for split in ("train", "test")}
    assert len(seeds) == 10
    assert mme.episode_seeds(3, 1)[0] == mme.episode_seeds(3, 1)[0]
    with pytest.raises(ValueError, match="split"):
        mme.episode_seeds(0, 0, "validation")


# ---------------------------------------------------------------------------------------------
# Recording in MuJoCo.
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def recording():
    """One short episode, the environment it came from, and MuJoCo state snapshots."""
    env = mme.make_environment(MAZE_SIZE, IMAGE_SIZE, seed=1234)
    snapshots = {}

    def snapshot(frames_done):
        if frames_done - 1 in RAY_CHECK_FRAMES:
            snapshots[frames_done - 1] = copy.copy(env.physics.data.ptr)

    config = MemoryMazeConfig(episode_length=LENGTH, image_size=IMAGE_SIZE)
    episode = mme._record(env, config, np.random.default_rng(5), snapshot)
    yield episode, env, snapshots
    env.close()


def _ray_cast_depth(model, data, K, c2w, **ray_kwargs):
    """Camera z of the first surface along each pixel's ray, by MuJoCo's ray caster (+inf: none)."""
    import mujoco

    rays_world = _pixel_rays_cam(K, IMAGE_SIZE, IMAGE_SIZE, **ray_kwargs) @ c2w[:3, :3].T
    origin = c2w[:3, 3] - WORLD_OFFSET  # back to MuJoCo's world frame
    visible_groups = np.array([1, 1, 1, 0, 0, 0], np.uint8)  # what the renderer draws
    hit_geom = np.zeros(1, np.int32)
    out = np.full((IMAGE_SIZE, IMAGE_SIZE), np.inf)
    for v in range(IMAGE_SIZE):
        for u in range(IMAGE_SIZE):
            distance = mujoco.mj_ray(
                model, data, origin, rays_world[v, u], visible_groups, 1, -1, hit_geom
            )
            if distance >= 0:
                out[v, u] = distance
    return out


@needs_memory_maze
def test_recorded_episode_follows_the_contract(recording):
    episode, _, _ = recording
    validate_episode(episode)
    assert episode["frames"].shape == (LENGTH, IMAGE_SIZE, IMAGE_SIZE, 3)
    assert episode["actions"][0] == 0 and set(episode["actions"]) <= set(range(6))
    assert len(set(episode["actions"][1:])) >= 3, "the policy should use several actions"
    np.testing.assert_allclose(
        episode["intrinsics"], mme.intrinsics_from_fovy(80.0, IMAGE_SIZE, IMAGE_SIZE)
    )
    assert np.isinf(episode["depth"]).any(), "the sky should be visible somewhere"
    finite = episode["depth"][np.isfinite(episode["depth"])]
    assert finite.max() < 30.0, "nothing in a 9x9 maze is farther than its diagonal"
    moved = np.linalg.norm(episode["position"][-1, :2] - episode["position"][0, :2])
    assert moved > 1.0, "the agent should walk"


@needs_memory_maze
def test_depth_pose_and_intrinsics_match_mujoco_ray_caster(recording):
    episode, env, snapshots = recording
    model = env.physics.model.ptr
    K = episode["intrinsics"].astype(np.float64)
    mistakes = {
        "opengl axes": dict(pose_fix=lambda c: c @ np.diag([1.0, -1.0, -1.0, 1.0])),
        "depth as ray length": dict(normalise=True),
        "pixel centre at corner": dict(offset=0.0),
    }
    matched = {name: [] for name in mistakes}
    for t in RAY_CHECK_FRAMES:
        c2w = episode["camera_to_world"][t].astype(np.float64)
        depth = episode["depth"][t]
        reference = _ray_cast_depth(model, snapshots[t], K, c2w)
        assert (np.isinf(reference) == np.isinf(depth)).mean() > 0.995, f"frame {t}: sky"
        both = np.isfinite(reference) & np.isfinite(depth)
        relative = np.abs(depth[both] - reference[both]) / reference[both]
        assert np.mean(relative < 1e-4) > 0.99, f"frame {t}: {np.median(relative):.2e}"
        for name, mistake in mistakes.items():
            pose_fix = mistake.get("pose_fix", lambda c: c)
            ray_kwargs = {k: v for k, v in mistake.items() if k != "pose_fix"}
            wrong = _ray_cast_depth(model, snapshots[t], K, pose_fix(c2w), **ray_kwargs)
            ok = np.isfinite(wrong) & np.isfinite(depth)
            close = np.abs(depth[ok] - wrong[ok]) < 1e-4 * wrong[ok]
            matched[name].append(close.sum() / depth.size)
    for name, fractions in matched.items():
        assert np.mean(fractions) < 0.5, f"{name}: {np.mean(fractions):.2f} of pixels match"


@needs_memory_maze
def test_world_frame_floor_walls_sky_and_agent_position(recording):
    episode, _, _ = recording
    K = episode["intrinsics"].astype(np.float64)
    extent = 2.0 * MAZE_SIZE
    for t in range(0, LENGTH, 5):
        c2w = episode["camera_to_world"][t].astype(np.float64)
        depth = episode["depth"][t]
        finite = np.isfinite(depth)
        points = _unproject(np.where(finite, depth, 1.0), K, c2w)[finite]
        x, y, z = points.T
        assert z.min() > -1e-3 and z.max() < 1.5 + 1e-3, "floor at 0, wall tops at 1.5 m"
        assert x.min() > -1e-3 and y.min() > -1e-3 and max(x.max(), y.max()) < extent + 1e-3
        # Above the target spheres (radius 0.6 m) everything is a wall face on a cell border.
        high = z > 0.65
        to_border = np.minimum(np.abs(x - 2 * np.round(x / 2)), np.abs(y - 2 * np.round(y / 2)))
        assert np.all(to_border[high] < 2e-3), f"frame {t}: wall points off the cell borders"
        # Sky pixels look upwards (OpenCV y points down: a flipped y would look at the floor).
        sky_rays = (_pixel_rays_cam(K, *depth.shape) @ c2w[:3, :3].T)[~finite]
        assert np.all(sky_rays[:, 2] > 0), f"frame {t}: sky below the horizon"
        # The camera sits 0.15 m ahead of the agent's centre, 0.9 m up, looking along its heading.
        px, py, heading = episode["position"][t].astype(np.float64)
        forward = np.array([np.cos(heading), np.sin(heading)])
        np.testing.assert_allclose(c2w[:2, 3], [px, py] + 0.15 * forward, atol=2e-3)
        np.testing.assert_allclose(c2w[2, 3], 0.9, atol=2e-3)
        camera_forward = c2w[:2, 2] / np.linalg.norm(c2w[:2, 2])
        np.testing.assert_allclose(camera_forward, forward, atol=1e-3)


@needs_memory_maze
def test_reprojection_matches_colours_better_than_convention_mistakes(recording):
    episode, _, _ = recording
    pairs = [(t, t + k) for t in range(0, LENGTH - 2, 3) for k in (1, 2)]
    agree, error = _reprojection_score(episode, pairs)
    assert agree > 0.3 and error < 12.0, (agree, error)
    mistakes = {
        "opengl axes": dict(pose_fix=lambda c: c @ np.diag([1.0, -1.0, -1.0, 1.0])),
        "y flipped": dict(pose_fix=lambda c: c @ np.diag([1.0, -1.0, 1.0, 1.0])),
        "x flipped": dict(pose_fix=lambda c: c @ np.diag([-1.0, 1.0, 1.0, 1.0])),
        "depth as ray length": dict(normalise=True),
    }
    for name, mistake in mistakes.items():
        wrong_agree, wrong_error = _reprojection_score(episode, pairs, **mistake)
        # Fewer pixels land where the depths agree, and where they do the colours are no closer.
        assert wrong_agree < 0.8 * agree, (name, wrong_agree, agree)
        assert wrong_error > error - 0.5, (name, wrong_error, error)


@needs_memory_maze
def test_vectorised_target_activation_matches_dm_control(recording):
    """The per-substep contact check we swap in decides exactly as dm_control's loop does."""
    from dm_control.locomotion.props import target_sphere

    _, env, _ = recording
    physics = env.physics
    target = mme._composer_environment(env).task._targets[0]
    for _ in range(20):  # the rolling ball hops now and then: wait for a contact
        if physics.data.ncon:
            break
        env.step(0)
    contact = physics.data.contact
    in_contact = {int(g) for g in np.concatenate([contact.geom1, contact.geom2])}
    assert in_contact, "the ball should touch the floor"
    not_in_contact = next(g for g in range(physics.model.ngeom) if g not in in_contact)
    saved_id = target._geom_id
    try:
        for geom_id in (*sorted(in_contact), not_in_contact):
            for specific in (None, [geom_id], [not_in_contact]):
                results = []
                for update in (
                    target_sphere.TargetSphere._update_activation,
                    mme._target_activation_vectorised,
                ):
                    target.reset(physics)
                    target._geom_id = geom_id
                    target._specific_collision_geom_ids = specific
                    update(target, physics)
                    results.append(target.activated)
                assert results[0] == results[1], (geom_id, specific, results)
    finally:
        target._geom_id, target._specific_collision_geom_ids = saved_id, None
        target.reset(physics)


@needs_memory_maze
def test_tiny_dataset_builds_in_parallel_and_reads_back_without_tensorflow(tmp_path):
    import tensorflow_datasets as tfds

    from lssvwm.data.episodes import join_segments

    params = {"episode_length": 16, "segment_length": 8, "train_episodes": 1, "test_episodes": 1}
    builder = MemoryMaze(
        config=MemoryMaze.builder_config_for(params), data_dir=tmp_path, num_workers=2
    )
    builder.download_and_prepare()
    name = f"memory_maze/{builder.builder_config.name}"
    sources = tfds.data_source(name, data_dir=tmp_path)
    assert {split: len(source) for split, source in sources.items()} == {"train": 2, "test": 2}
    stored = join_segments([sources["train"][0], sources["train"][1]])
    for record in (sources["train"][0], sources["test"][1]):
        assert record["frames"].shape == (8, 64, 64, 3) and record["depth"].dtype == np.float32
    assert json.loads(json.dumps(builder.params)) == builder.params
    # Stored data equal the recording of the same episode (deterministic per seed and index).
    fresh = mme.record_episode(builder.recording_config(), 0, split="train")
    for field, value in fresh.items():
        np.testing.assert_array_equal(stored[field], value, err_msg=field)
    assert "tensorflow" not in sys.modules


@needs_memory_maze
@pytest.mark.slow
def test_exploring_policy_in_memory_maze_revisits_and_does_not_stare_at_walls():
    """A Memory Maze-length episode (1000 steps): coverage, revisits, little wall-staring."""
    config = MemoryMazeConfig(episode_length=1000, seed=7)
    episode = mme.record_episode(config, 0)
    depth = episode["depth"]
    centre = depth[:, 24:40, 24:40].reshape(len(depth), -1)
    assert np.mean(centre.min(axis=1) < 0.5) < 0.05, "the view centre is rarely at a wall"
    cells = [tuple(c) for c in np.floor(episode["position"][:, :2] / 2).astype(int)]
    assert len(set(cells)) >= 25
    last_seen, gaps = {}, []
    for t, cell in enumerate(cells):
        if cell in last_seen and t - last_seen[cell] > 1:
            gaps.append(t - last_seen[cell])
        last_seen[cell] = t
    assert len(gaps) >= 50 and max(gaps) >= 300, "places are revisited, some much later"
    moving = np.isin(episode["actions"], [1, 4, 5]).mean()
    assert moving > 0.5
