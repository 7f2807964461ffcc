r"""The memory table in one command: trains the maze3d family in the memory world, probes every
model the same way and writes the table (README.md beside this file).

    python -m experiments.memory.run                              # everything, resumable
    python -m experiments.memory.run --models causal_full,causal_window   # the positive control
    python -m experiments.memory.run --stages table               # the table from what exists
    python -m experiments.memory.run --dry-run                    # the commands, nothing run

Stages, each skipped where its output exists (a run interrupted anywhere continues where it
stopped; training resumes from its last checkpoint):
  train  `lssvwm.train` with `configs/maze3d_memory.py:mixer=NAME` in RUNS/NAME (the data is
         built on first use);
  probe  `lssvwm.evaluate` for every model (PROBES below): retrieval with three histories --
         blind (every walked-back frame generated with the ones before it fed as pure noise: a
         view last seen more than W frames ago can come only from memory), truth (teacher
         forcing) and rollout --, reasoning (rollout), the same-weights controls of models with
         a memory (SSM state or spatial store emptied right after the context), and LSSVWM
         beyond its training window (state carried vs reset every 64 frames);
  table  results.md (PSNR / SSIM per model and probe, PSNR by distance, paired differences
         with 95% intervals), results.json (its `paired` list: what a script checks), the
         PSNR-against-distance plot and the rollout videos, into --out.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import time

from configs.maze3d_family import FAMILY
from configs.maze3d_memory import DISTANCE_EDGES, TRAINING_WINDOW

CONFIG = "configs/maze3d_memory.py"
OUT = pathlib.Path(__file__).parent
# The positive control first: a comparison means nothing until full context beats the window.
ORDER = (
    "causal_full",
    "causal_window",
    "lssvwm",
    "spatial_memory",
    "mamba2_fla",
    "mamba2",
    "lssvwm_1x1",
)
EPISODES = 32
RETRIEVAL_CONTEXT = TRAINING_WINDOW // 2  # walked back for context - 1 frames: views last seen
BEYOND_CONTEXT = 3 * TRAINING_WINDOW // 2  # up to ~2x the context ago
SSM_MODELS = ("lssvwm", "lssvwm_1x1", "mamba2_fla", "mamba2")
# Distance bins (frames since the view was last seen) by their names in results.json.
BINS = {"within_k": "1-4", "within_W": "5-16", "beyond_W": "17-64", "beyond_training": "65-128"}


@dataclasses.dataclass(frozen=True)
class Probe:
    """One `lssvwm.evaluate` call: a result named `name` for `model`."""

    model: str  # the trained run
    name: str  # the result's name in the table (a model, or a model's control)
    probe: str  # blind | truth | rollout
    task: str  # retrieval | reasoning
    flags: tuple[str, ...] = ()

    @property
    def path(self) -> str:
        return f"{self.task}_{self.probe}/{self.name}.json"


def probes_for(model: str) -> list[Probe]:
    history = {"blind": "--history=blind", "truth": "--history=truth", "rollout": ""}
    retrieval = (f"--context={RETRIEVAL_CONTEXT}", f"--horizon={RETRIEVAL_CONTEXT - 1}")
    probes = [
        Probe(model, model, probe, "retrieval", (*retrieval, flag) if flag else retrieval)
        for probe, flag in history.items()
    ]
    # the world's reasoning split holds 16 episodes; the same generator makes 32 on first use
    reasoning = (f"--data=maze3d.reasoning_episodes={EPISODES}",)
    probes.append(Probe(model, model, "rollout", "reasoning", reasoning))
    control = {"spatial_memory": "spatial_memory_store_emptied"}.get(model)
    control = control or (f"{model}_ssm_zeroed" if model in SSM_MODELS else None)
    if control:  # the same weights with their memory emptied right after the context
        for probe in ("blind", "truth"):
            flags = (*retrieval, history[probe], "--reset=at:0:ssm")
            probes.append(Probe(model, control, probe, "retrieval", flags))
    if model == "causal_full":  # the floor: its attention cache cleared after the context
        flags = (*retrieval, history["blind"], "--reset=at:0")
        probes.append(Probe(model, "causal_full_cache_cleared", "blind", "retrieval", flags))
    # Beyond the training window (views last seen up to ~2x the context ago): LSSVWM with its
    # state carried and reset every 64 frames, and the transformers beside it.
    beyond = (f"--context={BEYOND_CONTEXT}", f"--horizon={BEYOND_CONTEXT - 1}", "--history=blind")
    if model == "lssvwm":
        for name, reset in (("lssvwm", "never"), ("lssvwm_reset_every_64", "every:64:ssm")):
            probes.append(
                Probe(model, name, "blind", "beyond_training", (*beyond, f"--reset={reset}"))
            )
    if model in ("causal_full", "causal_window"):
        probes.append(Probe(model, model, "blind", "beyond_training", beyond))
    return probes


# The paired comparisons of results.json: (a, b), a minus b, on every probe both were scored on.
PAIRS = (
    ("causal_full", "causal_window"),  # the positive control
    ("causal_full", "causal_full_cache_cleared"),
    ("lssvwm", "causal_window"),
    ("lssvwm", "lssvwm_ssm_zeroed"),
    ("lssvwm", "causal_full"),
    ("spatial_memory", "causal_window"),
    ("spatial_memory", "spatial_memory_store_emptied"),
    ("spatial_memory", "causal_full"),
    ("mamba2_fla", "causal_window"),
    ("mamba2_fla", "mamba2_fla_ssm_zeroed"),
    ("mamba2", "causal_window"),
    ("mamba2", "mamba2_ssm_zeroed"),
    ("lssvwm_1x1", "causal_window"),
    ("lssvwm_1x1", "lssvwm_1x1_ssm_zeroed"),
    ("lssvwm_1x1", "lssvwm"),
    ("lssvwm", "lssvwm_reset_every_64"),
)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


FAILED: list[str] = []  # the commands that failed; the launcher goes on and exits non-zero


def run(command: list[str], dry_run: bool) -> bool:
    log(" ".join(command))
    if dry_run:
        return True
    if subprocess.run(command).returncode != 0:
        FAILED.append(" ".join(command))
        log("FAILED (going on with the rest)")
        return False
    return True


def train(model: str, args) -> bool:
    """Trains (or resumes) `model`; False if the training failed."""
    workdir = args.runs / model
    if (workdir / "eval_final.json").exists():
        log(f"{model}: trained (eval_final.json exists)")
        return True
    command = [sys.executable, "-m", "lssvwm.train", f"--config={args.config}:mixer={model}"]
    command += [f"--workdir={workdir}", *(f"--config.{item}" for item in args.set)]
    return run(command, args.dry_run)


def evaluate_command(
    item: Probe, workdir: pathlib.Path, episodes: int, output: pathlib.Path
) -> list[str]:
    """The `lssvwm.evaluate` command line of `item` on the run in `workdir`."""
    task = "retrieval" if item.task == "beyond_training" else item.task
    command = [sys.executable, "-m", "lssvwm.evaluate", f"--workdir={workdir}"]
    command += [f"--task={task}", f"--num_episodes={episodes}", f"--output={output}"]
    command += ["--distance_edges=" + ",".join(map(str, DISTANCE_EDGES))]
    return command + [flag for flag in item.flags if flag]


def probe(item: Probe, args) -> None:
    output = args.runs / "probes" / item.path
    if output.exists():
        return
    run(evaluate_command(item, args.runs / item.model, args.episodes, output), args.dry_run)


# ---------------------------------------------------------------------------------------------
# The table.


def load_results(probes_dir: pathlib.Path) -> dict:
    """{(name, probe, task): result} of every result JSON under `probes_dir`."""
    results = {}
    for path in sorted(probes_dir.glob("*/*.json")):
        task, _, probe_name = path.parent.name.rpartition("_")
        results[path.stem, probe_name, task] = json.loads(path.read_text())
    return results


def training_seconds(metrics_path: pathlib.Path) -> float | None:
    """Seconds spent in training steps, from the logged step rates of metrics.jsonl: right
    across resumptions, which eval_final.json's `wall_seconds_this_run` is not (steps logged
    twice -- after a resume from an older checkpoint -- count once, at their last rate). Step
    time only: evaluations and checkpoints are left out."""
    if not metrics_path.exists():
        return None
    rates = {}
    for line in metrics_path.read_text().splitlines():
        row = json.loads(line)
        if row.get("steps_per_sec"):
            rates[row["step"]] = row["steps_per_sec"]
    seconds, previous = 0.0, 0
    for step in sorted(rates):
        seconds += (step - previous) / rates[step]
        previous = step
    return seconds


def paired_entries(results: dict) -> list[dict]:
    from lssvwm.evaluation.compare import paired_difference

    entries = []
    for a, b in PAIRS:
        for (name, probe_name, task), result_a in sorted(results.items()):
            if name != a or (b, probe_name, task) not in results:
                continue
            result_b = results[b, probe_name, task]
            for bin_name, label in (("all", None), *BINS.items()):
                try:
                    difference = paired_difference(result_a, result_b, bin_label=label)
                except ValueError:  # a bin the task does not reach, or unpaired episodes
                    continue
                if difference.get("frames", 1) == 0:
                    continue
                entries.append(
                    dict(
                        a=a,
                        b=b,
                        probe=probe_name,
                        task=task,
                        bin=bin_name,
                        mean_db=round(difference["mean_db"], 4),
                        ci95=[round(x, 4) for x in difference["ci95_db"]],
                        episodes=difference["episodes"],
                    )
                )
    return entries


def _bin(result: dict, label: str) -> dict | None:
    return next((e for e in result["psnr_by_distance"] if e["label"] == label), None)


def _cell(value, interval=None, digits=2) -> str:
    if value is None:
        return "-"
    if interval is None:
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} ({interval[0]:.{digits}f}-{interval[1]:.{digits}f})"


def markdown(record: dict, results: dict) -> str:
    names = sorted({key[0] for key in results}, key=_model_order)
    lines = [
        "# The memory table (maze3d memory world)",
        "",
        f"    {record['command']}",
        "",
        f"Commit {record['commit'][:10]}, {record['machine']}, {record['episodes']} test episodes "
        f"per probe; wall time summed over the runs' own records: training steps "
        f"{record['train_minutes']} min (from the logged step rates, across resumptions; models "
        f"trained two or three at a time share the 2 cores), probes {record['probe_minutes']} "
        f"min; this command {record['wall_minutes']} min.",
        "",
        "## Retrieval and reasoning (paper layout)",
        "",
        "PSNR dB (95% CI over episodes) / SSIM. Retrieval: context "
        f"{RETRIEVAL_CONTEXT} frames, then the path walked back for {RETRIEVAL_CONTEXT - 1}: the "
        "view at step j was last seen about 2j frames ago. beyond W: PSNR of the frames whose "
        "view was last seen 17-64 frames ago (beyond the sliding-window control's W = 16 and "
        "LSSVWM's k = 4, inside the 64-frame training window).",
        "",
        "| model | params | steps | training min | teacher-forced next frame | retrieval rollout "
        "| SSIM | reasoning rollout | SSIM | blind, beyond W | truth, beyond W |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    beyond = BINS["beyond_W"]
    for name in names:
        rollout = results.get((name, "rollout", "retrieval"))
        reasoning = results.get((name, "rollout", "reasoning"))
        blind = results.get((name, "blind", "retrieval"))
        truth = results.get((name, "truth", "retrieval"))
        trained = record["training"].get(name, {})
        params = f"{trained['num_params']:,}" if trained.get("num_params") else "-"
        teacher = _cell(trained.get("tf_next_frame_psnr"))

        def whole(result):
            if result is None:
                return ["-", "-"]
            return [_cell(result["psnr"], result["psnr_ci"]), _cell(result["ssim"], digits=3)]

        def far(result):
            entry = result and _bin(result, beyond)
            return _cell(entry["psnr"], entry["psnr_ci"]) if entry and entry["num_frames"] else "-"

        step = str(trained.get("step", "-"))
        minutes = (
            _cell(trained["wall_seconds"] / 60, digits=0) if trained.get("wall_seconds") else "-"
        )
        cells = [name, params, step, minutes, teacher, *whole(rollout), *whole(reasoning)]
        cells += [far(blind), far(truth)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Paired differences (a - b, same episodes; dB, 95% bootstrap interval)",
        "",
        "| a | b | probe | task | bin | mean | 95% CI | episodes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for e in record["paired"]:
        if e["bin"] in ("all", "beyond_W", "beyond_training", "within_W"):
            lines.append(
                f"| {e['a']} | {e['b']} | {e['probe']} | {e['task']} | {e['bin']} | "
                f"{e['mean_db']:+.2f} | {e['ci95'][0]:+.2f} to {e['ci95'][1]:+.2f} | "
                f"{e['episodes']} |"
            )
    lines += ["", "![PSNR against distance](psnr_by_distance.png)", ""]
    if record["missing"]:
        lines += ["Not yet run: " + ", ".join(record["missing"]), ""]
    return "\n".join(lines) + "\n"


def _model_order(name: str) -> tuple:
    base = next((m for m in sorted(ORDER, key=len, reverse=True) if name.startswith(m)), name)
    return (ORDER.index(base) if base in ORDER else len(ORDER), name)


def plot(results: dict, path: pathlib.Path) -> None:
    """PSNR by distance bin, one panel per retrieval probe, one colour per result name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    probes = [("blind", "retrieval"), ("truth", "retrieval"), ("rollout", "retrieval")]
    names = sorted({key[0] for key in results}, key=_model_order)
    colours = {name: plt.get_cmap("tab10")(i % 10) for i, name in enumerate(names)}
    fig, axes = plt.subplots(1, len(probes), figsize=(5 * len(probes), 4), sharey=True)
    for ax, (probe_name, task) in zip(axes, probes, strict=True):
        labels = []
        for name in names:
            result = results.get((name, probe_name, task))
            if result is None:
                continue
            entries = [e for e in result["psnr_by_distance"] if e["num_frames"]]
            entries = [e for e in entries if not e["never_seen"]]
            labels = labels if len(labels) >= len(entries) else [e["label"] for e in entries]
            y = [e["psnr"] for e in entries]
            low = [max(e["psnr"] - e["psnr_ci"][0], 0.0) for e in entries]
            high = [max(e["psnr_ci"][1] - e["psnr"], 0.0) for e in entries]
            x = range(len(entries))
            ax.errorbar(
                x, y, yerr=[low, high], marker="o", capsize=3, label=name, color=colours[name]
            )
        ax.set_xticks(range(len(labels)), labels)
        ax.set(xlabel="frames since the view was last seen", title=f"{task}, {probe_name}")
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    axes[0].set_ylabel("PSNR (dB)")
    fig.suptitle(
        f"bins: 1-{BINS['within_k'].split('-')[1]} within k, 5-16 within W, "
        "17-64 beyond W (inside the training window)",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def table(args, all_probes: list[Probe], begin: float) -> dict:
    probes_dir = args.runs / "probes"
    results = load_results(probes_dir)
    missing = [p.path for p in all_probes if not (probes_dir / p.path).exists()]
    training = {}
    for model in args.models:
        final = args.runs / model / "eval_final.json"
        if final.exists():
            figures = json.loads(final.read_text())
            keys = ("step", "num_params", "tf_next_frame_psnr", "copy_last_frame_psnr", "val_loss")
            training[model] = {key: figures.get(key) for key in keys}
            training[model]["wall_seconds"] = training_seconds(args.runs / model / "metrics.jsonl")
    train_seconds = sum(t["wall_seconds"] or 0.0 for t in training.values())
    probe_seconds = sum(r.get("wall_seconds", 0.0) for r in results.values())
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True)
    record = dict(
        command="python -m experiments.memory.run " + " ".join(args.argv),
        commit=commit.stdout.strip(),
        machine=f"{platform.machine()}, {os.cpu_count()} cores",
        episodes=args.episodes,
        config=args.config,
        overrides=args.set,
        train_minutes=round(train_seconds / 60, 1),
        probe_minutes=round(probe_seconds / 60, 1),
        wall_minutes=round((time.perf_counter() - begin) / 60, 1),
        bins=dict(BINS),
        training=training,
        missing=missing,
        paired=paired_entries(results),
        results={
            "/".join(key): dict(
                psnr=r["psnr"],
                psnr_ci=r["psnr_ci"],
                ssim=r["ssim"],
                checkpoint_step=r["checkpoint_step"],
                psnr_by_distance={e["label"]: e["psnr"] for e in r["psnr_by_distance"]},
            )
            for key, r in results.items()
        },
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(record, indent=1) + "\n")
    (args.out / "results.md").write_text(markdown(record, results))
    if results:
        plot(results, args.out / "psnr_by_distance.png")
    videos = args.out / "videos"
    for (name, probe_name, task), _ in results.items():
        if probe_name == "rollout":
            gif = probes_dir / f"{task}_{probe_name}" / f"{name}_best_worst.gif"
            if gif.exists():
                videos.mkdir(exist_ok=True)
                shutil.copy(gif, videos / f"{task}_{name}.gif")
    log(f"wrote {args.out / 'results.md'} ({len(record['paired'])} paired entries)")
    return record


def parse_args(argv: list[str]):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=pathlib.Path, default=pathlib.Path("/tmp/lssvwm_memory"))
    parser.add_argument("--models", default=",".join(ORDER), help="family members, in order")
    parser.add_argument("--stages", default="train,probe,table")
    parser.add_argument("--episodes", type=int, default=EPISODES)
    parser.add_argument("--config", default=CONFIG)
    parser.add_argument("--set", action="append", default=[], help="training override K=V")
    parser.add_argument("--out", type=pathlib.Path, default=OUT)
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    args.argv = argv
    args.models = [m for m in args.models.split(",") if m]
    unknown = [m for m in args.models if m not in FAMILY]
    if unknown:
        parser.error(f"--models: unknown {unknown}; known: {list(FAMILY)}")
    args.stages = set(args.stages.split(","))
    if args.stages - {"train", "probe", "table"}:
        parser.error(f"--stages: unknown {sorted(args.stages - {'train', 'probe', 'table'})}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    begin = time.perf_counter()
    all_probes = [p for model in args.models for p in probes_for(model)]
    for model in args.models:  # model by model: the first models' rows come first
        if "train" in args.stages and not train(model, args):
            continue  # nothing to probe
        if "probe" in args.stages:
            for item in probes_for(model):
                probe(item, args)
    if "table" in args.stages and not args.dry_run:
        table(args, all_probes, begin)
    if FAILED:
        sys.exit("failed:\n  " + "\n  ".join(FAILED))


if __name__ == "__main__":
    main()
