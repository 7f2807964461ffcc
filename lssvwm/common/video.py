"""Movies of generated frames beside the ground truth, written as GIF or mp4.

    movie = side_by_side(generated_BTHWC, truth_BTHWC, context_frames, scale)     # uint8 movie
    movie = comparison_movie(generated_BTHWC, truth_BTHWC, context_frames, has_truth_BT=...)
    path  = write_video(movie, "out/rollout", fps=8, video_format="auto")   # .mp4 or .gif
    path  = write_gif(movie, "samples/step_100.gif")
    data  = gif_bytes(movie)                  # the same GIF in memory (TensorBoard's image)

Each row is one stream: the model's frame on the left, the true frame on the right (in
`comparison_movie`, a grey panel where no ground truth exists), under a white bar for context
frames and a red one for generated frames. `auto` writes an .mp4 when `imageio` with its ffmpeg
plugin is installed (the `video` extra) and a GIF (pillow) otherwise. Training's sample GIFs and
the evaluation's rollout and episode videos are both drawn here.
"""

from __future__ import annotations

import importlib.util
import io
import pathlib

import numpy as np
from PIL import Image

FORMATS = ("auto", "gif", "mp4")
_MISSING_TRUTH_GREY = 96


def side_by_side(generated_BTHWC, truth_BTHWC, context_frames: int, scale: int) -> np.ndarray:
    """[T, rows, cols, 3] uint8 movie frames: per window a row of (model | truth)."""
    b, t, h, w, _ = truth_BTHWC.shape
    bar = max(1, h // 16)
    pad = 2
    movie = np.full((t, b * (h + bar + pad), 2 * w + pad, 3), 32, np.uint8)
    for i in range(b):
        top = i * (h + bar + pad)
        movie[:, top + bar : top + bar + h, :w] = generated_BTHWC[i]
        movie[:, top + bar : top + bar + h, w + pad :] = truth_BTHWC[i]
        movie[:context_frames, top : top + bar] = 255
        movie[context_frames:, top : top + bar] = (220, 40, 40)
    return movie.repeat(scale, axis=1).repeat(scale, axis=2)


def write_gif(movie_THWC: np.ndarray, path: str | pathlib.Path, fps: float = 8.0) -> pathlib.Path:
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gif_bytes(movie_THWC, fps))
    return path


def gif_bytes(movie_THWC: np.ndarray, fps: float = 8.0) -> bytes:
    """The movie as an animated GIF, looping (the file `write_gif` writes; TensorBoard shows it
    as an image)."""
    images = [Image.fromarray(frame) for frame in movie_THWC]
    buffer = io.BytesIO()
    images[0].save(
        buffer,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=int(1000 / fps),
        loop=0,
    )
    return buffer.getvalue()


def comparison_movie(
    generated_BTHWC: np.ndarray,
    truth_BTHWC: np.ndarray | None,
    context_frames: int,
    *,
    has_truth_BT: np.ndarray | None = None,
    scale: int = 4,
) -> np.ndarray:
    """uint8 [T, rows, cols, 3]: per stream (model | truth); grey where truth is missing."""
    generated_BTHWC = np.asarray(generated_BTHWC)
    if generated_BTHWC.dtype != np.uint8 or generated_BTHWC.ndim != 5:
        raise ValueError(f"generated frames must be uint8 [b, t, H, W, C], got {generated_BTHWC}")
    if truth_BTHWC is None:
        truth = np.full_like(generated_BTHWC, _MISSING_TRUTH_GREY)
    else:
        truth = np.array(truth_BTHWC, np.uint8)
        if truth.shape != generated_BTHWC.shape:
            raise ValueError(f"truth {truth.shape} and generated {generated_BTHWC.shape} differ")
        if has_truth_BT is not None:
            truth[~np.asarray(has_truth_BT, bool)] = _MISSING_TRUTH_GREY
    return side_by_side(generated_BTHWC, truth, context_frames, scale)


def mp4_available() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("imageio", "imageio_ffmpeg"))


def write_video(
    movie_THWC: np.ndarray,
    path_stem: str | pathlib.Path,
    *,
    fps: float = 8.0,
    video_format: str = "auto",
) -> pathlib.Path:
    """Writes `path_stem`.mp4 or .gif (see the module docstring); returns the path."""
    if video_format not in FORMATS:
        raise ValueError(f"video format must be one of {FORMATS}, got {video_format!r}")
    if video_format == "auto":
        video_format = "mp4" if mp4_available() else "gif"
    path = pathlib.Path(path_stem).with_suffix(f".{video_format}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if video_format == "gif":
        return write_gif(movie_THWC, path, fps=fps)
    if not mp4_available():
        raise RuntimeError("mp4 needs imageio and imageio-ffmpeg (pip install 'lssvwm[video]')")
    import imageio

    # H.264 wants sides divisible by 16: pad (dark) rather than let the writer resample.
    t, h, w, c = movie_THWC.shape
    padded = np.full((t, -(-h // 16) * 16, -(-w // 16) * 16, c), 32, np.uint8)
    padded[:, :h, :w] = movie_THWC
    imageio.mimwrite(path, list(padded), fps=fps, macro_block_size=16)
    return path
