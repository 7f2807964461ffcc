"""The maze3d side panel: the true view at the player's pose, and a top-down map of the walk.

    view = MazeView.for_episode(data, split, episode_id)   # the episode's maze, regenerated
    truth_HWC = view.render(pose_3)                         # uint8, what the maze shows there
    map_HWC = view.draw_map(context_poses_N3, walked_poses_M3)

maze3d generates each episode's maze from (seed, split, episode index) before exploring it, so
the maze is regenerated here from the same random stream (`maze3d.episode_rng`), not stored; the
session checks it against the episode (the last context frame must render identically).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from lssvwm.data import maze3d, maze_render
from lssvwm.data.maze_grid import Maze

MAP_PIXELS_PER_METRE = 8
_WALL, _FLOOR = (52, 52, 60), (214, 210, 200)
_CONTEXT_PATH, _WALKED_PATH, _CAMERA = (70, 110, 220), (235, 140, 30), (220, 30, 30)


@dataclasses.dataclass(frozen=True)
class MazeView:
    maze: Maze
    camera: maze_render.Camera

    @classmethod
    def for_episode(cls, data, split: str, episode_id: int) -> MazeView:
        """The maze of maze3d episode `episode_id` of `split` under the `data` config section."""
        params = maze3d.Maze3dParams.from_dict(data.maze3d.to_dict())
        maze = maze3d.make_maze(params, maze3d.episode_rng(params, split, int(episode_id)))
        return cls(maze, params.camera())

    def render(self, pose_3: np.ndarray) -> np.ndarray:
        """uint8 [H, W, 3]: the maze seen from `pose_3` = (x, y, heading)."""
        frames, _ = maze_render.render(self.maze, np.asarray(pose_3)[None], self.camera)
        return frames[0]

    def draw_map(self, context_poses_N3: np.ndarray, walked_poses_M3: np.ndarray) -> np.ndarray:
        """uint8 [rows, cols, 3] top-down map (north up: world +y is up), walls dark, the
        context's path blue, the walked path orange, the camera red with a heading tick."""
        s = MAP_PIXELS_PER_METRE
        solid = self.maze.solid  # [NX, NY]
        image = np.where(solid.T[::-1, :, None], _WALL, _FLOOR).astype(np.uint8)
        image = image.repeat(s, axis=0).repeat(s, axis=1)
        rows = image.shape[0]

        def pixel(x: float, y: float) -> tuple[int, int]:
            return min(rows - 1, max(0, int(rows - y * s))), int(x * s)

        for poses, colour in ((context_poses_N3, _CONTEXT_PATH), (walked_poses_M3, _WALKED_PATH)):
            for x, y, _ in np.asarray(poses).reshape(-1, 3):
                r, c = pixel(x, y)
                image[max(0, r - 1) : r + 1, max(0, c - 1) : c + 1] = colour
        latest = walked_poses_M3 if len(walked_poses_M3) else context_poses_N3
        if len(latest):
            x, y, heading = np.asarray(latest)[-1]
            for step in np.linspace(0.0, 0.6, 7):  # the heading: a short line ahead
                r, c = pixel(x + step * np.cos(heading), y + step * np.sin(heading))
                image[r, min(c, image.shape[1] - 1)] = _CAMERA
            r, c = pixel(x, y)
            image[max(0, r - 2) : r + 2, max(0, c - 2) : c + 2] = _CAMERA
        return image
