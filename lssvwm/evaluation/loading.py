"""Loading a trained run: the model with its newest checkpoint's weights, ready to sample.

    run = load_run("/tmp/qs")                 # EMA weights of the newest checkpoint
    run = load_run(DIR, step=500, weights="params", sampler_steps=20)
    sampler = run.sampler()                   # lssvwm.diffusion.Sampler over run.model

The run's `config.json` (written by `lssvwm.train`) gives the model, diffusion and data sections;
the checkpoint's meta must agree with them (`lssvwm.common.checkpointing.meta_differences` names
any differing key; a key the checkpoint lacks is accepted at its default value). Only the weight
items of the saved train state are read (parameters, non-parameter variables, EMA), into a target
built from the model's abstract shapes: no optimizer, nothing trained, no training code.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from collections.abc import Sequence

import jax
import ml_collections
from flax import nnx

from lssvwm.common.checkpointing import Checkpoints
from lssvwm.config_loading import apply_override
from lssvwm.diffusion import DiffusionConfig, Sampler
from lssvwm.models import WorldModel, WorldModelConfig, count_parameters
from lssvwm.models.params import abstract_model
from lssvwm.nn.embed import ACTION_FIELDS

WEIGHTS = ("ema", "params")


@dataclasses.dataclass(frozen=True)
class LoadedRun:
    """A run directory's config and model (see the module docstring)."""

    workdir: pathlib.Path
    config: ml_collections.ConfigDict
    model_config: WorldModelConfig
    diffusion_config: DiffusionConfig
    model: WorldModel
    step: int
    weights: str

    @property
    def action_field(self) -> str:
        """The episode field the model is conditioned on (`actions` or `position`)."""
        return ACTION_FIELDS[self.model_config.action_mode]

    @property
    def training_length(self) -> int:
        """Frames per training window (`training.window_length`)."""
        return int(self.config.training.window_length)

    def sampler(self) -> Sampler:
        return Sampler(self.model, self.diffusion_config)

    def describe(self) -> dict:
        """The model figures a result file records."""
        mc = self.model_config
        return {
            "mixer": mc.mixer,
            "variant": (
                f"{mc.mixer} {mc.image_size[0]}x{mc.image_size[1]} p{mc.patch_size} "
                f"w{mc.width} d{mc.depth} k{mc.attention_window if mc.uses_attention else '-'}"
            ),
            "num_params": int(count_parameters(mc)),
            "action_mode": mc.action_mode,
            "attention_window": mc.attention_window if mc.uses_attention else None,
            "unit": mc.unit,
        }


def read_config(workdir: str | pathlib.Path) -> ml_collections.ConfigDict:
    path = pathlib.Path(workdir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: --workdir must be a run directory written by lssvwm.train"
        )
    config = ml_collections.ConfigDict(json.loads(path.read_text()))
    for section in ("model", "diffusion", "optimizer", "training", "data"):
        if section not in config:
            raise ValueError(f"{path} has no {section!r} section")
    return config


def load_run(
    workdir: str | pathlib.Path,
    *,
    step: int | None = None,
    weights: str = "ema",
    sampler_steps: int | None = None,
) -> LoadedRun:
    """The run in `workdir` at checkpoint `step` (None: the newest) with `weights`."""
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {WEIGHTS}, got {weights!r}")
    workdir = pathlib.Path(workdir)
    config = read_config(workdir)
    model_config = WorldModelConfig.from_mapping(config.model)
    trained_diffusion = DiffusionConfig.from_mapping(config.diffusion)
    diffusion_config = trained_diffusion
    if model_config.action_mode not in ACTION_FIELDS:
        raise ValueError(f"no data field for action_mode {model_config.action_mode!r}")
    if sampler_steps is not None:
        if sampler_steps < 1:
            raise ValueError(f"sampler_steps must be >= 1, got {sampler_steps}")
        diffusion_config = diffusion_config.replace(sampler_steps=int(sampler_steps))

    directory = workdir / "checkpoints"
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory} does not exist: the run has no checkpoint yet")
    checkpoints = Checkpoints(directory)
    try:
        steps = checkpoints.all_steps()
        if not steps:
            raise FileNotFoundError(f"{directory} holds no complete checkpoint")
        if step is None:
            step = max(steps)
        elif step not in steps:
            raise ValueError(f"no checkpoint of step {step} in {directory}; steps: {steps}")
        graphdef, abstract_weights = weight_shapes(model_config)
        configs = {"model": model_config, "diffusion": trained_diffusion}
        state, _, _ = checkpoints.restore_weights(
            abstract_weights,
            {section: _as_json(c.to_dict()) for section, c in configs.items()},
            step=step,
            defaults={section: _field_defaults(c) for section, c in configs.items()},
        )
    finally:
        checkpoints.close()
    chosen = jax.tree.map(jax.numpy.asarray, state[weights])
    model = nnx.merge(graphdef, chosen, state["rest"])
    return LoadedRun(
        workdir=workdir,
        config=config,
        model_config=model_config,
        diffusion_config=diffusion_config,
        model=model,
        step=int(step),
        weights=weights,
    )


def weight_shapes(model_config: WorldModelConfig):
    """(graphdef, {"params", "rest", "ema"} as `jax.ShapeDtypeStruct`s): the weight items of a
    saved train state and the graph to merge them into, from the model's abstract shapes only
    (`nnx.eval_shape`: no initialiser runs). The EMA has the parameters' structure, and the
    split is the trainer's (`nnx.split(model, nnx.Param, ...)`), so the trees match its state."""
    graphdef, params, rest = nnx.split(abstract_model(model_config), nnx.Param, ...)
    return graphdef, {"params": params, "rest": rest, "ema": params}


def _as_json(value):
    """As the checkpoint's JSON meta holds it (tuples become lists)."""
    return json.loads(json.dumps(value))


def _field_defaults(config) -> dict:
    """The dataclass defaults of a config (fields with a default factory have none here)."""
    return {
        f.name: f.default
        for f in dataclasses.fields(type(config))
        if f.default is not dataclasses.MISSING
    }


def inverse_action_table(dataset: str):
    """The inverse-action table of `dataset` (None when its actions have no inverses)."""
    if dataset == "maze3d":
        from lssvwm.data.maze_explorer import INVERSE_ACTION

        return INVERSE_ACTION
    return None


def data_config(
    run: LoadedRun, *, data_dir: str | None = None, overrides: Sequence[str] = ()
) -> ml_collections.ConfigDict:
    """The run's `data` section with `data_dir` and `key=value` overrides (e.g.
    "maze3d.test_episodes=32": more held-out episodes of the same generator) applied."""
    data = ml_collections.ConfigDict(run.config.data.to_dict())
    if data_dir:
        data.data_dir = data_dir
    for key, value in parse_data_overrides(overrides):
        apply_override(data, key, value, prefix="data")
    return data


def parse_data_overrides(overrides: Sequence[str]) -> list[tuple[str, str]]:
    """`["maze3d.seed=1"]` -> `[("maze3d.seed", "1")]`; a ValueError for an item that is not
    KEY=VALUE (the `--data` flag's validator)."""
    pairs = []
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"data override {item!r} is not KEY=VALUE (e.g. maze3d.seed=1)")
        pairs.append((key.strip(), value.strip()))
    return pairs


def open_episodes(data, split: str, fields: Sequence[str]):
    """A `SegmentSource` of `split` with those of `fields` the dataset stores (built on first
    use), and the list of fields it has."""
    from lssvwm.data import sources

    builder = sources.get_builder(data)
    if split not in builder.info.splits:
        raise ValueError(
            f"split {split!r} is not in {builder.name} (splits: {list(builder.info.splits)})"
        )
    stored = set(builder.info.features)
    present = [f for f in fields if f in stored]
    return sources.SegmentSource(builder, split, fields=present), present


class _DropLibraryChatter:
    """A logging filter: orbax logs every file it reads at INFO; keep its warnings only."""

    def filter(self, record) -> bool:
        return record.levelno >= 30 or "/orbax/" not in record.pathname


def quiet_library_logging() -> None:
    """Drops orbax's INFO chatter from absl's log (the CLIs call it first)."""
    from absl import logging

    logging.get_absl_handler().addFilter(_DropLibraryChatter())
