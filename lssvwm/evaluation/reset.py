"""Reset policies at rollout time: when the carried state is forgotten.

A policy is any callable `policy(frame, batch) -> mask | None`, asked before each unit is
generated; `frame` is the index of the unit's first generated frame (0 = the first frame after
the context). It returns None (carry on) or a bool mask [batch] of the streams whose state is
reset (`WorldModel.reset_cache`: SSM, conv and attention caches, as at an episode start). The
training-side policies (training/state_policies.py) can be wrapped in this signature.

    NEVER_RESET                          the default: carry everything
    ResetEvery(n)                        every stream, before generated frames n, 2n, 3n, ...
    ResetEvery(n, scope="ssm")           the same, forgetting only the SSM/conv states (the
                                         k-frame attention cache stays): "zero state per window"
    ResetAt((0,), scope="ssm")           before the given generated frames only; frame 0 (right
                                         after the context) makes the model forget the context
                                         but for its attention window: a same-weights control
                                         of what the SSM state remembers
    reset_policy_from_flag("every:64")   "never" | "every:N" | "N" (0 = never) | "every:N:ssm" |
                                         "at:F1,F2,...[:ssm]"

A policy's `scope` attribute ("all" when absent) says what `reset_cache` forgets.
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
    scope: str = "all"  # "all" or "ssm" (WorldModel.reset_cache)

    def __post_init__(self):
        if self.every < 1:
            raise ValueError(f"reset interval must be >= 1 frame, got {self.every}")
        if self.scope not in ("all", "ssm"):
            raise ValueError(f"unknown reset scope {self.scope!r}: use 'all' or 'ssm'")

    def __call__(self, frame: int, batch: int) -> np.ndarray | None:
        if frame == 0 or frame % self.every:
            return None
        return np.ones((batch,), bool)


@dataclasses.dataclass(frozen=True)
class ResetAt:
    """Resets every stream before each of the given generated frames (0: right after the
    context)."""

    frames: tuple[int, ...]
    scope: str = "all"

    def __post_init__(self):
        if not self.frames or min(self.frames) < 0:
            raise ValueError(f"reset frames must be >= 0 and at least one, got {self.frames}")
        if self.scope not in ("all", "ssm"):
            raise ValueError(f"unknown reset scope {self.scope!r}: use 'all' or 'ssm'")

    def __call__(self, frame: int, batch: int) -> np.ndarray | None:
        return np.ones((batch,), bool) if frame in self.frames else None


def describe(policy: ResetPolicy) -> str:
    if policy is NEVER_RESET:
        return "never"
    if isinstance(policy, ResetEvery):
        what = "" if policy.scope == "all" else " (SSM state only)"
        return f"every {policy.every} frames{what}"
    if isinstance(policy, ResetAt):
        what = "" if policy.scope == "all" else " (SSM state only)"
        where = ", ".join(str(f) for f in policy.frames)
        return f"before generated frame{'s' if len(policy.frames) > 1 else ''} {where}{what}"
    return repr(policy)


def reset_policy_from_flag(spec: str | int | None) -> ResetPolicy:
    """ "never" / "0" / None -> never; "every:N" or "N" -> ResetEvery(N); "every:N:ssm" ->
    ResetEvery(N, scope="ssm"); "at:0,32" / "at:0:ssm" -> ResetAt((0, 32)) / ResetAt((0,),
    scope="ssm")."""
    if spec is None:
        return NEVER_RESET
    text = str(spec).strip().lower()
    if text in ("", "never", "0", "none"):
        return NEVER_RESET
    if text.startswith("at:"):
        body, _, scope = text.removeprefix("at:").partition(":")
        try:
            frames = tuple(int(f) for f in body.split(","))
        except ValueError:
            raise ValueError(
                f"unknown reset policy {spec!r}: 'at:' takes frame numbers, e.g. 'at:0,32:ssm'"
            ) from None
        return ResetAt(frames, scope or "all")
    body, _, scope = text.removeprefix("every:").partition(":")
    try:
        every = int(body)
    except ValueError:
        raise ValueError(
            f"unknown reset policy {spec!r}: use 'never', 'every:N', 'every:N:ssm', "
            "'at:F1,F2[:ssm]' or N"
        ) from None
    if every == 0:
        return NEVER_RESET
    return ResetEvery(every, scope or "all")
