"""Paired per-episode PSNR differences between two evaluation JSONs of the same episodes.

    python -m experiments.state_carrying.paired_differences [--results DIR]

reads DIR's (default `results/` beside this file) evaluation JSONs and writes
DIR/paired_differences.json.

The runs of one comparison score the very same episodes (same split, seed and ids), so the
per-episode difference removes the episode-to-episode spread that dominates each run's own
interval; its mean gets a 95% bootstrap interval over episodes.
"""

from __future__ import annotations

import argparse
import json
import pathlib

import numpy as np

from lssvwm.evaluation import statistics

RESULTS = pathlib.Path(__file__).parent / "results"
COMPARISONS = (  # (name, run A, run B): A minus B
    (
        "within window: LSSVWM - sliding window W=16",
        "within_window/lssvwm",
        "within_window/causal_window",
    ),
    (
        "within window: LSSVWM - sliding window W=4 (LSSVWM without its SSM)",
        "within_window/lssvwm",
        "within_window/causal_window4",
    ),
    (
        "beyond window: LSSVWM carried - sliding window W=4",
        "beyond_window/lssvwm_reset_never",
        "beyond_window/causal_window4",
    ),
    (
        "rollout: carried - SSM reset every 32 (plain-trained)",
        "beyond_window/lssvwm_reset_never",
        "beyond_window/lssvwm_reset_every_32_ssm",
    ),
    (
        "training: carried - zero_reset (rollout carried)",
        "training_policy/carried_reset_never",
        "training_policy/zero_reset_reset_never",
    ),
    (
        "training: carried - zero_reset (rollout SSM reset every 32)",
        "training_policy/carried_reset_every_32_ssm",
        "training_policy/zero_reset_reset_every_32_ssm",
    ),
    (
        "rollout: carried - SSM reset every 32 (carried-trained)",
        "training_policy/carried_reset_never",
        "training_policy/carried_reset_every_32_ssm",
    ),
)


def paired_difference(a: dict, b: dict, resamples: int = 10_000, seed: int = 0) -> dict:
    """Mean of A's minus B's per-episode PSNR, with a 95% bootstrap interval over episodes."""
    if a["episode_ids"] != b["episode_ids"]:
        raise ValueError("the two runs scored different episodes: no pairing")
    difference = np.asarray(a["episode_psnr"]) - np.asarray(b["episode_psnr"])
    mean, low, high = statistics.bootstrap_mean(difference, resamples=resamples, seed=seed)
    return {"mean_db": mean, "ci95_db": [low, high], "episodes": len(difference)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--results", type=pathlib.Path, default=RESULTS, help="the experiment's results folder"
    )
    args = parser.parse_args()
    table = {}
    for name, run_a, run_b in COMPARISONS:
        paths = [args.results / f"{run}.json" for run in (run_a, run_b)]
        missing = [str(path) for path in paths if not path.exists()]
        if missing:  # e.g. an older results folder without that run
            print(f"{name}: skipped, missing {', '.join(missing)}")
            continue
        a, b = (json.loads(path.read_text()) for path in paths)
        table[name] = {"a": run_a, "b": run_b, **paired_difference(a, b)}
        row = table[name]
        print(
            f"{name}: {row['mean_db']:+.3f} dB (95% CI {row['ci95_db'][0]:+.3f} to "
            f"{row['ci95_db'][1]:+.3f}), {row['episodes']} episodes"
        )
    (args.results / "paired_differences.json").write_text(json.dumps(table, indent=2) + "\n")


if __name__ == "__main__":
    main()
