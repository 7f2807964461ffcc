r"""Kill a training with SIGKILL at random moments (some of them mid-save), restart it each time,
and compare its final parameters bit for bit with an uninterrupted run of the same config.

    python -m experiments.faults.kill_loop --out experiments/faults            # tiny quickstart
    python -m experiments.faults.kill_loop --config=configs/quickstart.py --steps=200 \
        --checkpoint_every=20 --kills=8 --mid_save_kills=3 --out DIR           # any scale

What a preempted cluster does to a job, black-box: the trainer is the real CLI in a subprocess,
the kill is SIGKILL (no handler runs), and "mid-save" means the kill lands while orbax's
temporary step directory exists (polled every millisecond). Each restart runs the same command
and must resume from its newest complete checkpoint. Written: OUT/kill_loop.json and
OUT/kill_loop.md (kills survived, steps lost per kill, parameter difference, wall time, command,
commit). tests/training/test_fault_injection.py runs the same loop at the tiny scale in CI.

Every process shares one JAX persistent compilation cache (a directory of the run), so a
restart pays imports and tracing but not the train step's compile again.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import random
import shutil
import signal
import subprocess
import sys
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[2]
TMP_MARK = ".orbax-checkpoint-tmp"  # orbax's name for a step directory being written


@dataclasses.dataclass(frozen=True)
class Kill:
    """One SIGKILL: when it landed and what the restart resumed from."""

    moment: str  # "step" (after a random logged step) or "mid-save"
    last_logged_step: int  # the newest step in metrics.jsonl when the process died
    saving: bool  # an orbax temporary directory existed at the kill
    resumed_from: int | None = None  # the step the next start resumed from (None: step 0)

    @property
    def steps_lost(self) -> int:
        return self.last_logged_step - (self.resumed_from or 0)


def train_command(config: str, workdir: pathlib.Path, overrides: dict) -> list[str]:
    flags = [f"--config.{key}={value}" for key, value in overrides.items()]
    return [
        sys.executable,
        "-m",
        "lssvwm.train",
        f"--config={config}",
        f"--workdir={workdir}",
    ] + flags


def subprocess_env(cache_dir: pathlib.Path) -> dict:
    env = dict(os.environ)
    env.update(
        JAX_COMPILATION_CACHE_DIR=str(cache_dir),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
    )
    return env


def last_logged_step(workdir: pathlib.Path) -> int:
    """The newest training step in metrics.jsonl (0 when none)."""
    path = workdir / "metrics.jsonl"
    if not path.exists():
        return 0
    steps = [0]
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line cut by the kill
            continue
        if "loss" in record:
            steps.append(int(record["step"]))
    return max(steps)


def saving(workdir: pathlib.Path) -> bool:
    directory = workdir / "checkpoints"
    return directory.is_dir() and any(TMP_MARK in entry.name for entry in os.scandir(directory))


def resumed_step(log: str) -> int | None:
    """The step a start resumed from, read from its log ("resumed from DIR at step N")."""
    for line in log.splitlines():
        if "resumed from" in line and " at step " in line:
            return int(line.rsplit(" at step ", 1)[1].split()[0])
    return None


def kill_when(process, ready, timeout: float) -> bool:
    """SIGKILLs `process` as soon as `ready()` holds; False if it ended (or timed out) first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        if ready():
            process.send_signal(signal.SIGKILL)
            process.wait()
            return True
        time.sleep(0.001)
    process.kill()
    process.wait()
    raise TimeoutError(f"no kill moment within {timeout:.0f} s")


def run_to_end(command: list[str], env: dict, log_path: pathlib.Path, timeout: float) -> str:
    with open(log_path, "w") as log:
        result = subprocess.run(command, cwd=REPO, env=env, stderr=log, stdout=log, timeout=timeout)
    text = log_path.read_text()
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {result.returncode}:\n{text[-3000:]}")
    return text


def final_state(workdir: pathlib.Path) -> dict:
    """The newest checkpoint's train state as numpy arrays, keyed by tree path."""
    import jax
    import orbax.checkpoint as ocp

    from lssvwm.common.checkpointing import Checkpoints

    checkpoints = Checkpoints(workdir / "checkpoints")
    try:
        step = checkpoints.latest_step()
        restored = checkpoints._manager.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore())
        )["state"]
    finally:
        checkpoints.close()
    leaves = jax.tree_util.tree_flatten_with_path(restored)[0]
    return {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in leaves}


def max_difference(a: dict, b: dict) -> float:
    """Largest absolute difference over every leaf (inf when the trees differ in shape)."""
    if a.keys() != b.keys() or any(a[k].shape != b[k].shape for k in a):
        return float("inf")
    return max(
        (float(np.max(np.abs(a[k].astype(np.float64) - b[k].astype(np.float64)))) for k in a),
        default=0.0,
    )


def kill_loop(
    config: str,
    root: pathlib.Path,
    *,
    steps: int,
    checkpoint_every: int,
    kills: int,
    mid_save_kills: int,
    seed: int = 0,
    extra: dict | None = None,
    timeout: float = 600.0,
) -> dict:
    """Runs the experiment in `root` (reference run, killed run, their logs, one compilation
    cache) and returns its record."""
    if not 0 <= mid_save_kills <= kills:
        raise ValueError(f"mid_save_kills must be in [0, kills={kills}], got {mid_save_kills}")
    started = time.perf_counter()
    root.mkdir(parents=True, exist_ok=True)
    env = subprocess_env(root / "jax_cache")
    overrides = {"training.steps": steps, "training.checkpoint_every": checkpoint_every}
    overrides.update(extra or {})
    reference, killed = root / "reference", root / "killed"
    run_to_end(train_command(config, reference, overrides), env, root / "reference.log", timeout)
    command = train_command(config, killed, overrides)

    rng = random.Random(seed)
    moments = ["mid-save"] * mid_save_kills + ["step"] * (kills - mid_save_kills)
    rng.shuffle(moments)
    record: list[Kill] = []
    for index, moment in enumerate(moments):
        log_path = root / f"killed_{index}.log"
        with open(log_path, "w") as log:
            process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=log)
            before = last_logged_step(killed)
            if moment == "mid-save":
                ready = lambda before=before: last_logged_step(killed) > before and saving(killed)
            else:  # after a random step of what is left, between saves or not
                target = before + rng.randint(1, max(1, (steps - before) // 2))
                ready = lambda target=target: last_logged_step(killed) >= target
            if not kill_when(process, ready, timeout):
                raise RuntimeError(f"the run ended before kill {index} ({moment}); see {log_path}")
        resumed = resumed_step(log_path.read_text())
        if record:
            record[-1] = dataclasses.replace(record[-1], resumed_from=resumed)
        record.append(Kill(moment, last_logged_step(killed), saving(killed)))
    log = run_to_end(command, env, root / "killed_final.log", timeout)
    record[-1] = dataclasses.replace(record[-1], resumed_from=resumed_step(log))
    difference = max_difference(final_state(reference), final_state(killed))
    return {
        "config": config,
        "overrides": overrides,
        "steps": steps,
        "kills": [dict(dataclasses.asdict(k), steps_lost=k.steps_lost) for k in record],
        "kills_survived": len(record),
        "mid_save_kills": sum(k.saving for k in record),
        "max_parameter_difference": difference,
        "bitwise_equal": difference == 0.0,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }


def markdown(result: dict, command: str, commit: str) -> str:
    rows = [
        "| kill | moment | last logged step | saving at the kill | resumed from | steps lost |",
        "|---|---|---|---|---|---|",
    ]
    for i, kill in enumerate(result["kills"], 1):
        rows.append(
            f"| {i} | {kill['moment']} | {kill['last_logged_step']} | {kill['saving']} | "
            f"{kill['resumed_from'] or 0} | {kill['steps_lost']} |"
        )
    return "\n".join(
        [
            "# Kill loop: SIGKILL at random moments, then resume",
            "",
            f"Command: `{command}`  ",
            f"Commit: {commit}; wall time {result['wall_seconds']} s; config {result['config']} "
            f"with {result['overrides']}.",
            "",
            f"**{result['kills_survived']} kills survived ({result['mid_save_kills']} mid-save); "
            f"final parameters vs an uninterrupted run: max |difference| = "
            f"{result['max_parameter_difference']} (bitwise equal: {result['bitwise_equal']}).**",
            "",
            *rows,
            "",
            "Steps lost: the newest logged step at the kill minus the step the next start resumed "
            "from (at most `checkpoint_every` plus the step in flight).",
            "",
        ]
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/quickstart.py:tiny")
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--checkpoint_every", type=int, default=3)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--mid_save_kills", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", type=pathlib.Path, help="work directory (default: a temp dir)")
    parser.add_argument("--out", type=pathlib.Path, required=True)
    args = parser.parse_args(argv)
    for name in ("steps", "checkpoint_every", "kills"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    import tempfile

    root = args.root or pathlib.Path(tempfile.mkdtemp(prefix="kill_loop_"))
    try:
        result = kill_loop(
            args.config,
            root,
            steps=args.steps,
            checkpoint_every=args.checkpoint_every,
            kills=args.kills,
            mid_save_kills=args.mid_save_kills,
            seed=args.seed,
            extra={"sample.num_windows": 0},
        )
    finally:
        if args.root is None:  # a temporary work directory of ours: runs, logs, cache
            shutil.rmtree(root, ignore_errors=True)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    command = "python -m experiments.faults.kill_loop " + " ".join(argv or sys.argv[1:])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "kill_loop.json").write_text(
        json.dumps({**result, "command": command, "commit": commit}, indent=2) + "\n"
    )
    (args.out / "kill_loop.md").write_text(markdown(result, command, commit))
    print(markdown(result, command, commit))
    return 0 if result["bitwise_equal"] else 1


if __name__ == "__main__":
    sys.exit(main())
