"""Plots of evaluate results (matplotlib, Agg backend; small PNGs).

    plot_task(summary, "out/retrieval.png")       PSNR by frames-since-seen and by frame
    plot_compare(summaries, names, "cmp.png")      PSNR by frames-since-seen, one line per run

The distance panel is the one that tells memory from no memory: a model that remembers keeps
its PSNR above copying the last frame for views last seen long ago (past its attention window
and its training length); one that forgets falls to the baseline there.
"""

from __future__ import annotations

import pathlib
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

_DPI = 100


def _bins_with_frames(summary: dict) -> list[dict]:
    return [b for b in summary.get("psnr_by_distance", []) if b["num_frames"] > 0]


def _errorbar(ax, x, entries, key, **kwargs):
    y = np.array([np.nan if e[key] is None else e[key] for e in entries], float)
    ci = np.array([[np.nan if c is None else c for c in e[f"{key}_ci"]] for e in entries], float)
    err = np.abs(np.stack([y - ci[:, 0], ci[:, 1] - y]))
    ax.errorbar(x, y, yerr=err, capsize=3, marker="o", **kwargs)


def _title(summary: dict) -> str:
    model = summary.get("model", {})
    return (
        f"{summary['task']}: {model.get('variant', '?')}, step {summary['checkpoint_step']}, "
        f"{summary['num_episodes']} episodes, context {summary['context']}"
    )


def plot_task(summary: dict, path: str | pathlib.Path) -> pathlib.Path:
    """Two panels: PSNR by frames since the view was last seen (bins, 95% CIs over episodes)
    and PSNR by generated frame, each beside copying the last context frame."""
    path = pathlib.Path(path)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), dpi=_DPI)
    entries = _bins_with_frames(summary)
    if entries:
        x = np.arange(len(entries))
        _errorbar(left, x, entries, "psnr", label="model", color="C0")
        _errorbar(
            left,
            x + 0.08,
            entries,
            "copy_last_frame_psnr",
            label="copy last frame",
            color="C7",
            linestyle="--",
        )
        left.set_xticks(x, [f"{e['label']}\n({e['num_frames']})" for e in entries], fontsize=8)
        left.set_xlabel("frames since this view was last seen (frames in bin)")
        left.legend(fontsize=8)
    else:
        left.text(
            0.5,
            0.5,
            "no distances: " + summary.get("distance_method", ""),
            ha="center",
            va="center",
            wrap=True,
            fontsize=8,
            transform=left.transAxes,
        )
    left.set_ylabel("PSNR (dB)")
    left.grid(alpha=0.3)
    frames = np.arange(1, len(summary["psnr_by_frame"]) + 1)
    right.plot(frames, summary["psnr_by_frame"], label="model", color="C0", linewidth=1)
    right.plot(
        frames,
        summary["copy_last_frame_psnr_by_frame"],
        label="copy last frame",
        color="C7",
        linestyle="--",
        linewidth=1,
    )
    right.set_xlabel("generated frame")
    right.set_ylabel("PSNR (dB), mean over episodes")
    right.grid(alpha=0.3)
    right.legend(fontsize=8)
    fig.suptitle(_title(summary), fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_compare(
    summaries: Sequence[dict], names: Sequence[str], path: str | pathlib.Path
) -> pathlib.Path:
    """One panel per task: PSNR by distance bin for every run (solid) and its copy-last-frame
    baseline (dashed, same colour)."""
    path = pathlib.Path(path)
    tasks = list(dict.fromkeys(s["task"] for s in summaries))
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4), dpi=_DPI, squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        chosen = [(s, n) for s, n in zip(summaries, names, strict=True) if s["task"] == task]
        labels = union_bin_labels([s for s, _ in chosen])
        for colour, (summary, name) in enumerate(chosen):
            entries = {e["label"]: e for e in _bins_with_frames(summary)}
            x = [i for i, label in enumerate(labels) if label in entries]
            picked = [entries[labels[i]] for i in x]
            if not picked:
                continue
            offset = 0.05 * colour
            _errorbar(ax, np.array(x) + offset, picked, "psnr", label=name, color=f"C{colour}")
            _errorbar(
                ax,
                np.array(x) + offset,
                picked,
                "copy_last_frame_psnr",
                color=f"C{colour}",
                linestyle="--",
                alpha=0.5,
            )
        ax.set_xticks(np.arange(len(labels)), labels, fontsize=8)
        ax.set_xlabel("frames since this view was last seen")
        ax.set_ylabel("PSNR (dB); dashed: copy last frame")
        ax.set_title(task)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def union_bin_labels(summaries: Sequence[dict]) -> list[str]:
    """Bin labels of all runs, ordered by their lower edge (never seen last)."""
    found = {}
    for summary in summaries:
        for entry in _bins_with_frames(summary):
            key = (1, 0) if entry["never_seen"] else (0, entry["low"])
            found.setdefault(entry["label"], key)
    return sorted(found, key=found.get)
