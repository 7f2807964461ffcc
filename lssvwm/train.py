r"""Trains a world model with diffusion forcing (absl app; resumes automatically).

    python -m lssvwm.train --config=quickstart --workdir=/tmp/qs
    python -m lssvwm.train --config=configs/maze3d_lssvwm.py --workdir=DIR \
        --config.training.steps=20000 --config.data.data_dir=/data/tfds
    python -m lssvwm.train --config=quickstart:tiny --show_config   # every field; trains nothing

`--config` takes a shipped config's name (`python -m lssvwm.configs` lists them and their
variants) or the path of a config file, each with an optional `:arg` (lssvwm.config_loading).

Run it again with the same arguments and it resumes from the newest checkpoint in DIR (model,
optimizer, EMA, step and data position) -- or, when the run had finished, only re-reads its
results. Ctrl-C (or SIGTERM) finishes the step in flight and saves a checkpoint of it on the way
out (a second one stops at once, unsaved); a hard kill loses the steps since the last periodic
checkpoint. `--config.training.init_from=OTHER_RUN` starts a new run from another run's weights
(fine-tuning, e.g. under a state-carrying policy; see `warm_start`).

The run directory is guarded (lssvwm.common.run_directory), and every check comes before
anything is written into it: a config.json of another config in a run with checkpoints, or a
checkpoint meta of another model, stops the run naming the differing keys; one trainer at a
time holds DIR/.lock (a second one stops naming the holder's pid; multi-host: process 0 holds
it). At start, orbax's temporary directories of a save that never finished are removed, and
newer step directories that do not restore completely (files missing or damaged) are moved to
DIR/checkpoints_damaged/<step>-<time> with a warning; the run resumes from the newest one that
restores. A step whose loss, gradient norm or parameter norm is not finite changes nothing
(`training.nonfinite`: "skip" counts it as nonfinite_steps, "stop" ends the run); a non-finite
state is never saved.

Exit status: 0 when the run finished, and also when the first SIGTERM / SIGINT stopped it (the
step in flight finished and was saved; `train` returns normally; no traceback). A second signal
ends the process at once, unsaved, by the signal's default action (status 128 + N in a shell:
130 for SIGINT, 143 for SIGTERM). An error -- a config mistake, a busy or foreign run directory,
a checkpoint that cannot be used, a non-finite stop (lssvwm.errors) -- is one line,
`error: ...`, with exit status 2 (lssvwm.cli).

Multi-host (one process per host, all with the same arguments and the same DIR on a shared
filesystem; the data built beforehand, `python -m lssvwm.data.build --config=...`, as processes
that all find it missing would all build it):

    python -m lssvwm.train --config=configs/x.py --workdir=DIR --config.mesh.distributed=True \
        --config.mesh.coordinator_address=HOST0:PORT --config.mesh.num_processes=N \
        --config.mesh.process_id=I          # I = 0 .. N-1; HOST0:PORT is process 0's address

On TPU pods and SLURM (and Open MPI) leave out the last three: JAX finds them itself. `main`
starts the distributed system before any other JAX call (lssvwm.parallel.distributed); each
process reads its own rows of every global batch, all of them save the orbax checkpoints
together, and only process 0 writes the other files below.

What a run writes into DIR:
  config.json         the resolved config (written when absent or another config's without
                      checkpoints; left as it is when it holds this config)
  .lock               the pid of the trainer holding the run (flock; readers take no lock)
  checkpoints/<step>  orbax checkpoints (the newest `training.keep_checkpoints`)
  checkpoints_damaged/<step>-<time>  step directories that did not restore, moved aside
  metrics.jsonl       one JSON object per logged step: step, loss, steps_per_sec, learning_rate,
                      grad_norm, nonfinite_steps, ... and, at `training.eval_every`, the held-out
                      figures (eval/...)
  tb/                 TensorBoard events (`tensorboard --logdir DIR/tb`): the same scalars, the
                      resolved config as text and as hyperparameters, and the sample movies;
                      one event file per start that writes anything (lssvwm.training.metrics)
  samples/step_N.gif  generated continuations of held-out windows next to the truth
  eval_final.json     the held-out figures of the final weights (lssvwm.training.evaluation)

The config file's sections: model (WorldModelConfig), diffusion (DiffusionConfig), data
(lssvwm.data.config), optimizer (lssvwm.training.optimizer), training, eval, sample; see
configs/base.py for every field with a comment. Two optional sections (absent: off):
curriculum (lssvwm.training.curriculum: window length and batch size by step) and state
(lssvwm.training.state_carrying: TBPTT state carrying and reset policies); see
configs/ablation_curriculum.py and configs/ablation_state.py.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import resource
import signal
import time
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags

from lssvwm import cli
from lssvwm.common import run_directory
from lssvwm.common.checkpointing import Checkpoints, DamagedCheckpointError
from lssvwm.common.errors import DataError, NonFiniteError, RunDirectoryError
from lssvwm.common.progress import Progress, format_duration
from lssvwm.common.video import write_gif
from lssvwm.data import pipeline, sources
from lssvwm.models import count_parameters, inputs
from lssvwm.parallel import distributed
from lssvwm.run_spec import RunSpec
from lssvwm.training import evaluation, videos
from lssvwm.training.build import BuiltRun, build
from lssvwm.training.metrics import MetricWriter, NonfiniteGuard, newest_checkpoint_clause
from lssvwm.training.state_carrying import carry_batch_size
from lssvwm.training.train_state import model_from_state
from lssvwm.training.train_step import STREAM_FIELDS, all_finite

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "A config's name or file, with an optional :arg (quickstart:tiny)."
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (checkpoints, metrics, results).")
_SHOW_CONFIG = flags.DEFINE_bool(
    "show_config",
    False,
    "Print the resolved config -- every field, defaults and overrides included -- as JSON, and "
    "exit without training (no --workdir needed).",
)

# Model-config fields a run may resume with changed (or absent from an older checkpoint's meta):
# they choose how the same function is computed, not what the weights mean.
RESUMABLE_WITH_CHANGES = ("model.remat", "model.ssm_chunk_size", "model.attention_impl")
# Config keys (or whole sections) a run may resume with changed, besides those: where and how
# it runs, how often it reports, and how long it trains (extending a run; the new config.json
# records it). Any other difference from the run's config.json is refused (lssvwm.common.
# run_directory): the checkpoints were trained under that config.
RESUMABLE_CONFIG_KEYS = RESUMABLE_WITH_CHANGES + (
    "training.steps",
    "training.log_every",
    "training.checkpoint_every",
    "training.keep_checkpoints",
    "training.eval_every",
    "training.sample_every",
    "training.init_from",  # read on a run's first start only
    "eval",
    "sample",
    "mesh",  # a preempted job restarts on other hosts or another device count
    "data.data_dir",
)
# The held-out figures the log line shows, and TensorBoard's HParams dashboard has as metrics
# (with the training loss).
SUMMARY_FIGURES = (
    "val_loss",
    "val_loss_shuffled_actions",
    "tf_next_frame_psnr",
    "copy_last_frame_psnr",
)


def peak_memory_bytes() -> int:
    """Peak resident memory of this process (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def model_batch(raw: dict, model_config, stream_fields: tuple[str, ...] = ()) -> dict:
    """The fields the train step reads: uint8 frames (and float depth for RGB-D models), the
    model's actions (`lssvwm.models.inputs`) and stream fields."""
    batch = {"frames": raw["frames"], "actions": inputs.model_actions(raw, model_config)}
    if model_config.channels == inputs.RGB + 1:
        batch["depth"] = raw["depth"]
    batch.update({name: raw[name] for name in stream_fields if name in raw})
    return batch


def check_windows_within_episodes(raw: dict) -> None:
    """A carried window must not straddle two episodes: resets happen at window starts only
    (frame-local attention does not mask across an in-window episode boundary)."""
    if "is_first" in raw and np.asarray(raw["is_first"])[:, 1:].any():
        raise ValueError(
            "a training window crosses an episode boundary; state carrying resets "
            "at window starts only"
        )


# The train-state items a warm start copies; the optimizer state, step and carry start fresh.
WEIGHT_ITEMS = ("params", "rest", "ema")


def warm_start(state, target, source: str, workdir: pathlib.Path, model_meta: dict):
    """`state` (a fresh step 0) with the weights of the newest checkpoint of run `source`.

    For fine-tuning a trained run under another training recipe (e.g. a state-carrying policy):
    parameters, EMA and non-parameter variables come from `source`, which must have trained the
    same network (model config, except RESUMABLE_WITH_CHANGES); optimizer moments, step, data
    position and carried state start fresh. Only a run's first start reads it: once the run has
    a checkpoint of its own, it resumes from that."""
    source_dir = pathlib.Path(source).absolute() / "checkpoints"
    if source_dir == (workdir / "checkpoints").absolute():
        raise ValueError("training.init_from names this run's own --workdir")
    if not source_dir.is_dir():
        raise FileNotFoundError(f"training.init_from={source!r}: no {source_dir} directory")
    source_checkpoints = Checkpoints(source_dir)
    try:
        weights, step, _ = source_checkpoints.restore_weights(
            {key: target[key] for key in WEIGHT_ITEMS},
            {"model": model_meta},
            unchecked=RESUMABLE_WITH_CHANGES,
        )
    finally:
        source_checkpoints.close()
    logging.info("warm start: weights of %s at step %d (optimizer and step fresh)", source, step)
    return {**state, **weights}


class StopRequest:
    """The SIGTERM / SIGINT handler of the training loop.

    The first signal only asks the loop to stop once the current step is done, so the checkpoint
    saved on the way out pairs a train state with the data position of the same step (a signal
    raised between `next(windows)` and the step's return would save them one step apart); the
    loop then saves and `train` returns normally (exit status 0).

    A second signal stops the process at once, unsaved: the first one puts back the signals'
    default action (SIG_DFL), so the second is handled by the kernel, which ends the process
    there and then. No Python code runs for it -- nothing can raise inside an XLA compilation
    or a half-made orbax save, and no interpreter shutdown races XLA's threads (the crash an
    exception from a handler could end in) -- and it is immediate even while the main thread
    is inside a long compile, when a Python handler would not run until the compile returned.
    The logs lose nothing: absl writes each line to stderr as it is logged, and metrics.jsonl
    is flushed per line. The status is the signal's (128 + N in a shell). (Two signals that both
    arrive while the main thread is inside one call into XLA count as one, the first.)"""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.signum: int | None = None

    @property
    def name(self) -> str | None:
        return None if self.signum is None else signal.Signals(self.signum).name

    def __call__(self, signum, frame):
        self.signum = signum
        for sig in self.SIGNALS:
            signal.signal(sig, signal.SIG_DFL)  # the next one ends the process (docstring)
        logging.warning(
            "%s: stopping after this step and saving it (send it again to stop at once, unsaved)",
            signal.Signals(signum).name,
        )

    def install(self) -> dict:
        """Installs the handler; returns the previous handlers for `restore`."""
        return {sig: signal.signal(sig, self) for sig in self.SIGNALS}

    @staticmethod
    def restore(previous: dict) -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@dataclasses.dataclass(frozen=True)
class RunData:
    """The run's episodes: the train split, the eval split and its fixed held-out windows."""

    train: Any
    eval: Any
    heldout: dict


def open_data(spec: RunSpec) -> RunData:
    """The splits (built into data.data_dir on first use; a no-op once built)."""
    begin = time.perf_counter()
    fields = inputs.episode_fields(spec.model)
    data = spec.data.section()
    train_source = sources.open_split(data, spec.data.train_split, fields)
    eval_source = sources.open_split(data, spec.data.eval_split, fields)
    logging.info("data ready in %.1fs: %s", time.perf_counter() - begin, train_source)
    windows = pipeline.fixed_windows(
        eval_source, spec.training.window_length, spec.eval.num_windows, seed=spec.eval.seed
    )
    return RunData(train_source, eval_source, model_batch(windows, spec.model))


def restore_or_start(run: BuiltRun, checkpoints: Checkpoints, workdir: pathlib.Path):
    """(state, carry, data position) of the newest checkpoint that restores completely, or step
    0 (from the weights of `training.init_from` when given). Newer step directories that do not
    restore (damaged) are moved aside (`set_damaged_aside`)."""
    spec = run.spec

    def target_for_step(step: int):
        # The carry's shapes follow the batch size of the stage of the step it is saved at.
        return run.checkpoint_target(spec.curriculum.stage_at(step).batch_size)

    restored = checkpoints.restore_newest(
        target_for_step,
        spec.checkpoint_meta,
        unchecked=RESUMABLE_WITH_CHANGES,
        agree=any_process,
    )
    if restored is not None:
        saved, data_state, _, step, damaged = restored
        if damaged:
            set_damaged_aside(checkpoints, workdir, damaged, step)
        logging.info("resumed from %s at step %d", checkpoints.directory, int(saved["step"]))
        carry = saved.pop("carry", None)
        return saved, carry, data_state
    carry_batch = spec.curriculum.stage_at(0).batch_size
    target = target_for_step(0)
    state = run.init_state()
    if spec.training.init_from:
        state = warm_start(
            state, target, spec.training.init_from, workdir, spec.checkpoint_meta["model"]
        )
    return state, run.init_carry(carry_batch), {"step": 0}


def any_process(flag: bool) -> bool:
    """Whether `flag` holds on any process (every process gets the same answer)."""
    if jax.process_count() == 1:
        return bool(flag)
    from jax.experimental import multihost_utils

    return bool(np.any(multihost_utils.process_allgather(np.asarray(bool(flag)))))


def barrier(name: str) -> None:
    """Every process waits here until all have arrived (no-op on one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def set_damaged_aside(
    checkpoints: Checkpoints,
    workdir: pathlib.Path,
    damaged: list[DamagedCheckpointError],
    resumed: int,
) -> None:
    """Moves the damaged step directories to DIR/checkpoints_damaged (process 0), one warning
    line each; every process then re-reads the steps (a later save must not take a moved
    step for saved)."""
    for error in damaged:
        source = checkpoints.step_directory(error.step)
        if distributed.is_primary() and source.exists():
            moved = run_directory.set_aside(source, workdir)
            logging.warning(
                "checkpoint %s does not restore (%s): moved to %s; resuming from step %d",
                source,
                error.cause,
                moved,
                resumed,
            )
    barrier("lssvwm-damaged-checkpoints-set-aside")
    checkpoints.reload()


def config_defaults(spec: RunSpec) -> dict[str, Any]:
    """Dotted key -> default value (as JSON has it) of every field of the spec's dataclass
    sections: a key missing from an older run's config.json that has its default now is the
    same config (an option the code gained since)."""
    defaults = {}
    for section in ("seed", *(f.name for f in dataclasses.fields(spec))):
        value = getattr(spec, section, None)
        if not dataclasses.is_dataclass(value):
            continue
        for field in dataclasses.fields(value):
            if field.default is not dataclasses.MISSING:
                default = field.default
            elif field.default_factory is not dataclasses.MISSING:
                default = field.default_factory()
            else:
                continue
            try:
                defaults[f"{section}.{field.name}"] = json.loads(json.dumps(default))
            except (TypeError, ValueError):
                continue
    return defaults


def check_run_directory(spec: RunSpec, workdir: pathlib.Path, config_text: str) -> None:
    """Reads only: a RunDirectoryError when workdir/config.json holds another config and the
    run has checkpoints, a CheckpointError naming the differing keys when its newest checkpoint
    was trained with another model, diffusion, curriculum or state policy."""
    directory = workdir / "checkpoints"
    if not directory.is_dir():
        return
    checkpoints = Checkpoints(directory, read_only=True)
    try:
        has_checkpoints = bool(checkpoints.all_steps())
        run_directory.check_config(
            workdir, config_text, has_checkpoints, config_defaults(spec), RESUMABLE_CONFIG_KEYS
        )
        checkpoints.check_newest_meta(spec.checkpoint_meta, unchecked=RESUMABLE_WITH_CHANGES)
    finally:
        checkpoints.close()


def lock_run_directory(workdir: pathlib.Path) -> run_directory.WorkdirLock | None:
    """The run directory's lock, taken by process 0 (None on the others); a RunDirectoryError
    on every process when another trainer holds it."""
    lock, error = None, None
    if distributed.is_primary():
        lock = run_directory.WorkdirLock(workdir)
        try:
            lock.acquire()
        except RunDirectoryError as caught:
            error = caught
    if distributed.primary_decides(error is not None):
        raise error or RunDirectoryError(f"{workdir}: process 0 found it locked by another run")
    return lock


def train_and_evaluate(
    config: ml_collections.ConfigDict, workdir: str | pathlib.Path, *, source: str = "config"
) -> dict:
    """Trains (or resumes) the run of `config` in `workdir`; returns its eval_final figures.
    The config is validated first (`RunSpec`): a mistake fails in one line naming the key."""
    return train(RunSpec.from_config(config, source=source), workdir)


def train(spec: RunSpec, workdir: str | pathlib.Path) -> dict:
    """Trains (or resumes) the run of `spec` in `workdir` to `training.steps`; returns
    eval_final (see the module docstring for what the run writes). After a SIGTERM / SIGINT
    it saves the step it stopped at and returns `{"step": N, "stopped_by": "SIGTERM"}`.

    Before anything is written into `workdir`: its config.json and newest checkpoint meta are
    checked against `spec`, and its lock is taken (module docstring); the lock is released
    when this returns or raises."""
    started = time.perf_counter()
    workdir = pathlib.Path(workdir)
    spec.model.attention_implementation()  # "cudnn" off a GPU: one line, before any write
    config_text = spec.config.to_json_best_effort(indent=2, sort_keys=True)
    check_run_directory(spec, workdir, config_text)
    lock = lock_run_directory(workdir)
    try:
        return _train(spec, workdir, config_text, started)
    finally:
        if lock is not None:
            lock.release()


def _train(spec: RunSpec, workdir: pathlib.Path, config_text: str, started: float) -> dict:
    """`train` once the run directory is checked and locked."""
    primary = distributed.is_primary()  # multi-host: process 0 writes the run's files
    checkpoint_dir = workdir / "checkpoints"
    if primary:
        run_directory.write_config(workdir, config_text, config_defaults(spec))
        for path in run_directory.remove_save_leftovers(checkpoint_dir):
            logging.warning("removed %s, left by a checkpoint save that did not finish", path)
    barrier("lssvwm-run-directory-ready")
    training = spec.training
    num_params = count_parameters(spec.model)
    logging.info("model: %s mixer, %s parameters", spec.model.mixer, f"{num_params:,}")
    if spec.curriculum.num_stages > 1:
        logging.info("curriculum: %s", spec.curriculum.describe())
    if spec.state.stateful:
        logging.info("state: %s", spec.state.to_dict())
    data = open_data(spec)
    run = build(spec)
    checkpoints = Checkpoints(checkpoint_dir, keep=training.keep_checkpoints)
    state, carry, data_state = restore_or_start(run, checkpoints, workdir)
    step = int(state["step"])
    writer = MetricWriter(
        workdir,
        active=primary,
        config=spec.resolved_config(),
        metric_names=("loss", *(f"eval/{name}" for name in SUMMARY_FIGURES)),
    )
    compilations = 0
    if step < training.steps:
        windows_class = (
            pipeline.ConsecutiveWindows if spec.state.carry else pipeline.TrainingWindows
        )
        windows = windows_class(
            data.train,
            stages=spec.curriculum.as_tuples(),
            seed=spec.seed,
            start_step=int(data_state["step"]),
            process_index=jax.process_index(),  # each host reads its own rows of the batch
            process_count=jax.process_count(),
        )
        train_step = run.make_train_step()
        stream_fields = STREAM_FIELDS if spec.state.stateful else ()
        progress = Progress(training.steps, step)
        guard = NonfiniteGuard(training.nonfinite, training.max_consecutive_nonfinite)
        stop = StopRequest()
        previous_handlers = stop.install()
        last_saved = started_at = step

        def save(step):
            """Saves `step` -- never a non-finite state (NonFiniteError instead)."""
            newest = checkpoints.latest_step()
            guard.check(step, newest)
            # The train step never applies a non-finite update, so this holds; one reduction
            # and one host read per save make sure (moments, EMA and all).
            if not bool(all_finite(state)):
                raise NonFiniteError(
                    f"step {step}: the train state is not finite, not saved; "
                    + newest_checkpoint_clause(newest)
                )
            saved = state if carry is None else {**state, "carry": carry}
            checkpoints.save(step, saved, data_state=windows.get_state(), meta=spec.checkpoint_meta)

        try:
            while step < training.steps:
                raw = next(windows)
                if spec.state.carry:
                    check_windows_within_episodes(raw)
                batch = run.parallel.place_batch(model_batch(raw, spec.model, stream_fields))
                with run.parallel.activate():
                    state, carry, metrics = train_step(state, carry, batch)
                step += 1
                guard.update(metrics, step)  # device-side counts; read when logged or saved
                stage = spec.curriculum.stage_at(step)
                if stage.start_step == step and step < training.steps:
                    logging.info(
                        "curriculum stage %d after step %d: %d frames x %d windows",
                        stage.index,
                        step,
                        stage.window_length,
                        stage.batch_size,
                    )
                    if carry is not None and carry_batch_size(carry) != stage.batch_size:
                        carry = run.init_carry(stage.batch_size)  # every slot restarts there
                first = step == started_at + 1
                if first or step % training.log_every == 0 or step == training.steps:
                    log_step(writer, progress, step, metrics, first, guard, checkpoints)
                if step % training.checkpoint_every == 0 or step == training.steps:
                    save(step)
                    last_saved = step
                # The last step's figures and sample are the final ones, written below.
                last = step == training.steps
                if training.eval_every and step % training.eval_every == 0 and not last:
                    evaluate_into(writer, run, state, data, step)
                if training.sample_every and step % training.sample_every == 0 and not last:
                    write_sample(run, state, data.eval, workdir, step, writer)
                if stop.signum is not None:
                    break
            if stop.signum is not None:
                if step > last_saved:
                    logging.warning("interrupted at step %d: saving a checkpoint", step)
                    save(step)
                logging.warning(
                    "stopped by %s at step %d, saved; the same command resumes the run",
                    stop.name,
                    step,
                )
                checkpoints.close()
                writer.close()
                return {"step": step, "stopped_by": stop.name}
        except BaseException:
            writer.close()  # the metrics so far stay readable; nothing more is saved
            checkpoints.close()
            raise
        finally:
            stop.restore(previous_handlers)
        compilations = train_step.trace_count()
        logging.info("train step compiled %d time(s) in this run", compilations)
    else:
        logging.info("training already finished at step %d", step)
    checkpoints.close()

    # The final figures and sample video (skipped when this step's results exist).
    final_path = workdir / "eval_final.json"
    done = final_path.exists() and json.loads(final_path.read_text()).get("step") == step
    if distributed.primary_decides(done):  # every process takes the same branch
        logging.info("eval_final.json is already at step %d: not recomputed", step)
        writer.close()
        return json.loads(final_path.read_text())
    figures = evaluate_into(writer, run, state, data, step)
    write_sample(run, state, data.eval, workdir, step, writer)
    results = {
        "step": step,
        **figures,
        "num_params": int(num_params),
        "mixer": spec.model.mixer,
        "wall_seconds_this_run": round(time.perf_counter() - started, 1),
        "train_step_compilations_this_run": compilations,
        "peak_memory_bytes": peak_memory_bytes(),
    }
    if primary:
        final_path.write_text(json.dumps(results, indent=2) + "\n")
    writer.close()
    logging.info("eval_final (step %d): %s", step, _summary(results))
    return results


def log_step(
    writer: MetricWriter,
    progress: Progress,
    step: int,
    metrics,
    first: bool,
    guard: NonfiniteGuard | None = None,
    checkpoints: Checkpoints | None = None,
) -> None:
    """Writes a logged step's metrics (with `nonfinite_steps`, the non-finite steps skipped so
    far) and the progress line, then checks them: NonFiniteError when the guard says stop
    (`NonfiniteGuard.check`), RuntimeError for a broken state stream."""
    loss = float(metrics["loss"])
    counts = guard.counts() if guard is not None else None
    rate = progress.rate(step)
    if first:  # its rate includes compilation; later ones are training speed
        progress.reset_clock(step)
    record = {name: value for name, value in metrics.items() if name != "nonfinite"}
    if counts is not None:
        record["nonfinite_steps"] = counts["total"]
    writer.write(step, {**record, "steps_per_sec": rate})
    logging.info(progress.line(step, loss, rate))
    if guard is not None:
        newest = checkpoints.latest_step() if checkpoints is not None else None
        guard.check(step, newest, counts)
    if int(metrics.get("stream_breaks", 0)):
        raise DataError(
            f"step {step}: {int(metrics['stream_breaks'])} slot(s) got a window that does not "
            "continue their carried state (data or schedule changed under a resumed run?)"
        )


def evaluate_into(writer: MetricWriter, run: BuiltRun, state, data: RunData, step: int) -> dict:
    """The held-out figures of `state` (lssvwm.training.evaluation), logged and written."""
    spec = run.spec
    figures = evaluation.evaluate(
        run.graphdef,
        state,
        data.heldout,
        spec.diffusion,
        context_frames=spec.eval.context_frames,
        noise_levels=spec.eval.noise_levels,
        batch_size=spec.eval.batch_size,
        seed=spec.eval.seed,
    )
    writer.write(step, {f"eval/{k}": v for k, v in figures.items() if isinstance(v, float)})
    logging.info("eval at step %d: %s", step, _summary(figures))
    return figures


def _summary(figures: dict) -> str:
    return "  ".join(f"{k} {figures[k]:.4f}" for k in SUMMARY_FIGURES)


def write_sample(
    run: BuiltRun, state, eval_source, workdir: pathlib.Path, step: int, writer: MetricWriter
) -> None:
    """samples/step_<step>.gif (EMA weights) and the same movie in TensorBoard (tag `samples`)
    when `sample.num_windows` > 0: sampled on every process (the weights are global arrays),
    written by process 0."""
    section = run.spec.sample
    if section.num_windows <= 0:
        return
    begin = time.perf_counter()
    raw = pipeline.fixed_windows(
        eval_source, section.window_length, section.num_windows, seed=section.seed
    )
    movie = videos.sample_movie(
        model_from_state(run.graphdef, state, ema=True),
        run.spec.diffusion.replace(sampler_steps=section.sampler_steps),
        raw,
        section.context_frames,
        jax.random.PRNGKey(section.seed),
    )
    if distributed.is_primary():
        path = write_gif(movie, workdir / "samples" / f"step_{step}.gif")
        writer.write_movie(step, "samples", movie)
        logging.info("sample video %s (%s)", path, format_duration(time.perf_counter() - begin))


class _DropLibraryChatter:
    """A logging filter: orbax logs every file it writes at INFO; keep its warnings only."""

    def filter(self, record) -> bool:
        return record.levelno >= 30 or "/orbax/" not in record.pathname


def main(argv):
    logging.get_absl_handler().addFilter(_DropLibraryChatter())
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if _CONFIG.value is None:
        raise app.UsageError("--config is required (`python -m lssvwm.configs` lists configs)")
    source = config_flags.get_config_filename(flags.FLAGS["config"])
    # A config mistake is a ValueError naming the key: one line (lssvwm.cli), before anything
    # compiles.
    spec = RunSpec.from_config(_CONFIG.value, source=source)
    if _SHOW_CONFIG.value:
        print(json.dumps(spec.resolved_config(), indent=2, sort_keys=True))
        return
    if _WORKDIR.value is None:
        raise app.UsageError("--workdir is required")
    # Directories that cannot be made: one line before the run directory is touched.
    cli.check_can_write(_WORKDIR.value, directory=True, label="--workdir")
    if spec.data.data_dir:
        cli.check_can_write(spec.data.data_dir, directory=True, label="data.data_dir")
    # Multi-host start-up comes before any other JAX call (jax.devices() included).
    distributed.start(spec.config.get("mesh"))
    logging.info(
        "JAX process %d of %d; devices: %s", jax.process_index(), jax.process_count(), jax.devices()
    )
    train(spec, _WORKDIR.value)


if __name__ == "__main__":
    cli.run(main)
