"""The evaluate result: JSON summary, PNG plot and a short video of the worst and best episodes.

    summary = summarize(scores, run)                 # dict; the contract keys and the rest
    paths   = write_report(summary, scores, "out/retrieval.json")   # + .png, _best_worst.gif

JSON keys (ARCHITECTURE.md contract first):
  task, context, horizon, num_episodes, checkpoint_step
  psnr, ssim                    mean over episodes of the per-episode mean over generated frames
  psnr_by_distance              one entry per bin of "frames since this view was last seen":
                                label, low, high, num_frames, num_episodes, psnr, psnr_ci, ssim,
                                ssim_ci, copy_last_frame_psnr, copy_last_frame_psnr_ci (frames of
                                the bin pooled over episodes; CIs resample episodes), and per
                                episode the bin's PSNR sum and frame count
                                (episode_psnr_sum, episode_num_frames: paired comparisons of
                                two runs on the same episodes, experiments/state_carrying)
  psnr_ci, ssim_ci, copy_last_frame_psnr(_ci), copy_last_frame_ssim(_ci)   and the rest:
  psnr_by_frame, copy_last_frame_psnr_by_frame, ssim_by_frame   mean over episodes per frame j
  episode_psnr                  per-episode mean PSNR (order of episode_ids)
  distance_edges, distance_method, lpips, fvd (skip notes), model, bootstrap, ...
"""

from __future__ import annotations

import json
import pathlib

import numpy as np

from lssvwm.common import video
from lssvwm.evaluation import plots, statistics
from lssvwm.evaluation.reset import describe as describe_reset
from lssvwm.evaluation.reset import reset_policy_from_flag
from lssvwm.evaluation.tasks import MIN_EPISODES_FOR_CI, TaskScores

LPIPS_SKIPPED = (
    "skipped: LPIPS needs pretrained network weights, which lssvwm neither bundles nor "
    "downloads at run time; none are configured here"
)
FVD_SKIPPED = (
    "skipped: FVD needs pretrained I3D weights, which lssvwm neither bundles nor downloads at "
    "run time; none are configured here"
)


def _ci(values_E, resamples, confidence, seed):
    mean, low, high = statistics.bootstrap_mean(
        values_E, resamples=resamples, confidence=confidence, seed=seed
    )
    return mean, [low, high]


def _by_distance(scores: TaskScores, edges, resamples, confidence, seed) -> list[dict]:
    bins = statistics.distance_bins(edges)
    entries = []
    metrics = {
        "psnr": scores.psnr,
        "ssim": scores.ssim,
        "copy_last_frame_psnr": scores.copy_psnr,
    }
    for bin_ in bins:
        inside = bin_.contains(scores.distance)  # [E, M]
        counts = inside.sum(axis=1)
        entry = {
            "label": bin_.label,
            "low": bin_.low,
            "high": bin_.high,
            "never_seen": bin_.never_seen,
            "num_frames": int(counts.sum()),
            "num_episodes": int((counts > 0).sum()),
            "episode_num_frames": [int(c) for c in counts],
            "episode_psnr_sum": _rounded(np.where(inside, scores.psnr, 0.0).sum(axis=1)),
        }
        for name, values in metrics.items():
            sums = np.where(inside, values, 0.0).sum(axis=1)
            mean, low, high = statistics.bootstrap_ratio(
                sums[:, None],
                counts[:, None],
                resamples=resamples,
                confidence=confidence,
                seed=seed,
            )
            entry[name] = _finite_or_none(mean[0])
            entry[f"{name}_ci"] = [_finite_or_none(low[0]), _finite_or_none(high[0])]
        entries.append(entry)
    return entries


def _finite_or_none(x) -> float | None:
    return float(x) if np.isfinite(x) else None


def summarize(
    scores: TaskScores,
    run,
    *,
    distance_edges=None,
    resamples: int = statistics.DEFAULT_RESAMPLES,
    confidence: float = statistics.DEFAULT_CONFIDENCE,
) -> dict:
    """The result dict (module docstring). `run` is the `LoadedRun` that was scored."""
    seed = scores.options.seed
    episode_psnr = scores.psnr.mean(axis=1)
    summary = {
        "task": scores.task,
        "context": scores.context,
        "horizon": scores.horizon,
        "num_episodes": int(scores.psnr.shape[0]),
        "checkpoint_step": run.step,
    }
    for name, values in (
        ("psnr", scores.psnr),
        ("ssim", scores.ssim),
        ("copy_last_frame_psnr", scores.copy_psnr),
        ("copy_last_frame_ssim", scores.copy_ssim),
    ):
        summary[name], summary[f"{name}_ci"] = _ci(values.mean(axis=1), resamples, confidence, seed)
    if scores.distance is not None:
        if distance_edges is None:
            window = run.model_config.attention_window if run.model_config.uses_attention else None
            distance_edges = statistics.default_distance_edges(
                window, run.training_length, int(scores.distance.max(initial=1))
            )
        summary["psnr_by_distance"] = _by_distance(
            scores, distance_edges, resamples, confidence, seed
        )
        summary["distance_edges"] = [int(e) for e in distance_edges]
        summary["mean_distance_by_frame"] = [
            _finite_or_none(x) for x in _mean_seen_distance(scores.distance)
        ]
    else:
        summary["psnr_by_distance"] = []
        summary["distance_edges"] = []
    summary["distance_method"] = scores.distance_method
    summary["psnr_by_frame"] = _rounded(scores.psnr.mean(axis=0))
    summary["copy_last_frame_psnr_by_frame"] = _rounded(scores.copy_psnr.mean(axis=0))
    summary["ssim_by_frame"] = _rounded(scores.ssim.mean(axis=0), 4)
    summary["episode_ids"] = [int(e) for e in scores.episode_ids]
    summary["episode_psnr"] = _rounded(episode_psnr)
    summary["lpips"] = LPIPS_SKIPPED
    summary["fvd"] = FVD_SKIPPED
    summary["model"] = run.describe()
    summary["weights"] = run.weights
    summary["sampler_steps"] = run.diffusion_config.sampler_steps
    summary["split"] = scores.split
    summary["seed"] = seed
    summary["batch_size"] = scores.options.batch_size
    summary["reset"] = describe_reset(reset_policy_from_flag(scores.options.reset))
    summary["history"] = scores.options.history
    summary["bootstrap"] = {
        "resamples": resamples,
        "confidence": confidence,
        "unit": "episode",
        "method": "percentile",
    }
    if summary["num_episodes"] < MIN_EPISODES_FOR_CI:
        summary["note"] = (
            f"only {summary['num_episodes']} episodes: confidence intervals over fewer than "
            f"{MIN_EPISODES_FOR_CI} episodes are rough"
        )
    summary["per_frame_seconds"] = scores.per_frame_seconds
    summary["wall_seconds"] = round(scores.seconds, 1)
    summary["workdir"] = str(run.workdir)
    return summary


def _mean_seen_distance(distance_EM: np.ndarray) -> np.ndarray:
    seen = distance_EM >= 0
    with np.errstate(invalid="ignore"):
        return np.where(seen, distance_EM, 0).sum(0) / seen.sum(0)


def _rounded(values, digits: int = 3) -> list[float]:
    return [round(float(v), digits) for v in values]


def best_worst_movie(scores: TaskScores, *, max_frames: int = 96, scale: int = 4) -> np.ndarray:
    """Movie of the worst (top row) and best (bottom row) episodes by mean PSNR: their last
    context frames, then generated frames (every k-th, at most `max_frames`) beside the truth."""
    order = np.argsort(scores.psnr.mean(axis=1))
    chosen = [int(order[0]), int(order[-1])]
    stride = max(1, -(-scores.horizon // max_frames))
    tail = scores.context_tail[chosen]
    generated = np.concatenate([tail, scores.generated[chosen, ::stride]], axis=1)
    truth = np.concatenate([tail, scores.truth[chosen, ::stride]], axis=1)
    return video.comparison_movie(generated, truth, tail.shape[1], scale=scale)


def write_report(
    summary: dict, scores: TaskScores, output: str | pathlib.Path, *, video_format: str = "gif"
) -> dict[str, pathlib.Path]:
    """Writes the JSON at `output`, the plot beside it (.png) and the best/worst video."""
    output = pathlib.Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    stem = output.with_suffix("")
    written = {"plot": plots.plot_task(summary, stem.with_suffix(".png"))}
    written["video"] = video.write_video(
        best_worst_movie(scores),
        stem.parent / f"{stem.name}_best_worst",
        fps=8.0,
        video_format=video_format,
    )
    summary = dict(summary, plot=written["plot"].name, video=written["video"].name)
    output.write_text(json.dumps(summary, indent=2) + "\n")
    written["json"] = output
    return written
