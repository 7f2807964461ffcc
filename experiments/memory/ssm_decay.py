r"""How long each SSM head of a trained model keeps what it saw: the decay spectrum.

    python -m experiments.memory.ssm_decay --workdir /tmp/lssvwm_memory/lssvwm \
        --out experiments/memory/ssm_decay_lssvwm.json

A Mamba-2 head multiplies its state by exp(dt_t * A) at every step t of its sequence, with
dt_t = softplus(dt_raw_t + dt_bias) depending on the input. In a block-wise layer a sequence
steps through the block's tokens of each frame, so per *frame* the state decays by the product
over those tokens. Run on held-out windows (clean frames, the model's own inputs), this tool
records dt_t * A of every head of every layer and reports, per head, the mean log-decay per
frame and the half-life in frames, ln 2 / -(mean log-decay per frame): the number of frames
after which a view contributes half as much to the state (a geometric mean over the data; the
state can keep a view longer only where dt is small *at those frames*, which the spread columns
show). Heads whose half-life is below the attention window k cannot carry anything the window
does not already show; a view last seen 17-64 frames ago needs half-lives of tens of frames.
"""

from __future__ import annotations

import argparse
import json
import pathlib

import jax.numpy as jnp
import numpy as np
from flax import nnx

from lssvwm.data import sources
from lssvwm.evaluation import loading
from lssvwm.models import inputs
from lssvwm.nn.mamba2 import Mamba2Mixer


def block_tokens_per_frame(model_config) -> list[int]:
    """Tokens per frame in one scanned sequence, per layer (the block sizes cycle over layers)."""
    hp = model_config.image_size[0] // model_config.patch_size
    wp = model_config.image_size[1] // model_config.patch_size
    if model_config.mixer != "lssvwm":  # one full-frame scan per layer
        return [hp * wp] * model_config.depth
    sizes = model_config.block_sizes
    per_layer = []
    for layer in range(model_config.depth):
        size = sizes[layer % len(sizes)]
        per_layer.append(hp * wp if size in ("full", None) else int(size[0]) * int(size[1]))
    return per_layer


def record_decays(model, frames, actions) -> list[np.ndarray]:
    """dt * A [sequences, steps, heads] of every Mamba-2 mixer call, in call (layer) order.

    The values are recorded while the forward pass is traced and returned as outputs of the
    compiled function (an eager pass would dispatch every op on its own: minutes, not seconds)."""

    def forward(model, frames, actions):
        calls = []
        original = Mamba2Mixer._ssm_inputs

        def recording(self, dt_raw):
            dt, A = original(self, dt_raw)
            calls.append(dt * A)
            return dt, A

        Mamba2Mixer._ssm_inputs = recording
        try:
            noise = jnp.zeros(frames.shape[:2], jnp.float32)  # clean: what memory is made of
            model(frames, noise, actions)
        finally:
            Mamba2Mixer._ssm_inputs = original
        return calls

    return [np.asarray(c) for c in nnx.jit(forward)(model, frames, actions)]


def layer_spectrum(log_decay_SLH: np.ndarray, tokens_per_frame: int) -> dict:
    """One layer's heads: log_decay_SLH = dt * A [sequences, steps, heads], the sequence
    stepping through `tokens_per_frame` tokens of each frame."""
    heads = log_decay_SLH.shape[-1]
    per_frame_log = log_decay_SLH.reshape(-1, heads).mean(0) * tokens_per_frame  # [heads]
    frame_log = log_decay_SLH.reshape(log_decay_SLH.shape[0], -1, tokens_per_frame, heads)
    frame_log = frame_log.sum(2).reshape(-1, heads)  # [sequences * frames, heads]
    half_life = np.log(2.0) / np.maximum(-per_frame_log, 1e-12)
    p10, p90 = np.percentile(frame_log, [10, 90], axis=0)
    return dict(
        tokens_per_frame_in_sequence=tokens_per_frame,
        half_life_frames=[float(h) for h in half_life],
        log_decay_per_frame=[float(v) for v in per_frame_log],
        log_decay_per_frame_p10_p90=[
            [round(float(a), 5), round(float(b), 5)] for a, b in zip(p10, p90, strict=True)
        ],
    )


def spectrum(workdir: str, windows: int, length: int, split: str = "test") -> dict:
    run = loading.load_run(workdir)
    config = run.model_config
    data = loading.data_config(run)
    source, present = loading.open_episodes(data, split, inputs.episode_fields(config))
    batch = []
    for episode in range(min(windows, source.index.num_episodes)):
        fields = sources.read_episode(source, episode)
        batch.append({name: value[:length] for name, value in fields.items()})
    fields = {name: np.stack([b[name] for b in batch]) for name in batch[0]}
    frames = inputs.model_frames(fields, config)
    actions = inputs.model_actions(fields, config)
    calls = record_decays(run.model, frames, actions)
    tokens = block_tokens_per_frame(config)
    if len(calls) != len(tokens):
        raise ValueError(f"{len(calls)} mixer calls for {len(tokens)} layers")
    layers = [
        dict(layer=layer, **layer_spectrum(log_decay, per_frame))
        for layer, (log_decay, per_frame) in enumerate(zip(calls, tokens, strict=True))
    ]
    all_half = np.concatenate([layer["half_life_frames"] for layer in layers])
    return dict(
        run=pathlib.Path(workdir).name,  # the run's name, not this machine's path
        checkpoint_step=run.step,
        mixer=config.mixer,
        attention_window=config.attention_window,
        windows=len(batch),
        frames=int(frames.shape[1]),
        heads=int(all_half.size),
        half_life_median=float(np.median(all_half)),
        heads_over={str(n): int((all_half > n).sum()) for n in (4, 16, 64)},
        layers=layers,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--windows", type=int, default=4, help="held-out episodes")
    parser.add_argument("--frames", type=int, default=64, help="frames per episode window")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    record = spectrum(args.workdir, args.windows, args.frames)
    for layer in record["layers"]:
        halves = ", ".join(f"{h:.1f}" for h in layer["half_life_frames"])
        print(
            f"layer {layer['layer']} ({layer['tokens_per_frame_in_sequence']} tokens/frame): "
            f"half-life per head (frames) {halves}"
        )
    print(
        f"median half-life {record['half_life_median']:.1f} frames; heads over 4 / 16 / 64 "
        f"frames: {record['heads_over']} of {record['heads']}"
    )
    if args.out:
        pathlib.Path(args.out).write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
