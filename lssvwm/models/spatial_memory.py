"""The spatial-memory reader of the `spatial_memory` mixer: store, project, inject.

What is stored (after Mirage's latent spatial memory, whose cache holds VAE latents): the patch
embedding of each clean RGB-D frame (`PatchEmbed.features`, no position embedding: the content
of a token, not the grid cell it was seen in), one entry per token, at the world position of
the patch-centre ray at the patch's pooled depth (lssvwm/nn/spatial_memory.py). The store is
bounded (a ring of the last M frames, or hashed voxel slots), so a rollout's cost per frame is
constant, and an entry becomes visible k frames after it was written: the attention window
already shows the last k frames.

What is read: for every frame, the store projected into the frame's camera with a deterministic
z-buffer at token resolution: per token cell the nearest stored feature, a hit flag, its
disparity in the target camera and its age. These are encoded (`encode`) and enter the tokens
through zero-initialised projections (`inject`), before the first block (`memory_layers=
"input"`) or before every block (`"all"`), so a fresh model ignores its memory, as Mirage's
VACE hints start from zero.

Parallel and streaming agree: the parallel pass gives frame t the entries a store that had
inserted every frame <= t - k - 1 one at a time would hold (`visible_entries`), and returns the
store after the last frame; `step` reads the carried store and returns the candidate store with
the frame inserted. Which frames are written: in the parallel pass with `clean_frames` (training),
every clean frame; otherwise the frames themselves where their noise level is at most
WRITE_MAX_LEVEL: a frame committed as pure noise (the blind memory probe) is not remembered.

Training regularisers (with an rng): whole-memory dropout for a fraction of frames, random entry
dropout, Gaussian noise on stored features.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from lssvwm.models.inputs import decode_depth
from lssvwm.nn import spatial_memory as geometry
from lssvwm.nn.embed import dense, layer_norm, sinusoidal_features

# A frame fed at a noise level above this carries too little of its content to be remembered.
WRITE_MAX_LEVEL = 0.5
AGE_FEATURES = 16  # sin/cos features of the entry's age in frames
EXTRA_FEATURES = 2 + AGE_FEATURES  # hit flag, disparity, age


def store_spec(config) -> geometry.StoreSpec:
    """The store of a `WorldModelConfig` (delay = the attention window k)."""
    return geometry.StoreSpec(
        kind=config.memory_store,
        frames=config.memory_frames,
        slots=config.memory_slots,
        voxel_size=config.memory_voxel_size,
        delay=config.attention_window,
        tokens=config.tokens_per_frame,
    )


class SpatialMemoryReader(nnx.Module):
    """Store management, z-buffer readout and zero-initialised injection (module docstring)."""

    def __init__(self, config, *, rngs: nnx.Rngs, dtype=None, param_dtype=jnp.float32):
        self.config = config
        self.spec = store_spec(config)
        self.dtype = dtype
        width = config.width
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.encode = dense(width + EXTRA_FEATURES, width, ("embed", "embed"), **kw)
        injections = 1 if config.memory_layers == "input" else config.depth
        self.inject = nnx.List(
            [dense(width, width, ("embed", "embed"), zero=True, **kw) for _ in range(injections)]
        )

    # ---- store ----------------------------------------------------------------------------------

    def init_store(self, batch: int) -> geometry.SpatialStore:
        return geometry.init_store(self.spec, batch, self.config.width)

    def _entries(self, features_BThwD, frames_BTHWC, actions_camera, first_frame_B, write_BT):
        """The entries of T frames: their features at the unprojected patch-centre rays."""
        camera_to_world, intrinsics = actions_camera
        depth_BTHW = decode_depth(frames_BTHWC[..., 3], self.config.depth_near)
        depth_BThw = geometry.pool_depth(depth_BTHW, self.config.patch_size, self.config.depth_pool)
        return geometry.frame_entries(
            features_BThwD.astype(jnp.float32),
            depth_BThw,
            camera_to_world,
            intrinsics,
            self.config.patch_size,
            first_frame_B,
            write_BT,
        )

    # ---- readout --------------------------------------------------------------------------------

    def _encode(self, projection: geometry.Projection, target_frame_BT) -> jax.Array:
        hit = projection.hit_BThw
        hit_f = hit[..., None].astype(jnp.float32)
        feature = layer_norm(projection.feature_BThwD.astype(jnp.float32)) * hit_f
        disparity = jnp.where(
            hit, self.config.depth_near / jnp.maximum(projection.depth_BThw, 1e-6), 0.0
        )
        age = jnp.where(hit, target_frame_BT[:, :, None, None] - projection.frame_BThw, 0)
        age_features = sinusoidal_features(age.astype(jnp.float32), AGE_FEATURES, 1000.0) * hit_f
        extras = jnp.concatenate([hit_f, jnp.clip(disparity, 0, 1)[..., None], age_features], -1)
        encoded = self.encode(
            jnp.concatenate([feature, extras], axis=-1).astype(self.dtype or jnp.float32)
        )
        return jax.nn.gelu(encoded, approximate=True)

    def _project(self, entries, visible_BTE, actions_camera):
        camera_to_world, intrinsics = actions_camera
        return geometry.zbuffer_project(
            entries,
            visible_BTE,
            camera_to_world,
            intrinsics,
            self.config.patch_size,
            self.config.grid_hw,
        )

    def read_parallel(
        self, features_BThwD, frames_BTHWC, noise_level_BT, camera, store, *, clean, rng=None
    ):
        """(memory [b, t, hp, wp, d], store after the t frames) for a parallel pass.

        `features`/`frames` are those of the frames to remember (the clean frames in training);
        `clean`: write every frame (else only those at noise level <= WRITE_MAX_LEVEL)."""
        b, t = frames_BTHWC.shape[:2]
        if store is None:
            store = self.init_store(b)
        first_B = store.next_frame_B
        write_BT = jnp.ones((b, t), bool) if clean else noise_level_BT <= WRITE_MAX_LEVEL
        new = self._entries(features_BThwD, frames_BTHWC, camera, first_B, write_BT)
        entries = jax.tree.map(
            lambda a, c: jnp.concatenate([a, c], axis=1), geometry.store_entries(store), new
        )
        target_BT = first_B[:, None] + jnp.arange(t, dtype=jnp.int32)[None]
        visible_BTE = geometry.visible_entries(self.spec, entries, target_BT)
        if rng is not None:
            entries, visible_BTE = self._regularise(entries, visible_BTE, rng)
        memory = self._encode(self._project(entries, visible_BTE, camera), target_BT)
        return memory, self._insert_frames(store, new, t)

    def _insert_frames(self, store, new, frames: int):
        """The store after inserting the t frames of `new` ([b, t * N] entries) one by one."""
        n = self.spec.tokens
        per_frame = jax.tree.map(
            lambda a: jnp.moveaxis(a.reshape(a.shape[0], frames, n, *a.shape[2:]), 1, 0), new
        )

        def insert(store, frame_entries):
            return geometry.store_insert(self.spec, store, frame_entries), None

        store, _ = jax.lax.scan(insert, store, per_frame)
        return store

    def read_step(self, features_BThwD, frames_BTHWC, noise_level_BT, camera, store):
        """(memory [b, 1, hp, wp, d], candidate store with this frame inserted) for one frame."""
        target_BT = store.next_frame_B[:, None]
        visible_BTE = store.slots.valid_BE[:, None, :]
        memory = self._encode(self._project(store.slots, visible_BTE, camera), target_BT)
        write_BT = noise_level_BT <= WRITE_MAX_LEVEL
        new = self._entries(features_BThwD, frames_BTHWC, camera, store.next_frame_B, write_BT)
        return memory, geometry.store_insert(self.spec, store, new)

    def _regularise(self, entries, visible_BTE, rng):
        """Training: whole-memory dropout per frame, entry dropout, feature noise."""
        config = self.config
        rng_frames, rng_entries, rng_noise = jax.random.split(rng, 3)
        b, t, e = visible_BTE.shape
        keep_frame = jax.random.bernoulli(rng_frames, 1.0 - config.memory_dropout, (b, t, 1))
        keep_entry = jax.random.bernoulli(rng_entries, 1.0 - config.memory_entry_dropout, (b, 1, e))
        visible_BTE = visible_BTE & keep_frame & keep_entry
        if config.memory_feature_noise > 0:
            noise = jax.random.normal(rng_noise, entries.feature_BED.shape, jnp.float32)
            entries = entries._replace(
                feature_BED=entries.feature_BED + config.memory_feature_noise * noise
            )
        return entries, visible_BTE

    def injection(self, layer: int, memory_BThwD) -> jax.Array | None:
        """What block `layer` adds to its input tokens (None: nothing)."""
        if self.config.memory_layers == "input":
            return self.inject[0](memory_BThwD) if layer == 0 else None
        return self.inject[layer](memory_BThwD)
