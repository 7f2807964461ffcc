"""Reset policies for carried model state: when a stream forgets, and what it restarts from.

    from lssvwm.training.state_policies import ResetPolicy

    policy = ResetPolicy.from_config(config.state)         # or ResetPolicy(reset="every", every=4)
    frame_policy = policy.per_frame(window_length=32)      # a rollout steps frames, not windows
    cache = model.init_cache(batch)
    for t in range(num_frames):
        rng, rng_mask, rng_init = jax.random.split(rng, 3)
        mask_B = frame_policy.reset_mask(t, episode_start_B, rng_mask)  # bool [B]
        cache = frame_policy.initial_state(model, cache, mask_B, rng_init)  # restart flagged
        ...  # step / commit frame t against `cache`

Both functions are pure and jit-able (numpy or jax inputs), with per-stream masks: a stream is
reset or not on its own. `index` counts windows (training) or frames (rollout) since the stream's
episode started, a scalar (all streams alike) or int [B].

When (`reset`); an episode start always resets:
  episode_start  only there (plain TBPTT: the state runs through the whole episode)
  every          also where index % every == 0: the state never spans more than `every` windows
                 (every = 1 is the "zero state per window" baseline on the same stream of windows)
  random         also with probability `prob`, independently per stream and window

What a reset stream starts from (`initial`). Conv states and the attention history (the last k
frames' keys/values) always restart empty: they hold specific recent frames, and a frame of
another sequence or of noise in them would be a wrong picture rather than a prior.
  zeros    the zero SSM state: an empty history (what inference starts from)
  noise    SSM states drawn i.i.d. from N(0, noise_std^2) (random-noise initial state)
  passing  the current SSM state of another stream of the batch (a random permutation; a stream
           may draw itself, i.e. its own previous sequence's final state): *state passing*, which
           Buitrago Ruiz & Gu (2025) found to make Mamba generalise past its training length, as
           the model learns to start from states it would meet deep into long sequences.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import jax
import jax.numpy as jnp

RESETS = ("episode_start", "every", "random")
INITIAL_STATES = ("zeros", "noise", "passing")
FIELDS = ("reset", "reset_every", "reset_prob", "initial", "noise_std")


@dataclasses.dataclass(frozen=True)
class ResetPolicy:
    """When carried state is reset, and to what (module docstring). Frozen and hashable, so it
    can be a static argument of a jitted function.

    reset: one of RESETS. every: the period of "every" (windows, or frames after `per_frame`).
    prob: the per-window (or per-frame) probability of "random".
    initial: one of INITIAL_STATES. noise_std: the standard deviation of "noise".
    """

    reset: str = "episode_start"
    every: int = 1
    prob: float = 0.0
    initial: str = "zeros"
    noise_std: float = 1.0

    def __post_init__(self):
        if self.reset not in RESETS:
            raise ValueError(f"state.reset must be one of {RESETS}, got {self.reset!r}")
        if self.initial not in INITIAL_STATES:
            raise ValueError(f"state.initial must be one of {INITIAL_STATES}, got {self.initial!r}")
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 1:
            raise ValueError(f"state.reset_every must be an int >= 1, got {self.every!r}")
        if not (isinstance(self.prob, int | float) and 0.0 <= self.prob <= 1.0):
            raise ValueError(f"state.reset_prob must be in [0, 1], got {self.prob!r}")
        if self.reset == "random" and self.prob <= 0.0:
            raise ValueError("state.reset 'random' needs state.reset_prob > 0")
        if not (
            isinstance(self.noise_std, int | float)
            and math.isfinite(self.noise_std)
            and self.noise_std >= 0
        ):
            raise ValueError(f"state.noise_std must be a finite number >= 0, got {self.noise_std}")

    @classmethod
    def from_config(cls, section: Mapping | None) -> ResetPolicy:
        """From a config's `state` section (other keys there, e.g. `carry`, are ignored);
        None or a missing field: the default (reset at episode starts to the zero state)."""
        if section is None:
            return cls()
        get = section.get if hasattr(section, "get") else dict(section).get
        defaults = cls()
        return cls(
            reset=get("reset", defaults.reset),
            every=get("reset_every", defaults.every),
            prob=get("reset_prob", defaults.prob),
            initial=get("initial", defaults.initial),
            noise_std=get("noise_std", defaults.noise_std),
        )

    def per_frame(self, window_length: int) -> ResetPolicy:
        """The same cadence counted in frames, for a rollout that steps a frame at a time:
        every N windows -> every N * window_length frames; a per-window probability p -> the
        per-frame probability 1 - (1 - p)^(1 / window_length) (same expected rate)."""
        if window_length < 1:
            raise ValueError(f"window_length must be >= 1, got {window_length}")
        prob = 1.0 - (1.0 - self.prob) ** (1.0 / window_length) if self.prob < 1.0 else 1.0
        return dataclasses.replace(self, every=self.every * window_length, prob=prob)

    @property
    def needs_ssm(self) -> bool:
        """Whether the initial state acts on SSM states (noise, passing)."""
        return self.initial != "zeros"

    # ---- when ---------------------------------------------------------------------------------

    def reset_mask(self, index, episode_start_B, rng: jax.Array | None = None) -> jax.Array:
        """bool [B]: the streams to reset before window (or frame) `index`.

        index: int scalar or [B], windows (frames) since the stream's episode started.
        episode_start_B: bool [B], the stream starts an episode here (always reset).
        rng: a PRNG key; needed by reset "random" only.
        """
        start_B = jnp.asarray(episode_start_B, bool)
        if start_B.ndim != 1:
            raise ValueError(f"episode_start must be [B], got shape {start_B.shape}")
        index_B = jnp.broadcast_to(jnp.asarray(index, jnp.int32), start_B.shape)
        if self.reset == "episode_start":
            return start_B
        if self.reset == "every":
            return start_B | (index_B % self.every == 0)
        if rng is None:
            raise ValueError("reset 'random' needs an rng")
        return start_B | jax.random.bernoulli(rng, self.prob, start_B.shape)

    # ---- what ---------------------------------------------------------------------------------

    def initial_state(self, model, cache, mask_B, rng: jax.Array | None = None):
        """`cache` with the streams where `mask_B` is true restarted per `initial`; the others
        are returned bit for bit. `model` is the `WorldModel` the cache belongs to (its
        `reset_cache` empties a stream); rng is needed by "noise" and "passing"."""
        mask_B = jnp.asarray(mask_B, bool)
        fresh = model.reset_cache(cache, mask_B)
        if self.initial == "zeros":
            return fresh
        if rng is None:
            raise ValueError(f"initial state {self.initial!r} needs an rng")
        if not any(layer.ssm is not None for layer in cache.layers):
            raise ValueError(
                f"initial state {self.initial!r} acts on SSM states; this model has none "
                f"(mixer {model.config.mixer!r})"
            )
        batch = mask_B.shape[0]
        if self.initial == "passing":
            donors_B = jax.random.permutation(rng, batch)
        layers = []
        for index, (old, new) in enumerate(zip(cache.layers, fresh.layers, strict=True)):
            if new.ssm is None:
                layers.append(new)
                continue
            states = new.ssm.ssm  # [B * blocks, h, p, n]
            blocks = states.shape[0] // batch
            if self.initial == "noise":
                start = self.noise_std * jax.random.normal(
                    jax.random.fold_in(rng, index), states.shape, states.dtype
                )
            else:
                per_stream = old.ssm.ssm.reshape(batch, blocks, *states.shape[1:])
                start = per_stream[donors_B].reshape(states.shape)
            flagged = jnp.repeat(mask_B, blocks).reshape(-1, *[1] * (states.ndim - 1))
            ssm = new.ssm._replace(ssm=jnp.where(flagged, start, states))
            layers.append(new._replace(ssm=ssm))
        return fresh._replace(layers=tuple(layers))

    def to_config(self) -> dict:
        """The fields as a config's `state` section names them."""
        return dict(
            reset=self.reset,
            reset_every=self.every,
            reset_prob=self.prob,
            initial=self.initial,
            noise_std=self.noise_std,
        )
