"""State carrying (truncated BPTT) and initial-state policies in the train step.

    state_config = StateConfig.from_config(config.state)       # section: default_config()
    state["carry"] = init_carry(model, batch_size)              # the carried part of the state
    train_step = make_stateful_train_step(graphdef, diffusion_config, tx, state_config, ...)
    state, metrics = train_step(state, batch)                   # jitted, donating

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
state: the zero state (the plain trainer; `make_train_step` does this without a carry), noise,
or -- state passing -- the final states of the previous step's windows.

The carry is part of the train state, so checkpoints hold it with the model: the cache, and
each slot's episode id and next frame (its position in its episode), which lets a resumed run
continue every slot's stream exactly. Its shapes depend on the batch size only (never on the
window length), so a curriculum stage that keeps the batch keeps the carry's shapes; a stage
that changes the batch starts a fresh carry (`fit_carry`), and the stream restarts all slots
at new episodes there anyway.

Mixers: carrying needs a fixed-size cache, so `causal_full` (whose attention cache grows) cannot
carry; "noise" and "passing" act on SSM states and need an SSM mixer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import nnx

from lssvwm.diffusion import DiffusionConfig, diffusion_forcing_loss, feed_back
from lssvwm.models.inputs import model_frames
from lssvwm.training.state_policies import FIELDS as POLICY_FIELDS
from lssvwm.training.state_policies import ResetPolicy
from lssvwm.training.train_state import (
    TrainState,
    apply_gradients,
    jit_counting_traces,
)

CARRY_SOURCES = ("clean", "noisy")
_FIELDS = ("carry", "carry_source", *POLICY_FIELDS)
# fold_in constant that separates the state-policy randomness from the loss's draw of a step.
_POLICY_STREAM = 0x5717E


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
        unknown = sorted(set(given) - set(_FIELDS))
        if unknown:
            raise ValueError(f"unknown state config key(s) {unknown}; known keys: {list(_FIELDS)}")
        defaults = default_config().to_dict()
        return cls(
            carry=given.get("carry", defaults["carry"]),
            carry_source=given.get("carry_source", defaults["carry_source"]),
            policy=ResetPolicy.from_config(given),
        )

    @property
    def stateful(self) -> bool:
        """Whether training needs the stateful step (else the plain `make_train_step`)."""
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


def fit_carry(model, carry: Mapping[str, Any], batch_size: int) -> dict[str, Any]:
    """`carry` itself when it has `batch_size` slots, else a fresh one (a curriculum stage that
    changes the batch size; the stream restarts every slot at a new episode there)."""
    if carry_batch_size(carry) == batch_size:
        return dict(carry)
    return init_carry(model, batch_size)


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


# ---- the train step ---------------------------------------------------------------------------


def make_stateful_train_step(
    graphdef,
    diffusion_config: DiffusionConfig,
    tx: optax.GradientTransformation,
    state_config: StateConfig,
    *,
    ema_decay: float,
    seed: int,
    schedule: optax.Schedule | None = None,
):
    """The jitted step `(state, batch) -> (state, metrics)` of a state with a `carry`, donating
    `state`. Same update as `make_train_step` (same loss draw for the same step), but the window
    starts from the carried/initial state. Extra metrics: reset_fraction, stream_breaks.

    `batch`: `frames` uint8 [b, t, H, W, C] and `actions`; with carrying also `episode_start`,
    `episode_id` and `start_frame` [b] (a `ConsecutiveWindows` batch).
    """
    base_rng = jax.random.PRNGKey(seed)
    policy = state_config.policy

    def train_step(state: TrainState, batch: Mapping[str, jax.Array]):
        step = state["step"]
        rng = jax.random.fold_in(base_rng, step)  # the loss's draw, as in make_train_step
        rng_reset, rng_initial, rng_clean = jax.random.split(
            jax.random.fold_in(rng, _POLICY_STREAM), 3
        )
        model = nnx.merge(graphdef, state["params"], state["rest"])
        frames = model_frames(batch, model.config)
        actions = batch["actions"]
        window_length = frames.shape[1]
        carry = state["carry"]
        if carry_batch_size(carry) != frames.shape[0]:
            raise ValueError(
                f"the carry has {carry_batch_size(carry)} slots but the batch "
                f"{frames.shape[0]}: call fit_carry when the batch size changes"
            )
        reset_B, breaks = slot_resets(state_config, carry, batch, window_length, rng_reset)
        initial = jax.lax.stop_gradient(
            policy.initial_state(model, carry["cache"], reset_B, rng_initial)
        )

        def loss_fn(params):
            model = nnx.merge(graphdef, params, state["rest"])
            final = {}

            def model_fn(noisy, level, actions, **memory_inputs):
                prediction, final["cache"] = model.prefill(
                    noisy, level, actions, initial, **memory_inputs
                )
                return prediction

            model_fn.reads_clean_frames = model.reads_clean_frames

            loss, metrics = diffusion_forcing_loss(
                model_fn,
                {"frames": frames, "actions": actions},
                rng,
                diffusion_config,
                chunk=model.unit,
            )
            return loss, (metrics, final["cache"])

        (loss, (metrics, noisy_final)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state["params"]
        )
        if not state_config.keeps_final_state:
            next_cache = carry["cache"]
        elif state_config.carry_source == "clean":
            next_cache = clean_pass_cache(
                model, frames, actions, initial, diffusion_config, rng_clean
            )
        else:
            next_cache = noisy_final
        if "episode_id" in batch and "start_frame" in batch:
            episode_id = jnp.asarray(batch["episode_id"], jnp.int32)
            next_frame = jnp.asarray(batch["start_frame"], jnp.int32) + window_length
        else:
            episode_id, next_frame = carry["episode_id"], carry["next_frame"]
        next_carry = {
            "cache": jax.lax.stop_gradient(next_cache),
            "episode_id": episode_id,
            "next_frame": next_frame,
        }
        new_state, update_metrics = apply_gradients(
            {**state, "carry": next_carry}, grads, tx, ema_decay, schedule
        )
        metrics = {**metrics, "loss": loss, **update_metrics}
        metrics["reset_fraction"] = jnp.mean(reset_B.astype(jnp.float32))
        metrics["stream_breaks"] = breaks
        return new_state, metrics

    return jit_counting_traces(train_step, donate_argnums=(0,))
