"""The run spec: a config file's every section, typed, validated once, before anything compiles.

    spec = RunSpec.from_config(config, source="configs/quickstart.py")
    spec.model.width, spec.training.batch_size, spec.data.section()   # typed fields

Sections and their schema (each a frozen dataclass, parsed by `lssvwm.config_schema`):

    model       lssvwm.models.WorldModelConfig
    diffusion   lssvwm.diffusion.DiffusionConfig
    optimizer   lssvwm.training.optimizer.OptimizerConfig
    training    TrainingConfig (below): steps, batch, window, logging/checkpoint/eval cadence
    eval        EvalConfig: the held-out figures of lssvwm.training.evaluation
    sample      SampleConfig: the sample videos
    curriculum  lssvwm.training.curriculum (optional: no curriculum)
    state       lssvwm.training.state_carrying.StateConfig (optional: plain training)
    mesh        lssvwm.parallel.MeshConfig (optional: data parallel over every device)
    data        DataConfig: the dataset, its splits and its generator's own section

A mistake fails in one line that names the dotted key (and the file, via `source`): an unknown
or mistyped key in any section, a bad value, and the cross-section mistakes -- a training window
longer than the model's `max_frames`, a context as long as its window, a window that is not a
whole number of the model's units, a model whose inputs the dataset does not store or whose
frame size differs from the data's, a state policy the mixer cannot follow. The batch against
the devices is checked by `lssvwm.training.build.build`, which knows the mesh.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import ml_collections

from lssvwm.config_schema import ConfigError, as_dict, check_known_keys, parse_section
from lssvwm.diffusion import DiffusionConfig
from lssvwm.models import WorldModelConfig, inputs
from lssvwm.nn.embed import ACTION_FIELDS
from lssvwm.parallel import MeshConfig
from lssvwm.training.curriculum import Curriculum
from lssvwm.training.optimizer import OptimizerConfig
from lssvwm.training.state_carrying import StateConfig

SECTIONS = (
    "seed",
    "model",
    "diffusion",
    "optimizer",
    "training",
    "eval",
    "sample",
    "curriculum",
    "state",
    "mesh",
    "data",
)


def _at_least(section: str, instance, minimum: int, *names: str) -> None:
    for name in names:
        value = getattr(instance, name)
        if value < minimum:
            raise ConfigError(f"{section}.{name}", f"must be >= {minimum}, got {value}")


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """The `training` section: how long, how big, and what is written when.

    steps / batch_size / window_length: optimizer steps, windows per step, frames per window
      (with a curriculum: the final stage's; `curriculum` sets the earlier ones).
    log_every / checkpoint_every / keep_checkpoints: the metrics and checkpoint cadence.
    eval_every / sample_every: held-out figures and sample videos during training (0: only at
      the end).
    init_from: a trained run's workdir whose weights start this run ("": random weights).
    nonfinite: what a step with a non-finite loss, gradient norm or parameter norm does --
      "skip" (it leaves the weights, optimizer state and EMA unchanged; counted in the metrics'
      nonfinite_steps) or "stop" (the run stops, naming the step and the quantity); checked on
      device every step, acted on at the next logged or saved step. Never saved either way.
    max_consecutive_nonfinite: under "skip", that many non-finite steps in a row stop the run.
    """

    steps: int
    batch_size: int
    window_length: int
    log_every: int = 50
    checkpoint_every: int = 250
    keep_checkpoints: int = 3
    eval_every: int = 0
    sample_every: int = 0
    init_from: str = ""
    nonfinite: str = "skip"
    max_consecutive_nonfinite: int = 10

    def __post_init__(self):
        _at_least("training", self, 1, "steps", "batch_size", "window_length")
        _at_least("training", self, 1, "log_every", "checkpoint_every", "keep_checkpoints")
        _at_least("training", self, 0, "eval_every", "sample_every")
        _at_least("training", self, 1, "max_consecutive_nonfinite")
        if self.nonfinite not in ("skip", "stop"):
            raise ConfigError(
                "training.nonfinite", f"must be 'skip' or 'stop', got {self.nonfinite!r}"
            )


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """The `eval` section: held-out windows of the eval split, the first `context_frames` clean,
    the rest at each of `noise_levels` (lssvwm.training.evaluation)."""

    num_windows: int = 32
    batch_size: int = 8
    context_frames: int = 16
    noise_levels: tuple = (0.25, 0.5, 0.75, 1.0)
    seed: int = 0

    def __post_init__(self):
        _at_least("eval", self, 1, "num_windows", "batch_size", "context_frames")
        for level in self.noise_levels:
            if isinstance(level, bool) or not isinstance(level, int | float) or not 0 < level <= 1:
                raise ConfigError("eval.noise_levels", f"must be numbers in (0, 1], got {level!r}")


@dataclasses.dataclass(frozen=True)
class SampleConfig:
    """The `sample` section: videos continuing held-out windows after a context (0 windows:
    none)."""

    num_windows: int = 2
    window_length: int = 32
    context_frames: int = 16
    sampler_steps: int = 10
    seed: int = 0

    def __post_init__(self):
        _at_least("sample", self, 0, "num_windows")
        _at_least("sample", self, 1, "window_length", "context_frames", "sampler_steps")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """The `data` section (lssvwm.data.config): which dataset, where, which splits and fields;
    `generator` is the dataset's own section (e.g. `data.maze3d`), checked by its builder."""

    dataset: str
    data_dir: str | None = None
    num_workers: int | None = None
    train_split: str = "train"
    eval_split: str = "test"
    fields: tuple = ("frames", "actions", "position")
    generator: tuple = ()  # the dataset section's (key, value) pairs, sorted

    @classmethod
    def from_mapping(cls, mapping) -> DataConfig:
        from lssvwm.data.sources import DATASET_BUILDERS

        given = as_dict(mapping)
        dataset = given.get("dataset")
        if dataset not in DATASET_BUILDERS:
            known = ", ".join(sorted(DATASET_BUILDERS))
            raise ConfigError("data.dataset", f"{dataset!r} is unknown (known: {known})")
        keys = [f.name for f in dataclasses.fields(cls) if f.name != "generator"]
        check_known_keys("data", given, (*keys, dataset))
        generator = tuple(sorted(as_dict(given.pop(dataset, None)).items()))
        return parse_section(cls, {**given, "generator": generator}, "data")

    def section(self) -> ml_collections.ConfigDict:
        """The ConfigDict the data layer (lssvwm.data.sources) reads."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        generator = dict(values.pop("generator"))
        if generator:
            values[self.dataset] = generator
        return ml_collections.ConfigDict(values)

    def layout(self):
        """The dataset's layout -- its fields and frame size -- known without building it; a
        ValueError naming `data.<dataset>` for a generator parameter its builder rejects."""
        from lssvwm.data import sources

        try:
            return sources.get_builder(self.section(), build=False).layout()
        except ConfigError:
            raise
        except (ValueError, KeyError, TypeError) as error:
            raise ConfigError(f"data.{self.dataset}", f"is invalid: {error}") from None


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """Every section of a run, typed (see the module docstring)."""

    seed: int
    model: WorldModelConfig
    diffusion: DiffusionConfig
    optimizer: OptimizerConfig
    training: TrainingConfig
    eval: EvalConfig
    sample: SampleConfig
    curriculum: Curriculum
    state: StateConfig
    mesh: MeshConfig
    data: DataConfig
    config: ml_collections.ConfigDict = dataclasses.field(compare=False, repr=False)

    @classmethod
    def from_config(
        cls, config: ml_collections.ConfigDict, *, source: str = "config", check_data: bool = True
    ) -> RunSpec:
        """Parses and cross-checks every section of `config`; a ValueError whose one-line message
        starts with `source` and names the key. `check_data`: also check the dataset stores what
        the model reads (reads the dataset's layout, not its records)."""
        try:
            return cls._parse(config, check_data=check_data)
        except ValueError as error:
            first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
            wrapped = ConfigError(f"{source}:", first_line)
            wrapped.key = getattr(error, "key", None)
            raise wrapped from None

    @classmethod
    def _parse(cls, config, *, check_data: bool) -> RunSpec:
        given = as_dict(config)
        unknown = sorted(set(given) - set(SECTIONS))
        if unknown:
            known = ", ".join(SECTIONS)
            raise ConfigError(unknown[0], f"is not a config section (known: {known})")
        for name in ("model", "diffusion", "optimizer", "training", "data"):
            if name not in given:
                raise ConfigError(name, "section is missing")
        seed = given.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError("seed", f"must be an int, got {seed!r}")
        model = WorldModelConfig.from_mapping(given["model"])
        training = parse_section(TrainingConfig, given["training"], "training")
        diffusion = DiffusionConfig.from_mapping(given["diffusion"])
        curriculum = Curriculum.from_config(
            given.get("curriculum"),
            window_length=training.window_length,
            batch_size=training.batch_size,
            unit=model.unit,
        )
        spec = cls(
            seed=seed,
            model=model,
            diffusion=diffusion,
            optimizer=OptimizerConfig.from_mapping(given["optimizer"]),
            training=training,
            eval=parse_section(EvalConfig, given.get("eval"), "eval"),
            sample=parse_section(SampleConfig, given.get("sample"), "sample"),
            curriculum=curriculum,
            state=StateConfig.from_config(given.get("state")),
            mesh=MeshConfig.from_mapping(given.get("mesh")),
            data=DataConfig.from_mapping(given["data"]),
            config=config,
        )
        spec._check_across_sections(check_data=check_data)
        return spec

    def _check_across_sections(self, *, check_data: bool) -> None:
        model, training = self.model, self.training
        if model.action_mode not in ACTION_FIELDS:
            raise ConfigError("model.action_mode", f"{model.action_mode!r} has no data field")
        if model.max_frames is not None and training.window_length > model.max_frames:
            raise ConfigError(
                "training.window_length",
                f"({training.window_length}) is longer than model.max_frames "
                f"({model.max_frames}), the window the model is built for",
            )
        if self.eval.context_frames >= training.window_length:
            raise ConfigError(
                "eval.context_frames",
                f"({self.eval.context_frames}) leaves no frame to score in a "
                f"{training.window_length}-frame training window",
            )
        if self.sample.context_frames >= self.sample.window_length:
            raise ConfigError(
                "sample.context_frames",
                f"({self.sample.context_frames}) leaves no frame to generate in a "
                f"{self.sample.window_length}-frame sample window",
            )
        self.curriculum.check_clean_prefix(self.diffusion, model.unit)
        self.state.check_model(model)
        if check_data:
            layout = self.data.layout()
            where = f"data.dataset {self.data.dataset!r}"
            inputs.check_fields_present(model, layout.fields, where)
            frame_size = (layout.height, layout.width)
            if frame_size != tuple(model.image_size):
                raise ConfigError(
                    "model.image_size",
                    f"{tuple(model.image_size)} differs from the data's frames {frame_size} "
                    f"(data.{self.data.dataset})",
                )

    def resolved_config(self) -> dict[str, Any]:
        """The config as the run reads it, in JSON types: every field of every section, the ones
        the file leaves out at their defaults (optional sections too: `state`, `mesh`, `eval`,
        `sample`), and any section kept as the file gives it (`curriculum`). What `lssvwm.train
        --show_config` prints and the run's TensorBoard config text shows."""
        import json

        typed = {
            "seed": self.seed,
            "model": self.model.to_dict(),
            "diffusion": self.diffusion.to_dict(),
            "optimizer": dataclasses.asdict(self.optimizer),
            "training": dataclasses.asdict(self.training),
            "eval": dataclasses.asdict(self.eval),
            "sample": dataclasses.asdict(self.sample),
            "state": self.state.to_dict(),
            "mesh": dataclasses.asdict(self.mesh),
            "data": self.data.section().to_dict(),
        }
        resolved = json.loads(json.dumps(typed))
        for name, section in json.loads(self.config.to_json_best_effort()).items():
            if isinstance(section, dict) and isinstance(resolved.get(name), dict):
                resolved[name] = {**section, **resolved[name]}
            else:
                resolved.setdefault(name, section)
        return resolved

    @property
    def checkpoint_meta(self) -> dict[str, Any]:
        """What a checkpoint records of the run, and a resumed run must match: model and
        diffusion, and the curriculum and state policy where they are not the defaults (so
        runs without them resume as before)."""
        import json

        meta = {"model": self.model.to_dict(), "diffusion": self.diffusion.to_dict()}
        if self.curriculum.num_stages > 1:
            meta["curriculum"] = self.curriculum.as_tuples()
        if self.state.stateful:
            meta["state"] = self.state.to_dict()
        return json.loads(json.dumps(meta))  # tuples -> lists, as JSON restores them
