"""Latent spatial memory (after Mirage): token features stored at world positions, z-buffered.

A frame's token-grid features (after patch embedding) are stored with the world xyz of their
patch-centre ray at the patch's pooled depth (`frame_entries`). For a target camera they are
projected at token resolution (`zbuffer_project`): each token cell receives the feature of the
nearest visible entry, plus a hit mask, its depth and the frame it came from.

Geometry (ARCHITECTURE.md, "Datasets"): OpenCV camera axes (x right, y down, z forward); pixel
(u, v) has its centre at (u + 0.5, v + 0.5); depth is camera-frame z, +inf where nothing is hit.
Token cell (i, j) of patch size p covers pixel rows [i p, (i + 1) p) and columns [j p, (j + 1) p);
its centre is at pixel coordinates ((j + 0.5) p, (i + 0.5) p). All geometry is float32, written
as explicit 3-term sums rather than matmuls so no accelerator lowers it to bf16/tf32.

Stores. A rollout must cost the same at frame 10 and frame 10,000, so a store is bounded: `ring`
keeps the last M frames' entries (frame f in slots [(f % M) N, (f % M + 1) N)); `voxel` hashes
each entry's voxel to one of S slots and keeps the newest entry per slot (greatest (frame, token)
key), so it is bounded by the scene. Frames wait `delay` = k frames in `pending` before entering
the store: frame s is visible to target frames t >= s + k + 1, because frame-local attention
already shows frame t the frames t-k..t, and memory should supply what fell out of that window
(training gives frame t the clean frames before t - k). `store_insert` is the streaming path, one
frame at a time; `visible_entries` is the parallel path: for a flat list of entries with absolute
frame indices it says, for all targets at once, what the streaming store would hold. The two give
bit-identical projections (tests/nn/test_spatial_memory.py).

Determinism. Where several entries write the same cell (or voxel slot), GPU/TPU scatters do not
guarantee which write lands; Mirage's reference code relies on the last write winning. Here no
result depends on write order: a winner is chosen by order-independent scatter-max reductions of
its keys, one key at a time, keeping the entries equal to the maximum (`_segment_winner`); the
last key is the entry index, so the winner is unique, and its feature is then gathered.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp

NEAR = 1e-4  # camera z at or below which a point is behind the camera (not projected)
_NO_FRAME = -1
_NEVER = jnp.iinfo(jnp.int32).max  # "not superseded" frame for voxel visibility


class Entries(NamedTuple):
    """E memory entries per stream (a pytree)."""

    feature_BED: jax.Array  # [b, E, d] any float dtype
    xyz_BE3: jax.Array  # float32 [b, E, 3] world position
    frame_BE: jax.Array  # int32 [b, E] absolute frame index the entry was written at
    token_BE: jax.Array  # int32 [b, E] token index in its frame (row-major i * wp + j)
    valid_BE: jax.Array  # bool [b, E]

    @property
    def nbytes(self) -> int:
        return sum(leaf.nbytes for leaf in jax.tree.leaves(self))


def empty_entries(batch: int, count: int, feature_dim: int, dtype=jnp.float32) -> Entries:
    """`count` unused entries per stream: valid False, frame and token -1, xyz and feature 0."""
    return Entries(
        feature_BED=jnp.zeros((batch, count, feature_dim), dtype),
        xyz_BE3=jnp.zeros((batch, count, 3), jnp.float32),
        frame_BE=jnp.full((batch, count), _NO_FRAME, jnp.int32),
        token_BE=jnp.full((batch, count), _NO_FRAME, jnp.int32),
        valid_BE=jnp.zeros((batch, count), bool),
    )


def _forget(entries: Entries, drop: jax.Array) -> Entries:
    """Entries replaced by empty ones where `drop` (broadcast over the trailing axes) is true."""
    empty = (0, 0.0, _NO_FRAME, _NO_FRAME, False)
    expand = lambda x: drop.reshape(drop.shape + (1,) * (x.ndim - drop.ndim))
    return Entries(
        *(
            jnp.where(expand(x), jnp.asarray(e, x.dtype), x)
            for x, e in zip(entries, empty, strict=True)
        )
    )


# ---------------------------------------------------------------- geometry


def pool_depth(depth_BHW: jax.Array, patch_size: int, mode: str = "min") -> jax.Array:
    """[..., H, W] pixel depth -> [..., H/p, W/p] token depth; +inf where a patch has none.

    Never bilinear: blending across a depth edge invents a surface between two real ones.
    "min": the nearest finite depth in the patch (what occludes the patch). "center": the pixel
    nearest the patch centre, row i p + p // 2 and column j p + p // 2 -- the exact centre for odd
    p; for even p the centre is a pixel corner and this takes the pixel below-right of it.
    Non-finite and <= 0 depths are missing.
    """
    *lead, H, W = depth_BHW.shape
    p = int(patch_size)
    if p < 1 or H % p or W % p:
        raise ValueError(f"patch_size {patch_size} must divide the depth map size {(H, W)}")
    depth = jnp.asarray(depth_BHW, jnp.float32)
    depth = jnp.where(jnp.isfinite(depth) & (depth > 0), depth, jnp.inf)
    if mode == "min":
        return depth.reshape(*lead, H // p, p, W // p, p).min(axis=(-3, -1))
    if mode == "center":
        return depth[..., p // 2 :: p, p // 2 :: p]
    raise ValueError(f"pool_depth mode must be 'min' or 'center', got {mode!r}")


def _cell_centres(grid_hw: tuple[int, int], patch_size: int) -> tuple[jax.Array, jax.Array]:
    """Pixel coordinates (u [1, wp], v [hp, 1]) of the token-cell centres."""
    hp, wp = grid_hw
    u = (jnp.arange(wp, dtype=jnp.float32) + 0.5) * patch_size
    v = (jnp.arange(hp, dtype=jnp.float32) + 0.5) * patch_size
    return u[None, :], v[:, None]


def unproject_tokens(
    depth_Bhw: jax.Array, camera_to_world_B44: jax.Array, intrinsics_B33: jax.Array, patch_size: int
) -> tuple[jax.Array, jax.Array]:
    """World xyz [..., hp, wp, 3] of each cell's patch-centre ray at its pooled depth, and valid.

    Leading dims of depth, pose [..., 4, 4] and intrinsics [..., 3, 3] broadcast. Invalid cells
    (z not finite or <= 0) get xyz 0 so nothing downstream sees inf or nan.
    """
    z = jnp.asarray(depth_Bhw, jnp.float32)
    pose = jnp.asarray(camera_to_world_B44, jnp.float32)[..., None, None, :, :]
    K = jnp.asarray(intrinsics_B33, jnp.float32)[..., None, None, :, :]
    valid = jnp.isfinite(z) & (z > 0)
    z = jnp.where(valid, z, 0.0)
    u, v = _cell_centres(z.shape[-2:], patch_size)
    cam = (z * (u - K[..., 0, 2]) / K[..., 0, 0], z * (v - K[..., 1, 2]) / K[..., 1, 1], z)
    xyz = jnp.stack(
        [sum(pose[..., i, j] * cam[j] for j in range(3)) + pose[..., i, 3] for i in range(3)], -1
    )
    return jnp.where(valid[..., None], xyz, 0.0), valid


def frame_entries(
    feature_BThwD: jax.Array,
    depth_BThw: jax.Array,
    camera_to_world_BT44: jax.Array,
    intrinsics_BT33: jax.Array,
    patch_size: int,
    first_frame_B: jax.Array,
    write_BT: jax.Array | None = None,
) -> Entries:
    """The entries of T frames, E = T * hp * wp in (frame, token) order; depth already pooled."""
    b, T, hp, wp, d = feature_BThwD.shape
    xyz, valid = unproject_tokens(depth_BThw, camera_to_world_BT44, intrinsics_BT33, patch_size)
    if write_BT is not None:
        valid = valid & jnp.asarray(write_BT, bool)[:, :, None, None]
    frame_BT = jnp.asarray(first_frame_B, jnp.int32)[:, None] + jnp.arange(T, dtype=jnp.int32)
    n = hp * wp
    return Entries(
        feature_BED=feature_BThwD.reshape(b, T * n, d),
        xyz_BE3=xyz.reshape(b, T * n, 3),
        frame_BE=jnp.broadcast_to(frame_BT[:, :, None], (b, T, n)).reshape(b, T * n),
        token_BE=jnp.broadcast_to(jnp.arange(n, dtype=jnp.int32), (b, T, n)).reshape(b, T * n),
        valid_BE=valid.reshape(b, T * n),
    )


def project_points(
    xyz_BE3: jax.Array,
    camera_to_world_BT44: jax.Array,
    intrinsics_BT33: jax.Array,
    patch_size: int,
    grid_hw: tuple[int, int],
) -> tuple[jax.Array, jax.Array]:
    """Every entry into every target camera: (cell int32 [b, T, E], camera z float32 [b, T, E]).

    cell = row * wp + col with col = floor(u / p), row = floor(v / p) of the pixel coordinates
    (u, v) = (fx x / z + cx, fy y / z + cy), so a patch-centre point lands in its own cell; -1
    where z <= NEAR or outside the grid.
    """
    hp, wp = grid_hw
    xyz = jnp.asarray(xyz_BE3, jnp.float32)[:, None, :, :]  # [b, 1, E, 3]
    pose = jnp.asarray(camera_to_world_BT44, jnp.float32)[:, :, None, :, :]  # [b, T, 1, 4, 4]
    K = jnp.asarray(intrinsics_BT33, jnp.float32)[:, :, None, :, :]
    # The rigid inverse R^T (x - t): exact for a pose, and better conditioned than inv(pose).
    offset = [xyz[..., i] - pose[..., i, 3] for i in range(3)]
    x, y, z = (sum(pose[..., i, j] * offset[i] for i in range(3)) for j in range(3))
    in_front = z > NEAR
    safe_z = jnp.where(in_front, z, 1.0)
    col = jnp.floor((K[..., 0, 0] * (x / safe_z) + K[..., 0, 2]) / patch_size)
    row = jnp.floor((K[..., 1, 1] * (y / safe_z) + K[..., 1, 2]) / patch_size)
    # Bounds tested in float (nan compares False) before any cast, which could overflow.
    inside = in_front & (col >= 0) & (col < wp) & (row >= 0) & (row < hp)
    cell = jnp.where(inside, row * wp + col, -1.0).astype(jnp.int32)
    return cell, z


# ---------------------------------------------------------------- z-buffer


def _segment_winner(segment_E, candidate_E, keys, num_segments: int) -> jax.Array:
    """Per segment, the index of the candidate with the lexicographically greatest keys, or -1.

    One scatter-max per key (an order-independent reduction), keeping the candidates equal to
    their segment's maximum; the entry index is the last key, so the winner is unique.
    """
    index_E = jnp.arange(segment_E.shape[0], dtype=jnp.int32)
    segment_E = jnp.where(candidate_E, segment_E, num_segments)  # the rest: a discarded segment
    alive_E = candidate_E
    for key_E in (*keys, index_E):
        floating = jnp.issubdtype(key_E.dtype, jnp.floating)
        lowest = -jnp.inf if floating else jnp.iinfo(key_E.dtype).min
        best_S = jax.ops.segment_max(
            jnp.where(alive_E, key_E, lowest), segment_E, num_segments=num_segments + 1
        )
        alive_E = alive_E & (key_E == best_S[segment_E])
    return jnp.maximum(best_S[:num_segments], -1)  # empty segments hold int32 min


class Projection(NamedTuple):
    """Memory seen from T target cameras at token resolution."""

    feature_BThwD: jax.Array  # the winner's feature, 0 where no hit
    hit_BThw: jax.Array  # bool
    depth_BThw: jax.Array  # float32 winner's camera z in the target camera, +inf where no hit
    frame_BThw: jax.Array  # int32 winner's frame index, -1 where no hit


def zbuffer_project(
    entries: Entries,
    visible_BTE: jax.Array,
    camera_to_world_BT44: jax.Array,
    intrinsics_BT33: jax.Array,
    patch_size: int,
    grid_hw: tuple[int, int],
) -> Projection:
    """Deterministic z-buffer of the visible entries into each target camera.

    Per cell: the nearest candidate (least camera z); among exactly equal depths the newest frame,
    then the largest token index, then the largest entry index. Differentiable w.r.t. features.
    """
    hp, wp = grid_hw
    cell_BTE, depth_BTE = project_points(
        entries.xyz_BE3, camera_to_world_BT44, intrinsics_BT33, patch_size, grid_hw
    )
    candidate_BTE = entries.valid_BE[:, None, :] & jnp.asarray(visible_BTE, bool) & (cell_BTE >= 0)

    def winners(cell_E, depth_E, candidate_E, frame_E, token_E):
        # -depth: the max of a negation is exactly the min (a scatter-min of depth).
        return _segment_winner(cell_E, candidate_E, (-depth_E, frame_E, token_E), hp * wp)

    per_target = jax.vmap(winners, in_axes=(0, 0, 0, None, None))
    winner_BTn = jax.vmap(per_target)(
        cell_BTE, depth_BTE, candidate_BTE, entries.frame_BE, entries.token_BE
    )
    hit = winner_BTn >= 0
    index = jnp.maximum(winner_BTn, 0)
    feature = jax.vmap(lambda f_ED, i_Tn: f_ED[i_Tn])(entries.feature_BED, index)
    depth = jnp.take_along_axis(depth_BTE, index, axis=-1)
    frame = jax.vmap(lambda f_E, i_Tn: f_E[i_Tn])(entries.frame_BE, index)
    b, T = hit.shape[:2]
    return Projection(
        feature_BThwD=jnp.where(hit[..., None], feature, 0).reshape(b, T, hp, wp, -1),
        hit_BThw=hit.reshape(b, T, hp, wp),
        depth_BThw=jnp.where(hit, depth, jnp.inf).reshape(b, T, hp, wp),
        frame_BThw=jnp.where(hit, frame, _NO_FRAME).reshape(b, T, hp, wp),
    )


# ---------------------------------------------------------------- stores

STORE_KINDS = ("ring", "voxel")


@dataclasses.dataclass(frozen=True)
class StoreSpec:
    """A bounded memory store (static; hashable, so it can be a jit static argument)."""

    kind: str  # "ring": the last `frames` frames' entries; "voxel": `slots` hashed voxel slots
    frames: int  # ring: M frames held (S = M * tokens slots)
    slots: int  # voxel: S slots
    voxel_size: float  # voxel: voxel edge length in world units
    delay: int  # k: frame s is visible to target frames t >= s + k + 1
    tokens: int  # N tokens per frame

    def __post_init__(self):
        def integer(name, low):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
                raise ValueError(f"StoreSpec.{name} must be an integer >= {low}, got {value!r}")

        if self.kind not in STORE_KINDS:
            raise ValueError(f"StoreSpec.kind must be one of {STORE_KINDS}, got {self.kind!r}")
        integer("tokens", 1)
        integer("delay", 0)
        integer("frames", 1 if self.kind == "ring" else 0)
        integer("slots", 1 if self.kind == "voxel" else 0)
        size = self.voxel_size
        if isinstance(size, bool) or not isinstance(size, numbers.Real) or not math.isfinite(size):
            raise ValueError(f"StoreSpec.voxel_size must be a finite number, got {size!r}")
        if size < 0 or (self.kind == "voxel" and size <= 0):
            raise ValueError(f"StoreSpec.voxel_size must be > 0 for a voxel store, got {size!r}")

    @property
    def num_slots(self) -> int:
        """S, the entries the store proper holds per stream."""
        return self.frames * self.tokens if self.kind == "ring" else self.slots


class SpatialStore(NamedTuple):
    """A stream's bounded memory (a pytree; shapes fixed by the StoreSpec)."""

    slots: Entries  # [b, S, ...] the store proper
    pending: Entries  # [b, k N, ...] the last k frames, not yet visible; frame f at (f % k) N
    next_frame_B: jax.Array  # int32 [b] absolute index of the next frame to be written

    @property
    def nbytes(self) -> int:
        return sum(leaf.nbytes for leaf in jax.tree.leaves(self))


# Teschner et al. (2003) spatial-hash primes, then the murmur3 32-bit finaliser so that the low
# bits (all `% slots` sees for small S) depend on every input bit.
_HASH_PRIMES = (73856093, 19349663, 83492791)


def _voxel_slot(xyz_E3: jax.Array, voxel_size: float, slots: int) -> jax.Array:
    """int32 [E] slot of each point's voxel floor(xyz / voxel_size); a fixed hash, mod `slots`."""
    voxel = jnp.clip(jnp.floor(xyz_E3 / jnp.float32(voxel_size)), -(2.0**30), 2.0**30)
    voxel = voxel.astype(jnp.int32).astype(jnp.uint32)  # two's-complement bits of the coordinates
    h = jnp.uint32(0)
    for axis, prime in enumerate(_HASH_PRIMES):
        h = h ^ (voxel[..., axis] * jnp.uint32(prime))  # uint32 products wrap mod 2^32
    h = (h ^ (h >> 16)) * jnp.uint32(0x85EBCA6B)
    h = (h ^ (h >> 13)) * jnp.uint32(0xC2B2AE35)
    h = h ^ (h >> 16)
    return (h % jnp.uint32(slots)).astype(jnp.int32)


def init_store(spec: StoreSpec, batch: int, feature_dim: int, dtype=jnp.float32) -> SpatialStore:
    """An empty store; next frame 0."""
    return SpatialStore(
        slots=empty_entries(batch, spec.num_slots, feature_dim, dtype),
        pending=empty_entries(batch, spec.delay * spec.tokens, feature_dim, dtype),
        next_frame_B=jnp.zeros((batch,), jnp.int32),
    )


def _read(entries: Entries, start_B: jax.Array, count: int) -> Entries:
    """Entries [start, start + count) of each stream."""
    take = lambda x, s: jax.lax.dynamic_slice_in_dim(x, s, count, axis=0)
    return jax.vmap(lambda e, s: jax.tree.map(lambda x: take(x, s), e))(entries, start_B)


def _write(entries: Entries, start_B: jax.Array, new: Entries) -> Entries:
    """Entries with [start, start + len(new)) of each stream replaced by `new`."""
    put = lambda x, y, s: jax.lax.dynamic_update_slice_in_dim(x, y, s, axis=0)
    return jax.vmap(lambda e, n, s: jax.tree.map(lambda x, y: put(x, y, s), e, n))(
        entries, new, start_B
    )


def _voxel_merge(spec: StoreSpec, slots: Entries, new: Entries) -> Entries:
    """One stream: each slot keeps the greatest (frame, token) among its entry and the new ones."""
    pool = jax.tree.map(lambda x, y: jnp.concatenate([x, y]), slots, new)
    own_slot = jnp.arange(spec.slots, dtype=jnp.int32)
    segment = jnp.concatenate([own_slot, _voxel_slot(new.xyz_BE3, spec.voxel_size, spec.slots)])
    winner = _segment_winner(segment, pool.valid_BE, (pool.frame_BE, pool.token_BE), spec.slots)
    kept = jax.tree.map(lambda x: x[jnp.maximum(winner, 0)], pool)
    return _forget(kept, winner < 0)


def store_insert(spec: StoreSpec, store: SpatialStore, new: Entries) -> SpatialStore:
    """Writes one frame ([b, N, ...] entries, stamped with frame index `store.next_frame_B`).

    The frame k frames back leaves `pending` for the store proper and the new frame takes its
    pending slot (k == 0: the new frame goes straight in). Ring: the moved frame f overwrites
    slots [(f % M) N, (f % M + 1) N), evicting frame f - M. Voxel: see `_voxel_merge`; invalid
    entries never overwrite anything.
    """
    N, k = spec.tokens, spec.delay
    if new.valid_BE.shape[1] != N:
        raise ValueError(f"store_insert takes one frame of {N} tokens, got {new.valid_BE.shape[1]}")
    frame_B = store.next_frame_B
    new = Entries(
        feature_BED=new.feature_BED.astype(store.slots.feature_BED.dtype),
        xyz_BE3=new.xyz_BE3.astype(jnp.float32),
        frame_BE=jnp.broadcast_to(frame_B[:, None], new.frame_BE.shape),
        token_BE=new.token_BE.astype(jnp.int32),
        valid_BE=new.valid_BE.astype(bool),
    )
    if k:
        pending_start = (frame_B % k) * N
        moved, moved_frame = _read(store.pending, pending_start, N), frame_B - k
        pending = _write(store.pending, pending_start, new)
    else:
        moved, moved_frame, pending = new, frame_B, store.pending
    if spec.kind == "ring":
        slots = _write(store.slots, (moved_frame % spec.frames) * N, moved)
    else:
        slots = jax.vmap(lambda s, m: _voxel_merge(spec, s, m))(store.slots, moved)
    return SpatialStore(slots, pending, frame_B + 1)


def store_reset(store: SpatialStore, mask_B: jax.Array) -> SpatialStore:
    """Forgets every entry (pending too) of the streams where `mask_B`; next_frame is kept."""
    mask_B = jnp.asarray(mask_B, bool)
    return SpatialStore(
        _forget(store.slots, mask_B), _forget(store.pending, mask_B), store.next_frame_B
    )


def store_entries(store: SpatialStore) -> Entries:
    """Slots ++ pending along the entry axis, for the parallel pass and projection."""
    return jax.tree.map(lambda x, y: jnp.concatenate([x, y], axis=1), store.slots, store.pending)


def _superseded_at(spec: StoreSpec, entries: Entries) -> jax.Array:
    """int32 [b, E]: frame of the next valid entry in the same voxel slot in (frame, token) order.

    _NEVER if none. Sorted by (slot, frame, token, index), an entry sits just before its successor.
    """

    def one_stream(e: Entries):
        slot = _voxel_slot(e.xyz_BE3, spec.voxel_size, spec.slots)
        slot = jnp.where(e.valid_BE, slot, spec.slots)  # invalid entries sort last, never succeed
        index = jnp.arange(slot.shape[0], dtype=jnp.int32)
        order = jnp.lexsort((index, e.token_BE, e.frame_BE, slot))
        slot_sorted, frame_sorted = slot[order], e.frame_BE[order]
        successor = jnp.where(slot_sorted[1:] == slot_sorted[:-1], frame_sorted[1:], _NEVER)
        successor = jnp.concatenate([successor, jnp.array([_NEVER], jnp.int32)])
        return jnp.zeros_like(successor).at[order].set(successor)  # a permutation: no conflicts

    return jax.vmap(one_stream)(entries)


def visible_entries(spec: StoreSpec, entries: Entries, target_frame_BT: jax.Array) -> jax.Array:
    """bool [b, T, E]: the entries a streaming store would hold when target frame t is generated.

    That store has inserted frames < t, so its slots hold frames <= tau = t - k - 1. Ring:
    tau - M < frame <= tau. Voxel: frame <= tau < the frame that supersedes the entry in its slot.
    """
    tau_BT1 = jnp.asarray(target_frame_BT, jnp.int32)[..., None] - spec.delay - 1
    frame_B1E = entries.frame_BE[:, None, :]
    visible = entries.valid_BE[:, None, :] & (frame_B1E <= tau_BT1)
    if spec.kind == "ring":
        return visible & (frame_B1E > tau_BT1 - spec.frames)
    return visible & (tau_BT1 < _superseded_at(spec, entries)[:, None, :])
