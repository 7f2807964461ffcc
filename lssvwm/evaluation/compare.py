"""Several evaluate results in one markdown table and one plot.

    python -m lssvwm.evaluate --compare DIR1 DIR2 results/x.json --output=compare.md

Each argument is a result JSON of `lssvwm.evaluate`, or a directory searched for them (itself
and its `evaluation/` folder; a run's workdir works). The table has a row per result: run,
mixer, task, checkpoint step, episodes, PSNR with its 95% CI, copy-last-frame PSNR, SSIM, then
PSNR per "frames since last seen" bin (copy-last-frame in brackets). The plot (`.png` beside the
table) draws PSNR by distance, one line per run and one panel per task.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Sequence

from lssvwm.evaluation import plots

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
