"""Paired per-episode differences of the spatial-memory runs against the committed maze3d runs.

    python -m experiments.spatial_memory.compare [--results DIR]

Reads DIR (default `results/` beside this file) and the state_carrying results, which scored the
same 32 test episodes with the same probe, and writes DIR/paired_differences.json: per
comparison, over all generated frames and per distance bin (frames since the view was last
seen), the mean PSNR difference and its 95% bootstrap interval over episodes
(experiments.state_carrying.paired_differences). A bin a committed run has no per-episode sums
for (results older than those sums) is skipped with a message.
"""

from __future__ import annotations

import argparse
import json
import pathlib

from experiments.state_carrying.paired_differences import RESULTS as STATE_RESULTS
from lssvwm.evaluation.compare import paired_difference

RESULTS = pathlib.Path(__file__).parent / "results"
BINS = ("5-16", "17-32")
# (name, A, B): A minus B; "state:" paths are the committed state_carrying runs.
COMPARISONS = (
    (
        "blind: spatial memory - its store emptied after the context (same weights)",
        "blind/spatial_memory",
        "blind/spatial_memory_store_emptied_after_context",
    ),
    (
        "blind: spatial memory - sliding window W=16",
        "blind/spatial_memory",
        "state:memory_probe/blind/causal_window",
    ),
    (
        "blind: spatial memory - sliding window W=4",
        "blind/spatial_memory",
        "state:memory_probe/blind/causal_window4",
    ),
    ("blind: spatial memory - LSSVWM", "blind/spatial_memory", "state:memory_probe/blind/lssvwm"),
    (
        "truth: spatial memory - sliding window W=16",
        "truth/spatial_memory",
        "state:memory_probe/truth/causal_window",
    ),
    (
        "rollout: spatial memory - sliding window W=16",
        "generated/spatial_memory",
        "state:within_window/causal_window",
    ),
    ("rollout: spatial memory - LSSVWM", "generated/spatial_memory", "state:within_window/lssvwm"),
    (
        "rollout: oracle depth - predicted depth (same weights)",
        "generated/spatial_memory_oracle_depth",
        "generated/spatial_memory",
    ),
)


def _path(results: pathlib.Path, run: str) -> pathlib.Path:
    if run.startswith("state:"):
        return STATE_RESULTS / f"{run.removeprefix('state:')}.json"
    return results / f"{run}.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=pathlib.Path, default=RESULTS)
    args = parser.parse_args()
    table = []
    for name, run_a, run_b in COMPARISONS:
        paths = [_path(args.results, run) for run in (run_a, run_b)]
        if not all(path.exists() for path in paths):
            print(f"{name}: skipped, missing {[str(p) for p in paths if not p.exists()]}")
            continue
        a, b = (json.loads(path.read_text()) for path in paths)
        for label in (None, *BINS):
            try:
                difference = paired_difference(a, b, bin_label=label)
            except ValueError as error:  # committed runs scored before per-bin sums were kept
                print(f"{name}, bin {label}: skipped, {error}")
                continue
            row = {"name": name, "a": run_a, "b": run_b, "bin": label or "all", **difference}
            table.append(row)
            where = "all frames" if label is None else f"views last seen {label} frames ago"
            print(
                f"{name}, {where}: {row['mean_db']:+.2f} dB "
                f"(95% CI {row['ci95_db'][0]:+.2f} to {row['ci95_db'][1]:+.2f}), "
                f"{row['episodes']} episodes"
            )
    (args.results / "paired_differences.json").write_text(json.dumps(table, indent=2) + "\n")


if __name__ == "__main__":
    main()
