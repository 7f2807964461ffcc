"""The platform a model is traced for: this process's JAX backend, or another one named for an
ahead-of-time compile (a TPU or GPU program compiled on a CPU host, experiments/aot_memory).

The library picks a few things by platform at trace time (the SSD scan's chunk schedule, the
attention kernel of `model.attention_impl="auto"`); they read `target_platform()`, never
`jax.default_backend()` directly, so that `compiling_for("tpu")` traces the program a TPU would
run. JAX's own lowering takes the platform from the devices of the shardings, not from here.
"""

from __future__ import annotations

import contextlib
import contextvars

import jax

# "cuda" / "rocm" rather than JAX's "gpu": the attention kernels differ between them.
PLATFORMS = ("cpu", "cuda", "rocm", "tpu")

_compiling_for: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "lssvwm_compiling_for", default=None
)


def backend_platform() -> str:
    """This process's JAX backend, with GPUs told apart: "cpu", "cuda", "rocm", "tpu"."""
    backend = jax.default_backend()
    if backend != "gpu":
        return backend
    version = jax.devices()[0].client.platform_version.lower()
    return "cuda" if "cuda" in version else "rocm"


def target_platform() -> str:
    """The platform being traced for: `compiling_for`'s, else this process's backend."""
    return _compiling_for.get() or backend_platform()


@contextlib.contextmanager
def compiling_for(platform: str):
    """Within the block, trace for `platform` (one of PLATFORMS) whatever this host runs."""
    if platform not in PLATFORMS:
        raise ValueError(f"platform must be one of {PLATFORMS}, got {platform!r}")
    token = _compiling_for.set(platform)
    try:
        yield
    finally:
        _compiling_for.reset(token)
