"""Functional frame-local attention: blocked parallel pass, streaming step, dense references.

All functions take un-rotated `q, k, v [b, f, s, h, p]` (f frames, s tokens per frame, h heads,
p head dim) and apply the frame rotary embedding themselves, at positions relative to the block
being computed (see lssvwm/nn/rope.py).

Blocked windowed pass (`windowed_attention`): frames are cut into query blocks of Q frames (Q a
multiple of the window's unit). Block n attends to its own Q frames and to the Lp = ceil(L/Q)*Q
frames before it (L = the window's lookback), gathered with Lp/Q static slices, never with a dense
[t*s, t*s] mask. Inside a block the keys are ordered [own frames, earlier frames newest-first], so
that every key that does not exist (before frame 0 with no cache, or an empty cache slot) sits at
the end: a per-(stream, block) `key_value_seq_lengths` drops them, and the frame pattern is one
static [Q*s, (Q+Lp)*s] mask shared by all blocks and streams. Frames padded after the last real
frame are in every real query's future (sliding) or in a chunk of their own (chunked, which takes
whole chunks only), so the causal pattern already hides them.

Full causal pass (`full_causal_attention`): query blocks of Q frames against all keys, one block at
a time (`lax.map`, rematerialised in the backward pass), so memory is O(Q*s * t*s) rather than
O((t*s)^2); compute is still t*s * t*s (future keys are masked, not skipped).

`implementation` is passed to `jax.nn.dot_product_attention`: "xla" (None means the same) or
"cudnn" (cuDNN's fused kernel, NVIDIA GPUs only, half-precision inputs). A model picks it from
`model.attention_impl` through `resolve_attention_implementation` ("auto": cuDNN where it can run,
else XLA). On an NVIDIA H100 (JAX 0.11.2) cuDNN takes these masks and key lengths and agrees with
XLA in bfloat16, forward and gradients, for every pass here (tests/nn/test_cudnn_attention.py, run
on a lent GPU; skipped elsewhere). The conditions in `cudnn_unsupported` are JAX's documented ones.

Precision: with bfloat16 (or float16) q, k, v, `jax.nn.dot_product_attention` forms the logits
with float32 accumulation and takes the softmax in float32 (XLA path; cuDNN's kernel does the
same), then returns q's dtype; `reference_attention` is float32 throughout.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from lssvwm.common.platform import target_platform
from lssvwm.nn.attention_cache import FrameKV, KVCache, overflowed
from lssvwm.nn.attention_window import FrameWindow
from lssvwm.nn.rope import apply_rope

# Query frames per block when the caller gives none. Windowed: half a lookback (rounded up to the
# unit), so each block reads 1.5 lookbacks of keys and k/v are duplicated about 3 times; this was
# the fastest and leanest choice at k=10 on CPU, forward and backward, sliding and chunked
# (experiments/bench_attention/results.json). Full causal: a fixed block of 8 frames, the leanest
# there and no slower than 16 or 32. Accelerators may prefer larger blocks: it is a layer argument.
FULL_CAUSAL_QUERY_BLOCK = 8

# What `model.attention_impl` may ask for: "auto" resolves by backend and inputs (below).
ATTENTION_IMPLEMENTATIONS = ("auto", "xla", "cudnn")
CUDNN_DTYPES = ("bfloat16", "float16")
CUDNN_MAX_HEAD_DIM = 128  # 256 from Hopper on; the smaller limit is taken everywhere


def cudnn_unsupported(dtype, head_dim: int, tokens_per_frame: int) -> str | None:
    """Why cuDNN's fused attention cannot take these inputs (a phrase), or None when it can.

    JAX's conditions (jax/_src/cudnn/fused_attention_stablehlo.py: check_layout,
    check_is_flash_attention): q, k, v in float16 or bfloat16; a head dim that is a multiple of
    8 and at most CUDNN_MAX_HEAD_DIM; and, because the frame mask reaches cuDNN as a bias, even
    query and key lengths in the backward pass -- every block here holds whole frames, so an
    even number of tokens per frame guarantees it.
    """
    name = jnp.dtype(dtype).name
    if name not in CUDNN_DTYPES:
        return f"needs a bfloat16 or float16 compute dtype (model.dtype), got {name}"
    if head_dim % 8 or head_dim > CUDNN_MAX_HEAD_DIM:
        return (
            f"needs a head dim (width / num_heads) that is a multiple of 8 and at most "
            f"{CUDNN_MAX_HEAD_DIM}, got {head_dim}"
        )
    if tokens_per_frame % 2:
        return f"needs an even number of tokens per frame, got {tokens_per_frame}"
    return None


def resolve_attention_implementation(
    requested: str,
    *,
    dtype,
    head_dim: int,
    tokens_per_frame: int,
    platform: str | None = None,
    key: str = "attention_impl",
) -> str:
    """The `implementation` ("xla" or "cudnn") for `model.attention_impl = requested`.

    "xla" is XLA's attention on every backend. "auto" is "cudnn" on an NVIDIA GPU when
    `cudnn_unsupported` finds nothing, else "xla". "cudnn" is a ValueError (one line) unless
    the model is traced for an NVIDIA GPU (`platform`, default `target_platform()`) and the
    inputs qualify: an explicit request is never silently replaced by another kernel. `key`
    names the setting in the messages.
    """
    if requested not in ATTENTION_IMPLEMENTATIONS:
        raise ValueError(f"{key} must be one of {ATTENTION_IMPLEMENTATIONS}, got {requested!r}")
    if requested == "xla":
        return "xla"
    unsupported = cudnn_unsupported(dtype, head_dim, tokens_per_frame)
    platform = platform or target_platform()
    if requested == "auto":
        return "cudnn" if platform == "cuda" and unsupported is None else "xla"
    if unsupported is not None:
        raise ValueError(f"{key} 'cudnn' {unsupported}")
    if platform != "cuda":
        raise ValueError(
            f"{key} 'cudnn' needs an NVIDIA GPU, and the model is traced for "
            f"{platform}: use 'auto' (cuDNN where it can run, else XLA) or 'xla'"
        )
    return "cudnn"


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def default_query_block(window: FrameWindow) -> int:
    if window.is_full:
        return _round_up(FULL_CAUSAL_QUERY_BLOCK, window.unit)
    return _round_up(max(-(-window.lookback // 2), 1), window.unit)


def resolve_query_block(window: FrameWindow, frames: int, query_block: int | None) -> int:
    """Query block in frames: a multiple of the unit, no longer than the (unit-rounded) input."""
    if query_block is None:
        query_block = default_query_block(window)
    if query_block < 1 or query_block % window.unit:
        raise ValueError(
            f"query_block={query_block} must be a positive multiple of the window's unit "
            f"({window.unit} frame(s))"
        )
    return min(query_block, _round_up(frames, window.unit))


def check_qkv(q, k, v) -> None:
    if q.ndim != 5 or q.shape[1] < 1:
        raise ValueError(
            f"expected q, k, v as [b, frames >= 1, tokens, heads, head_dim], got {q.shape}"
        )
    if not (q.shape == k.shape == v.shape):
        raise ValueError(f"q {q.shape}, k {k.shape} and v {v.shape} must have the same shape")


def _token_frames(frame_positions, tokens: int):
    """Frame position of every token of consecutive frames: [..., F] -> [..., F * tokens]."""
    return jnp.repeat(frame_positions, tokens, axis=-1)


def _pad_frames(x, before: int, after: int):
    return jnp.pad(x, ((0, 0), (before, after)) + ((0, 0),) * (x.ndim - 2))


def windowed_attention(
    q,
    k,
    v,
    window: FrameWindow,
    *,
    rope_base: float,
    rope_pairs: int | None = None,
    query_block: int | None = None,
    history: FrameKV | None = None,
    history_filled=None,
    implementation: str | None = None,
):
    """Blocked sliding-window or chunked attention over all frames of q, k, v.

    Args:
      q, k, v: [b, t, s, h, p] un-rotated; frame 0 of them is chunk-aligned.
      window: a windowed (not full) `FrameWindow`.
      rope_base: rotary base.
      rope_pairs: rotate only the first `rope_pairs` dimension pairs by the frame index (None:
        all; the rest carry the pose rotation applied before, lssvwm.nn.rope).
      query_block: query frames per block (default `default_query_block`).
      history: optional frames right before frame 0, oldest first, [b, H, s, h, p] with
        H <= window.lookback (a ring cache's `chronological()` content).
      history_filled: int32 [b], how many of the newest history frames are real (required with
        `history`).
      implementation: passed to `jax.nn.dot_product_attention` (None, "xla" or "cudnn").

    Returns:
      [b, t, s, h, p] attention outputs in q's dtype.
    """
    check_qkv(q, k, v)
    if window.is_full:
        raise ValueError("windowed_attention needs a finite window; use full_causal_attention")
    b, frames, tokens, heads, head_dim = q.shape
    if window.is_chunked and frames % window.chunk:
        raise ValueError(
            f"chunked attention takes whole chunks: {frames} frames is not a multiple of "
            f"chunk_size={window.chunk}"
        )
    lookback = window.lookback
    block = resolve_query_block(window, frames, query_block)
    num_blocks = -(-frames // block)
    padded = num_blocks * block
    slices = -(-lookback // block)
    padded_lookback = slices * block

    if history is None:
        history_len = 0
        history_filled = jnp.zeros((b,), jnp.int32)
    else:
        history_len = history.keys.shape[1]
        if history_len > lookback or history.keys.shape[2:] != q.shape[2:]:
            raise ValueError(
                f"history {history.keys.shape} does not fit queries {q.shape} with a lookback of "
                f"{lookback} frames"
            )
        if history_filled is None:
            raise ValueError("history_filled is required with history")

    def timeline(x, past):
        """[b, Lp + padded, ...]: Lp frames of history (zeros where none), x, zero padding."""
        x = _pad_frames(x, 0, padded - frames)
        front = jnp.zeros((b, padded_lookback - history_len) + x.shape[2:], x.dtype)
        parts = [front] if past is None else [front, past.astype(x.dtype)]
        return jnp.concatenate([*parts, x], axis=1)

    def key_windows(x_timeline):
        """[b, nb, Q + Lp, ...]: each block's own frames, then the Lp before it newest-first."""
        rest = x_timeline.shape[2:]
        own = x_timeline[:, padded_lookback:].reshape(b, num_blocks, block, *rest)
        if slices == 0:
            return own
        earlier = [
            x_timeline[:, i * block : i * block + padded].reshape(b, num_blocks, block, *rest)
            for i in range(slices)
        ]
        earlier = jnp.flip(jnp.concatenate(earlier, axis=2), axis=2)
        return jnp.concatenate([own, earlier], axis=2)

    # Positions relative to the block start: own frames 0..Q-1, earlier frames -1, -2, ...
    query_pos = np.arange(block)
    key_pos = np.concatenate([np.arange(block), -1 - np.arange(padded_lookback)])
    keys_len = block + padded_lookback

    q_blocks = _pad_frames(q, 0, padded - frames).reshape(b, num_blocks, block, *q.shape[2:])
    q_blocks = apply_rope(q_blocks, query_pos, base=rope_base, pairs=rope_pairs)
    k_windows = key_windows(timeline(k, None if history is None else history.keys))
    k_windows = apply_rope(k_windows, key_pos, base=rope_base, pairs=rope_pairs)
    v_windows = key_windows(timeline(v, None if history is None else history.values))

    mask = window.visible(
        _token_frames(jnp.asarray(query_pos), tokens)[:, None],
        _token_frames(jnp.asarray(key_pos), tokens)[None, :],
    )[None, None]
    # Earlier frames that exist: block n starts at frame n*Q; history supplies history_filled.
    block_start = jnp.arange(num_blocks, dtype=jnp.int32) * block
    earlier_valid = jnp.minimum(padded_lookback, block_start[None, :] + history_filled[:, None])
    kv_lengths = ((block + earlier_valid) * tokens).reshape(b * num_blocks).astype(jnp.int32)

    out = jax.nn.dot_product_attention(
        q_blocks.reshape(b * num_blocks, block * tokens, heads, head_dim),
        k_windows.reshape(b * num_blocks, keys_len * tokens, heads, head_dim),
        v_windows.reshape(b * num_blocks, keys_len * tokens, heads, head_dim),
        mask=mask,
        key_value_seq_lengths=kv_lengths,
        implementation=implementation,
    )
    return out.reshape(b, padded, tokens, heads, head_dim)[:, :frames]


def full_causal_attention(
    q,
    k,
    v,
    *,
    rope_base: float,
    rope_pairs: int | None = None,
    query_block: int | None = None,
    history: KVCache | None = None,
    implementation: str | None = None,
):
    """Causal attention over all frames (bidirectional within a frame), one query block at a time.

    Args:
      q, k, v: [b, t, s, h, p] un-rotated.
      history: optional growing `KVCache` of the frames before frame 0 (slots r < filled[b]).

    Returns:
      [b, t, s, h, p] in q's dtype.
    """
    check_qkv(q, k, v)
    window = FrameWindow(None)
    b, frames, tokens, heads, head_dim = q.shape
    block = resolve_query_block(window, frames, query_block)
    num_blocks = -(-frames // block)
    padded = num_blocks * block

    positions = np.arange(padded)
    q_rot = apply_rope(
        _pad_frames(q, 0, padded - frames), positions, base=rope_base, pairs=rope_pairs
    )
    keys = apply_rope(
        _pad_frames(k, 0, padded - frames), positions, base=rope_base, pairs=rope_pairs
    )
    values = _pad_frames(v, 0, padded - frames)
    key_frames = jnp.asarray(positions)
    kv_lengths = None
    if history is not None:
        if history.ring or history.keys.shape[2:] != q.shape[2:]:
            raise ValueError(f"history must be a growing cache of [b, C, {q.shape[2:]}] frames")
        # Cache slots go after the new frames, so the empty slots are a suffix of the keys.
        slot_pos = history.slot_positions()
        keys = jnp.concatenate(
            [
                keys,
                apply_rope(
                    history.keys.astype(k.dtype), slot_pos, base=rope_base, pairs=rope_pairs
                ),
            ],
            axis=1,
        )
        values = jnp.concatenate([values, history.values.astype(v.dtype)], axis=1)
        key_frames = jnp.concatenate([key_frames, -jnp.ones(history.capacity, jnp.int32)])
        kv_lengths = ((padded + jnp.minimum(history.filled, history.capacity)) * tokens).astype(
            jnp.int32
        )
    key_tokens = _token_frames(key_frames, tokens)
    num_keys = key_tokens.shape[0]
    keys = keys.reshape(b, num_keys, heads, head_dim)
    values = values.reshape(b, num_keys, heads, head_dim)
    q_blocks = q_rot.reshape(b, num_blocks, block * tokens, heads, head_dim).swapaxes(0, 1)

    # Rematerialised in the backward pass: otherwise every block's softmax weights are kept, and
    # training memory is O((t*s)^2) again (experiments/bench_attention).
    @jax.checkpoint
    def attend_block(args):
        index, q_block = args
        query_tokens = index * block + _token_frames(jnp.arange(block), tokens)
        mask = (key_tokens[None, :] <= query_tokens[:, None])[None, None]
        return jax.nn.dot_product_attention(
            q_block,
            keys,
            values,
            mask=mask,
            key_value_seq_lengths=kv_lengths,
            implementation=implementation,
        )

    out = jax.lax.map(attend_block, (jnp.arange(num_blocks), q_blocks))  # [nb, b, Q*s, h, p]
    out = out.swapaxes(0, 1).reshape(b, padded, tokens, heads, head_dim)
    out = out[:, :frames]
    if history is not None:
        out = _poison_if_overflowed(out, history)
    return out


def _poison_if_overflowed(out, cache: KVCache):
    """NaN for streams whose growing cache lost frames to a jitted commit past its capacity."""
    if cache.ring:
        return out
    lost = overflowed(cache).reshape((-1,) + (1,) * (out.ndim - 1))
    return jnp.where(lost, jnp.asarray(jnp.nan, out.dtype), out)


def step_attention(
    q,
    k,
    v,
    cache: KVCache,
    window: FrameWindow,
    *,
    rope_base: float,
    rope_pairs: int | None = None,
    implementation: str | None = None,
):
    """Attention of one unit of new frames against the cache and themselves; the cache is read only.

    Args:
      q, k, v: [b, U, s, h, p] un-rotated, U = window.unit; frame 0 of them is the frame after the
        cache's newest (chunk-aligned in the chunked form).
      cache: the layer's `KVCache`.

    Returns:
      [b, U, s, h, p] in q's dtype.
    """
    check_qkv(q, k, v)
    b, unit, tokens, heads, head_dim = q.shape
    if unit != window.unit:
        raise ValueError(f"step takes one unit of {window.unit} frame(s), got {unit}")
    if cache.batch != b or cache.keys.shape[2:] != q.shape[2:]:
        raise ValueError(f"cache {cache.keys.shape} does not fit step inputs {q.shape}")
    own_pos = np.arange(unit)
    slot_pos = cache.slot_positions()  # [b, C]
    keys = jnp.concatenate(
        [
            apply_rope(k, own_pos, base=rope_base, pairs=rope_pairs),
            apply_rope(cache.keys.astype(k.dtype), slot_pos, base=rope_base, pairs=rope_pairs),
        ],
        axis=1,
    )
    values = jnp.concatenate([v, cache.values.astype(v.dtype)], axis=1)
    key_frames = jnp.concatenate([jnp.broadcast_to(own_pos, (b, unit)), slot_pos], axis=1)
    key_exists = jnp.concatenate([jnp.ones((b, unit), bool), cache.slot_valid()], axis=1)
    key_ok = _token_frames(key_exists, tokens)[:, None, :]  # [b, 1, K*s]
    visible = window.visible(
        _token_frames(jnp.asarray(own_pos), tokens)[None, :, None],
        _token_frames(key_frames, tokens)[:, None, :],
    )  # [b, U*s, K*s]
    mask = (visible & key_ok)[:, None]
    num_keys = keys.shape[1] * tokens
    out = jax.nn.dot_product_attention(
        apply_rope(q, own_pos, base=rope_base, pairs=rope_pairs).reshape(
            b, unit * tokens, heads, head_dim
        ),
        keys.reshape(b, num_keys, heads, head_dim),
        values.reshape(b, num_keys, heads, head_dim),
        mask=mask,
        implementation=implementation,
    )
    return _poison_if_overflowed(out.reshape(b, unit, tokens, heads, head_dim), cache)


def dense_frame_mask(window: FrameWindow, frames: int, tokens: int) -> np.ndarray:
    """bool [frames*tokens, frames*tokens]: the whole-sequence mask (reference / baseline only)."""
    frame = np.arange(frames * tokens) // tokens
    return np.asarray(window.visible(frame[:, None], frame[None, :]))


def dense_masked_attention(
    q,
    k,
    v,
    window: FrameWindow,
    *,
    rope_base: float,
    rope_pairs: int | None = None,
    implementation: str | None = None,
):
    """Baseline: one `dot_product_attention` over all t*s tokens with the dense frame mask."""
    check_qkv(q, k, v)
    b, frames, tokens, heads, head_dim = q.shape
    positions = np.arange(frames)
    mask = dense_frame_mask(window, frames, tokens)[None, None]
    out = jax.nn.dot_product_attention(
        apply_rope(q, positions, base=rope_base, pairs=rope_pairs).reshape(
            b, frames * tokens, heads, head_dim
        ),
        apply_rope(k, positions, base=rope_base, pairs=rope_pairs).reshape(
            b, frames * tokens, heads, head_dim
        ),
        v.reshape(b, frames * tokens, heads, head_dim),
        mask=jnp.asarray(mask),
        implementation=implementation,
    )
    return out.reshape(q.shape)


def reference_attention(
    q, k, v, window: FrameWindow, *, rope_base: float, rope_pairs: int | None = None
):
    """Slow, obvious reference in float32: absolute frame positions, explicit masked softmax."""
    check_qkv(q, k, v)
    b, frames, tokens, heads, head_dim = q.shape
    positions = np.arange(frames)
    q32 = apply_rope(q.astype(jnp.float32), positions, base=rope_base, pairs=rope_pairs)
    k32 = apply_rope(k.astype(jnp.float32), positions, base=rope_base, pairs=rope_pairs)
    v32 = v.astype(jnp.float32)
    flat = (b, frames * tokens, heads, head_dim)
    logits = jnp.einsum("bqhp,bkhp->bhqk", q32.reshape(flat), k32.reshape(flat))
    logits = logits / math.sqrt(head_dim)
    mask = jnp.asarray(dense_frame_mask(window, frames, tokens))
    weights = jax.nn.softmax(jnp.where(mask, logits, -jnp.inf), axis=-1)
    out = jnp.einsum("bhqk,bkhp->bqhp", weights, v32.reshape(flat))
    return out.reshape(q.shape).astype(q.dtype)
