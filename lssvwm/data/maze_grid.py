"""Procedural grid mazes for maze3d: layout, wall appearance, landmarks, shortest paths.

A maze of `rows x cols` *cells* is stored as a block grid `solid [2*cols+1, 2*rows+1]` (indexed
[ix, iy]; True = wall block). Block (ix, iy) occupies the world square [ix, ix+1) x [iy, iy+1)
metres, floor at z = 0, walls `wall_height` tall; cells are the blocks with odd ix and iy and
the passage between two neighbouring cells is the block between them. World x grows with ix,
y with iy, z is up (ARCHITECTURE.md "Datasets": z up, floor at z = 0).

The layout is a random spanning tree (recursive backtracker) with a fraction of the remaining
inner walls knocked out, so there are loops and several routes between places. Every wall
block gets a colour from a saturated palette and a texture pattern (so places are
recognisable); landmarks are floor-to-ceiling pillars standing in a corner of a free block,
off the centre lines the explorer walks on.

Public API: Maze, generate_maze(rng, ...), palette(n), bfs_path(solid, start, goal)
"""

from __future__ import annotations

import colorsys
import dataclasses
from collections import deque

import numpy as np

# Texture patterns: (stripes along the face, bands up the wall) per metre; 0 = plain in that
# direction. A wall pixel is darkened where (floor(u * a) + floor(z * b)) is odd. Stripes
# are at least 0.25 m wide so that they stay wider than a pixel a few metres away at 64x64
# (finer ones alias into flicker).
PATTERN_FREQUENCIES = np.array([[0, 0], [4, 0], [0, 4], [2, 2], [2, 0], [0, 2]], np.int32)
LANDMARK_RADIUS = 0.12
LANDMARK_OFFSET = 0.22  # pillar centre from the block's low corner, in both x and y


def palette(num_colors: int) -> np.ndarray:
    """[num_colors, 3] float32 saturated colours in [0, 1], evenly spaced in hue."""
    if num_colors < 1:
        raise ValueError(f"num_colors must be >= 1, got {num_colors}")
    colours = []
    for k in range(num_colors):
        # Alternate value so that neighbouring hues also differ in brightness.
        value = 0.95 if k % 2 == 0 else 0.7
        colours.append(colorsys.hsv_to_rgb(k / num_colors, 0.85, value))
    return np.asarray(colours, np.float32)


@dataclasses.dataclass(frozen=True)
class Maze:
    """One maze layout and its appearance.

    Attributes:
      solid: bool [NX, NY] wall blocks (NX = 2 * cols + 1, NY = 2 * rows + 1).
      colors: float32 [C, 3] the wall palette, RGB in [0, 1].
      block_color: int32 [NX, NY] palette index of each wall block (unused for free ones).
      block_pattern: int32 [NX, NY] index into PATTERN_FREQUENCIES.
      landmarks_xy: float32 [K, 2] pillar centres (metres).
      landmark_color: float32 [K, 3].
      wall_height: metres (the ceiling height).
    """

    solid: np.ndarray
    colors: np.ndarray
    block_color: np.ndarray
    block_pattern: np.ndarray
    landmarks_xy: np.ndarray
    landmark_color: np.ndarray
    wall_height: float

    @property
    def shape(self) -> tuple[int, int]:
        return self.solid.shape

    def free_blocks(self) -> np.ndarray:
        """int [F, 2] (ix, iy) of the walkable blocks."""
        return np.argwhere(~self.solid)

    def cells(self) -> np.ndarray:
        """int [C, 2] (ix, iy) of the maze cells (odd ix and iy)."""
        nx, ny = self.solid.shape
        ix, iy = np.meshgrid(np.arange(1, nx, 2), np.arange(1, ny, 2), indexing="ij")
        return np.stack([ix.ravel(), iy.ravel()], -1)


def generate_maze(
    rng: np.random.Generator,
    *,
    rows: int,
    cols: int,
    num_colors: int,
    num_patterns: int = len(PATTERN_FREQUENCIES),
    num_landmarks: int = 4,
    extra_openings: float = 0.15,
    wall_height: float = 1.0,
) -> Maze:
    """A random maze with loops, coloured wall blocks and pillar landmarks."""
    if rows < 2 or cols < 2:
        raise ValueError(f"a maze needs at least 2x2 cells, got {rows}x{cols}")
    if not 1 <= num_patterns <= len(PATTERN_FREQUENCIES):
        raise ValueError(f"num_patterns must be in [1, {len(PATTERN_FREQUENCIES)}]")
    if not 0.0 <= extra_openings <= 1.0:
        raise ValueError(f"extra_openings must be in [0, 1], got {extra_openings}")
    nx, ny = 2 * cols + 1, 2 * rows + 1
    solid = np.ones((nx, ny), bool)
    solid[1::2, 1::2] = False

    # Recursive backtracker over cells (iterative, to stay clear of the recursion limit).
    visited = np.zeros((cols, rows), bool)
    start = (int(rng.integers(cols)), int(rng.integers(rows)))
    stack = [start]
    visited[start] = True
    while stack:
        cx, cy = stack[-1]
        neighbours = [
            (cx + dx, cy + dy)
            for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1))
            if 0 <= cx + dx < cols and 0 <= cy + dy < rows and not visited[cx + dx, cy + dy]
        ]
        if not neighbours:
            stack.pop()
            continue
        nxt = neighbours[int(rng.integers(len(neighbours)))]
        solid[cx + nxt[0] + 1, cy + nxt[1] + 1] = False  # the block between the two cells
        visited[nxt] = True
        stack.append(nxt)

    # Knock out a fraction of the remaining inner walls between cells: loops.
    between = [
        (ix, iy)
        for ix in range(1, nx - 1)
        for iy in range(1, ny - 1)
        if (ix % 2) != (iy % 2) and solid[ix, iy]
    ]
    num_open = int(round(extra_openings * len(between)))
    for k in rng.permutation(len(between))[:num_open]:
        solid[between[k]] = False

    block_color = rng.integers(num_colors, size=(nx, ny)).astype(np.int32)
    block_pattern = rng.integers(num_patterns, size=(nx, ny)).astype(np.int32)

    free = np.argwhere(~solid)
    num_landmarks = min(num_landmarks, len(free))
    chosen = free[rng.choice(len(free), size=num_landmarks, replace=False)]
    # A corner of the block chosen at random, LANDMARK_OFFSET in from both walls.
    corner = rng.integers(2, size=(num_landmarks, 2))
    offset = np.where(corner == 0, LANDMARK_OFFSET, 1.0 - LANDMARK_OFFSET)
    landmarks_xy = (chosen + offset).astype(np.float32)
    landmark_palette = palette(max(num_landmarks, 1))
    landmark_color = 0.35 + 0.65 * landmark_palette[rng.permutation(num_landmarks)]

    return Maze(
        solid=solid,
        colors=palette(num_colors),
        block_color=block_color,
        block_pattern=block_pattern,
        landmarks_xy=landmarks_xy,
        landmark_color=landmark_color.astype(np.float32),
        wall_height=float(wall_height),
    )


def bfs_path(
    solid: np.ndarray, start: tuple[int, int], goal: tuple[int, int]
) -> list[tuple[int, int]]:
    """Shortest 4-connected block path from start to goal (both included) over free blocks."""
    if solid[start] or solid[goal]:
        raise ValueError(f"start {start} and goal {goal} must be free blocks")
    previous = {start: start}
    frontier = deque([start])
    while frontier:
        block = frontier.popleft()
        if block == goal:
            break
        x, y = block
        for nxt in ((x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)):
            if nxt not in previous and not solid[nxt]:
                previous[nxt] = block
                frontier.append(nxt)
    if goal not in previous:
        raise ValueError(f"goal {goal} is not reachable from {start}")
    path = [goal]
    while path[-1] != start:
        path.append(previous[path[-1]])
    return path[::-1]
