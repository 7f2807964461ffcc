"""Shared fixtures of the evaluation tests: a tiny run directory (config.json + a checkpoint)
over a tiny maze3d dataset, and tiny world models built directly.

The run's weights are random, not trained: these tests check plumbing, contracts and
invariants, which do not need a model that has learned anything (a real trained checkpoint is
evaluated in experiments/quickstart_eval).
"""

import json

import jax
import numpy as np
import pytest
from flax import nnx

from lssvwm.common.checkpointing import Checkpoints
from lssvwm.config_loading import load_config
from lssvwm.diffusion import DiffusionConfig
from lssvwm.models import WorldModel, WorldModelConfig
from lssvwm.training.optimizer import make_optimizer
from lssvwm.training.train_state import init_train_state

# configs/quickstart.py:tiny (16x16 frames, 2 layers, width 32) with a reasoning split and a
# 2-step sampler (fewer steps compile no faster, but run faster).
TINY_OVERRIDES = {
    "data.num_workers": 0,
    "data.maze3d.test_episodes": 3,
    "data.maze3d.reasoning_episodes": 2,
    "data.maze3d.reasoning_context": 32,
    "data.maze3d.reasoning_horizon": 16,
    "diffusion.sampler_steps": 2,
}
TINY_STEP = 3


def tiny_run_config(data_dir):
    return load_config(
        "configs/quickstart.py:tiny", {**TINY_OVERRIDES, "data.data_dir": str(data_dir)}
    )


def random_model(config: WorldModelConfig, seed: int) -> WorldModel:
    """A world model with random weights filled from numpy on an abstract graph: no
    initialiser has to compile (eager NNX init compiles one op per parameter shape, which
    takes tens of seconds on a busy CPU), and AdaLN-Zero's zero init would make every
    prediction the same, hiding differences the tests look for."""
    model = nnx.eval_shape(lambda: WorldModel(config, rngs=nnx.Rngs(0)))
    graphdef, state = nnx.split(model)
    rng = np.random.default_rng(seed)

    def fill(leaf):
        if not np.issubdtype(leaf.dtype, np.floating):
            return np.zeros(leaf.shape, leaf.dtype)
        std = 0.3 if len(leaf.shape) < 2 else 1.0 / np.sqrt(leaf.shape[0])
        return jax.numpy.asarray(std * rng.standard_normal(leaf.shape), leaf.dtype)

    return nnx.merge(graphdef, jax.tree.map(fill, state))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """(workdir, config): a run directory as lssvwm.train leaves it, with one checkpoint."""
    root = tmp_path_factory.mktemp("tiny_run")
    workdir, data_dir = root / "run", root / "data"
    config = tiny_run_config(data_dir)
    workdir.mkdir()
    (workdir / "config.json").write_text(config.to_json_best_effort(indent=2, sort_keys=True))
    model_config = WorldModelConfig.from_mapping(config.model)
    model = random_model(model_config, seed=1)
    tx, _ = make_optimizer(config.optimizer, int(config.training.steps))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    # One jitted call (eagerly, the optimizer's zeros compile one op per parameter shape).
    state = jax.jit(lambda p, r: init_train_state(nnx.merge(graphdef, p, r), tx))(params, rest)
    state["step"] = jax.numpy.asarray(TINY_STEP, jax.numpy.int32)
    meta = {
        "model": model_config.to_dict(),
        "diffusion": DiffusionConfig.from_mapping(config.diffusion).to_dict(),
    }
    checkpoints = Checkpoints(workdir / "checkpoints")
    checkpoints.save(TINY_STEP, state, data_state={"step": 0}, meta=json.loads(json.dumps(meta)))
    checkpoints.close()
    return workdir, config


@pytest.fixture(scope="session")
def tiny_loaded_run(tiny_run):
    """`lssvwm.evaluation.loading.load_run` of the tiny run directory."""
    from lssvwm.evaluation import loading

    return loading.load_run(tiny_run[0])


def random_frames(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)
