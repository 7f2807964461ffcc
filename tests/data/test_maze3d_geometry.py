"""maze3d geometry: the renderer against a brute-force ray tracer, unprojection onto the maze's
surfaces, and reprojection between nearby frames under the stated convention vs. its
plausible mistakes (ARCHITECTURE.md "Datasets": OpenCV camera, depth = camera z)."""

import numpy as np
import pytest

from lssvwm.data import maze3d, maze_explorer, maze_grid, maze_render

# Non-square frames catch height/width mix-ups.
PARAMS = maze3d.Maze3dParams(
    height=24,
    width=32,
    maze_rows=5,
    maze_cols=5,
    num_colors=8,
    num_landmarks=6,
    episode_length=384,
    train_episodes=1,
    test_episodes=0,
    reasoning_episodes=0,
)


@pytest.fixture(scope="module")
def episode_and_maze():
    return maze3d.generate_episode(PARAMS, "train", 0, with_maze=True)


def _pixel_rays(intrinsics, height, width):
    """Camera-frame (xc, yc) of every pixel centre, [H, W] each."""
    u = np.arange(width) + 0.5
    v = np.arange(height) + 0.5
    xc = (u[None, :] - intrinsics[0, 2]) / intrinsics[0, 0]
    yc = (v[:, None] - intrinsics[1, 2]) / intrinsics[1, 1]
    return np.broadcast_to(xc, (height, width)), np.broadcast_to(yc, (height, width))


def unproject(depth_HW, camera_to_world, intrinsics, axes=None, ray_length=False):
    """World points [H, W, 3] per ARCHITECTURE.md; `axes` flips camera axes, `ray_length`
    treats the stored depth as the distance along the ray (the plausible mistakes)."""
    xc, yc = _pixel_rays(intrinsics, *depth_HW.shape)
    z = depth_HW.astype(np.float64)
    if ray_length:
        z = z / np.sqrt(xc**2 + yc**2 + 1)
    camera = np.stack([z * xc, z * yc, z], -1) * (np.ones(3) if axes is None else axes)
    pose = camera_to_world.astype(np.float64)
    return camera @ pose[:3, :3].T + pose[:3, 3]


def project(points, camera_to_world, intrinsics, axes=None):
    """Pixel coordinates (u, v) (continuous, pixel centres at +0.5) and camera z of points."""
    pose = camera_to_world.astype(np.float64)
    camera = ((points - pose[:3, 3]) @ pose[:3, :3]) * (np.ones(3) if axes is None else axes)
    z = camera[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = intrinsics[0, 0] * camera[..., 0] / z + intrinsics[0, 2]
        v = intrinsics[1, 1] * camera[..., 1] / z + intrinsics[1, 2]
    return u, v, z


# ------------------------------------------------------------------------------------------
# Brute-force reference renderer: every pixel's 3-D ray against every box, plane and pillar.
# ------------------------------------------------------------------------------------------


def reference_depth_and_kind(maze, position, camera):
    k = camera.intrinsics().astype(np.float64)
    xc, yc = _pixel_rays(k, camera.height, camera.width)
    pose = maze_render.camera_to_world(position[None], camera.eye_height)[0].astype(np.float64)
    direction = np.stack([xc, yc, np.ones_like(xc)], -1) @ pose[:3, :3].T  # camera z = 1
    origin = pose[:3, 3]
    best = np.full(xc.shape, np.inf)
    kind = np.full(xc.shape, -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        for value, height in ((maze_render.FLOOR, 0.0), (maze_render.CEILING, maze.wall_height)):
            t = (height - origin[2]) / direction[..., 2]
            closer = (t > 0) & (t < best)
            best, kind = np.where(closer, t, best), np.where(closer, value, kind)
        for ix, iy in np.argwhere(maze.solid):
            lo = np.array([ix, iy, 0.0])
            hi = np.array([ix + 1, iy + 1, maze.wall_height])
            t1, t2 = (lo - origin) / direction, (hi - origin) / direction
            t_near = np.nanmax(np.minimum(t1, t2), -1)
            t_far = np.nanmin(np.maximum(t1, t2), -1)
            closer = (t_near <= t_far) & (t_near > 0) & (t_near < best)
            best, kind = np.where(closer, t_near, best), np.where(closer, maze_render.WALL, kind)
        for cx, cy in maze.landmarks_xy:
            ox, oy = origin[0] - cx, origin[1] - cy
            a = direction[..., 0] ** 2 + direction[..., 1] ** 2
            b = ox * direction[..., 0] + oy * direction[..., 1]
            c = ox * ox + oy * oy - maze_grid.LANDMARK_RADIUS**2
            t = (-b - np.sqrt(b * b - a * c)) / a
            z = origin[2] + t * direction[..., 2]
            closer = (t > 0) & (t < best) & (z >= 0) & (z <= maze.wall_height)
            best = np.where(closer, t, best)
            kind = np.where(closer, maze_render.LANDMARK, kind)
    return best, kind


def test_renderer_matches_brute_force_reference(episode_and_maze):
    _, maze = episode_and_maze
    camera = PARAMS.camera()
    rng = np.random.default_rng(0)
    free = maze.free_blocks()
    poses = []
    while len(poses) < 6:  # arbitrary continuous poses, not only the explorer's lattice
        block = free[rng.integers(len(free))]
        xy = block + rng.uniform(0.3, 0.7, 2)
        if np.min(np.linalg.norm(maze.landmarks_xy - xy, axis=-1)) > 0.2:
            poses.append([*xy, rng.uniform(-np.pi, 3 * np.pi)])
    poses = np.array(poses)
    _, depth, kind, _ = maze_render.render(maze, poses, camera, return_surface=True)
    for i, pose in enumerate(poses):
        ref_depth, ref_kind = reference_depth_and_kind(maze, pose, camera)
        np.testing.assert_allclose(depth[i], ref_depth, rtol=1e-5, atol=1e-5)
        # Labels may differ only where two surfaces tie (an edge through a pixel centre).
        assert np.mean(kind[i] == ref_kind) > 0.995


def test_camera_matrix_follows_the_stated_convention():
    pose = maze_render.camera_to_world(np.array([[2.5, 3.5, 0.3]], np.float32), 0.5)[0]
    psi = 0.3
    np.testing.assert_allclose(pose[:3, 0], [np.sin(psi), -np.cos(psi), 0], atol=1e-6)
    np.testing.assert_allclose(pose[:3, 1], [0, 0, -1], atol=1e-6)
    np.testing.assert_allclose(pose[:3, 2], [np.cos(psi), np.sin(psi), 0], atol=1e-6)
    np.testing.assert_allclose(pose[:, 3], [2.5, 3.5, 0.5, 1], atol=1e-6)
    np.testing.assert_allclose(np.linalg.det(pose[:3, :3]), 1.0, atol=1e-6)  # right-handed


# ------------------------------------------------------------------------------------------
# Unprojection lands on the maze's surfaces.
# ------------------------------------------------------------------------------------------


def _surface_residual(maze, points):
    """Distance [..] from each world point to the nearest visible surface of the maze.

    Surfaces: floor, ceiling, block faces between a wall block and a free block (within the
    wall height), pillar mantles.
    """
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    inside = (z > -1e-3) & (z < maze.wall_height + 1e-3)
    residual = np.minimum(np.abs(z), np.abs(z - maze.wall_height))
    nx, ny = maze.solid.shape
    for coord, other, axis in ((x, y, 0), (y, x, 1)):
        plane = np.rint(coord)
        dist = np.abs(coord - plane)
        i = np.clip(plane.astype(int), 1, (nx if axis == 0 else ny) - 1)
        j = np.clip(np.floor(other).astype(int), 0, (ny if axis == 0 else nx) - 1)
        a = maze.solid[i - 1, j] if axis == 0 else maze.solid[j, i - 1]
        b = maze.solid[i, j] if axis == 0 else maze.solid[j, i]
        is_wall_face = (a != b) & inside
        residual = np.minimum(residual, np.where(is_wall_face, dist, np.inf))
    for cx, cy in maze.landmarks_xy:
        radial = np.abs(np.hypot(x - cx, y - cy) - maze_grid.LANDMARK_RADIUS)
        residual = np.minimum(residual, np.where(inside, radial, np.inf))
    return residual


def test_unprojected_pixels_land_on_walls_floor_and_ceiling(episode_and_maze):
    episode, maze = episode_and_maze
    camera = PARAMS.camera()
    frames_idx = np.arange(0, PARAMS.episode_length, 7)
    _, _, kind, block = maze_render.render(
        maze, episode["position"][frames_idx], camera, return_surface=True
    )
    for n, t in enumerate(frames_idx):
        points = unproject(
            episode["depth"][t], episode["camera_to_world"][t], episode["intrinsics"]
        )
        assert np.max(_surface_residual(maze, points)) < 1e-3, f"frame {t}"
        k = kind[n]
        np.testing.assert_allclose(points[k == maze_render.FLOOR][:, 2], 0.0, atol=1e-4)
        np.testing.assert_allclose(
            points[k == maze_render.CEILING][:, 2], maze.wall_height, atol=1e-4
        )
        # Wall pixels lie on a face of the very block the renderer says they show.
        walls = k == maze_render.WALL
        wall_points, wall_blocks = points[walls], block[n][walls]
        lo, hi = wall_blocks, wall_blocks + 1
        assert np.all((wall_points[:, :2] > lo - 1e-3) & (wall_points[:, :2] < hi + 1e-3))
        on_face = np.min(
            np.abs(np.concatenate([wall_points[:, :2] - lo, wall_points[:, :2] - hi], -1)), -1
        )
        assert np.max(on_face) < 1e-3
        assert np.all((wall_points[:, 2] >= -1e-4) & (wall_points[:, 2] <= maze.wall_height + 1e-4))
    assert (kind == maze_render.LANDMARK).any() or maze.landmarks_xy.size  # pillars exist


def test_flipped_vertical_axis_fails_unprojection(episode_and_maze):
    episode, maze = episode_and_maze
    t = 5
    _, _, kind, _ = maze_render.render(
        maze, episode["position"][t : t + 1], PARAMS.camera(), return_surface=True
    )
    args = (episode["depth"][t], episode["camera_to_world"][t], episode["intrinsics"])
    wrong = unproject(*args, axes=np.array([1.0, -1.0, 1.0]))
    floor = kind[0] == maze_render.FLOOR
    assert floor.any()
    assert np.all(np.abs(wrong[floor][:, 2]) > 0.1)  # floor pixels leave the floor
    # With the eye below mid-height (the default), they do not land on the ceiling either.
    assert PARAMS.eye_height != maze.wall_height / 2
    assert np.mean(_surface_residual(maze, wrong) > 1e-2) > 0.3


# ------------------------------------------------------------------------------------------
# Reprojection between nearby frames.
# ------------------------------------------------------------------------------------------


def reprojection_agreement(episode, a, b, axes=None, ray_length=False):
    """(Fraction of frame a's pixels whose surface point reappears in frame b, fraction of the
    depth-consistent ones whose colour agrees.)

    A point reappears when its inverse depth lies within (1% of) the range of b's four
    nearest pixel centres (exact for planes, whose inverse depth is affine in the image; the
    four must not straddle a depth edge) and one of those pixels has its colour (within 8
    levels per channel)."""
    k = episode["intrinsics"]
    height, width = episode["depth"].shape[1:]
    points = unproject(episode["depth"][a], episode["camera_to_world"][a], k, axes, ray_length)
    u, v, z = project(points, episode["camera_to_world"][b], k, axes)
    depth_b = episode["depth"][b].astype(np.float64)
    if ray_length:
        xc, yc = _pixel_rays(k, height, width)
        depth_b = depth_b / np.sqrt(xc**2 + yc**2 + 1)
    with np.errstate(invalid="ignore"):
        j0, i0 = np.floor(u - 0.5), np.floor(v - 0.5)  # top-left of the 4 nearest centres
        valid = (z > 0) & (j0 >= 0) & (j0 < width - 1) & (i0 >= 0) & (i0 < height - 1)
    j0 = np.where(valid, j0, 0).astype(int)
    i0 = np.where(valid, i0, 0).astype(int)
    corners = np.stack([1 / depth_b[i0 + di, j0 + dj] for di in (0, 1) for dj in (0, 1)], -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv_z = 1 / z
    tol = 0.01 * inv_z
    lo, hi = corners.min(-1), corners.max(-1)
    smooth = hi - lo <= 0.25 * hi  # no depth edge among the four (it would bracket anything)
    consistent = valid & smooth & (inv_z >= lo - tol) & (inv_z <= hi + tol)
    # The point lies among those four pixel centres; nearest-pixel sampling of thin stripes
    # may pick either side of an edge, so any of the four may carry its colour.
    colour_a = episode["frames"][a].astype(int)
    same = np.zeros(consistent.shape, bool)
    for di in (0, 1):
        for dj in (0, 1):
            colour_b = episode["frames"][b][i0 + di, j0 + dj].astype(int)
            same |= np.all(np.abs(colour_b - colour_a) <= 8, -1)
    agreement = float(np.mean(same[consistent])) if consistent.any() else 0.0
    return float(np.mean(consistent & same)), agreement


def _pairs(actions, accept, span, limit=8):
    """Up to `limit` frame pairs (t, t + span), spread over the episode, whose `span`
    actions in between satisfy `accept`."""
    found = [
        (t, t + span)
        for t in range(1, len(actions) - span)
        if accept(list(actions[t + 1 : t + 1 + span]))
    ]
    assert found, "no such motion in the episode"
    return found[:: max(1, len(found) // limit)][:limit]


TURN = {maze_explorer.TURN_LEFT, maze_explorer.TURN_RIGHT}
MOTIONS = {
    "turning": (lambda w: set(w) <= TURN, 1),
    "walking then turning": (lambda w: maze_explorer.FORWARD in w and TURN & set(w), 3),
    "walking": (lambda w: set(w) == {maze_explorer.FORWARD}, 1),
    "stepping backwards": (lambda w: set(w) == {maze_explorer.BACKWARD}, 1),
}
MISTAKES = {
    "flipped x": dict(axes=np.array([-1.0, 1.0, 1.0])),
    "OpenGL axes (y up, z back)": dict(axes=np.array([1.0, -1.0, -1.0])),
    "ray length as depth": dict(ray_length=True),
}
# A straight move along the optical axis commutes with mirroring x, and the OpenGL flip maps
# the corridor's walls, floor and ceiling (planes parallel to the motion) onto themselves, so
# only turning reveals those two; the vertical flip is caught by unprojection (above).
DETECTABLE = {
    "turning": tuple(MISTAKES),
    "walking then turning": tuple(MISTAKES),
    "walking": ("ray length as depth",),
    "stepping backwards": ("ray length as depth",),
}


@pytest.mark.parametrize("motion", list(MOTIONS))
def test_reprojection_matches_colours_and_beats_mistakes(episode_and_maze, motion):
    episode, _ = episode_and_maze
    accept, span = MOTIONS[motion]
    pairs = _pairs(episode["actions"], accept, span)
    right = np.array([reprojection_agreement(episode, a, b) for a, b in pairs])
    # Where the depth agrees, the colours agree: the same surface point has the same colour.
    assert right[:, 1].min() > 0.95, f"{motion}: colour agreement {right[:, 1]}"
    # Moving 0.25 m in a 1 m corridor with a 90 degree view loses the nearest walls.
    assert right[:, 0].mean() > 0.3, f"{motion}: only {right[:, 0]} reproject"
    for name in DETECTABLE[motion]:
        wrong = np.array(
            [reprojection_agreement(episode, a, b, **MISTAKES[name]) for a, b in pairs]
        )
        assert right[:, 0].mean() > wrong[:, 0].mean() + 0.1, (
            f"{motion}: {name} scores {wrong[:, 0].mean():.2f} vs {right[:, 0].mean():.2f}"
        )
