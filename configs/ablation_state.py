r"""The state ablation: how the SSM state is handled between training windows (maze3d experiment).

    python -m lssvwm.train --config=configs/ablation_state.py:policy=carried --workdir=DIR

Every variant is the maze3d experiment (configs/maze3d_family.py: same model, data, diffusion,
optimizer, steps) with its `state` section set (lssvwm/training/state_carrying.py,
lssvwm/training/state_policies.py):

  policy=plain          random windows, each from the zero state (the maze3d config as is)
  policy=zero_reset     consecutive windows per slot (TBPTT stream), the state reset to zero at
                        every window: the control for `carried` on the very same windows
  policy=carried        consecutive windows, the state carried across them (reset at episode
                        starts only), taken from an extra no-gradient pass over the clean window
  policy=carried_noisy  as carried, but carrying the noisy training pass's own final state
  policy=reset_every    carried, and reset every `reset_every` = 4 windows (128 frames)
  policy=random_reset   carried, and reset with probability 1/4 per slot and window
  policy=noisy_init     random windows, each from a Gaussian SSM state (noise_std 1)
  policy=state_passing  random windows, each from the final SSM state of another window of the
                        previous step (Buitrago Ruiz & Gu 2025)

Options: `mixer=causal_window` (or any maze3d mixer that can carry: not causal_full) and `tiny`
(configs/base.py's seconds-long tiny size, as quickstart:tiny, for smoke runs and tests). All
other fields are overridable as usual, e.g. `--config.state.reset_every=8`.
"""

from lssvwm.training import curriculum, state_carrying

from . import base, common, maze3d_family

POLICIES = {
    "plain": dict(),
    "zero_reset": dict(carry=True, reset="every", reset_every=1),
    "carried": dict(carry=True),
    "carried_noisy": dict(carry=True, carry_source="noisy"),
    "reset_every": dict(carry=True, reset="every", reset_every=4),
    "random_reset": dict(carry=True, reset="random", reset_prob=0.25),
    "noisy_init": dict(initial="noise", noise_std=1.0),
    "state_passing": dict(initial="passing"),
}
VARIANTS = tuple(f"policy={name}" for name in POLICIES) + (
    "policy=carried,mixer=causal_window",
    "policy=carried,tiny",
)


def get_config(arg=None):
    arg = common.parse_arg(arg, policy="carried", mixer="lssvwm", tiny=False)
    if arg.tiny:
        config = base.config(tiny=True)
        if arg.mixer != "lssvwm":
            config.model.mixer = arg.mixer
    else:
        config = maze3d_family.config(arg.mixer)
    if arg.policy not in POLICIES:
        raise ValueError(f"unknown state policy {arg.policy!r}; known: {sorted(POLICIES)}")
    config.state = state_carrying.default_config()
    config.state.update(POLICIES[arg.policy])
    config.curriculum = curriculum.default_config()  # off: one window length throughout
    return config
