r"""Pictures of a dataset episode: contact sheet, short video and top-down map of the path.

    python3 -m lssvwm.data.preview --data=lssvwm/data/config.py:maze3d_small \
        --split=train --episode=0 --output_dir=/tmp/preview

writes into `output_dir`:
  <name>_sheet.png   every `stride`-th frame of the first `frames` frames, with the depth
                     (when stored) under each row, nearer = brighter
  <name>.gif         those frames as an animation (Pillow; `.mp4` too with --mp4 and imageio)
  <name>_map.png     the path seen from above (when `position` is stored): colour = time,
                     ticks = heading, with the maze's walls and landmarks for maze3d
The dataset is built first if it is not there yet.

Public API: contact_sheet, depth_to_rgb, write_gif, path_map, preview_episode
"""

from __future__ import annotations

import os

import numpy as np
from absl import app, flags
from ml_collections import config_flags

from lssvwm import cli
from lssvwm.data import sources


def contact_sheet(frames_THW3: np.ndarray, columns: int = 8, scale: int = 2, gap: int = 2):
    """uint8 [rows * (H + gap), columns * (W + gap), 3] grid of frames, upscaled `scale`x."""
    frames = np.repeat(np.repeat(frames_THW3, scale, axis=1), scale, axis=2)
    count, height, width, _ = frames.shape
    rows = -(-count // columns)
    sheet = np.full((rows * (height + gap), columns * (width + gap), 3), 255, np.uint8)
    for i, frame in enumerate(frames):
        r, c = divmod(i, columns)
        y, x = r * (height + gap), c * (width + gap)
        sheet[y : y + height, x : x + width] = frame
    return sheet


def depth_to_rgb(depth_THW: np.ndarray) -> np.ndarray:
    """uint8 [T, H, W, 3]: inverse depth through a colormap (nearer = brighter, +inf black)."""
    from matplotlib import colormaps

    finite = np.isfinite(depth_THW)
    inverse = np.where(finite, 1.0 / np.where(finite, depth_THW, 1.0), 0.0)
    top = np.percentile(inverse[finite], 99) if finite.any() else 1.0
    rgb = colormaps["magma"](np.clip(inverse / max(top, 1e-9), 0, 1))[..., :3]
    rgb[~finite] = 0
    return (rgb * 255).astype(np.uint8)


def write_gif(frames_THW3: np.ndarray, path: str, fps: float = 10.0, scale: int = 4) -> None:
    from PIL import Image

    frames = np.repeat(np.repeat(frames_THW3, scale, axis=1), scale, axis=2)
    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)


def path_map(position_T3: np.ndarray, *, maze=None, title: str = ""):
    """A matplotlib Figure of the path from above (x right, y up), optionally over a maze."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 6))
    if maze is not None:
        solid = maze.solid.T.astype(float)  # rows = y
        axes.imshow(
            solid,
            origin="lower",
            extent=(0, solid.shape[1], 0, solid.shape[0]),
            cmap="Greys",
            vmin=0,
            vmax=1.6,
            interpolation="nearest",
        )
        for (x, y), colour in zip(maze.landmarks_xy, maze.landmark_color, strict=True):
            axes.add_patch(plt.Circle((x, y), 0.15, color=colour, zorder=3))
    x, y, heading = position_T3[:, 0], position_T3[:, 1], position_T3[:, 2]
    time = np.arange(len(x))
    axes.plot(x, y, color="0.6", linewidth=0.8, zorder=1)
    points = axes.scatter(x, y, c=time, cmap="viridis", s=6, zorder=2)
    every = max(1, len(x) // 60)
    axes.quiver(
        x[::every],
        y[::every],
        np.cos(heading[::every]),
        np.sin(heading[::every]),
        time[::every],
        cmap="viridis",
        scale=25,
        width=0.004,
        zorder=2,
    )
    axes.plot(x[0], y[0], "o", color="tab:green", markersize=8, label="start", zorder=4)
    axes.plot(x[-1], y[-1], "s", color="tab:red", markersize=8, label="end", zorder=4)
    figure.colorbar(points, ax=axes, label="frame")
    axes.set_aspect("equal")
    axes.set_xlabel("x (m)")
    axes.set_ylabel("y (m)")
    axes.legend(loc="upper right")
    axes.set_title(title)
    figure.tight_layout()
    return figure


def _maze_of(builder, split: str, episode_id: int):
    """The maze3d layout of an episode (regenerated from the seed), else None."""
    if builder.name != "maze3d":
        return None
    from lssvwm.data import maze3d

    params = builder.maze3d_params()
    return maze3d.make_maze(params, maze3d.episode_rng(params, split, episode_id))


def preview_episode(
    data_config,
    output_dir: str,
    *,
    split: str = "train",
    episode: int = 0,
    frames: int = 128,
    stride: int = 2,
    columns: int = 8,
    mp4: bool = False,
) -> dict[str, str]:
    """Writes the sheet, GIF (and MP4) and map of one stored episode; returns their paths."""
    if frames < 1 or stride < 1 or columns < 1:
        raise ValueError(
            f"frames, stride and columns must be >= 1, got {frames}, {stride}, {columns}"
        )
    builder = sources.get_builder(data_config)
    if split not in builder.info.splits:
        raise ValueError(
            f"split {split!r} is not in {builder.name} (splits: {', '.join(builder.info.splits)})"
        )
    stored = sources.SegmentSource(builder, split, fields=None).stored_fields
    wanted = [f for f in ("frames", "depth", "position") if f in stored]
    source = sources.SegmentSource(builder, split, fields=wanted)
    if not 0 <= episode < source.index.num_episodes:
        raise ValueError(
            f"--episode={episode} is out of range: split {split!r} has "
            f"{source.index.num_episodes} episodes"
        )
    data = sources.read_episode(source, episode)
    episode_id = int(source.index.episode_ids[episode])
    os.makedirs(output_dir, exist_ok=True)
    name = f"{builder.name}_{split}_{episode_id}"
    shown = slice(0, min(frames, len(data["frames"])), stride)
    rows = []
    frames_shown = data["frames"][shown]
    depth_shown = depth_to_rgb(data["depth"][shown]) if "depth" in data else None
    for start in range(0, len(frames_shown), columns):
        rows.append(contact_sheet(frames_shown[start : start + columns], columns))
        if depth_shown is not None:
            rows.append(contact_sheet(depth_shown[start : start + columns], columns))
    from PIL import Image

    paths = {"sheet": os.path.join(output_dir, f"{name}_sheet.png")}
    Image.fromarray(np.concatenate(rows, axis=0)).save(paths["sheet"])
    paths["gif"] = os.path.join(output_dir, f"{name}.gif")
    write_gif(data["frames"][: min(frames, len(data["frames"]))], paths["gif"])
    if mp4:
        import imageio.v3 as iio

        paths["mp4"] = os.path.join(output_dir, f"{name}.mp4")
        iio.imwrite(paths["mp4"], data["frames"][:frames], fps=10, plugin="FFMPEG")
    if "position" in data:
        figure = path_map(
            data["position"],
            maze=_maze_of(builder, split, episode_id),
            title=f"{builder.name}/{builder.builder_config.name} {split} episode {episode_id}",
        )
        paths["map"] = os.path.join(output_dir, f"{name}_map.png")
        figure.savefig(paths["map"], dpi=100)
        from matplotlib import pyplot as plt

        plt.close(figure)
    return paths


def _define_flags():
    """Defines the CLI flags (only when run as a program, so importing stays side-effect free)."""
    default_data = os.path.join(os.path.dirname(__file__), "config.py") + ":maze3d"
    cli.default_config_argument("data", default_data)  # loaded under lssvwm.cli's checks
    config_flags.DEFINE_config_file(
        "data",
        default_data,
        "Data config file (a `data` section, e.g. lssvwm/data/config.py:maze3d_small).",
        lock_config=True,
    )
    config_flags.DEFINE_config_file("config", None, "Experiment config (uses .data).")
    flags.DEFINE_string("output_dir", None, "Where the pictures go.")
    flags.DEFINE_string("split", "train", "Split to show.")
    flags.DEFINE_integer("episode", 0, "Stored episode number within the split.", lower_bound=0)
    flags.DEFINE_integer("frames", 128, "How many frames from the start to show.", lower_bound=1)
    flags.DEFINE_integer("stride", 2, "Every how many frames the sheet shows one.", lower_bound=1)
    flags.DEFINE_bool("mp4", False, "Also write an .mp4 (needs the `video` extra).")
    cli.register_check("output_dir", lambda path: cli.check_can_write(path, directory=True))


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if flags.FLAGS.output_dir is None:
        raise app.UsageError("--output_dir is required")
    config = flags.FLAGS.config
    if config is not None and "data" not in config:
        raise app.UsageError("the --config file has no `data` section")
    data = config.data if config is not None else flags.FLAGS.data
    if data.get("data_dir"):  # one line before anything is built or read
        cli.check_can_write(data.data_dir, directory=True, label="data.data_dir")
    paths = preview_episode(
        data,
        flags.FLAGS.output_dir,
        split=flags.FLAGS.split,
        episode=flags.FLAGS.episode,
        frames=flags.FLAGS.frames,
        stride=flags.FLAGS.stride,
        mp4=flags.FLAGS.mp4,
    )
    for kind, path in paths.items():
        print(f"{kind}: {path}")


if __name__ == "__main__":
    _define_flags()
    cli.run(main)
