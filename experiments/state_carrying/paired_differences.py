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

from lssvwm.evaluation.compare import paired_difference

RESULTS = pathlib.Path(__file__).parent / "results"
COMPARISONS = (  # (name, run A, run B[, distance bin]): A minus B
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
    *(
        (
            f"{history} probe, views last seen {label} frames ago: LSSVWM - {other}",
            f"memory_probe/{history}/lssvwm",
            f"memory_probe/{history}/{run}",
            label,
        )
        for history in ("blind", "truth")
        for label in ("5-16", "17-32")
        for other, run in (
            ("SSM zeroed after the context (same weights)", "lssvwm_ssm_zeroed_after_context"),
            ("sliding window W=16", "causal_window"),
            ("sliding window W=4", "causal_window4"),
        )
    ),
    (  # the probe's own check: W=16 attends to the context frames of these views, W=4 not
        "blind probe, views last seen 5-16 frames ago: sliding window W=16 - W=4",
        "memory_probe/blind/causal_window",
        "memory_probe/blind/causal_window4",
        "5-16",
    ),
    *(
        (
            f"memory-heavy fine-tune, blind probe, views last seen {label} frames ago: "
            f"LSSVWM - {other}",
            "retrace_finetune_blind/lssvwm",
            f"retrace_finetune_blind/{run}",
            label,
        )
        for label in ("5-16", "17-32")
        for other, run in (
            ("SSM zeroed after the context (same weights)", "lssvwm_ssm_zeroed_after_context"),
            ("sliding window W=16", "causal_window"),
            ("sliding window W=4", "causal_window4"),
        )
    ),
    (
        "beyond window, blind probe: trained carried - zero_reset",
        "beyond_window_blind/trained_carried",
        "beyond_window_blind/trained_zero_reset",
    ),
    (
        "beyond window, blind probe: carried - SSM reset every 32 (plain-trained)",
        "beyond_window_blind/lssvwm_reset_never",
        "beyond_window_blind/lssvwm_reset_every_32_ssm",
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--results", type=pathlib.Path, default=RESULTS, help="the experiment's results folder"
    )
    args = parser.parse_args()
    table = {}
    for name, run_a, run_b, *bin_label in COMPARISONS:
        paths = [args.results / f"{run}.json" for run in (run_a, run_b)]
        missing = [str(path) for path in paths if not path.exists()]
        if missing:  # e.g. an older results folder without that run
            print(f"{name}: skipped, missing {', '.join(missing)}")
            continue
        a, b = (json.loads(path.read_text()) for path in paths)
        try:
            difference = paired_difference(a, b, bin_label=bin_label[0] if bin_label else None)
        except ValueError as error:  # e.g. results written before per-bin sums were stored
            print(f"{name}: skipped, {error}")
            continue
        table[name] = {"a": run_a, "b": run_b, **difference}
        row = table[name]
        print(
            f"{name}: {row['mean_db']:+.3f} dB (95% CI {row['ci95_db'][0]:+.3f} to "
            f"{row['ci95_db'][1]:+.3f}), {row['episodes']} episodes"
        )
    (args.results / "paired_differences.json").write_text(json.dumps(table, indent=2) + "\n")


if __name__ == "__main__":
    main()
