r"""Trains a world model with diffusion forcing (absl app; resumes automatically).

    python -m lssvwm.train --config=configs/quickstart.py --workdir=/tmp/qs
    python -m lssvwm.train --config=configs/maze3d_lssvwm.py --workdir=DIR \
        --config.training.steps=20000 --config.data.data_dir=/data/tfds

Run it again with the same arguments and it resumes from the newest checkpoint in DIR (model,
optimizer, EMA, step and data position) -- or, when the run had finished, only re-reads its
results. Ctrl-C (or SIGTERM) finishes the step in flight and saves a checkpoint of it on the way
out (a second one stops at once, unsaved); a hard kill loses the steps since the last periodic
checkpoint. `--config.training.init_from=OTHER_RUN` starts a new run from another run's weights
(fine-tuning, e.g. under a state-carrying policy; see `warm_start`).

What a run writes into DIR:
  config.json         the resolved config
  checkpoints/<step>  orbax checkpoints (the newest `training.keep_checkpoints`)
  metrics.jsonl       one JSON object per logged step: step, loss, steps_per_sec, learning_rate,
                      grad_norm, ... and, at `training.eval_every`, the held-out figures (eval/...)
  tb/                 the same scalars as TensorBoard events (`tensorboard --logdir DIR/tb`)
  samples/step_N.gif  generated continuations of held-out windows next to the truth
  eval_final.json     the held-out figures of the final weights (lssvwm.training.evaluation)

The config file's sections: model (WorldModelConfig), diffusion (DiffusionConfig), data
(lssvwm.data.config), optimizer (lssvwm.training.optimizer), training, eval, sample; see
configs/quickstart.py for every field with a comment. Two optional sections (absent: off):
curriculum (lssvwm.training.curriculum: window length and batch size by step) and state
(lssvwm.training.state_carrying: TBPTT state carrying and reset policies); see
configs/ablation_curriculum.py and configs/ablation_state.py.
"""

from __future__ import annotations

import json
import pathlib
import resource
import signal
import time

import jax
import ml_collections
import numpy as np
from absl import app, flags, logging
from flax import nnx
from ml_collections import config_flags

from lssvwm.common.checkpointing import Checkpoints
from lssvwm.common.progress import Progress, format_duration
from lssvwm.data import pipeline, sources
from lssvwm.diffusion import DiffusionConfig
from lssvwm.models import WorldModel, WorldModelConfig, count_parameters, inputs
from lssvwm.nn.embed import ACTION_FIELDS
from lssvwm.parallel import Parallel
from lssvwm.training import evaluation, videos
from lssvwm.training.curriculum import Curriculum
from lssvwm.training.metrics import MetricWriter
from lssvwm.training.optimizer import make_optimizer
from lssvwm.training.state_carrying import (
    StateConfig,
    carry_batch_size,
    init_carry,
    make_stateful_train_step,
)
from lssvwm.training.train_state import (
    init_train_state,
    make_train_step,
    model_from_state,
    split_model,
)

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (configs/x.py[:arg]).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (checkpoints, metrics, results).")

# Model-config fields a run may resume with changed (or absent from an older checkpoint's meta):
# they choose how the same function is computed, not what the weights mean.
RESUMABLE_WITH_CHANGES = ("model.remat", "model.ssm_chunk_size")


def peak_memory_bytes() -> int:
    """Peak resident memory of this process (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# Stream fields a stateful train step reads beside frames and actions (slot positions, resets).
STREAM_FIELDS = ("episode_start", "episode_id", "start_frame")


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


def warm_start(state, abstract_state, source: str, workdir: pathlib.Path, model_meta: dict):
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
            {key: abstract_state[key] for key in WEIGHT_ITEMS},
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
    raised between `next(windows)` and the step's return would save them one step apart). A
    second signal interrupts at once, without saving."""

    def __init__(self):
        self.signum: int | None = None
        self.forced = False  # a second signal: the step in flight is abandoned

    def __call__(self, signum, frame):
        if self.signum is not None:
            self.forced = True
            raise KeyboardInterrupt(f"signal {signum} (second): stopping without a checkpoint")
        self.signum = signum
        logging.warning("signal %d: stopping after this step (send it again to stop now)", signum)

    def install(self) -> dict:
        """Installs the handler; returns the previous handlers for `restore`."""
        return {sig: signal.signal(sig, self) for sig in (signal.SIGTERM, signal.SIGINT)}

    @staticmethod
    def restore(previous: dict) -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> dict:
    """Trains (or resumes) the run in `workdir` to `config.training.steps`; returns eval_final."""
    started = time.perf_counter()
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.json").write_text(config.to_json_best_effort(indent=2, sort_keys=True))
    training, eval_section = config.training, config.eval

    # ---------------------------------------------------------------------------------------
    # Model and diffusion.
    # ---------------------------------------------------------------------------------------
    model_config = WorldModelConfig.from_mapping(config.model)
    diffusion_config = DiffusionConfig.from_mapping(config.diffusion)
    if model_config.action_mode not in ACTION_FIELDS:
        raise ValueError(f"no data field for action_mode {model_config.action_mode!r}")
    num_params = count_parameters(model_config)
    logging.info("model: %s mixer, %s parameters", model_config.mixer, f"{num_params:,}")
    curriculum = Curriculum.from_config(
        config.get("curriculum"),
        window_length=int(training.window_length),
        batch_size=int(training.batch_size),
        unit=model_config.unit,
    )
    curriculum.check_clean_prefix(diffusion_config, model_config.unit)
    state_config = StateConfig.from_config(config.get("state"))
    state_config.check_model(model_config)
    if curriculum.num_stages > 1:
        logging.info("curriculum: %s", curriculum.describe())
    if state_config.stateful:
        logging.info("state: %s", state_config.to_dict())

    # ---------------------------------------------------------------------------------------
    # Data (built into config.data.data_dir on first use; a no-op once built).
    # ---------------------------------------------------------------------------------------
    begin = time.perf_counter()
    fields = inputs.episode_fields(model_config)
    stored = sources.stored_fields(config.data)  # before building or compiling anything
    inputs.check_fields_present(model_config, stored, f"dataset {config.data.dataset!r}")
    train_source = sources.open_split(config.data, config.data.train_split, fields)
    eval_source = sources.open_split(config.data, config.data.eval_split, fields)
    logging.info("data ready in %.1fs: %s", time.perf_counter() - begin, train_source)
    data_hw = tuple(train_source[0]["frames"].shape[1:3])
    if data_hw != tuple(model_config.image_size):
        raise ValueError(
            f"data frames are {data_hw} but model.image_size is {model_config.image_size}"
        )

    # ---------------------------------------------------------------------------------------
    # Train state: fresh, or the newest checkpoint.
    # ---------------------------------------------------------------------------------------
    total_steps = int(training.steps)
    model = WorldModel(model_config, rngs=nnx.Rngs(config.seed))
    graphdef, _, _ = split_model(model)
    tx, schedule = make_optimizer(config.optimizer, total_steps)
    parallel = Parallel.from_config(config.get("mesh"))  # one device, a GPU node or a pod
    state = init_train_state(model, tx)
    meta = {"model": model_config.to_dict(), "diffusion": diffusion_config.to_dict()}
    # Only non-default sections enter the meta, so runs without them resume as before.
    if curriculum.num_stages > 1:
        meta["curriculum"] = curriculum.as_tuples()
    if state_config.stateful:
        meta["state"] = state_config.to_dict()
    meta = json.loads(json.dumps(meta))  # tuples -> lists, as JSON restores them
    checkpoints = Checkpoints(workdir / "checkpoints", keep=int(training.keep_checkpoints))
    if state_config.stateful:
        # The carry's shapes follow the batch size of the stage of the step it is saved at.
        carry_step = checkpoints.latest_step() or 0
        state["carry"] = init_carry(model, curriculum.stage_at(carry_step).batch_size)
    del model
    data_state = {"step": 0}
    abstract_state = parallel.abstract_train_state(state, tx)
    state = jax.device_put(state, jax.tree.map(lambda a: a.sharding, abstract_state))
    restored = checkpoints.restore_latest(abstract_state, meta, unchecked=RESUMABLE_WITH_CHANGES)
    if restored is not None:
        state, data_state, _ = restored
        logging.info("resumed from %s at step %d", checkpoints.directory, int(state["step"]))
    elif training.get("init_from"):
        state = warm_start(state, abstract_state, str(training.init_from), workdir, meta["model"])
    step = int(state["step"])

    # ---------------------------------------------------------------------------------------
    # Training loop.
    # ---------------------------------------------------------------------------------------
    writer = MetricWriter(workdir)
    heldout = model_batch(
        pipeline.fixed_windows(
            eval_source,
            int(training.window_length),
            int(eval_section.num_windows),
            seed=int(eval_section.seed),
        ),
        model_config,
    )
    eval_kwargs = dict(
        context_frames=int(eval_section.context_frames),
        noise_levels=tuple(eval_section.noise_levels),
        batch_size=int(eval_section.batch_size),
        seed=int(eval_section.seed),
    )
    compilations = 0
    if step < total_steps:
        windows_class = (
            pipeline.ConsecutiveWindows if state_config.carry else pipeline.TrainingWindows
        )
        windows = windows_class(
            train_source,
            stages=curriculum.as_tuples(),
            seed=int(config.seed),
            start_step=int(data_state["step"]),
            process_index=jax.process_index(),  # each host reads its own rows of the batch
            process_count=jax.process_count(),
        )
        step_kwargs = dict(
            ema_decay=float(config.optimizer.ema_decay), seed=int(config.seed), schedule=schedule
        )
        if state_config.stateful:
            train_step = make_stateful_train_step(
                graphdef, diffusion_config, tx, state_config, **step_kwargs
            )
        else:
            train_step = make_train_step(graphdef, diffusion_config, tx, **step_kwargs)
        stream_fields = STREAM_FIELDS if state_config.stateful else ()
        progress = Progress(total_steps, step)
        stop = StopRequest()
        previous_handlers = stop.install()
        last_saved = started_at = step
        try:
            while step < total_steps:
                raw = next(windows)
                if state_config.carry:
                    check_windows_within_episodes(raw)
                batch = parallel.place_batch(model_batch(raw, model_config, stream_fields))
                with parallel.activate():
                    state, metrics = train_step(state, batch)
                step += 1
                stage = curriculum.stage_at(step)
                if stage.start_step == step and step < total_steps:
                    logging.info(
                        "curriculum stage %d after step %d: %d frames x %d windows",
                        stage.index,
                        step,
                        stage.window_length,
                        stage.batch_size,
                    )
                if state_config.stateful and carry_batch_size(state["carry"]) != stage.batch_size:
                    # A stage with another batch size: a fresh carry (all slots restart there).
                    state["carry"] = init_carry(model_from_state(graphdef, state), stage.batch_size)
                first = step == started_at + 1
                if first or step % int(training.log_every) == 0 or step == total_steps:
                    loss = float(metrics["loss"])
                    if not np.isfinite(loss):
                        raise FloatingPointError(f"loss is {loss} at step {step}")
                    if int(metrics.get("stream_breaks", 0)):
                        raise RuntimeError(
                            f"step {step}: {int(metrics['stream_breaks'])} slot(s) got a window "
                            "that does not continue their carried state (data or schedule "
                            "changed under a resumed run?)"
                        )
                    rate = progress.rate(step)
                    if first:  # its rate includes compilation; later ones are training speed
                        progress.reset_clock(step)
                    writer.write(step, {**metrics, "steps_per_sec": rate})
                    logging.info(progress.line(step, loss, rate))
                if step % int(training.checkpoint_every) == 0 or step == total_steps:
                    checkpoints.save(step, state, data_state=windows.get_state(), meta=meta)
                    last_saved = step
                if int(training.eval_every) and step % int(training.eval_every) == 0:
                    figures = evaluation.evaluate(
                        graphdef, state, heldout, diffusion_config, **eval_kwargs
                    )
                    writer.write(
                        step, {f"eval/{k}": v for k, v in figures.items() if isinstance(v, float)}
                    )
                    logging.info("eval at step %d: %s", step, _summary(figures))
                if int(training.sample_every) and step % int(training.sample_every) == 0:
                    _sample(
                        config,
                        graphdef,
                        state,
                        diffusion_config,
                        eval_source,
                        workdir,
                        step,
                    )
                if stop.signum is not None:
                    raise KeyboardInterrupt(f"signal {stop.signum}")
        except KeyboardInterrupt:
            if step > last_saved and not stop.forced:
                logging.warning("interrupted at step %d: saving a checkpoint", step)
                checkpoints.save(step, state, data_state=windows.get_state(), meta=meta)
            checkpoints.close()
            writer.close()
            raise
        finally:
            stop.restore(previous_handlers)
        compilations = train_step.trace_count()
        logging.info("train step compiled %d time(s) in this run", compilations)
    else:
        logging.info("training already finished at step %d", step)
    checkpoints.close()

    # ---------------------------------------------------------------------------------------
    # Final evaluation and sample video (skipped when this step's results exist).
    # ---------------------------------------------------------------------------------------
    final_path = workdir / "eval_final.json"
    if final_path.exists() and json.loads(final_path.read_text()).get("step") == step:
        logging.info("eval_final.json is already at step %d: not recomputed", step)
        writer.close()
        return json.loads(final_path.read_text())
    figures = evaluation.evaluate(graphdef, state, heldout, diffusion_config, **eval_kwargs)
    _sample(config, graphdef, state, diffusion_config, eval_source, workdir, step)
    results = {
        "step": step,
        **figures,
        "num_params": int(num_params),
        "mixer": model_config.mixer,
        "wall_seconds_this_run": round(time.perf_counter() - started, 1),
        "train_step_compilations_this_run": compilations,
        "peak_memory_bytes": peak_memory_bytes(),
    }
    final_path.write_text(json.dumps(results, indent=2) + "\n")
    writer.write(step, {f"eval/{k}": v for k, v in figures.items() if isinstance(v, float)})
    writer.close()
    logging.info("eval_final (step %d): %s", step, _summary(results))
    return results


def _summary(figures: dict) -> str:
    keys = ("val_loss", "val_loss_shuffled_actions", "tf_next_frame_psnr", "copy_last_frame_psnr")
    return "  ".join(f"{k} {figures[k]:.4f}" for k in keys)


def _sample(config, graphdef, state, diffusion_config, eval_source, workdir, step):
    """Writes samples/step_<step>.gif (EMA weights) when `sample.num_windows` > 0."""
    section = config.sample
    if int(section.num_windows) <= 0:
        return
    begin = time.perf_counter()
    raw = pipeline.fixed_windows(
        eval_source, int(section.window_length), int(section.num_windows), seed=int(section.seed)
    )
    path = videos.write_sample_video(
        model_from_state(graphdef, state, ema=True),
        diffusion_config.replace(sampler_steps=int(section.sampler_steps)),
        raw,
        int(section.context_frames),
        workdir / "samples" / f"step_{step}.gif",
        jax.random.PRNGKey(int(section.seed)),
    )
    logging.info("sample video %s (%s)", path, format_duration(time.perf_counter() - begin))


class _DropLibraryChatter:
    """A logging filter: orbax logs every file it writes at INFO; keep its warnings only."""

    def filter(self, record) -> bool:
        return record.levelno >= 30 or "/orbax/" not in record.pathname


def main(argv):
    logging.get_absl_handler().addFilter(_DropLibraryChatter())
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if _CONFIG.value is None or _WORKDIR.value is None:
        raise app.UsageError("--config and --workdir are required")
    logging.info("JAX devices: %s", jax.devices())
    train_and_evaluate(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
    app.run(main)
