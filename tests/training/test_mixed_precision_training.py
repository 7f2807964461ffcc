"""A few real train steps under the mixed-precision policy against the same steps in float32.

`lssvwm.training`'s jitted train step (diffusion forcing, AdamW with the tiny quickstart's
warm-up schedule, EMA) on the micro model with random weights (the init would hide bfloat16:
AdaLN-Zero makes every block the identity and the head outputs zeros), five steps from the same
weights on the same batches. Tolerance: each step's loss and gradient norm within 1% (relative)
of float32's -- measured at most 0.19% (loss) and 0.16% (gradient norm). The parameters, the
optimizer's moments and the EMA stay float32 under `model.dtype="bfloat16"`.
"""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lssvwm.training.train_state import init_train_state
from lssvwm.training.train_step import make_train_step
from tests.training.conftest import random_batch
from tests.training.micro_model import micro_config, micro_model

STEPS = 5


def _train(dtype, tiny_parts):
    _, _, tx, schedule, diffusion, _ = tiny_parts
    graphdef, _ = micro_model(dtype=dtype)
    _, weights = micro_model()  # float32 parameters either way: the same weights
    state = jax.jit(lambda w: init_train_state(nnx.merge(graphdef, w), tx))(weights)
    step = make_train_step(graphdef, diffusion, tx, ema_decay=0.99, seed=0, schedule=schedule)
    losses, grad_norms = [], []
    for i in range(STEPS):
        batch = random_batch(micro_config(), batch=3, frames=4, seed=i)
        state, _, metrics = step(state, None, batch)
        losses.append(float(metrics["loss"]))
        grad_norms.append(float(metrics["grad_norm"]))
    return np.array(losses), np.array(grad_norms), state


def test_bfloat16_training_steps_stay_within_1_percent_of_float32(tiny_parts):
    losses32, grads32, _ = _train("float32", tiny_parts)
    losses16, grads16, state16 = _train("bfloat16", tiny_parts)
    assert np.all(np.isfinite(losses16)) and losses16[-1] < losses16[0]  # it trains
    assert not np.array_equal(losses16, losses32)  # bfloat16 really ran
    np.testing.assert_allclose(losses16, losses32, rtol=1e-2)
    np.testing.assert_allclose(grads16, grads32, rtol=1e-2)
    for part in ("params", "opt_state", "ema"):
        floats = [
            x for x in jax.tree.leaves(state16[part]) if jnp.issubdtype(x.dtype, jnp.floating)
        ]
        assert floats and {x.dtype for x in floats} == {jnp.dtype(jnp.float32)}, part
