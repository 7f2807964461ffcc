"""Several evaluate results in one markdown table and one plot.

    python -m lssvwm.evaluate --compare DIR1 DIR2 results/x.json --output=compare.md

Each argument is a result JSON of `lssvwm.evaluate`, or a directory searched for them (itself
and its `evaluation/` folder; a run's workdir works). The table has a row per result: run,
mixer, task, checkpoint step, episodes, PSNR with its 95% CI, copy-last-frame PSNR, SSIM, then
PSNR per "frames since last seen" bin (copy-last-frame in brackets). The plot (`.png` beside the
table) draws PSNR by distance, one line per run and one panel per task.

`paired_difference(a, b)`: two results that scored the very same episodes (same split, seed and
ids), A's minus B's PSNR per episode -- the pairing removes the episode-to-episode spread that
dominates each run's own interval --, its mean with a 95% bootstrap interval over episodes.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Sequence

import numpy as np

from lssvwm.evaluation import plots, statistics

_REQUIRED = ("task", "psnr", "psnr_by_distance", "checkpoint_step", "num_episodes")


def is_result(data) -> bool:
    return isinstance(data, dict) and all(k in data for k in _REQUIRED)


def find_results(arguments: Sequence[str]) -> list[tuple[pathlib.Path, dict]]:
    """(path, result) of every evaluate JSON named by `arguments` (files or directories)."""
    found = []
    for argument in arguments:
        path = pathlib.Path(argument)
        if path.is_file():
            data = json.loads(path.read_text())
            if not is_result(data):
                raise ValueError(
                    f"{path} is not an evaluate result (missing one of {list(_REQUIRED)})"
                )
            found.append((path, data))
        elif path.is_dir():
            candidates = sorted(path.glob("*.json")) + sorted(path.glob("evaluation/*.json"))
            results = []
            for candidate in candidates:
                try:
                    data = json.loads(candidate.read_text())
                except json.JSONDecodeError:
                    continue
                if is_result(data):
                    results.append((candidate, data))
            if not results:
                raise ValueError(f"{path} holds no evaluate result JSON (nor its evaluation/)")
            found.extend(results)
        else:
            raise FileNotFoundError(f"{path} does not exist")
    if not found:
        raise ValueError("nothing to compare: name result JSONs or directories")
    return found


def run_name(path: pathlib.Path, result: dict) -> str:
    """The run's workdir name, with the rollout reset policy and the history mode (teacher
    forced, blind) where they are not the rollout's defaults."""
    workdir = result.get("workdir")
    name = pathlib.Path(workdir).name if workdir else path.parent.name
    reset = result.get("reset", "never")
    if reset != "never":
        name = f"{name}, reset {reset}"
    history = result.get("history", "generated")
    return name if history == "generated" else f"{name}, {history} history"


def _number(x, digits: int = 2) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def markdown_table(results: Sequence[tuple[pathlib.Path, dict]]) -> str:
    summaries = [r for _, r in results]
    labels = plots.union_bin_labels(summaries)
    header = [
        "run",
        "mixer",
        "task",
        "step",
        "episodes",
        "PSNR (95% CI)",
        "copy-last PSNR",
        "SSIM",
        *[f"PSNR @ {label}" for label in labels],
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for path, result in results:
        bins = {e["label"]: e for e in result["psnr_by_distance"] if e["num_frames"] > 0}
        low, high = result.get("psnr_ci", [None, None])
        cells = [
            run_name(path, result),
            result.get("model", {}).get("mixer", "?"),
            result["task"],
            str(result["checkpoint_step"]),
            str(result["num_episodes"]),
            f"{_number(result['psnr'])} ({_number(low)}–{_number(high)})",
            _number(result.get("copy_last_frame_psnr")),
            _number(result.get("ssim"), 3),
        ]
        for label in labels:
            entry = bins.get(label)
            cells.append("–" if entry is None else _bin_cell(entry))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _bin_cell(entry: dict) -> str:
    low, high = entry.get("psnr_ci", [None, None])
    interval = "" if low is None else f" ({_number(low)}–{_number(high)})"
    return f"{_number(entry['psnr'])}{interval} [{_number(entry['copy_last_frame_psnr'])}]"


def write_comparison(
    arguments: Sequence[str], output: str | pathlib.Path
) -> dict[str, pathlib.Path]:
    """Writes the markdown table at `output` and the plot beside it (.png)."""
    output = pathlib.Path(output)
    results = find_results(arguments)
    output.parent.mkdir(parents=True, exist_ok=True)
    plot = plots.plot_compare(
        [r for _, r in results],
        [f"{run_name(p, r)} ({r['task']})" for p, r in results],
        output.with_suffix(".png"),
    )
    text = (
        "PSNR in dB; per-bin cells: model (95% bootstrap CI over episodes) [copy last context "
        "frame]; bins are frames since the view was last seen in the context.\n\n"
        + markdown_table(results)
        + f"\n![PSNR by frames since last seen]({plot.name})\n"
    )
    output.write_text(text)
    return {"table": output, "plot": plot}


def paired_difference(
    a: dict, b: dict, resamples: int = 10_000, seed: int = 0, bin_label: str | None = None
) -> dict:
    """Mean of A's minus B's per-episode PSNR, with a 95% bootstrap interval over episodes.

    With `bin_label` (e.g. "17-32"): over the frames of that distance bin only (frames since the
    view was last seen), pooled over episodes as the evaluator pools them; both runs scored the
    same frames of the same episodes, so the bin holds the same frames in each.
    """
    if a["episode_ids"] != b["episode_ids"]:
        raise ValueError("the two runs scored different episodes: no pairing")
    if bin_label is None:
        difference = np.asarray(a["episode_psnr"]) - np.asarray(b["episode_psnr"])
        mean, low, high = statistics.bootstrap_mean(difference, resamples=resamples, seed=seed)
        return {"mean_db": mean, "ci95_db": [low, high], "episodes": len(difference)}
    bin_a, bin_b = (_distance_bin(run, bin_label) for run in (a, b))
    counts = np.asarray(bin_a["episode_num_frames"])
    if not np.array_equal(counts, bin_b["episode_num_frames"]):
        raise ValueError(f"bin {bin_label}: the runs' frames differ, no pairing")
    sums = np.asarray(bin_a["episode_psnr_sum"]) - np.asarray(bin_b["episode_psnr_sum"])
    mean, low, high = statistics.bootstrap_ratio(
        sums[:, None], counts[:, None], resamples=resamples, seed=seed
    )
    return {
        "mean_db": float(mean[0]),
        "ci95_db": [float(low[0]), float(high[0])],
        "episodes": int((counts > 0).sum()),
        "frames": int(counts.sum()),
        "bin": bin_label,
    }


def _distance_bin(result: dict, label: str) -> dict:
    for entry in result.get("psnr_by_distance", []):
        if entry["label"] == label:
            if "episode_psnr_sum" not in entry:
                raise ValueError(f"bin {label}: no per-episode sums (evaluated before they were)")
            return entry
    raise ValueError(f"no distance bin {label!r} in the result")
