"""Reset policies at rollout time: when the carried state is forgotten.

A policy is any callable `policy(frame, batch) -> mask | None`, asked before each unit is
generated; `frame` is the index of the unit's first generated frame (0 = the first frame after
the context). It returns None (carry on) or a bool mask [batch] of the streams whose state is
reset (`WorldModel.reset_cache`: SSM, conv and attention caches, as at an episode start). The
training-side policies (`lssvwm.training.state_*`) can be wrapped in this signature.

    NEVER_RESET                          the default: carry everything
    ResetEvery(n)                        every stream, before generated frames n, 2n, 3n, ...
    reset_policy_from_flag("every:64")   "never" | "every:N" | "N" (0 = never)
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

import numpy as np


class ResetPolicy(Protocol):
    def __call__(self, frame: int, batch: int) -> np.ndarray | None: ...


def never_reset(frame: int, batch: int) -> None:
    """Carries the whole state through the rollout."""
    del frame, batch
    return None


NEVER_RESET: ResetPolicy = never_reset


@dataclasses.dataclass(frozen=True)
class ResetEvery:
    """Resets every stream before generated frames n, 2n, 3n, ... (a memory cut-off control)."""

    every: int

    def __post_init__(self):
        if self.every < 1:
            raise ValueError(f"reset interval must be >= 1 frame, got {self.every}")

    def __call__(self, frame: int, batch: int) -> np.ndarray | None:
        if frame == 0 or frame % self.every:
            return None
        return np.ones((batch,), bool)


def describe(policy: ResetPolicy) -> str:
    if policy is NEVER_RESET:
        return "never"
    if isinstance(policy, ResetEvery):
        return f"every {policy.every} frames"
    return repr(policy)


def reset_policy_from_flag(spec: str | int | None) -> ResetPolicy:
    """ "never" / "0" / None -> never; "every:N" or "N" -> ResetEvery(N)."""
    if spec is None:
        return NEVER_RESET
    text = str(spec).strip().lower()
    if text in ("", "never", "0", "none"):
        return NEVER_RESET
    try:
        every = int(text.removeprefix("every:"))
    except ValueError:
        raise ValueError(f"unknown reset policy {spec!r}: use 'never', 'every:N' or N") from None
    return ResetEvery(every)
