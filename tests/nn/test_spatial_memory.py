"""Latent spatial memory: geometry, the deterministic z-buffer, and streaming vs parallel stores."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lssvwm.nn import spatial_memory as sm

PATCH = 4
GRID = (4, 5)  # (hp, wp)
TOKENS = GRID[0] * GRID[1]
DIM = 3

# Jitted once for the whole file: eager dispatch compiles every op for every new shape (slow on
# CPU), and the model always runs these under jit.
pool_depth = jax.jit(sm.pool_depth, static_argnums=(1, 2))
unproject_tokens = jax.jit(sm.unproject_tokens, static_argnums=3)
frame_entries = jax.jit(sm.frame_entries, static_argnums=4)
project_points = jax.jit(sm.project_points, static_argnums=(3, 4))
zbuffer_project = jax.jit(sm.zbuffer_project, static_argnums=(4, 5))


def _rotation(rng) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    return q * np.linalg.det(q)  # a proper rotation (det +1)


def _pose(rotation, translation) -> np.ndarray:
    pose = np.eye(4, dtype=np.float32)
    pose[:3, :3], pose[:3, 3] = rotation, translation
    return pose


def _intrinsics(rng, grid=GRID, patch=PATCH) -> np.ndarray:
    h, w = grid[0] * patch, grid[1] * patch
    fx, fy = rng.uniform(0.8, 1.2, 2) * w
    cx, cy = np.array([w, h]) / 2 + rng.uniform(-1, 1, 2)
    return np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], np.float32)


def _small_rotation(rng, angle) -> np.ndarray:
    """Rotation by `angle` radians about a random axis (Rodrigues)."""
    axis = rng.standard_normal(3)
    x, y, z = axis / np.linalg.norm(axis)
    cross = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    return np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross


def _cameras(rng, batch, frames, grid=GRID, patch=PATCH):
    """A random walk of each stream's camera ([b, t, 4, 4]), so frames overlap; intrinsics."""
    poses = np.zeros((batch, frames, 4, 4), np.float32)
    for s in range(batch):
        rotation, position = _rotation(rng), rng.uniform(-1, 1, 3)
        for t in range(frames):
            poses[s, t] = _pose(rotation, position)
            rotation = rotation @ _small_rotation(rng, 0.1)
            position = position + rng.normal(0, 0.1, 3)
    intrinsics = [_intrinsics(rng, grid, patch) for _ in range(batch * frames)]
    return poses, np.stack(intrinsics).reshape(batch, frames, 3, 3)


def _frames(rng, batch, frames, grid=GRID, patch=PATCH, sky=0.2):
    """Random features, pooled depth (with sky), poses and intrinsics of `frames` frames."""
    hp, wp = grid
    depth = rng.uniform(0.5, 6.0, (batch, frames, hp * patch, wp * patch)).astype(np.float32)
    depth[rng.random(depth.shape) < sky] = np.inf
    depth[:, :, :patch, :patch] = np.inf  # one whole patch of sky per frame
    poses, intrinsics = _cameras(rng, batch, frames, grid, patch)
    features = rng.standard_normal((batch, frames, hp, wp, DIM)).astype(np.float32)
    return features, pool_depth(depth, patch), poses, intrinsics


# ---------------------------------------------------------------- pool_depth


def test_pool_depth_min_center_and_missing_values():
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.1, 9.0, (2, 3, 12, 8)).astype(np.float32)
    depth[rng.random(depth.shape) < 0.3] = np.inf
    depth[0, 0, 4:8, 4:8] = [[np.nan, -1.0, 0.0, -np.inf]] * 4  # a patch with no valid value
    depth[1, 2, 0:4, 0:4] = np.inf

    blocks = depth.reshape(2, 3, 3, 4, 2, 4).transpose(0, 1, 2, 4, 3, 5).reshape(2, 3, 3, 2, 16)
    usable = np.where(np.isfinite(blocks) & (blocks > 0), blocks, np.inf)
    pooled = np.asarray(pool_depth(depth, 4, "min"))
    np.testing.assert_array_equal(pooled, usable.min(-1))
    assert pooled[0, 0, 1, 1] == np.inf and pooled[1, 2, 0, 0] == np.inf
    assert pooled.dtype == np.float32

    # Center: pixel (i p + p // 2, j p + p // 2); the exact centre for odd p.
    center = np.asarray(pool_depth(depth, 4, "center"))
    usable = np.where(np.isfinite(depth) & (depth > 0), depth, np.inf)
    np.testing.assert_array_equal(center, usable[..., 2::4, 2::4])
    assert center[0, 0, 1, 1] == np.inf  # the nan pixel
    odd = np.asarray(pool_depth(depth[0, 0, :9, :6], 3, "center"))
    np.testing.assert_array_equal(odd, usable[0, 0, 1:9:3, 1:6:3])

    with pytest.raises(ValueError, match="patch_size"):
        pool_depth(depth, 5)
    with pytest.raises(ValueError, match="mode"):
        pool_depth(depth, 4, "bilinear")


# ---------------------------------------------------------------- z-buffer


def _reference_winners(entries, visible, cell, depth, num_cells):
    """Brute force: for each cell, scan all candidates with the documented rule. [b, T, n] (-1)."""
    _, _, frame, token, valid = (np.asarray(x) for x in entries)
    cell, depth, visible = np.asarray(cell), np.asarray(depth), np.asarray(visible)
    b, T, E = cell.shape
    winner = np.full((b, T, num_cells), -1)
    for s, t, c in np.ndindex(b, T, num_cells):
        best = None
        for e in range(E):
            if valid[s, e] and visible[s, t, e] and cell[s, t, e] == c:
                key = (-depth[s, t, e], frame[s, e], token[s, e], e)  # nearest, newest, ...
                if best is None or key > best:
                    best, winner[s, t, c] = key, e
    return winner


def _tied_entries(rng, batch=2, count=60):
    """Random points in a cube, many sharing an exact position (so exactly equal depths)."""
    xyz = rng.uniform(-3, 3, (batch, count, 3)).astype(np.float32)
    frame = rng.integers(0, 4, (batch, count)).astype(np.int32)
    token = rng.integers(0, TOKENS, (batch, count)).astype(np.int32)
    # Copies of entry 0..9 at 10..39: other frames, the same frame with other tokens, and exact
    # duplicates of (frame, token) (decided by the entry index).
    for copy in range(3):
        src, dst = np.arange(10), np.arange(10 + 10 * copy, 20 + 10 * copy)
        xyz[:, dst] = xyz[:, src]
        if copy == 0:
            frame[:, dst] = (frame[:, src] + 1) % 4
        if copy == 1:
            frame[:, dst] = frame[:, src]
            token[:, dst] = (token[:, src] + 1) % TOKENS
        if copy == 2:
            frame[:, dst], token[:, dst] = frame[:, src], token[:, src]
    return sm.Entries(
        feature_BED=jnp.asarray(rng.standard_normal((batch, count, DIM)), jnp.float32),
        xyz_BE3=jnp.asarray(xyz),
        frame_BE=jnp.asarray(frame),
        token_BE=jnp.asarray(token),
        valid_BE=jnp.asarray(rng.random((batch, count)) < 0.9),
    )


def test_zbuffer_matches_brute_force_with_ties_and_is_deterministic():
    rng = np.random.default_rng(1)
    entries = _tied_entries(rng)
    b, E = entries.valid_BE.shape
    frames = 3
    # Cameras 6 units from the origin facing it, a wide field of view: most points land inside.
    poses = np.zeros((b, frames, 4, 4), np.float32)
    for s, t in np.ndindex(b, frames):
        rotation = _rotation(rng)
        poses[s, t] = _pose(rotation, -rotation[:, 2] * 6.0)
    h, w = GRID[0] * PATCH, GRID[1] * PATCH
    intrinsics = np.broadcast_to(
        np.array([[w / 2.5, 0, w / 2], [0, w / 2.5, h / 2], [0, 0, 1]], np.float32),
        (b, frames, 3, 3),
    )
    visible = jnp.asarray(rng.random((b, frames, E)) < 0.85)

    project = functools.partial(zbuffer_project, patch_size=PATCH, grid_hw=GRID)
    result = project(entries, visible, poses, intrinsics)
    # Jitted like the z-buffer: XLA may fuse a*b + c into an fma, so eager depths can differ by
    # an ulp, and the winning depth is compared bit for bit.
    cell, depth = (
        np.asarray(x) for x in project_points(entries.xyz_BE3, poses, intrinsics, PATCH, GRID)
    )
    winner = _reference_winners(entries, visible, cell, depth, TOKENS)
    hit = winner >= 0
    index = np.maximum(winner, 0)
    take = lambda x: np.take_along_axis(x, index, axis=-1)
    features = np.asarray(entries.feature_BED)[np.arange(b)[:, None, None], index]
    expected = sm.Projection(
        feature_BThwD=np.where(hit[..., None], features, 0),
        hit_BThw=hit,
        depth_BThw=np.where(hit, take(depth), np.inf),
        frame_BThw=np.where(hit, take(np.asarray(entries.frame_BE)[:, None].repeat(frames, 1)), -1),
    )
    for got, want in zip(result, expected, strict=True):
        np.testing.assert_array_equal(np.asarray(got).reshape(want.shape), want)

    # The tie rules were exercised: cells with several candidates at exactly the winning depth.
    candidate = np.asarray(entries.valid_BE)[:, None] & np.asarray(visible) & (cell >= 0)
    tied = sum(
        ((cell[s, t] == c) & candidate[s, t] & (depth[s, t] == depth[s, t, winner[s, t, c]])).sum()
        > 1
        for s, t, c in zip(*np.nonzero(hit), strict=True)
    )
    assert tied >= 10, f"only {tied} tied cells"
    assert hit.mean() > 0.3, f"hit fraction {hit.mean():.2f}"

    for _ in range(3):  # bit-identical across repeated jitted runs
        for got, want in zip(project(entries, visible, poses, intrinsics), result, strict=True):
            assert np.array_equal(np.asarray(got), np.asarray(want))

    # Differentiable w.r.t. features: d sum(output) / d feature = the cells an entry wins.
    def total(feature_BED):
        out = project(entries._replace(feature_BED=feature_BED), visible, poses, intrinsics)
        return out.feature_BThwD.sum()

    grad = np.asarray(jax.grad(total)(entries.feature_BED))
    wins = np.array([[(winner[s] == e).sum() for e in range(E)] for s in range(b)], np.float32)
    np.testing.assert_array_equal(grad, np.broadcast_to(wins[..., None], grad.shape))


def test_project_points_matches_float64_pinhole():
    rng = np.random.default_rng(2)
    poses, intrinsics = _cameras(rng, 2, 3)
    # Around the first camera's view (and some behind it), as camera coordinates -> world.
    z = rng.uniform(-1, 6, (2, 200, 1))
    cam = np.concatenate([rng.uniform(-0.8, 0.8, (2, 200, 2)) * np.abs(z), z], -1)
    xyz = np.einsum("bij,bej->bei", poses[:, 0, :3, :3], cam) + poses[:, None, 0, :3, 3]
    xyz = xyz.astype(np.float32)
    cell, depth = project_points(jnp.asarray(xyz), poses, intrinsics, PATCH, GRID)

    R, t = poses[..., :3, :3].astype(np.float64), poses[..., :3, 3].astype(np.float64)
    cam = np.einsum("btji,btej->btei", R, xyz[:, None].astype(np.float64) - t[:, :, None])
    K = intrinsics.astype(np.float64)
    u = K[..., None, 0, 0] * cam[..., 0] / cam[..., 2] + K[..., None, 0, 2]
    v = K[..., None, 1, 1] * cam[..., 1] / cam[..., 2] + K[..., None, 1, 2]
    col, row = np.floor(u / PATCH), np.floor(v / PATCH)
    inside = (cam[..., 2] > sm.NEAR) & (col >= 0) & (col < GRID[1]) & (row >= 0) & (row < GRID[0])
    expected = np.where(inside, row * GRID[1] + col, -1)
    # Points within 1e-3 px of a cell edge (or of the near plane) may round either way in float32.
    edge_px = lambda x: np.abs(x - PATCH * np.round(x / PATCH))
    clear = (edge_px(u) > 1e-3) & (edge_px(v) > 1e-3) & (np.abs(cam[..., 2] - sm.NEAR) > 1e-3)
    assert clear.mean() > 0.95 and inside.mean() > 0.2, (clear.mean(), inside.mean())
    np.testing.assert_array_equal(np.asarray(cell)[clear], expected[clear])
    np.testing.assert_allclose(np.asarray(depth), cam[..., 2], rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- reprojection


def test_self_projection_lands_in_own_cell_with_own_features():
    rng = np.random.default_rng(3)
    grid = (8, 12)
    features, depth, poses, intrinsics = _frames(rng, 2, 1, grid=grid)
    entries = frame_entries(features, depth, poses, intrinsics, PATCH, jnp.array([0, 7]))
    cell, _ = project_points(entries.xyz_BE3, poses, intrinsics, PATCH, grid)
    own = np.broadcast_to(np.arange(grid[0] * grid[1]), (2, 1, grid[0] * grid[1]))
    valid = np.asarray(entries.valid_BE)[:, None]
    np.testing.assert_array_equal(np.asarray(cell)[valid], own[valid])

    visible = jnp.ones((2, 1, entries.valid_BE.shape[1]), bool)
    out = zbuffer_project(entries, visible, poses, intrinsics, PATCH, grid)
    finite = np.isfinite(np.asarray(depth))
    hit = np.asarray(out.hit_BThw)
    fraction = hit[finite].mean()
    assert 0 < (~finite).sum() and fraction >= 0.95, f"hits on {fraction:.1%} of finite cells"
    assert not hit[~finite].any()
    np.testing.assert_array_equal(np.asarray(out.feature_BThwD)[hit], features[hit])
    np.testing.assert_allclose(np.asarray(out.depth_BThw)[hit], np.asarray(depth)[hit], rtol=1e-5)
    frame = np.broadcast_to(np.array([0, 7])[:, None, None, None], hit.shape)
    np.testing.assert_array_equal(np.asarray(out.frame_BThw), np.where(hit, frame, -1))


def _maze_camera(x, y, heading, eye=0.5) -> np.ndarray:
    """camera_to_world of the maze3d convention (ARCHITECTURE.md, "Camera in maze3d")."""
    s, c = np.sin(heading), np.cos(heading)
    return _pose(np.array([[s, 0, c], [-c, 0, s], [0, -1, 0]]), (x, y, eye))


def _render_wall(pose, intrinsics, shape, normal, offset, top):
    """float64 depth of the wall {X: normal . X = offset, X_z <= top} at each pixel centre."""
    v, u = np.mgrid[: shape[0], : shape[1]] + 0.5
    K = intrinsics.astype(np.float64)
    ray_cam = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones(shape)], -1)
    ray = ray_cam @ pose[:3, :3].T.astype(np.float64)  # world direction per unit camera z
    z = (offset - normal @ pose[:3, 3]) / (ray @ normal)
    hit_z = pose[2, 3] + z * ray[..., 2]
    return np.where((z > 0) & (hit_z <= top), z, np.inf)


def test_two_cameras_see_a_wall_consistently():
    normal = np.array([1.0, 0.3, 0.1]) / np.linalg.norm([1.0, 0.3, 0.1])
    offset, top = 4.0, 1.2  # the wall's top edge leaves sky in both views
    pose_a, pose_b = _maze_camera(0.0, 0.0, 0.1), _maze_camera(0.5, -0.4, -0.25, eye=0.6)
    k_a = np.array([[30, 0, 18], [0, 30, 12], [0, 0, 1]], np.float32)  # 24 x 36 px, p = 3
    k_b = np.array([[160, 0, 96], [0, 160, 72], [0, 0, 1]], np.float32)  # 144 x 192 px, p = 1
    depth_a = _render_wall(pose_a, k_a, (24, 36), normal, offset, top).astype(np.float32)
    depth_b = _render_wall(pose_b, k_b, (144, 192), normal, offset, top).astype(np.float32)

    # A's token points (centre pooling with odd p: the patch-centre pixel) lie on the wall.
    xyz_a, valid_a = unproject_tokens(pool_depth(depth_a, 3, "center"), pose_a, k_a, 3)
    xyz_a, valid_a = np.asarray(xyz_a)[np.asarray(valid_a)], np.asarray(valid_a)
    assert 0.3 < valid_a.mean() < 0.95
    np.testing.assert_allclose(xyz_a @ normal, offset, atol=1e-4)
    assert (xyz_a[:, 2] <= top + 1e-4).all()

    # Projected into B at pixel resolution, each lands on B's own unprojection of that pixel.
    cell, z_b = project_points(xyz_a[None], pose_b[None, None], k_b[None, None], 1, (144, 192))
    cell, z_b = np.asarray(cell)[0, 0], np.asarray(z_b)[0, 0]
    xyz_b, valid_b = unproject_tokens(depth_b, pose_b, k_b, 1)
    xyz_b, valid_b = np.asarray(xyz_b).reshape(-1, 3), np.asarray(valid_b).reshape(-1)
    seen = (cell >= 0) & valid_b[np.maximum(cell, 0)]
    assert seen.mean() > 0.5, f"only {seen.mean():.0%} of A's points seen by B"
    distance = np.linalg.norm(xyz_a[seen] - xyz_b[cell[seen]], axis=-1)
    pixel = z_b[seen] / k_b[0, 0]  # one B pixel at that depth, in world units
    assert (distance <= pixel).all(), f"max {np.max(distance / pixel):.2f} B pixels apart"
    np.testing.assert_allclose(z_b[seen], depth_b.reshape(-1)[cell[seen]], rtol=0.02)


# ---------------------------------------------------------------- stores

FRAMES = 12
SPECS = {
    "ring_delay2_evicts": sm.StoreSpec("ring", 3, 0, 0.0, 2, TOKENS),
    "ring_no_delay": sm.StoreSpec("ring", 4, 0, 0.0, 0, TOKENS),
    "voxel_delay1_collides": sm.StoreSpec("voxel", 0, 13, 1.0, 1, TOKENS),
    "voxel_no_delay": sm.StoreSpec("voxel", 0, 64, 0.5, 0, TOKENS),
}


@functools.cache
def _jitted(spec):
    insert = jax.jit(functools.partial(sm.store_insert, spec))
    project = functools.partial(zbuffer_project, patch_size=PATCH, grid_hw=GRID)
    visible = jax.jit(functools.partial(sm.visible_entries, spec))
    return insert, project, visible


def _window(seed=4):
    rng = np.random.default_rng(seed)
    features, depth, poses, intrinsics = _frames(rng, 2, FRAMES, sky=0.05)
    write = rng.random((2, FRAMES)) < 0.85
    entries = frame_entries(features, depth, poses, intrinsics, PATCH, np.zeros(2, np.int32), write)
    return jax.tree.map(np.asarray, entries), poses, intrinsics


def _frame(entries, t):
    return jax.tree.map(lambda x: x[:, t * TOKENS : (t + 1) * TOKENS], entries)


def _streaming(spec, entries, poses, intrinsics, reset_at=None):
    """Insert frames one at a time; before inserting frame t, project the slots into camera t."""
    insert, project, _ = _jitted(spec)
    store, outputs, stores = sm.init_store(spec, 2, DIM), [], []
    for t in range(FRAMES):
        if t == reset_at:
            store = sm.store_reset(store, jnp.array([True, False]))
        stores.append(store)
        visible = jnp.ones((2, 1, spec.num_slots), bool)
        outputs.append(project(store.slots, visible, poses[:, t : t + 1], intrinsics[:, t : t + 1]))
        store = insert(store, _frame(entries, t))
    return jax.tree.map(lambda *x: jnp.concatenate(x, axis=1), *outputs), stores


def _parallel(spec, entries, poses, intrinsics, first=0):
    _, project, visible = _jitted(spec)
    targets = jnp.broadcast_to(jnp.arange(first, FRAMES), (2, FRAMES - first))
    shown = visible(entries, targets)
    return project(entries, shown, poses[:, first:], intrinsics[:, first:]), shown


def _assert_same(got, want):
    for name, x, y in zip(sm.Projection._fields, got, want, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=name)


@pytest.mark.parametrize("name", list(SPECS))
def test_streaming_store_equals_parallel_visibility(name):
    spec = SPECS[name]
    entries, poses, intrinsics = _window()
    streamed, stores = _streaming(spec, entries, poses, intrinsics)
    parallel, shown = _parallel(spec, entries, poses, intrinsics)
    _assert_same(streamed, parallel)
    assert np.asarray(parallel.hit_BThw)[:, -1].mean() > 0.2

    # The bound mattered: some past valid entries were evicted or superseded by the last target.
    tau = FRAMES - 1 - spec.delay - 1
    past = np.asarray(entries.valid_BE) & (np.asarray(entries.frame_BE) <= tau)
    dropped = (past & ~np.asarray(shown)[:, -1]).sum()
    assert dropped > 0 and np.asarray(shown)[:, -1].sum() > 0

    # Carried continuation: the store after frames [0, s) + frames [s, T) in parallel.
    s = 5
    rest = jax.tree.map(lambda x: x[:, s * TOKENS :], entries)
    flat = jax.tree.map(lambda x, y: jnp.concatenate([x, y], 1), sm.store_entries(stores[s]), rest)
    carried, _ = _parallel(spec, flat, poses, intrinsics, first=s)
    _assert_same(carried, jax.tree.map(lambda x: x[:, s:], parallel))


@pytest.mark.parametrize("name", ["ring_delay2_evicts", "voxel_delay1_collides"])
def test_store_reset_forgets_one_stream(name):
    spec, reset_at = SPECS[name], 6
    entries, poses, intrinsics = _window(seed=5)
    streamed, stores = _streaming(spec, entries, poses, intrinsics, reset_at=reset_at)
    before, after = stores[reset_at - 1], sm.store_reset(stores[reset_at - 1], jnp.array([1, 0]))
    assert not np.asarray(sm.store_entries(after).valid_BE)[0].any()
    assert np.asarray(sm.store_entries(before).valid_BE)[0].any()
    for x, y in zip(jax.tree.leaves(before), jax.tree.leaves(after), strict=True):
        np.testing.assert_array_equal(np.asarray(x)[1], np.asarray(y)[1])
    np.testing.assert_array_equal(after.next_frame_B, before.next_frame_B)

    # From the reset on: the parallel pass with stream 0's frames before the reset forgotten.
    forgotten = (np.arange(2)[:, None] == 0) & (np.asarray(entries.frame_BE) < reset_at)
    entries = entries._replace(valid_BE=entries.valid_BE & ~forgotten)
    parallel, _ = _parallel(spec, entries, poses, intrinsics)
    after_reset = lambda projection: jax.tree.map(lambda x: x[:, reset_at:], projection)
    _assert_same(after_reset(streamed), after_reset(parallel))
    assert np.asarray(streamed.hit_BThw)[0, reset_at:].any()


@pytest.mark.parametrize("kind", sm.STORE_KINDS)
def test_store_bytes_constant_over_long_rollouts(kind):
    spec = sm.StoreSpec(kind, 4, 32, 0.5, 2, 4)
    rng = np.random.default_rng(6)
    base = sm.Entries(
        feature_BED=jnp.asarray(rng.standard_normal((2, 4, 2)), jnp.float32),
        xyz_BE3=jnp.asarray(rng.uniform(-2, 2, (2, 4, 3)), jnp.float32),
        frame_BE=jnp.zeros((2, 4), jnp.int32),
        token_BE=jnp.broadcast_to(jnp.arange(4, dtype=jnp.int32), (2, 4)),
        valid_BE=jnp.ones((2, 4), bool),
    )

    @jax.jit
    def run(store, stop):
        def body(_, store):
            moved = base._replace(xyz_BE3=base.xyz_BE3 + 0.37 * store.next_frame_B[:, None, None])
            return sm.store_insert(spec, store, moved)

        return jax.lax.fori_loop(store.next_frame_B[0], stop, body, store)

    store_100 = run(sm.init_store(spec, 2, 2), 100)
    store_1000 = run(store_100, 1000)
    assert store_100.nbytes == store_1000.nbytes
    shapes = lambda store: jax.tree.map(lambda x: (x.shape, x.dtype), store)
    assert shapes(store_100) == shapes(store_1000)
    np.testing.assert_array_equal(store_1000.next_frame_B, [1000, 1000])
    frames = np.asarray(store_1000.slots.frame_BE)[np.asarray(store_1000.slots.valid_BE)]
    assert frames.size and frames.max() == 1000 - 1 - spec.delay


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(kind="lru"), "kind"),
        (dict(frames=0), "frames"),
        (dict(frames=2.5), "frames"),
        (dict(kind="voxel", slots=0), "slots"),
        (dict(kind="voxel", voxel_size=0.0), "voxel_size"),
        (dict(voxel_size=float("nan")), "voxel_size"),
        (dict(delay=-1), "delay"),
        (dict(tokens=0), "tokens"),
        (dict(tokens=True), "tokens"),
    ],
)
def test_bad_store_spec_names_the_field(kwargs, field):
    good = dict(kind="ring", frames=2, slots=8, voxel_size=0.5, delay=1, tokens=4)
    sm.StoreSpec(**good)
    with pytest.raises(ValueError, match=field):
        sm.StoreSpec(**{**good, **kwargs})
