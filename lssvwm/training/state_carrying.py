"""State carrying (truncated BPTT) and initial-state policies in the train step.

    state_config = StateConfig.from_config(config.state)       # section: default_config()
    carry = init_carry(model, batch_size)                       # what one window hands on
    train_step = make_train_step(graphdef, diffusion_config, tx, state_config, ...)
    state, carry, metrics = train_step(state, carry, batch)     # lssvwm/training/train_step.py

With `carry`, the trainer reads consecutive windows per batch slot (`ConsecutiveWindows`) and
each window starts from the model state at the end of the slot's previous window: per layer
the SSM states of every block, the conv states and the last k frames' keys/values (the same
`StreamCache` a rollout carries). No gradient crosses the boundary (stop_gradient). Windows never
straddle two episodes (the stream tiles episodes), so a reset is always at a window start: where
an episode starts, where the reset policy says so (lssvwm/training/state_policies.py), or where a
slot's window does not continue its previous one (a safety net, counted in `stream_breaks`).

Which state is carried (`carry_source`): training windows are noisy (diffusion forcing), but at
inference the state is built from clean frames (the sampler commits a frame at the context-noise
level). So by default ("clean") the next window's state comes from one extra, gradient-free
parallel pass over the clean window at the context-noise level, starting from the same initial
state; "noisy" carries the training pass's own final state instead (no extra pass, but a state
built from noisy frames at random levels).

Without `carry`, windows are random and independent, and each starts from the policy's initial
state: the zero state (the plain trainer: no carry at all), noise,
or -- state passing -- the final states of the previous step's windows.

The carry is saved in every checkpoint beside the train state: the cache, and
each slot's episode id and next frame (its position in its episode), which lets a resumed run
continue every slot's stream exactly. Its shapes depend on the batch size only (never on the
window length), so a curriculum stage that keeps the batch keeps the carry's shapes; a stage
that changes the batch starts a fresh carry, and the stream restarts all slots
at new episodes there anyway.

Mixers: carrying needs a fixed-size cache, so `causal_full` (whose attention cache grows) cannot
carry; "noise" and "passing" act on SSM states and need an SSM mixer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import ml_collections

from lssvwm.config_schema import check_known_keys
from lssvwm.diffusion import DiffusionConfig, feed_back
from lssvwm.training.state_policies import FIELDS as POLICY_FIELDS
from lssvwm.training.state_policies import ResetPolicy

CARRY_SOURCES = ("clean", "noisy")
_FIELDS = ("carry", "carry_source", *POLICY_FIELDS)
# fold_in constant that separates the state-policy randomness from the loss's draw of a step.
POLICY_STREAM = 0x5717E


def default_config() -> ml_collections.ConfigDict:
    """The `state` section of a config file: no carrying, zero state per window (plain)."""
    return ml_collections.ConfigDict(
        dict(
            carry=False,  # TBPTT: consecutive windows per slot, state carried between them
            carry_source="clean",  # "clean": extra no-grad pass over the clean window; "noisy"
            reset="episode_start",  # episode_start | every | random (with carry)
            reset_every=1,  # reset "every": period in windows
            reset_prob=0.0,  # reset "random": probability per slot and window
            initial="zeros",  # zeros | noise | passing: what a reset slot starts from
            noise_std=1.0,  # initial "noise": standard deviation of the SSM states
        )
    )


@dataclasses.dataclass(frozen=True)
class StateConfig:
    """The validated `state` section (see `default_config` and the module docstring)."""

    carry: bool = False
    carry_source: str = "clean"
    policy: ResetPolicy = ResetPolicy()

    def __post_init__(self):
        if not isinstance(self.carry, bool):
            raise ValueError(f"state.carry must be a bool, got {self.carry!r}")
        if self.carry_source not in CARRY_SOURCES:
            raise ValueError(
                f"state.carry_source must be one of {CARRY_SOURCES}, got {self.carry_source!r}"
            )
        if not self.carry and self.policy.reset != "episode_start":
            raise ValueError(
                f"state.reset {self.policy.reset!r} decides when a *carried* state is reset; "
                "without state.carry every window starts fresh: set state.carry=True"
            )

    @classmethod
    def from_config(cls, section: Mapping | None) -> StateConfig:
        """From a config's `state` section (None: the plain trainer); unknown keys raise."""
        if section is None:
            return cls()
        given = section.to_dict() if hasattr(section, "to_dict") else dict(section)
        check_known_keys("state", given, _FIELDS)
        defaults = default_config().to_dict()
        return cls(
            carry=given.get("carry", defaults["carry"]),
            carry_source=given.get("carry_source", defaults["carry_source"]),
            policy=ResetPolicy.from_config(given),
        )

    @property
    def stateful(self) -> bool:
        """Whether the train step runs a state policy (else the plain pass, no carry)."""
        return self.carry or self.policy.initial != "zeros"

    @property
    def keeps_final_state(self) -> bool:
        """Whether a step must compute its windows' final state (to carry or to pass on)."""
        return self.carry or self.policy.initial == "passing"

    def check_model(self, model_config) -> None:
        """Raises for a mixer this configuration cannot work with."""
        if self.carry and model_config.mixer == "causal_full":
            raise ValueError(
                "state.carry needs a fixed-size cache; the causal_full mixer's attention cache "
                "grows with every frame (use causal_window or an SSM mixer)"
            )
        if self.policy.needs_ssm and not model_config.uses_ssm:
            raise ValueError(
                f"state.initial {self.policy.initial!r} acts on SSM states; mixer "
                f"{model_config.mixer!r} has none"
            )

    def to_dict(self) -> dict[str, Any]:
        return dict(carry=self.carry, carry_source=self.carry_source, **self.policy.to_config())


# ---- the carry --------------------------------------------------------------------------------


def init_carry(model, batch_size: int) -> dict[str, Any]:
    """A fresh carry for `batch_size` slots: empty caches, no position (episode id -1)."""
    return {
        "cache": model.init_cache(batch_size),
        "episode_id": jnp.full((batch_size,), -1, jnp.int32),
        "next_frame": jnp.zeros((batch_size,), jnp.int32),
    }


def carry_batch_size(carry: Mapping[str, Any]) -> int:
    return int(carry["episode_id"].shape[0])


def clean_pass_cache(model, frames_BTHWC, actions, cache, config: DiffusionConfig, rng):
    """The cache after the window's frames fed as the sampler commits them: at the
    context-noise level c (clean for c = 0, else noised to level c), starting from `cache`."""
    frames, level_BT = feed_back(rng, frames_BTHWC, config)
    _, next_cache = model.prefill(frames, level_BT, actions, cache)
    return next_cache


def slot_resets(state_config: StateConfig, carry, batch, window_length: int, rng):
    """(reset_B, stream_breaks): which slots start this window from the policy's initial state.

    Without carrying every slot does. With it: episode starts, the policy's resets, and slots
    whose window does not continue the carried position (`stream_breaks` counts those that are
    not episode starts: none in a correct run).
    """
    batch_size = carry["episode_id"].shape[0]
    if not state_config.carry:
        return jnp.ones((batch_size,), bool), jnp.zeros((), jnp.int32)
    for key in ("episode_start", "episode_id", "start_frame"):
        if key not in batch:
            raise ValueError(
                f"state carrying needs stream batches (ConsecutiveWindows) with {key!r}; "
                f"got keys {sorted(batch)}"
            )
    episode_start = jnp.asarray(batch["episode_start"], bool)
    continues = (batch["episode_id"] == carry["episode_id"]) & (
        batch["start_frame"] == carry["next_frame"]
    )
    breaks = jnp.sum(~episode_start & ~continues).astype(jnp.int32)
    window_index = batch["start_frame"] // window_length
    reset = state_config.policy.reset_mask(window_index, episode_start | ~continues, rng)
    return reset, breaks
