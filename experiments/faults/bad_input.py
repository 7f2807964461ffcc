r"""Run every command line on a sweep of bad inputs and record how each one fails.

    python -m experiments.faults.bad_input --out experiments/faults
    python -m experiments.faults.bad_input --out /tmp/x --only evaluate --keep   # a subset

Each case is the real CLI (`python -m lssvwm.train`, `lssvwm.evaluate`, `lssvwm.rollout`,
`lssvwm.data.preview`, `lssvwm.data.build`) in a subprocess, on one mistake: an unknown config
key, a value of the wrong type, negative steps, a window longer than `model.max_frames`, a config
file that is missing, does not parse or does not import, a bad `:arg`, zero or out-of-range flag
values, a workdir that is missing or has no checkpoint or holds a checkpoint of another model, a
data directory that cannot be built, ... For each it records the command, the exit status, the
stderr lines that are not absl log lines (the message; one is the goal), whether "Traceback"
appears, the error line, and whether the directory the case could damage (the run directory,
the data directory or the output directory) changed: a hash of its tree before and after.

The cases that need a trained run get one made here first, in a temporary directory:
`configs/quickstart.py:tiny` (4 steps, its data built into the same directory), ~1 minute on 2
CPU cores. Written: OUT/bad_input.json and OUT/bad_input.md (a table), each stating the command,
the commit and the wall time. tests/cli/test_bad_input_report.py checks the row and table logic.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[2]
TINY = "configs/quickstart.py:tiny"
# A Python or C++ absl log line: "I1126 07:00:00.123456 140000 file.py:12] message".
ABSL_LOG_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ [^ \]]+:\d+\] ")


@dataclasses.dataclass(frozen=True)
class Case:
    """One bad input: the CLI module, its arguments, and the directory it must leave alone."""

    name: str
    what: str  # the mistake, in words
    module: str
    args: tuple[str, ...]
    watch: str | None = None  # the directory hashed before and after (None: nothing to watch)


@dataclasses.dataclass(frozen=True)
class Row:
    """What one case did."""

    name: str
    what: str
    command: str
    exit_status: int
    message_lines: int  # stderr lines that are not absl log lines
    traceback: bool
    error_line: str
    watched: str | None
    watched_changed: bool | None
    seconds: float

    @property
    def one_line(self) -> bool:
        """The goal: a non-zero status, one message line, no traceback, nothing changed."""
        return (
            self.exit_status != 0
            and self.message_lines == 1
            and not self.traceback
            and not self.watched_changed
        )


def message_lines(stderr: str) -> list[str]:
    """The non-empty lines of `stderr` that are not absl log lines."""
    return [line for line in stderr.splitlines() if line.strip() and not ABSL_LOG_LINE.match(line)]


def error_line(stderr: str) -> str:
    """The last `error: ...` line, else the last message line (a traceback's last line)."""
    lines = message_lines(stderr)
    errors = [line for line in lines if line.startswith("error: ")]
    if errors:
        return errors[-1]
    return lines[-1] if lines else ""


def tree_hash(path: str | pathlib.Path | None) -> str | None:
    """A hash of the tree at `path` (names, directories and file contents); "absent" when it
    does not exist; None for no path."""
    if path is None:
        return None
    root = pathlib.Path(path)
    if not root.exists():
        return "absent"
    digest = hashlib.sha256()
    if root.is_file():
        digest.update(root.read_bytes())
        return digest.hexdigest()
    for entry in sorted(root.rglob("*")):
        relative = entry.relative_to(root).as_posix()
        if entry.is_dir():
            digest.update(f"d {relative}\n".encode())
        else:
            digest.update(f"f {relative} {entry.stat().st_size}\n".encode())
            digest.update(hashlib.sha256(entry.read_bytes()).digest())
    return digest.hexdigest()


def make_row(
    case: Case,
    command: str,
    exit_status: int,
    stderr: str,
    before: str | None,
    after: str | None,
    seconds: float,
    tmp: str = "",
) -> Row:
    """A case's row; `tmp` (the temporary directory) is written as $TMP, and paths inside the
    repository relative to it (no machine's paths in the record)."""

    def short(text: str) -> str:
        text = text.replace(f"{REPO}/", "")
        return text.replace(tmp, "$TMP") if tmp else text

    return Row(
        name=case.name,
        what=case.what,
        command=short(command),
        exit_status=exit_status,
        message_lines=len(message_lines(stderr)),
        traceback="Traceback" in stderr,
        error_line=short(error_line(stderr)),
        watched=short(case.watch) if case.watch else None,
        watched_changed=None if before is None else before != after,
        seconds=round(seconds, 1),
    )


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(rows: list[Row], header: dict) -> str:
    """The report: what was run (command, commit, wall time) and one table row per case."""
    good = sum(row.one_line for row in rows)
    lines = [
        "# Bad inputs: how each command line fails",
        "",
        f"Command: `{header['command']}`  ",
        f"Commit: `{header['commit']}`  ",
        f"Wall time: {header['wall_seconds']:.0f} s ({header['date']}, {header['machine']})",
        "",
        f"{good} of {len(rows)} cases fail as intended: a non-zero exit status, one message line "
        "on stderr (absl log lines aside), no traceback, and the watched directory unchanged. "
        "$TMP is the sweep's temporary directory (a tiny trained run, its data, broken config "
        "files).",
        "",
        "| case | mistake | status | message lines | traceback | watched dir changed | "
        "error line | command |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        changed = (
            "—" if row.watched_changed is None else ("**yes**" if row.watched_changed else "no")
        )
        lines.append(
            "| "
            + " | ".join(
                _cell(x)
                for x in (
                    row.name,
                    row.what,
                    row.exit_status,
                    row.message_lines if row.message_lines == 1 else f"**{row.message_lines}**",
                    "**yes**" if row.traceback else "no",
                    changed,
                    f"`{row.error_line}`",
                    f"`{row.command}`",
                )
            )
            + " |"
        )
    return "\n".join(lines) + "\n"


def commit() -> str:
    def git(*args):
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, check=False
        ).stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "lssvwm", "configs")
    return f"{head} (with uncommitted changes in lssvwm/ or configs/)" if dirty else head


# ---- the sweep -------------------------------------------------------------------------------


def prepare(tmp: pathlib.Path, log) -> dict[str, pathlib.Path]:
    """The inputs the cases need: a tiny trained run, copies of it with the config of another
    model, a run directory without checkpoints, broken config files and a plain file."""
    paths = {
        "run": tmp / "run",
        "data": tmp / "tfds",
        "no_checkpoints": tmp / "no_checkpoints",
        "other_model": tmp / "other_model",
        "train_other": tmp / "train_other",
        "file": tmp / "a_file",
        "syntax": tmp / "syntax_error.py",
        "imports": tmp / "import_error.py",
        "no_data": tmp / "no_data.py",
    }
    command = [
        sys.executable,
        "-m",
        "lssvwm.train",
        f"--config={TINY}",
        f"--workdir={paths['run']}",
        f"--config.data.data_dir={paths['data']}",
    ]
    log(f"training the tiny run: {shlex.join(command[1:])}")
    started = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        raise RuntimeError(f"the tiny run failed:\n{result.stderr[-4000:]}")
    log(f"  trained in {time.perf_counter() - started:.0f} s")
    paths["no_checkpoints"].mkdir()
    shutil.copy(paths["run"] / "config.json", paths["no_checkpoints"] / "config.json")
    # config.json says width 48, the checkpoint holds width 32 (evaluate/rollout load config.json)
    shutil.copytree(paths["run"], paths["other_model"])
    config = json.loads((paths["other_model"] / "config.json").read_text())
    config["model"]["width"] = 48
    (paths["other_model"] / "config.json").write_text(json.dumps(config, indent=2))
    shutil.copytree(paths["run"], paths["train_other"])  # trained again with width 48 below
    paths["file"].write_text("not a directory\n")
    paths["syntax"].write_text("def get_config(:\n    return None\n")
    paths["imports"].write_text("import no_such_module\n\n\ndef get_config():\n    return None\n")
    paths["no_data"].write_text(
        "import ml_collections\n\n\ndef get_config():\n"
        "    return ml_collections.ConfigDict({'model': {'width': 8}})\n"
    )
    return paths


def cases(p: dict[str, pathlib.Path]) -> list[Case]:
    run, data, tmp = str(p["run"]), str(p["data"]), str(p["run"].parent)
    new_run = f"{tmp}/new_run"  # train cases: must not be created
    train = ("--config=" + TINY, f"--workdir={new_run}", f"--config.data.data_dir={data}")
    tiny_data = (f"--config={TINY}", f"--config.data.data_dir={data}")
    rollout_out = f"--output_dir={run}/rollout"
    return [
        # -- lssvwm.train: the config
        Case("train-unknown-key", "unknown config key", "lssvwm.train",
             (*train, "--config.model.widht=3"), new_run),
        Case("train-unknown-section", "unknown config section", "lssvwm.train",
             (*train, "--config.traning.steps=3"), new_run),
        Case("train-bad-type", "bad value type", "lssvwm.train",
             (*train, "--config.model.width=wide"), new_run),
        Case("train-negative-steps", "negative steps", "lssvwm.train",
             (*train, "--config.training.steps=-5"), new_run),
        Case("train-window-too-long", "window > max_frames", "lssvwm.train",
             (*train, "--config.training.window_length=64"), new_run),
        Case("train-config-missing", "config file missing", "lssvwm.train",
             ("--config=configs/no_such_config.py", f"--workdir={new_run}"), new_run),
        Case("train-config-syntax", "config file with a syntax error", "lssvwm.train",
             (f"--config={p['syntax']}", f"--workdir={new_run}"), new_run),
        Case("train-config-import", "config file that fails to import", "lssvwm.train",
             (f"--config={p['imports']}", f"--workdir={new_run}"), new_run),
        Case("train-config-arg", "bad config `:arg`", "lssvwm.train",
             ("--config=configs/quickstart.py:huge", f"--workdir={new_run}"), new_run),
        Case("train-config-unreadable", "config path is a directory", "lssvwm.train",
             ("--config=configs", f"--workdir={new_run}"), new_run),
        Case("train-unknown-flag", "unknown flag", "lssvwm.train",
             (*train, "--stpes=3"), new_run),
        Case("train-no-workdir", "--workdir missing", "lssvwm.train", (f"--config={TINY}",)),
        Case("train-workdir-is-file", "workdir is a file", "lssvwm.train",
             (f"--config={TINY}", f"--workdir={p['file']}", f"--config.data.data_dir={data}"),
             str(p["file"])),
        Case("train-data-dir-unbuildable", "data_dir where the dataset cannot be built",
             "lssvwm.train",
             (f"--config={TINY}", f"--workdir={new_run}",
              f"--config.data.data_dir={p['file']}/tfds"), new_run),
        Case("train-other-model", "workdir with a checkpoint of another model", "lssvwm.train",
             (f"--config={TINY}", f"--workdir={p['train_other']}",
              f"--config.data.data_dir={data}", "--config.model.width=48"),
             str(p["train_other"])),
        # -- lssvwm.evaluate
        Case("evaluate-missing-workdir", "missing workdir", "lssvwm.evaluate",
             (f"--workdir={tmp}/no_such_run",)),
        Case("evaluate-no-checkpoints", "workdir without checkpoints", "lssvwm.evaluate",
             (f"--workdir={p['no_checkpoints']}",), str(p["no_checkpoints"])),
        Case("evaluate-other-model", "checkpoint of another model", "lssvwm.evaluate",
             (f"--workdir={p['other_model']}",), str(p["other_model"])),
        Case("evaluate-context-0", "--context=0", "lssvwm.evaluate",
             (f"--workdir={run}", "--context=0"), run),
        Case("evaluate-horizon-0", "--horizon=0", "lssvwm.evaluate",
             (f"--workdir={run}", "--horizon=0"), run),
        Case("evaluate-too-many-episodes", "--num_episodes > the episodes there are",
             "lssvwm.evaluate", (f"--workdir={run}", "--num_episodes=500"), run),
        Case("evaluate-context-too-long", "--context longer than the episodes",
             "lssvwm.evaluate", (f"--workdir={run}", "--num_episodes=2", "--context=1000"), run),
        Case("evaluate-bad-edges", "--distance_edges not increasing", "lssvwm.evaluate",
             (f"--workdir={run}", "--distance_edges=32,4"), run),
        Case("evaluate-bad-reset", "unknown --reset policy", "lssvwm.evaluate",
             (f"--workdir={run}", "--reset=sometimes"), run),
        Case("evaluate-unknown-data-key", "unknown --data key", "lssvwm.evaluate",
             (f"--workdir={run}", "--num_episodes=2", "--data=maze3d.test_episods=3"), run),
        Case("evaluate-data-dir-unbuildable", "data_dir where the dataset cannot be built",
             "lssvwm.evaluate", (f"--workdir={run}", f"--data_dir={p['file']}/tfds"), run),
        # -- lssvwm.rollout
        Case("rollout-frames-0", "--frames=0", "lssvwm.rollout",
             (f"--workdir={run}", rollout_out, "--frames=0"), run),
        Case("rollout-no-frames", "neither --frames nor a path", "lssvwm.rollout",
             (f"--workdir={run}", rollout_out), run),
        Case("rollout-episode-out-of-range", "--episode beyond the split", "lssvwm.rollout",
             (f"--workdir={run}", rollout_out, "--frames=8", "--episode=99"), run),
        Case("rollout-context-too-long", "--context longer than the episode", "lssvwm.rollout",
             (f"--workdir={run}", rollout_out, "--frames=8", "--context=1000"), run),
        Case("rollout-fps-0", "--fps=0", "lssvwm.rollout",
             (f"--workdir={run}", rollout_out, "--frames=8", "--fps=0"), run),
        Case("rollout-no-checkpoints", "workdir without checkpoints", "lssvwm.rollout",
             (f"--workdir={p['no_checkpoints']}", f"--output_dir={p['no_checkpoints']}/rollout",
              "--frames=8"), str(p["no_checkpoints"])),
        Case("rollout-other-model", "checkpoint of another model", "lssvwm.rollout",
             (f"--workdir={p['other_model']}", f"--output_dir={p['other_model']}/rollout",
              "--frames=8"), str(p["other_model"])),
        Case("rollout-poses-missing", "--poses file missing", "lssvwm.rollout",
             (f"--workdir={run}", rollout_out, f"--poses={tmp}/no_such_poses.npy"), run),
        # -- lssvwm.data.preview and lssvwm.data.build
        Case("preview-frames-0", "--frames=0", "lssvwm.data.preview",
             (*tiny_data, f"--output_dir={tmp}/preview", "--frames=0"), f"{tmp}/preview"),
        Case("preview-episode-out-of-range", "--episode beyond the split", "lssvwm.data.preview",
             (*tiny_data, f"--output_dir={tmp}/preview", "--episode=999"), f"{tmp}/preview"),
        Case("preview-unknown-split", "--split the dataset lacks", "lssvwm.data.preview",
             (*tiny_data, f"--output_dir={tmp}/preview", "--split=validation"), f"{tmp}/preview"),
        Case("preview-data-dir-unbuildable", "data_dir where the dataset cannot be built",
             "lssvwm.data.preview",
             (f"--config={TINY}", f"--config.data.data_dir={p['file']}/tfds",
              f"--output_dir={tmp}/preview"), f"{tmp}/preview"),
        Case("build-negative-workers", "--num_workers=-1", "lssvwm.data.build",
             (f"--data.data_dir={data}", "--num_workers=-1"), data),
        Case("build-unknown-key", "unknown --data key", "lssvwm.data.build",
             (f"--data.data_dir={data}", "--data.maze3d.traIn_episodes=2"), data),
        Case("build-data-dir-unbuildable", "data_dir where the dataset cannot be built",
             "lssvwm.data.build", (f"--data.data_dir={p['file']}/tfds",), str(p["file"])),
        Case("build-no-config-data", "--config without a data section", "lssvwm.data.build",
             (f"--config={p['no_data']}",)),
    ]  # fmt: skip


def run_case(case: Case, tmp: pathlib.Path, env: dict) -> Row:
    command = [sys.executable, "-m", case.module, *case.args]
    before = tree_hash(case.watch)
    started = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900, env=env)
    seconds = time.perf_counter() - started
    after = tree_hash(case.watch)
    shown = shlex.join(["python", "-m", case.module, *case.args])
    return make_row(case, shown, result.returncode, result.stderr, before, after, seconds, str(tmp))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="experiments/faults", help="Where the report goes.")
    parser.add_argument("--only", default="", help="Run the cases whose name contains this.")
    parser.add_argument("--keep", action="store_true", help="Keep the temporary directory.")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    commit_at_start = commit()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="lssvwm_bad_input_"))
    env = {k: v for k, v in os.environ.items() if k != "LSSVWM_VERBOSE"}

    def log(message: str) -> None:
        print(message, flush=True)

    try:
        paths = prepare(tmp, log)
        rows = []
        for case in cases(paths):
            if args.only and args.only not in case.name:
                continue
            row = run_case(case, tmp, env)
            rows.append(row)
            mark = "ok " if row.one_line else "BAD"
            log(f"{mark} {row.name} ({row.seconds:.0f} s): status {row.exit_status}, "
                f"{row.message_lines} line(s): {row.error_line}")  # fmt: skip
    finally:
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    command = "python -m experiments.faults.bad_input " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    header = {
        "command": command.strip(),
        "commit": commit_at_start,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()} CPU cores",
    }
    commit_at_end = commit()
    if commit_at_end != commit_at_start:  # the code changed under the sweep
        header["commit"] = f"{commit_at_start} at the start, {commit_at_end} at the end"
    summary = {
        **header,
        "cases": len(rows),
        "one_line": sum(row.one_line for row in rows),
        "rows": [{**dataclasses.asdict(row), "one_line": row.one_line} for row in rows],
    }
    (out / "bad_input.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "bad_input.md").write_text(markdown(rows, header))
    log(f"{summary['one_line']} of {len(rows)} cases in one line -> {out / 'bad_input.md'}")


if __name__ == "__main__":
    main()
