"""Key/value cache of frame-local attention for streaming: a ring (windowed) or a growing buffer.

Keys are stored *un-rotated*; rotary angles are applied when the cache is read, from each slot's
position relative to the frame being computed. So the cache content never depends on absolute frame
indices, and a ring slot needs no re-rotation when the ring wraps.

Slot bookkeeping (C slots, `filled [b]`, `next_slot []`):
  ring     frames are written at next_slot, next_slot + 1, ... (mod C). Slot r holds the frame
           age_r = C - ((r - next_slot) mod C) frames before the next one; it is valid if
           age_r <= filled[b]. `next_slot` is shared by the batch (all streams advance together);
           `filled` is per stream so one stream can be reset while the others go on.
  growing  frames are appended at slot filled[b]; slot r holds the frame filled[b] - r frames
           before the next one and is valid if r < filled[b]. The capacity C doubles when an eager
           `commit_frames` needs room.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import struct


class FrameKV(NamedTuple):
    """Un-rotated keys and values of consecutive frames, each [b, f, s, heads, head_dim]."""

    keys: jax.Array
    values: jax.Array


@struct.dataclass
class KVCache:
    """Per-layer attention cache (a pytree; `ring` is static). See the module docstring."""

    keys: jax.Array  # [b, C, s, heads, head_dim]
    values: jax.Array  # [b, C, s, heads, head_dim]
    filled: jax.Array  # int32 [b]
    next_slot: jax.Array  # int32 []
    ring: bool = struct.field(pytree_node=False)

    @property
    def capacity(self) -> int:
        return self.keys.shape[1]

    @property
    def batch(self) -> int:
        return self.keys.shape[0]

    @property
    def tokens_per_frame(self) -> int:
        return self.keys.shape[2]

    @property
    def nbytes(self) -> int:
        """Bytes held by the cache's arrays."""
        return sum(leaf.nbytes for leaf in jax.tree.leaves(self))

    def reset(self, mask_B: jax.Array) -> KVCache:
        """Empties the streams where `mask_B [b]` is true (a new episode starts there)."""
        mask_B = jnp.asarray(mask_B, bool)
        if mask_B.shape != (self.batch,):
            raise ValueError(f"reset mask must have shape ({self.batch},), got {mask_B.shape}")
        return self.replace(filled=jnp.where(mask_B, 0, self.filled))

    def slot_positions(self) -> jax.Array:
        """int32 [b, C]: each slot's frame position relative to the next frame (all negative)."""
        slots = jnp.arange(self.capacity, dtype=jnp.int32)
        if self.ring:
            age = self.capacity - (slots - self.next_slot) % self.capacity
            return jnp.broadcast_to(-age, (self.batch, self.capacity))
        return slots[None, :] - self.filled[:, None]

    def slot_valid(self) -> jax.Array:
        """bool [b, C]: does the slot hold a frame of the current stream?"""
        positions = self.slot_positions()
        return (positions < 0) & (-positions <= self.filled[:, None])

    def chronological(self) -> FrameKV:
        """Ring content oldest to newest, [b, C, ...]; the newest `filled[b]` frames are valid."""
        if not self.ring:
            raise ValueError("chronological() is for ring caches; a growing cache is in order")
        order = (self.next_slot + jnp.arange(self.capacity, dtype=jnp.int32)) % self.capacity
        return FrameKV(jnp.take(self.keys, order, axis=1), jnp.take(self.values, order, axis=1))


def empty_cache(
    batch: int,
    capacity: int,
    tokens_per_frame: int,
    heads: int,
    head_dim: int,
    dtype,
    *,
    ring: bool,
) -> KVCache:
    """A cache with no frames: a ring of `capacity` frames, or a growing buffer of that capacity."""
    shape = (batch, capacity, tokens_per_frame, heads, head_dim)
    return KVCache(
        keys=jnp.zeros(shape, dtype),
        values=jnp.zeros(shape, dtype),
        filled=jnp.zeros((batch,), jnp.int32),
        next_slot=jnp.zeros((), jnp.int32),
        ring=ring,
    )


def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def check_frames(cache: KVCache, kv: FrameKV) -> None:
    """Raises if `kv` does not fit `cache` (batch, tokens per frame, heads, head_dim, dtype)."""
    for name, array in (("keys", kv.keys), ("values", kv.values)):
        if (
            array.ndim != 5
            or array.shape[0] != cache.batch
            or array.shape[2:] != cache.keys.shape[2:]
        ):
            raise ValueError(
                f"new {name} {array.shape} do not fit the cache {cache.keys.shape}: expected "
                f"[{cache.batch}, frames, {', '.join(map(str, cache.keys.shape[2:]))}]"
            )
    if kv.keys.shape != kv.values.shape:
        raise ValueError(f"keys {kv.keys.shape} and values {kv.values.shape} differ in shape")


def reserve(cache: KVCache, frames: int) -> KVCache:
    """Growing cache: capacity for `frames` more frames (doubling), decided outside jit.

    Reads `filled` from the device, so it cannot run under `jax.jit`; call it before a jitted
    step/commit. A ring cache is returned unchanged (its size is fixed by the window).
    """
    if cache.ring:
        return cache
    if not _is_concrete(cache.filled):
        raise ValueError("reserve() needs a concrete cache: call it outside jax.jit")
    needed = int(jnp.max(cache.filled)) + frames
    if needed <= cache.capacity:
        return cache
    capacity = max(2 * cache.capacity, needed)
    grow = ((0, 0), (0, capacity - cache.capacity), (0, 0), (0, 0), (0, 0))
    return cache.replace(keys=jnp.pad(cache.keys, grow), values=jnp.pad(cache.values, grow))


def commit_frames(cache: KVCache, kv: FrameKV) -> KVCache:
    """Writes the keys/values of `f` new frames (f = kv.keys.shape[1]) after the cached ones.

    Ring: the last min(f, C) frames land in the ring; older content is overwritten oldest-first.
    Growing: appended at slot filled[b]; an eager call grows the capacity first. Under jit it
    cannot grow: frames past the capacity are dropped and `filled` exceeds the capacity, which
    `step` turns into NaN outputs (see `overflowed`).
    """
    check_frames(cache, kv)
    new_frames = kv.keys.shape[1]
    kv = FrameKV(kv.keys.astype(cache.keys.dtype), kv.values.astype(cache.values.dtype))
    if cache.ring:
        capacity = cache.capacity
        if capacity == 0:  # e.g. chunked with k == c: nothing outlives its own chunk
            return cache
        kept = min(new_frames, capacity)
        offset = new_frames - kept
        slots = (cache.next_slot + offset + jnp.arange(kept, dtype=jnp.int32)) % capacity
        return cache.replace(
            keys=cache.keys.at[:, slots].set(kv.keys[:, offset:]),
            values=cache.values.at[:, slots].set(kv.values[:, offset:]),
            filled=jnp.minimum(cache.filled + new_frames, capacity),
            next_slot=(cache.next_slot + new_frames) % capacity,
        )
    if _is_concrete(cache.filled):
        cache = reserve(cache, new_frames)
    slots_BF = cache.filled[:, None] + jnp.arange(new_frames, dtype=jnp.int32)  # [b, f]
    batch_B1 = jnp.arange(cache.batch)[:, None]
    return cache.replace(
        keys=cache.keys.at[batch_B1, slots_BF].set(kv.keys, mode="drop"),
        values=cache.values.at[batch_B1, slots_BF].set(kv.values, mode="drop"),
        filled=cache.filled + new_frames,
    )


def overflowed(cache: KVCache) -> jax.Array:
    """bool [b]: did a jitted commit run past a growing cache's capacity (frames were lost)?"""
    return cache.filled > cache.capacity
