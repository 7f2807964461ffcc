"""Length curriculum: the training window length (and batch size) as a pure function of the step.

    curriculum = Curriculum.from_config(config.curriculum, window_length=32, batch_size=8, unit=1)
    stage = curriculum.stage_at(step)      # Stage(index, start_step, window_length, batch_size)
    length, batch = curriculum.shape_at(step)

Kinds (`config.curriculum.kind`, section `default_config()`):
  none     one stage: `training.window_length` x `training.batch_size` from step 0.
  stages   explicit stages (the paper's 400 -> 800 frames): `lengths` (the last one must equal
           `training.window_length`) starting at step 0 and at each of `stage_steps`.
  linear   sequence-length warm-up from `start_length` to `training.window_length` over
           `warmup_steps`, rounded *down* to multiples of `bucket` frames, so the window takes
           only (final - start) / bucket + 1 distinct lengths.

Every distinct (window length, batch size) is one jit compilation of the train step, so the
number of compilations is at most the number of stages (a linear warm-up is a list of stages, one
per bucket). With `constant_tokens`, a stage's batch is `batch_size * window_length / length`
rounded down to a multiple of `batch_multiple` (the data-parallel devices): frames per step stay
about constant and never exceed the final stage's (memory is sized by the final stage).

The stage depends on the step only -- not on how the run got there -- so a run resumed at any
step (mid-stage or right at a boundary) trains exactly the windows an uninterrupted run would.
The clean-prefix rule of long-context training applies to each stage's own window (its minimum
length is a fraction of the current length); `check_clean_prefix` fails at start-up, not hours
later, if some stage admits no prefix.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Mapping, Sequence

import ml_collections

from lssvwm.config_schema import check_known_keys
from lssvwm.diffusion import DiffusionConfig, allowed_prefix_lengths

KINDS = ("none", "stages", "linear")
_FIELDS = (
    "kind",
    "lengths",
    "stage_steps",
    "start_length",
    "warmup_steps",
    "bucket",
    "constant_tokens",
    "batch_multiple",
)


def default_config() -> ml_collections.ConfigDict:
    """The `curriculum` section of a config file (kind "none": a fixed window)."""
    return ml_collections.ConfigDict(
        dict(
            kind="none",
            lengths=(),  # stages: window length per stage; the last = training.window_length
            stage_steps=(),  # stages: first step of stages 1, 2, ... (stage 0 starts at step 0)
            start_length=0,  # linear: the first window length
            warmup_steps=0,  # linear: steps to reach training.window_length
            bucket=8,  # linear: window lengths are multiples of this many frames
            constant_tokens=False,  # scale batch sizes so batch x length stays about constant
            batch_multiple=1,  # batch sizes stay multiples of this (data-parallel devices)
        )
    )


@dataclasses.dataclass(frozen=True)
class Stage:
    """One constant-shape stretch of training: steps [start_step, next stage's start_step)."""

    index: int
    start_step: int
    window_length: int
    batch_size: int

    @property
    def frames_per_step(self) -> int:
        return self.window_length * self.batch_size


@dataclasses.dataclass(frozen=True)
class Curriculum:
    """A step -> (window length, batch size) schedule made of stages (see module docstring)."""

    stages: tuple[Stage, ...]

    def __post_init__(self):
        if not self.stages:
            raise ValueError("a curriculum needs at least one stage")
        if self.stages[0].start_step != 0:
            raise ValueError(f"the first stage must start at step 0, got {self.stages[0]}")
        for previous, stage in zip(self.stages, self.stages[1:], strict=False):
            if stage.start_step <= previous.start_step:
                raise ValueError(
                    f"stage start steps must increase: {previous.start_step} then "
                    f"{stage.start_step}"
                )
        for i, stage in enumerate(self.stages):
            if stage.index != i or stage.window_length < 1 or stage.batch_size < 1:
                raise ValueError(f"bad stage {stage} at position {i}")

    # ---- construction -------------------------------------------------------------------------

    @classmethod
    def fixed(cls, window_length: int, batch_size: int) -> Curriculum:
        """No curriculum: one stage."""
        return cls((Stage(0, 0, int(window_length), int(batch_size)),))

    @classmethod
    def from_stages(
        cls,
        lengths: Sequence[int],
        stage_steps: Sequence[int],
        batch_size: int,
        *,
        constant_tokens: bool = False,
        batch_multiple: int = 1,
    ) -> Curriculum:
        """Stages of `lengths`, stage i > 0 starting at `stage_steps[i - 1]`."""
        lengths = [int(v) for v in lengths]
        stage_steps = [int(v) for v in stage_steps]
        if not lengths:
            raise ValueError("curriculum.lengths is empty: give one window length per stage")
        if len(stage_steps) != len(lengths) - 1:
            raise ValueError(
                f"curriculum.stage_steps needs one start step per stage after the first: "
                f"{len(lengths)} lengths need {len(lengths) - 1} steps, got {len(stage_steps)}"
            )
        starts = [0, *stage_steps]
        return cls._from_stage_starts(starts, lengths, batch_size, constant_tokens, batch_multiple)

    @classmethod
    def linear(
        cls,
        start_length: int,
        final_length: int,
        warmup_steps: int,
        bucket: int,
        batch_size: int,
        *,
        constant_tokens: bool = False,
        batch_multiple: int = 1,
    ) -> Curriculum:
        """Sequence-length warm-up: length(s) = start + (final - start) * min(s / warmup, 1),
        rounded down to a multiple of `bucket`; one stage per bucketed length."""
        if bucket < 1:
            raise ValueError(f"curriculum.bucket must be >= 1 frames, got {bucket}")
        if warmup_steps < 1:
            raise ValueError(f"curriculum.warmup_steps must be >= 1, got {warmup_steps}")
        if not 0 < start_length < final_length:
            raise ValueError(
                f"a linear curriculum needs 0 < start_length ({start_length}) < the final "
                f"window length ({final_length})"
            )
        if start_length % bucket or final_length % bucket:
            raise ValueError(
                f"start_length ({start_length}) and the final window length ({final_length}) "
                f"must be multiples of curriculum.bucket ({bucket})"
            )
        span = final_length - start_length
        lengths = list(range(start_length, final_length + 1, bucket))
        # Stage i begins at the first step s with start + span * s / warmup >= lengths[i]:
        # s = ceil((lengths[i] - start) * warmup / span), in integers (no float rounding).
        starts = [-(-(length - start_length) * warmup_steps // span) for length in lengths]
        return cls._from_stage_starts(starts, lengths, batch_size, constant_tokens, batch_multiple)

    @classmethod
    def _from_stage_starts(
        cls, starts, lengths, batch_size: int, constant_tokens: bool, batch_multiple: int
    ) -> Curriculum:
        """Stage i from step starts[i] with windows of lengths[i] (the last length is final)."""
        final = lengths[-1]
        return cls(
            tuple(
                Stage(
                    i,
                    start,
                    length,
                    _batch_for(length, final, batch_size, constant_tokens, batch_multiple),
                )
                for i, (start, length) in enumerate(zip(starts, lengths, strict=True))
            )
        )

    @classmethod
    def from_config(
        cls,
        section: Mapping | None,
        *,
        window_length: int,
        batch_size: int,
        unit: int = 1,
    ) -> Curriculum:
        """From a config's `curriculum` section (None: no curriculum) and the `training` window.

        `unit` is the model's streaming unit (the attention chunk): every length must be a
        multiple of it. Unknown keys and inconsistent values raise a ValueError naming the field.
        """
        values = default_config().to_dict()
        if section is not None:
            given = section.to_dict() if hasattr(section, "to_dict") else dict(section)
            check_known_keys("curriculum", given, _FIELDS)
            values.update(given)
        kind = values["kind"]
        common = dict(
            constant_tokens=bool(values["constant_tokens"]),
            batch_multiple=int(values["batch_multiple"]),
        )
        if common["batch_multiple"] < 1:
            raise ValueError(
                f"curriculum.batch_multiple must be >= 1, got {common['batch_multiple']}"
            )
        if batch_size % common["batch_multiple"]:
            raise ValueError(
                f"training.batch_size ({batch_size}) is not a multiple of "
                f"curriculum.batch_multiple ({common['batch_multiple']})"
            )
        if kind == "none":
            curriculum = cls.fixed(window_length, batch_size)
        elif kind == "stages":
            lengths = tuple(values["lengths"])
            if lengths and lengths[-1] != window_length:
                raise ValueError(
                    f"the last curriculum length ({lengths[-1]}) must equal "
                    f"training.window_length ({window_length}), the window the held-out "
                    "figures use"
                )
            curriculum = cls.from_stages(lengths, values["stage_steps"], batch_size, **common)
        elif kind == "linear":
            curriculum = cls.linear(
                int(values["start_length"]),
                window_length,
                int(values["warmup_steps"]),
                int(values["bucket"]),
                batch_size,
                **common,
            )
        else:
            raise ValueError(f"curriculum.kind must be one of {KINDS}, got {kind!r}")
        for stage in curriculum.stages:
            if stage.window_length % unit:
                raise ValueError(
                    f"curriculum stage {stage.index}: a window of {stage.window_length} frames "
                    f"is not a whole number of the model's units ({unit} frames)"
                )
        return curriculum

    # ---- queries ------------------------------------------------------------------------------

    @property
    def num_stages(self) -> int:
        return len(self.stages)

    def stage_at(self, step: int) -> Stage:
        """The stage that trains step `step` (0-based)."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        starts = [stage.start_step for stage in self.stages]
        return self.stages[bisect.bisect_right(starts, int(step)) - 1]

    def shape_at(self, step: int) -> tuple[int, int]:
        """(window length, global batch size) of step `step`."""
        stage = self.stage_at(step)
        return stage.window_length, stage.batch_size

    def as_tuples(self) -> tuple[tuple[int, int, int], ...]:
        """((start_step, window_length, batch_size), ...): the form the data pipeline takes."""
        return tuple((s.start_step, s.window_length, s.batch_size) for s in self.stages)

    def distinct_shapes(self, total_steps: int | None = None) -> set[tuple[int, int]]:
        """The (length, batch) pairs trained in steps [0, total_steps): one compile each."""
        return {
            (s.window_length, s.batch_size)
            for s in self.stages
            if total_steps is None or s.start_step < total_steps
        }

    @property
    def max_window_length(self) -> int:
        return max(stage.window_length for stage in self.stages)

    def check_clean_prefix(self, diffusion: DiffusionConfig, unit: int = 1) -> None:
        """Raises now if some stage's window admits no clean prefix (clean_prefix_prob > 0)."""
        if diffusion.clean_prefix_prob <= 0:
            return
        for stage in self.stages:
            try:
                allowed_prefix_lengths(
                    stage.window_length, diffusion.clean_prefix_min_fraction, unit
                )
            except ValueError as error:
                raise ValueError(f"curriculum stage {stage.index}: {error}") from error

    def describe(self) -> str:
        """One line per stage, for the log."""
        return "; ".join(
            f"stage {s.index} from step {s.start_step}: {s.window_length} frames x {s.batch_size}"
            for s in self.stages
        )


def _batch_for(
    length: int, final_length: int, batch_size: int, constant_tokens: bool, batch_multiple: int
) -> int:
    """The stage's global batch: `batch_size`, or scaled to keep frames per step <= the final
    stage's (rounded down to a multiple of `batch_multiple`, at least one multiple)."""
    if length < 1:
        raise ValueError(f"window lengths must be >= 1 frames, got {length}")
    if not constant_tokens:
        return int(batch_size)
    scaled = (batch_size * final_length) // length
    return max(batch_multiple, scaled // batch_multiple * batch_multiple)
