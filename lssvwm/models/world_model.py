"""The world model: frames + per-frame noise level + actions -> per-frame prediction.

    tokens = PatchEmbed(frames)                              [b, t, hp, wp, d]
    cond   = FrameConditioning(noise_level, actions)         [b, t, d]   (per frame)
    tokens = DiTBlock_L(... DiTBlock_1(tokens, cond) ...)    (mixers per `config.mixer`)
    pred   = Unpatchify(tokens, cond)                        [b, t, H, W, C_out]

Parallel and streaming use the same blocks:

    pred             = model(frames, noise_level, actions)                    training
    pred, cache      = model.prefill(frames, noise_level, actions, cache=None)
    pred, candidate  = model.step(frames_U, noise_level_U, actions_U, cache)  read-only
    cache            = model.commit(frames_U, actions_U, cache)               clean pass, kept

`prefill` is the parallel pass that also returns the cache after its last frame (SSD final
states, conv states and the attention layers' last frames' keys/values), so a long context is
not fed through a Python loop of steps; passing a `cache` continues a sequence (carried training
windows). `step` takes one *unit* of U = `model.unit` frames (1; the chunk in the chunked window)
and returns the prediction with a *candidate* cache: the cache as it would be with these frames
appended. A diffusion sampler calls `step` for every denoising pass, discards the candidates,
and keeps the one of the final clean pass (`commit` = `step` at noise level 0, returning the
candidate). Under `jax.jit` the discarded candidates cost nothing (dead code).

The full-causal mixer's attention cache grows: under jit call `model.reserve(cache, frames)`
first (outside jit) so the committed frames fit.

Noise levels are floats per frame (e.g. in [0, 1]; scaled by `noise_level_scale` before the
sinusoidal features). Actions are int [b, t] (`discrete`) or poses (x, y, heading) [b, t, 3].
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from lssvwm.models.config import WorldModelConfig
from lssvwm.models.inputs import split_camera, unpack_conditioning
from lssvwm.models.spatial_memory import SpatialMemoryReader
from lssvwm.nn import rope
from lssvwm.nn.dit import DiTBlock, LayerCache
from lssvwm.nn.embed import MOTION_MODES, FrameConditioning, PatchEmbed, Unpatchify
from lssvwm.nn.spatial_memory import SpatialStore, store_reset


@nnx.remat
def _remat_block(block: DiTBlock, x, cond, layer_cache, pose_angles):
    """A parallel-pass block whose activations are recomputed in the backward pass."""
    return block(x, cond, layer_cache, pose_angles)


# WorldModel.reset_cache: what a reset forgets. "ssm" is the long-term memory only: SSM and conv
# states, and the spatial-memory store; the k-frame attention cache stays.
RESET_SCOPES = ("all", "ssm")


class StreamCache(NamedTuple):
    """Everything streaming carries from one frame to the next (a pytree).

    layers: one `LayerCache(ssm, kv)` per DiT block (SSM states of every block and conv states;
      attention keys/values of the last frames).
    last_pose: [b, 3] the latest committed pose, motion action modes only (else None).
    has_last_pose: bool [b], whether `last_pose` holds a pose of the current episode.
    memory: the spatial-memory store (`spatial_memory` mixer only, else None).
    """

    layers: tuple[LayerCache, ...]
    last_pose: jax.Array | None = None
    has_last_pose: jax.Array | None = None
    memory: SpatialStore | None = None

    @property
    def nbytes(self) -> int:
        """Bytes held by the cache's arrays (what a rollout must keep between frames)."""
        return cache_nbytes(self)


def cache_nbytes(cache) -> int:
    """Bytes of all arrays in a cache pytree."""
    return int(sum(leaf.nbytes for leaf in jax.tree.leaves(cache)))


class WorldModel(nnx.Module):
    """LSSVWM and its baselines (`config.mixer`) as one NNX module; see the module docstring."""

    def __init__(self, config: WorldModelConfig, *, rngs: nnx.Rngs):
        if not isinstance(config, WorldModelConfig):
            raise TypeError(
                f"expected a WorldModelConfig (use WorldModelConfig.from_mapping), got "
                f"{type(config).__name__}"
            )
        self.config = config
        dtype, param_dtype = config.jnp_dtype, config.jnp_param_dtype
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.embed = PatchEmbed(
            config.image_size, config.channels, config.patch_size, config.width, **kw
        )
        self.conditioning = FrameConditioning(
            config.width,
            action_mode=config.action_mode,
            num_actions=config.num_actions,
            pose_scale=config.pose_scale,
            relative_pose_scale=config.relative_pose_scale,
            pose_frequencies=config.pose_frequencies,
            frequency_dim=config.frequency_dim,
            noise_level_scale=config.noise_level_scale,
            rngs=rngs,
            param_dtype=param_dtype,
        )
        window = config.window
        # "auto" resolved here, once, for this process's backend ("cudnn" off a GPU: ValueError).
        attention_implementation = config.attention_implementation()
        mamba = dict(
            d_state=config.ssm_state,
            head_dim=config.ssm_head_dim,
            expand=config.ssm_expand,
            n_groups=config.ssm_groups,
            conv_kernel=config.ssm_conv_kernel,
            chunk_size=config.ssm_chunk_size,
        )
        self.blocks = nnx.List(
            [
                DiTBlock(
                    config.width,
                    grid_hw=config.grid_hw,
                    use_ssm=config.uses_ssm,
                    ssm_block_size=config.layer_block_size(layer),
                    use_attention=config.uses_attention,
                    attention_window=None if window is None else window.frames,
                    attention_chunk=None if window is None or window.chunk == 1 else window.chunk,
                    max_frames=config.max_frames,
                    num_heads=config.num_heads,
                    mlp_ratio=config.mlp_ratio,
                    mamba=mamba,
                    qk_norm=config.qk_norm,
                    pose_pairs=config.pose_rotation_pairs,
                    ssm_pose_pairs=config.ssm_pose_rotation_pairs,
                    attention_implementation=attention_implementation,
                    **kw,
                )
                for layer in range(config.depth)
            ]
        )
        self.final = Unpatchify(config.width, config.patch_size, config.output_channels, **kw)
        self.memory = SpatialMemoryReader(config, **kw) if config.uses_spatial_memory else None

    # ---- cache --------------------------------------------------------------------------------

    @property
    def unit(self) -> int:
        """Frames per streaming step (1, or the attention chunk)."""
        return self.config.unit

    def init_cache(self, batch: int) -> StreamCache:
        """The empty cache of `batch` streams (nothing seen yet)."""
        layers = tuple(block.init_cache(batch) for block in self.blocks)
        memory = None if self.memory is None else self.memory.init_store(batch)
        if self.config.action_mode not in MOTION_MODES:
            return StreamCache(layers, memory=memory)
        return StreamCache(
            layers, jnp.zeros((batch, 3), jnp.float32), jnp.zeros((batch,), bool), memory
        )

    def reserve(self, cache: StreamCache, frames: int) -> StreamCache:
        """Growing (full-causal) caches: room for `frames` more frames. Eager only (not in jit)."""
        layers = tuple(
            lc
            if block.attention is None
            else lc._replace(kv=block.attention.reserve(lc.kv, frames))
            for block, lc in zip(self.blocks, cache.layers, strict=True)
        )
        return cache._replace(layers=layers)

    def reset_cache(
        self, cache: StreamCache, mask_B: jax.Array, *, scope: str = "all"
    ) -> StreamCache:
        """Forgets, for the streams where `mask_B [b]` is true, everything (`scope="all"`: a new
        episode) or only the long-term memory, the SSM and conv states or the spatial store
        (`scope="ssm"`: the attention cache of the last k frames and the last pose stay, as when
        a model trained on windows that each start from the zero state is run past its
        window)."""
        if scope not in RESET_SCOPES:
            raise ValueError(f"unknown reset scope {scope!r}; known: {RESET_SCOPES}")
        mask_B = jnp.asarray(mask_B, bool)
        layers = []
        for lc in cache.layers:
            ssm, kv = lc.ssm, lc.kv
            if ssm is not None:
                per_block = ssm.ssm.shape[0] // mask_B.shape[0]
                keep = ~jnp.repeat(mask_B, per_block)
                ssm = jax.tree.map(
                    lambda a, keep=keep: a * keep.reshape(-1, *[1] * (a.ndim - 1)).astype(a.dtype),
                    ssm,
                )
            if kv is not None and scope == "all":
                kv = kv.reset(mask_B)
            layers.append(LayerCache(ssm, kv))
        memory = None if cache.memory is None else store_reset(cache.memory, mask_B)
        if scope == "ssm":
            return cache._replace(layers=tuple(layers), memory=memory)
        has_last_pose = None if cache.has_last_pose is None else cache.has_last_pose & ~mask_B
        return cache._replace(layers=tuple(layers), has_last_pose=has_last_pose, memory=memory)

    # ---- passes -------------------------------------------------------------------------------

    def _check(self, frames, noise_level, what):
        expected = (*self.config.image_size, self.config.channels)
        if frames.ndim != 5 or tuple(frames.shape[2:]) != expected:
            raise ValueError(
                f"{what}: frames must be [b, t, {', '.join(map(str, expected))}], got "
                f"{frames.shape}"
            )
        if noise_level.shape != frames.shape[:2]:
            raise ValueError(
                f"{what}: noise level must be per frame [b, t] = {frames.shape[:2]}, "
                f"got {noise_level.shape}"
            )

    def _run(
        self,
        frames,
        noise_level,
        actions,
        cache: StreamCache | None,
        streaming: bool,
        clean_frames=None,
        rng=None,
    ):
        previous_pose = None if cache is None else cache.last_pose
        has_previous = None if cache is None else cache.has_last_pose
        camera = None
        if self.memory is not None:
            conditioning, *camera = split_camera(actions)
            actions = unpack_conditioning(conditioning, self.config)
        cond = self.conditioning(
            noise_level, actions, previous_pose_B3=previous_pose, has_previous_B=has_previous
        )
        x = self.embed(frames)
        cond = cond.astype(x.dtype)
        pose_angles = None
        if self.config.pose_rotation_pairs or self.config.ssm_pose_rotation_pairs:
            pose_angles = rope.pose_angles(
                actions,
                self.config.pose_rope_frequencies,
                pose_scale=self.config.pose_scale,
                step_scale=self.config.relative_pose_scale,
            )
        memory_tokens, store = None, None
        if self.memory is not None:
            memory_tokens, store = self._read_memory(
                frames, noise_level, camera, cache, streaming, clean_frames, rng
            )
        layer_caches = [None] * len(self.blocks) if cache is None else cache.layers
        new_layers = []
        for index, (block, layer_cache) in enumerate(zip(self.blocks, layer_caches, strict=True)):
            if memory_tokens is not None:
                injected = self.memory.injection(index, memory_tokens)
                if injected is not None:
                    x = x + injected.astype(x.dtype)
            if streaming:
                x, layer_cache = block.step(x, cond, layer_cache, pose_angles)
            elif self.config.remat:
                x, layer_cache = _remat_block(block, x, cond, layer_cache, pose_angles)
            else:
                x, layer_cache = block(x, cond, layer_cache, pose_angles)
            new_layers.append(layer_cache)
        prediction = self.final(x, cond).astype(jnp.float32)
        new_cache = StreamCache(tuple(new_layers), memory=store)
        if self.config.action_mode in MOTION_MODES:
            b = frames.shape[0]
            new_cache = new_cache._replace(
                last_pose=actions[:, -1].astype(jnp.float32), has_last_pose=jnp.ones((b,), bool)
            )
        return prediction, new_cache

    def _read_memory(self, frames, noise_level, camera, cache, streaming, clean_frames, rng):
        """(memory tokens [b, t, hp, wp, d], store after these frames) of the spatial memory."""
        store = None if cache is None else cache.memory
        remembered = frames if clean_frames is None else clean_frames
        features = self.embed.features(remembered)
        if streaming:
            return self.memory.read_step(features, remembered, noise_level, camera, store)
        return self.memory.read_parallel(
            features,
            remembered,
            noise_level,
            camera,
            store,
            clean=clean_frames is not None,
            rng=rng,
        )

    @property
    def reads_clean_frames(self) -> bool:
        """Whether a training pass should hand the clean frames (`clean_frames=`) and an rng to
        the model: the spatial memory stores the clean frames of the window, not the noisy ones."""
        return self.memory is not None

    def __call__(
        self, frames_BTHWC, noise_level_BT, actions, *, clean_frames=None, rng=None
    ) -> jax.Array:
        """Parallel pass from an empty history: prediction [b, t, H, W, C_out] (float32).

        Spatial memory only: `clean_frames` [b, t, H, W, C] are the frames to remember (training:
        the clean window; None: the input frames at low noise levels), `rng` switches on the
        memory dropout and feature noise of training."""
        self._check(frames_BTHWC, noise_level_BT, "WorldModel")
        prediction, _ = self._run(
            frames_BTHWC, noise_level_BT, actions, None, False, clean_frames, rng
        )
        return prediction

    def prefill(
        self,
        frames_BTHWC,
        noise_level_BT,
        actions,
        cache: StreamCache | None = None,
        *,
        clean_frames=None,
        rng=None,
    ) -> tuple[jax.Array, StreamCache]:
        """Parallel pass after the frames summarised by `cache` (None: empty); returns the
        prediction and the cache after the last frame (`clean_frames`, `rng`: `__call__`)."""
        self._check(frames_BTHWC, noise_level_BT, "prefill")
        return self._run(frames_BTHWC, noise_level_BT, actions, cache, False, clean_frames, rng)

    def step(
        self, frames_BUHWC, noise_level_BU, actions, cache: StreamCache
    ) -> tuple[jax.Array, StreamCache]:
        """One unit of U = `unit` frames read against `cache`; returns the prediction and the
        candidate cache (the input cache is not modified)."""
        self._check(frames_BUHWC, noise_level_BU, "step")
        if frames_BUHWC.shape[1] != self.unit:
            raise ValueError(
                f"step takes one unit of {self.unit} frame(s), got {frames_BUHWC.shape[1]}"
            )
        return self._run(frames_BUHWC, noise_level_BU, actions, cache, streaming=True)

    def commit(self, frames_BUHWC, actions, cache: StreamCache, noise_level_BU=None) -> StreamCache:
        """Appends final frames to the cache: a `step` at noise level 0 (or the given context
        noise level), keeping its candidate."""
        if noise_level_BU is None:
            noise_level_BU = jnp.zeros(frames_BUHWC.shape[:2], jnp.float32)
        _, candidate = self.step(frames_BUHWC, noise_level_BU, actions, cache)
        return candidate
