"""Modules with random weights for tests, built without compiling an initialiser.

The real init is useless to equivalence tests: AdaLN-Zero and the zero-initialised output (and
memory) projections make a fresh model output zeros whatever it is fed.
"""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


def random_split(build, seed: int = 1):
    """(graphdef, state) of the module `build()` makes, every array filled from a seeded numpy
    normal (std 0.3 for vectors, 1 / sqrt(fan-in) for matrices); shapes from `nnx.eval_shape`."""
    graphdef, state = nnx.split(nnx.eval_shape(build))
    rng = np.random.default_rng(seed)

    def fill(leaf):
        std = 0.3 if len(leaf.shape) < 2 else 1.0 / np.sqrt(leaf.shape[0])
        return jnp.asarray(std * rng.standard_normal(leaf.shape), leaf.dtype)

    return graphdef, jax.tree.map(fill, state)
