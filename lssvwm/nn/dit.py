"""The AdaLN-Zero DiT block shared by LSSVWM and its baselines.

    x = x + gate_1 * BlockwiseMamba2(AdaLN_1(x))        (if the block has an SSM)
    x = x + gate_2 * FrameLocalAttention(AdaLN_2(x))    (if the block has attention)
    x = x + gate_3 * MLP(AdaLN_3(x))

AdaLN_i(x) = LayerNorm(x) * (1 + scale_i) + shift_i with (shift, scale, gate) per sub-block from
the frame's conditioning vector through a zero-initialised projection, so every block starts as
the identity (AdaLN-Zero). All modulations are per frame: `cond [b, t, d]` is broadcast over the
tokens of its frame only.

The sequence mixers of the block select the model variant (see `lssvwm.models.config`):
  lssvwm         block-wise Mamba-2 (per-layer block size) + frame-local attention (window k)
  mamba2_fla     one full-frame Mamba-2 scan + frame-local attention
  mamba2         one full-frame Mamba-2 scan, no attention
  causal_window  attention over the last W frames, no SSM
  causal_full    attention over all previous frames (growing cache), no SSM

Each block has a streaming cache `LayerCache(ssm, kv)`: the per-block Mamba-2 state (None without
an SSM) and the attention KV cache (None without attention).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from lssvwm.nn.attention import FrameLocalAttention, KVCache
from lssvwm.nn.blockwise import BlockwiseMamba2, resolve_block_size
from lssvwm.nn.embed import TOKEN_NAMES, dense, layer_norm, per_frame
from lssvwm.nn.mamba2 import Mamba2State
from lssvwm.nn.partitioning import constrain


class LayerCache(NamedTuple):
    """Streaming state of one DiT block (a pytree; absent parts are None).

    ssm: `Mamba2State` with leading axis b * nblocks (see lssvwm/nn/blockwise.py).
    kv: the attention layer's `KVCache`.
    """

    ssm: Mamba2State | None
    kv: KVCache | None


class MLP(nnx.Module):
    """d -> hidden -> d with tanh-GELU."""

    def __init__(self, width, hidden, *, rngs, dtype=None, param_dtype=jnp.float32):
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.fc_in = dense(width, hidden, ("embed", "mlp"), **kw)
        self.fc_out = dense(hidden, width, ("mlp", "embed"), **kw)

    def __call__(self, x):
        hidden = jax.nn.gelu(self.fc_in(x), approximate=True)
        return self.fc_out(constrain(hidden, (*TOKEN_NAMES[:-1], "mlp")))


class DiTBlock(nnx.Module):
    """One AdaLN-Zero block over tokens [b, t, hp, wp, d] with per-frame conditioning [b, t, d].

    Args:
      width: d.
      grid_hw: token grid (hp, wp), to validate the SSM block size up front.
      ssm_block_size: (bh, bw), or None for one full-frame scan; ignored without `use_ssm`.
      use_ssm, use_attention: which sequence mixers the block has.
      attention_window: k frames (None: full causal); attention_chunk: the chunked form's chunk.
      max_frames: training window length; an attention window longer than it is an error.
      num_heads: attention heads; mlp_ratio: MLP hidden width / d.
      mamba: keyword arguments of `Mamba2Mixer` (d_state, head_dim, expand, ...).
      qk_norm: RMS-normalised queries and keys in attention.
      pose_pairs: attention dimension pairs rotated by the camera pose (lssvwm/nn/rope.py); with
        it, every call takes the frames' `pose_angles [b, t, pose_pairs]`.
      ssm_pose_pairs: pairs of the SSM's B and C turned by the same angles (Mamba2Mixer); 0 or
        pose_pairs when both mixers turn (one set of angles per call).
      attention_implementation: `jax.nn.dot_product_attention`'s kernel, "xla" or "cudnn"
        (resolved by the caller: `WorldModelConfig.attention_implementation`).
      dtype: compute dtype (None: float32); param_dtype: parameter dtype.
    """

    def __init__(
        self,
        width: int,
        *,
        grid_hw: tuple[int, int],
        rngs: nnx.Rngs,
        use_ssm: bool = True,
        ssm_block_size: tuple[int, int] | None = None,
        use_attention: bool = True,
        attention_window: int | None = 10,
        attention_chunk: int | None = None,
        max_frames: int | None = None,
        num_heads: int = 4,
        mlp_ratio: float = 4.0,
        mamba: dict | None = None,
        qk_norm: bool = True,
        pose_pairs: int = 0,
        ssm_pose_pairs: int = 0,
        attention_implementation: str | None = None,
        dtype=None,
        param_dtype=jnp.float32,
    ):
        if not (use_ssm or use_attention):
            raise ValueError("a DiT block needs an SSM, attention, or both")
        self.width = width
        self.grid_hw = tuple(grid_hw)
        self.dtype = dtype
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        if use_ssm:
            resolve_block_size(self.grid_hw, ssm_block_size)  # clear error now, not at call time
        self.ssm = (
            BlockwiseMamba2(width, ssm_block_size, pose_pairs=ssm_pose_pairs, **kw, **(mamba or {}))
            if use_ssm
            else None
        )
        self.attention = (
            FrameLocalAttention(
                width,
                num_heads,
                window=attention_window,
                chunk_size=attention_chunk,
                max_frames=max_frames,
                qk_norm=qk_norm,
                pose_pairs=pose_pairs,
                implementation=attention_implementation,
                **kw,
            )
            if use_attention
            else None
        )
        self.mlp = MLP(width, int(round(mlp_ratio * width)), **kw)
        self.num_sublayers = 1 + use_ssm + use_attention
        self.modulation = dense(
            width, 3 * self.num_sublayers * width, ("cond", "embed"), zero=True, **kw
        )

    @property
    def unit(self) -> int:
        """Frames per streaming step (the attention chunk, else 1)."""
        return 1 if self.attention is None else self.attention.unit

    def init_cache(self, batch: int) -> LayerCache:
        """Empty streaming state for `batch` videos."""
        dtype = self.dtype or jnp.float32
        ssm = None if self.ssm is None else self.ssm.init_state(batch, self.grid_hw)
        tokens = self.grid_hw[0] * self.grid_hw[1]
        kv = None if self.attention is None else self.attention.init_cache(batch, tokens, dtype)
        return LayerCache(ssm, kv)

    def _forward(self, x_BTHWD, cond_BTD, cache: LayerCache | None, streaming: bool, pose_angles):
        b, t, hp, wp, d = x_BTHWD.shape
        mods = jnp.split(self.modulation(jax.nn.silu(cond_BTD)), 3 * self.num_sublayers, -1)
        mods = [per_frame(m) for m in mods]
        ssm_state = None if cache is None else cache.ssm
        kv = None if cache is None else cache.kv
        x = x_BTHWD
        i = 0

        def modulated(x, i):
            return layer_norm(x) * (1 + mods[3 * i + 1]) + mods[3 * i]

        if self.ssm is not None:
            angles = pose_angles if self.ssm.mixer.pose_pairs else None
            y, ssm_state = self.ssm(modulated(x, i), ssm_state, pose_angles_BTN=angles)
            x = x + mods[3 * i + 2] * y
            i += 1
        if self.attention is not None:
            h = modulated(x, i).reshape(b, t, hp * wp, d)
            if streaming:
                y, new_kv = self.attention.step(h, kv, pose_angles)
                kv = self.attention.commit(kv, new_kv)
            else:
                y, kv = self.attention.prefill(h, kv, pose_angles)
            x = x + mods[3 * i + 2] * y.reshape(b, t, hp, wp, d)
            i += 1
        x = x + mods[3 * i + 2] * self.mlp(modulated(x, i))
        return constrain(x, TOKEN_NAMES), LayerCache(ssm_state, kv)

    def __call__(
        self,
        x_BTHWD: jax.Array,
        cond_BTD: jax.Array,
        cache: LayerCache | None = None,
        pose_angles_BTN: jax.Array | None = None,
    ) -> tuple[jax.Array, LayerCache]:
        """Parallel pass over t frames after those summarised by `cache` (None: a fresh start).

        Returns the output and the cache after the last frame (for prefill / carried windows).
        """
        return self._forward(x_BTHWD, cond_BTD, cache, False, pose_angles_BTN)

    def step(
        self,
        x_BUHWD: jax.Array,
        cond_BUD: jax.Array,
        cache: LayerCache,
        pose_angles_BUN: jax.Array | None = None,
    ) -> tuple[jax.Array, LayerCache]:
        """One streaming unit; returns the output and the *candidate* cache (input unchanged)."""
        if x_BUHWD.shape[1] != self.unit:
            raise ValueError(f"step takes {self.unit} frame(s), got {x_BUHWD.shape[1]}")
        return self._forward(x_BUHWD, cond_BUD, cache, True, pose_angles_BUN)
