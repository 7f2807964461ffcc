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
                               rope_base=10_000.0, use_bias=False, dtype=None,
                               param_dtype=jnp.float32, implementation=None)
    y_BTSD          = attn(x_BTSD, cache=None)          # parallel pass (training)
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
