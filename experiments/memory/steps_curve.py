r"""A model's memory beyond W against training steps, and the steps it would need (an
extrapolation from the measured points, not a guess).

    python -m experiments.memory.steps_curve --workdir RUNS/lssvwm \
        --out experiments/memory/steps_curve_lssvwm.json

For every kept checkpoint of the run (train it with `--set training.keep_checkpoints=12` so that
they survive), the blind retrieval probe of `experiments.memory.run` scores the weights twice --
as they are, and with their memory emptied right after the context (the table's same-weights
control of that model, from `run.probes_for`: the SSM state for the scan models, the attention
cache for the full-context transformer, the store for spatial memory) -- and the paired
difference on views last seen beyond W (17-64 frames ago) is the memory the model uses at that
step. Probes are skipped where their JSON exists.

The extrapolation fits gain = a + b log10(steps) by least squares over the measured steps and
solves for the target gain (1.5 dB, the issue's bar); with b <= 0 there is no finite answer and
the record says so. Gains that grow as a power of the steps reach the bar sooner than this
log-linear fit says, so it is the slower, conservative reading of the same points.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import subprocess
import sys
import time

from experiments.memory.run import BINS, EPISODES, Probe, evaluate_command, probes_for

TARGET_DB = 1.5


def kept_steps(workdir: pathlib.Path) -> list[int]:
    checkpoints = workdir / "checkpoints"
    return sorted(int(p.name) for p in checkpoints.iterdir() if p.name.isdigit())


def blind_retrieval_pair(model: str) -> tuple[Probe, Probe]:
    """The table's blind retrieval probe of `model` and its same-weights control (its memory
    emptied right after the context)."""
    blind = [p for p in probes_for(model) if p.probe == "blind" and p.task == "retrieval"]
    kept = [p for p in blind if p.name == model]
    emptied = [p for p in blind if p.name != model]
    if not kept or not emptied:
        raise ValueError(f"model {model!r} has no memory to empty (no same-weights control)")
    return kept[0], emptied[0]


def fit_log_steps(steps: list[int], gains: list[float]) -> tuple[float, float]:
    """(a, b) of gain = a + b log10(steps), least squares."""
    xs = [math.log10(s) for s in steps]
    mean_x, mean_y = sum(xs) / len(xs), sum(gains) / len(gains)
    spread = sum((x - mean_x) ** 2 for x in xs)
    if spread == 0:
        raise ValueError("the fit needs at least two different step counts")
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, gains, strict=True)) / spread
    return mean_y - slope * mean_x, slope


def steps_for(target: float, intercept: float, slope: float) -> float | None:
    """Steps at which the fitted gain reaches `target`; None if it never does."""
    if slope <= 0:
        return None
    return 10 ** ((target - intercept) / slope)


def curve(results: dict[int, tuple[dict, dict]]) -> dict:
    """The record's figures from {step: (result as is, result with the memory emptied)}."""
    from lssvwm.evaluation.compare import paired_difference

    points = []
    for step, (kept, emptied) in sorted(results.items()):
        difference = paired_difference(kept, emptied, bin_label=BINS["beyond_W"])
        points.append(
            dict(step=step, gain_db=difference["mean_db"], ci95=difference["ci95_db"],
                 episodes=difference["episodes"], frames=difference["frames"])
        )  # fmt: skip
    record = dict(points=points, target_db=TARGET_DB)
    if len(points) >= 2:
        intercept, slope = fit_log_steps(
            [p["step"] for p in points], [p["gain_db"] for p in points]
        )
        needed = steps_for(TARGET_DB, intercept, slope)
        record["fit"] = dict(
            form="gain_db = a + b * log10(steps)",
            a=intercept,
            b_db_per_decade=slope,
            steps_to_target=None if needed is None else round(needed),
        )
    return record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=pathlib.Path, required=True)
    parser.add_argument("--model", default=None, help="the run's mixer (default: its dir name)")
    parser.add_argument("--steps", default="", help="checkpoint steps (default: every kept one)")
    parser.add_argument("--out", type=pathlib.Path, required=True)
    args = parser.parse_args(argv)
    begin = time.perf_counter()
    model = args.model or args.workdir.name
    pair_probes = blind_retrieval_pair(model)
    steps = [int(s) for s in args.steps.split(",") if s] or kept_steps(args.workdir)
    probes_dir = args.workdir / "steps_curve"
    results = {}
    for step in steps:
        pair = []
        for name, item in zip(("kept", "emptied"), pair_probes, strict=True):
            output = probes_dir / f"{step}_{name}.json"
            if not output.exists():
                command = evaluate_command(item, args.workdir, EPISODES, output)
                command.append(f"--step={step}")
                print(" ".join(command), flush=True)
                subprocess.run(command, check=True)
            pair.append(json.loads(output.read_text()))
        results[step] = tuple(pair)
    record = curve(results)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True)
    record.update(
        command="python -m experiments.memory.steps_curve " + " ".join(argv or sys.argv[1:]),
        commit=commit.stdout.strip(),
        run=args.workdir.name,
        control=pair_probes[1].name,
        bin=BINS["beyond_W"],
        wall_seconds_this_call=round(time.perf_counter() - begin, 1),
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    for p in record["points"]:
        low, high = p["ci95"]
        print(f"step {p['step']:>6}: {p['gain_db']:+.2f} dB ({low:+.2f} to {high:+.2f})")
    if "fit" in record:
        fit = record["fit"]
        print(f"fit: {fit['b_db_per_decade']:+.3f} dB per decade of steps; "
              f"{TARGET_DB} dB at {fit['steps_to_target'] or 'no finite'} steps")  # fmt: skip


if __name__ == "__main__":
    main()
