"""First-person ray-cast renderer for maze3d, vectorised over all frames of an episode.

Geometry follows ARCHITECTURE.md ("Datasets", "Camera in maze3d"):
  * OpenCV camera axes: x right, y down, z forward; pixel (u, v) has its centre at
    (u + 0.5, v + 0.5); K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]].
  * `position[t] = (x, y, psi)`, heading psi counter-clockwise from world +x;
    camera_to_world has columns x = (sin psi, -cos psi, 0), y = (0, 0, -1),
    z = (cos psi, sin psi, 0) and translation (x, y, eye_height).
  * depth is the camera-frame z of the surface through the pixel centre, not the ray length.

Because the camera is level, the ray through pixel (u, v) is
`eye + s * (f + xc[u] * r) + s * (0, 0, -yc[v])` with f, r the forward and right axes and
xc = (u + 0.5 - cx) / fx, yc = (v + 0.5 - cy) / fy: its parameter s *is* the camera depth, and
its horizontal part depends on the column only. So each frame casts one 2-D ray per column
through the block grid (a DDA walk, all frames and columns at once), intersects it with the
pillar landmarks, and every pixel then picks the nearest of that column's vertical surface, the
floor (z = 0) and the ceiling (z = wall_height).

Colours depend only on the surface point (no distance fog or view-dependent lighting), so a
surface seen from two frames has the same colour in both: walls take their block's colour with
its stripe pattern and a fixed shade per face orientation, pillars their colour with bands and
a shade fixed by the side they face, the floor a two-tone checkerboard of 1 m tiles, the
ceiling a flat colour. Every pixel is an index into a small per-maze colour table (built by
`color_table`), which keeps the per-pixel work to a few integer operations.

Public API: Camera, camera_to_world(position, eye_height), render(maze, position, camera)
"""

from __future__ import annotations

import dataclasses

import numpy as np

from lssvwm.data.maze_grid import LANDMARK_RADIUS, PATTERN_FREQUENCIES, Maze

FLOOR_COLORS = np.array([[0.42, 0.40, 0.36], [0.58, 0.56, 0.52]], np.float32)
CEILING_COLOR = np.array([0.80, 0.84, 0.90], np.float32)
X_FACE_SHADE, Y_FACE_SHADE = 0.78, 1.0  # faces facing +-x are darker than faces facing +-y
PATTERN_DARKEN = 0.6

# Surface kinds, as returned with `return_surface=True`.
FLOOR, CEILING, WALL, LANDMARK = 0, 1, 2, 3


@dataclasses.dataclass(frozen=True)
class Camera:
    """A pinhole camera with square pixels and its principal point at the image centre."""

    height: int = 64
    width: int = 64
    fov_degrees: float = 90.0  # horizontal
    eye_height: float = 0.4

    def intrinsics(self) -> np.ndarray:
        """float32 [3, 3] K in pixels of the rendered frames."""
        fx = 0.5 * self.width / np.tan(0.5 * np.deg2rad(self.fov_degrees))
        return np.array(
            [[fx, 0.0, 0.5 * self.width], [0.0, fx, 0.5 * self.height], [0.0, 0.0, 1.0]],
            np.float32,
        )


def camera_to_world(position: np.ndarray, eye_height: float) -> np.ndarray:
    """float32 [T, 4, 4] OpenCV camera-to-world poses from `position [T, 3]` = (x, y, psi)."""
    position = np.asarray(position, np.float64)
    cos, sin = np.cos(position[:, 2]), np.sin(position[:, 2])
    zeros, ones = np.zeros_like(cos), np.ones_like(cos)
    pose = np.zeros((len(position), 4, 4))
    pose[:, :3, 0] = np.stack([sin, -cos, zeros], -1)
    pose[:, :3, 1] = np.stack([zeros, zeros, -ones], -1)
    pose[:, :3, 2] = np.stack([cos, sin, zeros], -1)
    pose[:, :3, 3] = np.stack([position[:, 0], position[:, 1], eye_height * ones], -1)
    pose[:, 3, 3] = 1.0
    return pose.astype(np.float32)


def color_table(maze: Maze) -> np.ndarray:
    """uint8 [2 * L + 3, 3]: L "light" entries, their darkened copies, 2 floor, 1 ceiling.

    Light entries: wall colour c seen on an x-face at 2c, on a y-face at 2c + 1; then for
    landmark k and shade level q at 2C + k * PILLAR_SHADES + q.
    """
    wall = maze.colors[:, None, :] * np.array([X_FACE_SHADE, Y_FACE_SHADE])[None, :, None]
    levels = _pillar_shade(np.arange(PILLAR_SHADES))
    pillars = maze.landmark_color[:, None, :] * levels[None, :, None]
    light = np.concatenate([wall.reshape(-1, 3), pillars.reshape(-1, 3)])
    table = np.concatenate([light, light * PATTERN_DARKEN, FLOOR_COLORS, CEILING_COLOR[None]])
    return np.clip(np.rint(table * 255), 0, 255).astype(np.uint8)


PILLAR_SHADES = 8


def _pillar_shade(level: np.ndarray) -> np.ndarray:
    """Brightness of pillar shade level q: brighter on the side facing +y (a fixed "sun")."""
    angle = (level + 0.5) / PILLAR_SHADES * 2 * np.pi - np.pi
    return 0.75 + 0.25 * np.sin(angle)


@dataclasses.dataclass
class _ColumnHits:
    """The nearest vertical surface along each column ray; arrays are [N, W]."""

    depth: np.ndarray  # float64 camera z of the hit
    kind: np.ndarray  # WALL or LANDMARK
    light_index: np.ndarray  # int32 entry of `color_table` before pattern darkening
    parity_u: np.ndarray  # int32 pattern parity along the surface
    freq_z: np.ndarray  # pattern frequency up the surface (bands per metre)
    block: np.ndarray  # [N, W, 2] wall block (ix, iy); landmark index in [..., 0] for pillars
    hx: np.ndarray  # horizontal ray direction f + xc * r
    hy: np.ndarray


def _walk_walls(maze: Maze, px, py, hx, hy) -> tuple[np.ndarray, ...]:
    """DDA through the block grid: first wall block crossed by rays p + s * h, s > 0.

    Returns (s, crossed_x_boundary, ix, iy), arrays of the rays' shape.
    """
    solid = maze.solid
    map_x = np.floor(px).astype(np.int64)
    map_y = np.floor(py).astype(np.int64)
    step_x = np.where(hx > 0, 1, -1)
    step_y = np.where(hy > 0, 1, -1)
    with np.errstate(divide="ignore"):
        delta_x = np.abs(1.0 / hx)
        delta_y = np.abs(1.0 / hy)
    # Distance (in s) to the first x = integer and y = integer boundary crossings.
    next_x = np.where(hx > 0, map_x + 1 - px, px - map_x)
    next_y = np.where(hy > 0, map_y + 1 - py, py - map_y)
    with np.errstate(invalid="ignore"):
        t_max_x = np.where(hx != 0, next_x * delta_x, np.inf)
        t_max_y = np.where(hy != 0, next_y * delta_y, np.inf)
    s = np.full(px.shape, np.inf)
    crossed_x = np.zeros(px.shape, bool)
    hit_x = np.zeros(px.shape, np.int64)
    hit_y = np.zeros(px.shape, np.int64)
    inside = solid[map_x, map_y]
    if inside.any():
        raise ValueError("maze3d: a camera stands inside a wall block")
    active = np.arange(px.size)
    for _ in range(sum(solid.shape) + 2):  # a straight ray crosses at most NX + NY blocks
        if active.size == 0:
            break
        tx, ty = t_max_x.flat[active], t_max_y.flat[active]
        use_x = tx < ty
        s_now = np.where(use_x, tx, ty)
        mx = map_x.flat[active] + np.where(use_x, step_x.flat[active], 0)
        my = map_y.flat[active] + np.where(use_x, 0, step_y.flat[active])
        map_x.flat[active], map_y.flat[active] = mx, my
        t_max_x.flat[active] = np.where(use_x, tx + delta_x.flat[active], tx)
        t_max_y.flat[active] = np.where(use_x, ty, ty + delta_y.flat[active])
        hit = solid[mx, my]
        done = active[hit]
        s.flat[done] = s_now[hit]
        crossed_x.flat[done] = use_x[hit]
        hit_x.flat[done], hit_y.flat[done] = mx[hit], my[hit]
        active = active[~hit]
    if active.size:
        raise RuntimeError("maze3d: a ray left the maze; is the outer wall missing?")
    return s, crossed_x, hit_x, hit_y


def _cast_columns(maze: Maze, position: np.ndarray, camera: Camera) -> _ColumnHits:
    """Nearest wall or pillar along each column ray of each pose [N, 3]."""
    k = camera.intrinsics().astype(np.float64)
    xc = (np.arange(camera.width) + 0.5 - k[0, 2]) / k[0, 0]  # [W]
    px = np.repeat(position[:, 0:1], camera.width, axis=1)  # [N, W]
    py = np.repeat(position[:, 1:2], camera.width, axis=1)
    cos, sin = np.cos(position[:, 2:3]), np.sin(position[:, 2:3])
    # Horizontal ray direction f + xc * r with f = (cos, sin), r = (sin, -cos).
    hx = cos + xc[None, :] * sin
    hy = sin - xc[None, :] * cos

    s, crossed_x, ix, iy = _walk_walls(maze, px, py, hx, hy)
    tex_u = np.where(crossed_x, py + s * hy, px + s * hx)  # position along the face
    light_index = 2 * maze.block_color[ix, iy] + np.where(crossed_x, 0, 1)
    freqs = PATTERN_FREQUENCIES[maze.block_pattern[ix, iy]]
    parity_u = np.floor(tex_u * freqs[..., 0]).astype(np.int32) & 1
    freq_z = freqs[..., 1].astype(np.float64)
    kind = np.full(s.shape, WALL, np.int8)
    block = np.stack([ix, iy], -1)

    # Pillars: |p + s h - c|^2 = r^2, nearest root in front of the camera.
    a = hx * hx + hy * hy
    first_pillar_entry = 2 * len(maze.colors)
    for index, (cx, cy) in enumerate(maze.landmarks_xy.astype(np.float64)):
        ox, oy = px - cx, py - cy
        b = ox * hx + oy * hy
        c = ox * ox + oy * oy - LANDMARK_RADIUS**2
        disc = b * b - a * c
        with np.errstate(invalid="ignore"):
            root = (-b - np.sqrt(disc)) / a
        closer = (disc >= 0) & (root > 0) & (root < s)
        if not closer.any():
            continue
        root = np.where(closer, root, 0.0)  # (NaN where the ray misses)
        s = np.where(closer, root, s)
        angle = np.arctan2(py + root * hy - cy, px + root * hx - cx)  # in [-pi, pi]
        level = np.clip(((angle + np.pi) / (2 * np.pi) * PILLAR_SHADES).astype(np.int32), 0, 7)
        pillar_index = first_pillar_entry + index * PILLAR_SHADES + level
        light_index = np.where(closer, pillar_index, light_index)
        parity_u = np.where(closer, 0, parity_u)
        freq_z = np.where(closer, LANDMARK_BANDS, freq_z)
        kind = np.where(closer, LANDMARK, kind)
        block = np.where(closer[..., None], np.array([index, -1]), block)
    return _ColumnHits(s, kind, light_index, parity_u, freq_z, block, hx, hy)


LANDMARK_BANDS = 4.0  # horizontal bands per metre on pillars


def render(
    maze: Maze,
    position: np.ndarray,
    camera: Camera,
    *,
    return_surface: bool = False,
):
    """Renders frames and depth for poses `position [T, 3]` = (x, y, psi).

    Returns `(frames uint8 [T, H, W, 3], depth float32 [T, H, W])`, and with `return_surface`
    also `(kind int8 [T, H, W], block int64 [T, H, W, 2])`: which surface each pixel sees
    (FLOOR, CEILING, WALL, LANDMARK) and, for walls, the block (ix, iy) (for pillars, the
    landmark index in [..., 0]). Identical poses are rendered once.
    """
    position = np.asarray(position, np.float64)
    if position.ndim != 2 or position.shape[1] != 3:
        raise ValueError(f"position must be [T, 3] (x, y, heading), got {position.shape}")
    if camera.eye_height <= 0 or camera.eye_height >= maze.wall_height:
        raise ValueError(
            f"eye_height {camera.eye_height} must lie between the floor and the ceiling "
            f"({maze.wall_height})"
        )
    unique, inverse = np.unique(position, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    hits = _cast_columns(maze, unique, camera)
    table = color_table(maze)
    num_light = (len(table) - 3) // 2
    floor_entry, ceiling_entry = 2 * num_light, 2 * num_light + 2

    k = camera.intrinsics().astype(np.float64)
    yc = (np.arange(camera.height) + 0.5 - k[1, 2]) / k[1, 1]  # [H], > 0 looks down
    with np.errstate(divide="ignore"):
        floor_s = np.where(yc > 0, camera.eye_height / yc, np.inf)
        ceiling_s = np.where(yc < 0, (maze.wall_height - camera.eye_height) / -yc, np.inf)
    plane_s = np.minimum(floor_s, ceiling_s).astype(np.float32)  # [H]

    col_s = hits.depth.astype(np.float32)[:, None, :]  # [N, 1, W]
    depth = np.minimum(col_s, plane_s[None, :, None])  # [N, H, W]
    vertical = col_s <= plane_s[None, :, None]

    # Walls and pillars: band parity from the height z = eye - yc * s of the pixel's point
    # (only meaningful where `vertical`; z >= 0 there, so truncation is floor).
    eye_f = (camera.eye_height * hits.freq_z).astype(np.float32)[:, None, :]
    s_f = (hits.depth * hits.freq_z).astype(np.float32)[:, None, :]
    band = (eye_f - yc.astype(np.float32)[None, :, None] * s_f).astype(np.int32)
    band += hits.parity_u[:, None, :]
    band &= 1
    index = (hits.light_index.astype(np.int32)[:, None, :] + num_light * band).astype(np.int16)

    # Floor (rows looking down, a contiguous block): 1 m checkerboard at the hit point;
    # ceiling rows: one colour. Coordinates are positive inside the maze, so truncation
    # is floor.
    down = np.flatnonzero(yc > 0)
    up = np.flatnonzero(yc < 0)
    if down.size:
        rows = slice(down[0], down[-1] + 1)
        fs = floor_s[rows].astype(np.float32)[None, :, None]
        xf = unique[:, 0:1, None].astype(np.float32) + fs * hits.hx.astype(np.float32)[:, None]
        yf = unique[:, 1:2, None].astype(np.float32) + fs * hits.hy.astype(np.float32)[:, None]
        tile = (xf.astype(np.int32) + yf.astype(np.int32)) & 1
        index[:, rows] = np.where(vertical[:, rows], index[:, rows], floor_entry + tile)
    if up.size:
        rows = slice(up[0], up[-1] + 1)
        index[:, rows] = np.where(vertical[:, rows], index[:, rows], ceiling_entry)

    frames = table[index[inverse]]
    if not return_surface:
        return frames, depth[inverse]
    kind = np.where(
        vertical,
        hits.kind[:, None, :],
        np.where(yc > 0, FLOOR, CEILING)[None, :, None].astype(np.int8),
    ).astype(np.int8)
    block = np.where(vertical[..., None], hits.block[:, None, :, :], -1)
    return frames, depth[inverse], kind[inverse], block[inverse]
