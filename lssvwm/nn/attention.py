"""Frame-local attention (Flax NNX): causal across frames, bidirectional within a frame.

Tokens are laid out `x_BTSD` = [b, t, s, d]: t frames of s tokens (s = hp * wp) of width d.
A query of frame i sees every token of the frames its window allows:

    FrameWindow(frames=k)            sliding (default): frames i-k .. i          (unit = 1 frame)
    FrameWindow(frames=k, chunk=c)   chunked (paper: k=10, c=5): frames are grouped in chunks of c
                                     counted from the call's frame 0; a query in chunk m sees chunks
                                     m - (k/c - 1) .. m, i.e. its own chunk (bidirectionally) and
                                     the k/c - 1 before it                         (unit = 1 chunk)
    FrameWindow(frames=None)         full causal over frames: frames 0 .. i       (unit = 1 frame)

Time enters only through rotary embeddings over the *frame* index (every token of a frame shares
its frame's angle), applied relative to the query block being computed, so the outputs do not
depend on absolute frame indices. Spatial positions are added by the patch embedding, not here.

API
---
    attn = FrameLocalAttention(embed_dim, num_heads, rngs=rngs, window=10, chunk_size=None,
                               max_frames=None, head_dim=None, query_block=None, qk_norm=True,
                               rope_base=10_000.0, pose_pairs=0, use_bias=False, dtype=None,
                               param_dtype=jnp.float32, implementation=None)
    y_BTSD          = attn(x_BTSD, cache=None)          # parallel pass (training)
    (with pose_pairs > 0 every pass also takes the frames' `pose_angles [b, t, pose_pairs]`)
    y_BTSD, cache   = attn.prefill(x_BTSD, cache=None)  # parallel pass + cache of its last frames
    cache           = attn.init_cache(batch, tokens_per_frame, dtype=jnp.float32)  # empty cache
    y_BUSD, kv      = attn.step(x_BUSD, cache)          # U = attn.unit frames; reads, never writes
    cache           = attn.commit(cache, kv)            # append the unit's keys/values
    cache           = attn.reserve(cache, frames)       # full causal only: grow capacity (eager)

`window=None` selects full causal attention (the `causal_full` mixer); `window=W` with no chunk is
the exact sliding window (`lssvwm` with k, `causal_window` with W); `chunk_size=c` the chunked form,
which takes whole chunks only (t a multiple of c, for the parallel pass and for `prefill`).
`max_frames` is the training window: a window longer than it is an error. Passing `cache` to
`__call__`/`prefill` continues a sequence (the frames in the cache precede `x`), which is how
context is carried from one training window to the next.

Streaming contract: `prefill(x[:, :P])` followed by `step` + `commit` for each later unit gives the
same outputs as one parallel call on the whole sequence (tests/nn/test_attention_streaming.py).
A diffusion sampler calls `step` for every denoising pass of a new frame and `commit`s only the
keys/values of the final clean pass.

Cache (`KVCache`, a pytree with static shapes; `cache.nbytes` is its size):
    keys, values  [b, C, s, heads, head_dim]  un-rotated (rotation happens at use time)
    filled        int32 [b]  how many of the C slots hold frames (per batch element, so one stream
                             can be reset with `cache.reset(mask_B)` while the others go on)
    next_slot     int32 []   ring write position (windowed); unused by the growing cache
    ring          static bool
Windowed caches are rings of C = k frames (sliding) or k - c frames (chunked, whole chunks only),
so their size never changes. The full-causal cache is growing: C is a capacity that doubles when
an eager `commit` needs room, and `prefill` returns capacity (old capacity + P frames); its byte
size therefore grows with the frames processed. Inside `jax.jit` a growing cache cannot change
shape: call `reserve` first (outside jit); a jitted `commit` past capacity drops the frames and
poisons later `step` outputs with NaN rather than silently attending to the wrong keys.

Parameters carry logical axis names (`embed`, `heads`, `head_dim`; see lssvwm/nn/partitioning.py).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from lssvwm.nn.attention_cache import (
    FrameKV,
    KVCache,
    check_frames,
    commit_frames,
    empty_cache,
    reserve,
)
from lssvwm.nn.attention_kernels import (
    full_causal_attention,
    resolve_query_block,
    step_attention,
    windowed_attention,
)
from lssvwm.nn.attention_window import FrameWindow
from lssvwm.nn.partitioning import constrain, param
from lssvwm.nn.rope import apply_pose_rotation

__all__ = ["FrameKV", "FrameLocalAttention", "FrameWindow", "KVCache"]

_QKV_NAMES = ("batch", "time", "tokens", "heads", "head_dim")


class FrameLocalAttention(nnx.Module):
    """Multi-head attention over `x_BTSD` with a frame-level causal window (module docstring).

    Args:
      embed_dim, num_heads: model width d and attention heads; head_dim defaults to d / heads.
      window: k frames (sliding or chunked), or None for full causal attention.
      chunk_size: c > 1 selects the chunked form (c must divide k); None/1 the sliding window.
      max_frames: the training window; a longer attention window is an error.
      query_block: query frames per block of the parallel pass (a multiple of the unit; default
        from lssvwm.nn.attention_kernels.default_query_block). Changes speed, not results.
      qk_norm: RMS-normalise queries and keys per head (learned scale over head_dim).
      rope_base: rotary base over frame distances.
      pose_pairs: dimension pairs per head rotated by the camera pose instead of the frame index
        (lssvwm/nn/rope.py; 0: none). With it, every pass takes `pose_angles [b, t, pose_pairs]`.
      use_bias: biases on the q/k/v and output projections.
      dtype: compute dtype (default: the input's); param_dtype: parameter dtype.
      implementation: `jax.nn.dot_product_attention`'s kernel: None or "xla" (XLA), "cudnn"
        (cuDNN; NVIDIA GPUs, bfloat16/float16 inputs). Models resolve `model.attention_impl`
        ("auto" among them) with `lssvwm.nn.attention_kernels.resolve_attention_implementation`.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        *,
        rngs: nnx.Rngs,
        window: int | None = 10,
        chunk_size: int | None = None,
        max_frames: int | None = None,
        head_dim: int | None = None,
        query_block: int | None = None,
        qk_norm: bool = True,
        rope_base: float = 10_000.0,
        pose_pairs: int = 0,
        use_bias: bool = False,
        dtype=None,
        param_dtype=jnp.float32,
        implementation: str | None = None,
    ):
        if embed_dim < 1 or num_heads < 1:
            raise ValueError(f"embed_dim ({embed_dim}) and num_heads ({num_heads}) must be >= 1")
        if head_dim is None:
            if embed_dim % num_heads:
                raise ValueError(
                    f"embed_dim={embed_dim} is not divisible by num_heads={num_heads}; "
                    "pass head_dim explicitly"
                )
            head_dim = embed_dim // num_heads
        if head_dim % 2:
            raise ValueError(f"rotary time embedding needs an even head_dim, got {head_dim}")
        if not 0 <= pose_pairs < head_dim // 2:
            raise ValueError(
                f"pose_pairs must be in [0, head_dim / 2 = {head_dim // 2}), got {pose_pairs}"
            )
        self.window = FrameWindow.make(window, chunk_size, max_frames)
        if query_block is not None:
            resolve_query_block(self.window, query_block, query_block)  # validates only
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.max_frames = max_frames
        self.query_block = query_block
        self.rope_base = rope_base
        self.pose_pairs = pose_pairs
        # The frame index turns the pairs the pose does not (None: all of them).
        self.rope_pairs = head_dim // 2 - pose_pairs if pose_pairs else None
        self.dtype = dtype
        self.implementation = implementation
        self.qk_norm = qk_norm
        self.use_bias = use_bias

        in_init = nnx.initializers.variance_scaling(
            1.0, "fan_in", "truncated_normal", in_axis=0, out_axis=(1, 2)
        )
        out_init = nnx.initializers.variance_scaling(
            1.0, "fan_in", "truncated_normal", in_axis=(0, 1), out_axis=2
        )
        qkv_shape = (embed_dim, num_heads, head_dim)
        qkv_names = ("embed", "heads", "head_dim")
        self.q_kernel = param(rngs, in_init, qkv_shape, qkv_names, param_dtype)
        self.k_kernel = param(rngs, in_init, qkv_shape, qkv_names, param_dtype)
        self.v_kernel = param(rngs, in_init, qkv_shape, qkv_names, param_dtype)
        self.out_kernel = param(
            rngs,
            out_init,
            (num_heads, head_dim, embed_dim),
            ("heads", "head_dim", "embed"),
            param_dtype,
        )
        zeros, ones = nnx.initializers.zeros_init(), nnx.initializers.ones_init()
        if use_bias:
            bias_names = ("heads", "head_dim")
            self.q_bias = param(rngs, zeros, (num_heads, head_dim), bias_names, param_dtype)
            self.k_bias = param(rngs, zeros, (num_heads, head_dim), bias_names, param_dtype)
            self.v_bias = param(rngs, zeros, (num_heads, head_dim), bias_names, param_dtype)
            self.out_bias = param(rngs, zeros, (embed_dim,), ("embed",), param_dtype)
        if qk_norm:
            # RMS-normalised queries and keys keep attention logits bounded (as in CogVideoX).
            self.q_norm_scale = param(rngs, ones, (head_dim,), ("head_dim",), param_dtype)
            self.k_norm_scale = param(rngs, ones, (head_dim,), ("head_dim",), param_dtype)

    # -- sizes ---------------------------------------------------------------------------------

    @property
    def unit(self) -> int:
        """Frames per streaming step (1, or the chunk size in the chunked form)."""
        return self.window.unit

    @property
    def cache_frames(self) -> int | None:
        """Ring length in frames (k, or k - c chunked); None for the growing full-causal cache."""
        return self.window.lookback

    # -- projections ---------------------------------------------------------------------------

    def _check_input(self, x_BTSD, what: str) -> None:
        if x_BTSD.ndim != 4 or x_BTSD.shape[-1] != self.embed_dim:
            raise ValueError(
                f"{what} expects x as [batch, frames, tokens, {self.embed_dim}], got {x_BTSD.shape}"
            )

    def _project(self, x_BTSD, pose_angles_BTN=None):
        """q, k, v [b, t, s, heads, head_dim], not yet rotated by the frame index (q and k
        RMS-normalised if qk_norm, and rotated by their frame's pose with `pose_pairs`)."""
        dtype = self.dtype or x_BTSD.dtype
        x = x_BTSD.astype(dtype)

        def project(kernel, bias_name):
            y = jnp.einsum("btsd,dhp->btshp", x, kernel[...].astype(dtype))
            if self.use_bias:
                y = y + getattr(self, bias_name)[...].astype(dtype)
            return constrain(y, _QKV_NAMES)

        q = project(self.q_kernel, "q_bias")
        k = project(self.k_kernel, "k_bias")
        v = project(self.v_kernel, "v_bias")
        if self.qk_norm:
            q = _rms_norm(q, self.q_norm_scale[...])
            k = _rms_norm(k, self.k_norm_scale[...])
        if self.pose_pairs:
            expected = x_BTSD.shape[:2] + (self.pose_pairs,)
            if pose_angles_BTN is None or pose_angles_BTN.shape != expected:
                got = None if pose_angles_BTN is None else pose_angles_BTN.shape
                raise ValueError(
                    f"this attention rotates by pose: needs pose_angles {expected}, got {got}"
                )
            q = apply_pose_rotation(q, pose_angles_BTN)
            k = apply_pose_rotation(k, pose_angles_BTN)
        return q, k, v

    def _output(self, o_BTSHP):
        dtype = o_BTSHP.dtype
        y = jnp.einsum("btshp,hpd->btsd", o_BTSHP, self.out_kernel[...].astype(dtype))
        if self.use_bias:
            y = y + self.out_bias[...].astype(dtype)
        return y

    # -- parallel pass -------------------------------------------------------------------------

    def __call__(
        self, x_BTSD: jax.Array, cache: KVCache | None = None, pose_angles_BTN=None
    ) -> jax.Array:
        """Attention over all frames of `x_BTSD [b, t, s, d]`, after the frames in `cache`."""
        y, _ = self._parallel(x_BTSD, cache, pose_angles_BTN, "FrameLocalAttention")
        return y

    def prefill(
        self, x_BTSD: jax.Array, cache: KVCache | None = None, pose_angles_BTN=None
    ) -> tuple[jax.Array, KVCache]:
        """Parallel pass over `x_BTSD` plus the cache that continues after its last frame."""
        y, (k, v) = self._parallel(x_BTSD, cache, pose_angles_BTN, "prefill")
        b, _, tokens, _ = x_BTSD.shape
        if cache is None:
            cache = self.init_cache(b, tokens, dtype=k.dtype)
        if self.window.is_full:
            # Room for every new frame, known statically (filled <= capacity), so prefill works
            # under jit; the growing cache's size is old capacity + t frames.
            cache = cache.replace(
                keys=_pad_slots(cache.keys, k.shape[1]), values=_pad_slots(cache.values, k.shape[1])
            )
        return y, commit_frames(cache, FrameKV(k, v))

    def _parallel(self, x_BTSD, cache, pose_angles_BTN, what):
        self._check_input(x_BTSD, what)
        q, k, v = self._project(x_BTSD, pose_angles_BTN)
        if cache is not None:
            self._check_cache(cache, x_BTSD)
        if self.window.is_full:
            o = full_causal_attention(
                q,
                k,
                v,
                rope_base=self.rope_base,
                rope_pairs=self.rope_pairs,
                query_block=self.query_block,
                history=cache,
                implementation=self.implementation,
            )
        else:
            o = windowed_attention(
                q,
                k,
                v,
                self.window,
                rope_base=self.rope_base,
                rope_pairs=self.rope_pairs,
                query_block=self.query_block,
                history=None if cache is None else cache.chronological(),
                history_filled=None if cache is None else cache.filled,
                implementation=self.implementation,
            )
        return self._output(o), (k, v)

    # -- streaming -----------------------------------------------------------------------------

    def init_cache(self, batch: int, tokens_per_frame: int, dtype=jnp.float32) -> KVCache:
        """An empty cache: a ring of `cache_frames` frames, or a growing cache of capacity 0."""
        ring = not self.window.is_full
        return empty_cache(
            batch,
            self.window.lookback if ring else 0,
            tokens_per_frame,
            self.num_heads,
            self.head_dim,
            dtype,
            ring=ring,
        )

    def step(
        self, x_BUSD: jax.Array, cache: KVCache, pose_angles_BUN=None
    ) -> tuple[jax.Array, FrameKV]:
        """Outputs for one unit of new frames, reading `cache`; returns them and their keys/values.

        The cache is not modified: pass the returned `FrameKV` to `commit` once the frames are
        final (in a diffusion sampler, after the last, clean pass).
        """
        self._check_input(x_BUSD, "step")
        if x_BUSD.shape[1] != self.unit:
            raise ValueError(
                f"step takes one unit of {self.unit} frame(s) (x [b, {self.unit}, s, d]), got "
                f"{x_BUSD.shape[1]} frames"
            )
        self._check_cache(cache, x_BUSD)
        q, k, v = self._project(x_BUSD, pose_angles_BUN)
        o = step_attention(
            q,
            k,
            v,
            cache,
            self.window,
            rope_base=self.rope_base,
            rope_pairs=self.rope_pairs,
            implementation=self.implementation,
        )
        return self._output(o), FrameKV(k, v)

    def commit(self, cache: KVCache, kv: FrameKV) -> KVCache:
        """Writes the keys/values returned by `step` (whole units) into the cache."""
        check_frames(cache, kv)
        if kv.keys.shape[1] % self.unit:
            raise ValueError(
                f"commit takes whole units of {self.unit} frame(s), got {kv.keys.shape[1]} frames"
            )
        return commit_frames(cache, kv)

    def reserve(self, cache: KVCache, frames: int) -> KVCache:
        """Full causal: grow the cache (outside jit) so `frames` more frames can be committed."""
        return reserve(cache, frames)

    def _check_cache(self, cache: KVCache, x_BTSD) -> None:
        if not isinstance(cache, KVCache):
            raise TypeError(f"expected a KVCache, got {type(cache).__name__}")
        expected_ring = not self.window.is_full
        if cache.ring != expected_ring or (
            expected_ring and cache.capacity != self.window.lookback
        ):
            kind = f"a ring of {self.window.lookback} frames" if expected_ring else "growing"
            raise ValueError(
                f"this layer's cache is {kind}; got a {'ring' if cache.ring else 'growing'} cache "
                f"of {cache.capacity} frames"
            )
        b, _, tokens, _ = x_BTSD.shape
        expected = (b, cache.capacity, tokens, self.num_heads, self.head_dim)
        if cache.keys.shape != expected:
            raise ValueError(
                f"cache keys {cache.keys.shape} do not fit inputs: expected {expected}"
            )


def _rms_norm(x, scale, eps: float = 1e-6):
    x32 = x.astype(jnp.float32)
    normed = x32 * jax.lax.rsqrt(jnp.mean(jnp.square(x32), axis=-1, keepdims=True) + eps)
    return (normed * scale.astype(jnp.float32)).astype(x.dtype)


def _pad_slots(x, frames: int):
    return jnp.pad(x, ((0, 0), (0, frames), (0, 0), (0, 0), (0, 0)))
