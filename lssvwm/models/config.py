"""`WorldModelConfig`: the validated schema of a config file's `model` section.

A config file builds `config.model` as an ml_collections ConfigDict; `WorldModelConfig.from_mapping`
turns it into this frozen dataclass, raising on unknown keys (a typo never passes silently) and on
inconsistent values (block sizes that do not tile the token grid, an attention window longer than
the training window, ...).

Mixers (one DiT block, different sequence mixers; see lssvwm/nn/dit.py):
  lssvwm         block-wise Mamba-2 (block size per layer) + frame-local attention (k frames)
  mamba2_fla     one full-frame Mamba-2 scan + frame-local attention (paper's Mamba2+FLA)
  mamba2         one full-frame Mamba-2 scan, no attention (paper's Mamba2)
  causal_window  attention over the last W = attention_window frames, no SSM
  causal_full    attention over all previous frames, no SSM (quadratic reference)
  spatial_memory frame-local attention (k frames) + a geometric memory: the clean frames' patch
                 features stored with world positions (depth + camera pose) and projected with a
                 z-buffer into each new camera (lssvwm/nn/spatial_memory.py; RGB-D frames)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp

from lssvwm.config_schema import as_tuples, parse_section
from lssvwm.nn.attention import FrameWindow
from lssvwm.nn.attention_kernels import (
    ATTENTION_IMPLEMENTATIONS,
    cudnn_unsupported,
    resolve_attention_implementation,
)
from lssvwm.nn.blockwise import resolve_block_size
from lssvwm.nn.embed import ACTION_MODES

MIXERS = ("lssvwm", "mamba2_fla", "mamba2", "causal_window", "causal_full", "spatial_memory")
_SSM_MIXERS = ("lssvwm", "mamba2_fla", "mamba2")
_ATTENTION_MIXERS = ("lssvwm", "mamba2_fla", "causal_window", "causal_full", "spatial_memory")
MEMORY_LAYERS = ("input", "all")  # where projected memory enters: before block 1, or every block
DEPTH_POOLS = ("min", "center")
_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}
FULL_FRAME = "full"


@dataclasses.dataclass(frozen=True)
class WorldModelConfig:
    """Hyper-parameters of `lssvwm.models.WorldModel` (frozen; `replace` for variants).

    Frames are `[b, t, H, W, C]` with `image_size = (H, W)`; tokens `[b, t, H/p, W/p, width]`.
    `block_sizes` is cycled over the layers: layer i uses `block_sizes[i % len(block_sizes)]`,
    each entry `(bh, bw)` or "full" (only the `lssvwm` mixer uses them; the Mamba-2 baselines
    scan the full frame). `attention_window` is k for `lssvwm`/`mamba2_fla` and W for
    `causal_window`; `attention_chunk` selects the paper's chunked window (unit = chunk).
    `max_frames` is the training window length (None: unchecked).
    `remat` recomputes each DiT block's activations in the backward pass of the parallel pass
    (memory ~ one block's activations instead of all layers', for ~1/3 more compute).

    Precision (flax's `dtype` / `param_dtype`, MaxText's `dtype` / `weight_dtype`): `dtype` is
    the compute dtype of activations and matmuls, `param_dtype` the dtype parameters are stored
    in -- and so their gradients, the optimizer's moments and the EMA. Mixed precision is
    `dtype="bfloat16"` with `param_dtype="float32"`: weights are cast to bfloat16 at use. Kept in
    float32 whatever `dtype` is: the SSD scan's decay, cumulative sums and state (`lssvwm.ssm`,
    so the carried SSM state too), the norms' statistics (LayerNorm, RMSNorm, gated RMSNorm),
    the attention softmax and its logits' accumulation, rotary angles, the conditioning
    (noise-level and action embeddings), the SSM's A_log, dt_bias and D, the output head
    (`Unpatchify`'s projection: the prediction is float32) and so the diffusion loss. The
    streaming cache keeps the SSM state in float32 and the attention keys/values and the conv
    inputs in the compute dtype. float16 is accepted but untested (there is no loss scaling).
    `attention_impl` picks `jax.nn.dot_product_attention`'s kernel: "xla", "cudnn" (NVIDIA GPUs,
    bfloat16/float16 only; an error elsewhere) or "auto" (cuDNN where it can run, else XLA);
    see `lssvwm.nn.attention_kernels.resolve_attention_implementation`.
    """

    image_size: tuple[int, int] = (32, 32)
    channels: int = 3  # RGB; the spatial_memory mixer generates RGB-D (4, set from 3)
    out_channels: int | None = None  # None: same as channels
    patch_size: int = 4
    width: int = 128
    depth: int = 4
    num_heads: int = 4
    mlp_ratio: float = 4.0
    mixer: str = "lssvwm"
    block_sizes: tuple = (FULL_FRAME,)
    attention_window: int = 10
    attention_chunk: int | None = None
    max_frames: int | None = None
    qk_norm: bool = True
    ssm_state: int = 64
    ssm_head_dim: int = 64
    ssm_expand: int = 2
    ssm_groups: int = 1
    ssm_conv_kernel: int = 4
    ssm_chunk_size: int = 64
    action_mode: str = "pose"
    num_actions: int = 0
    pose_scale: float = 1.0
    relative_pose_scale: float = 1.0
    pose_frequencies: int = 0  # Fourier octaves of the absolute pose (lssvwm/nn/embed.py)
    # Attention pairs turned by the pose: m frequencies each of x, y, heading (lssvwm/nn/rope.py)
    pose_rope_frequencies: int = 0
    pose_rope_ssm: bool = False  # the SSM's B and C pairs turned by the same pose angles too
    frequency_dim: int = 256
    noise_level_scale: float = 1000.0
    dtype: str = "float32"  # compute dtype (_DTYPES); "bfloat16" for mixed precision
    param_dtype: str = "float32"  # parameter (and gradient, optimizer, EMA) dtype
    attention_impl: str = "auto"  # ATTENTION_IMPLEMENTATIONS
    remat: bool = False
    # ---- spatial_memory only (lssvwm/nn/spatial_memory.py) ----
    memory_store: str = "ring"  # "ring" (last memory_frames frames) or "voxel" (hashed slots)
    memory_frames: int = 64  # ring: frames kept (beyond the k frames attention sees)
    memory_slots: int = 1024  # voxel: slots (bounded by the scene, not by time)
    memory_voxel_size: float = 0.5  # voxel: edge in world units (metres)
    memory_layers: str = "input"  # MEMORY_LAYERS
    memory_dropout: float = 0.1  # training: fraction of frames that see no memory at all
    memory_entry_dropout: float = 0.1  # training: fraction of entries dropped per window
    memory_feature_noise: float = 0.0  # training: std of Gaussian noise on stored features
    depth_near: float = 0.25  # RGB-D depth channel = disparity depth_near / depth in [-1, 1]
    depth_pool: str = "min"  # depth to the token grid: DEPTH_POOLS (never bilinear)

    # ---- construction -------------------------------------------------------------------------

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> WorldModelConfig:
        """From a dict or ConfigDict (`config.model`); unknown keys raise a ValueError."""
        return parse_section(cls, mapping, "model")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes) -> WorldModelConfig:
        return dataclasses.replace(self, **changes)

    # ---- derived ------------------------------------------------------------------------------

    @property
    def grid_hw(self) -> tuple[int, int]:
        return (self.image_size[0] // self.patch_size, self.image_size[1] // self.patch_size)

    @property
    def tokens_per_frame(self) -> int:
        return self.grid_hw[0] * self.grid_hw[1]

    @property
    def output_channels(self) -> int:
        return self.channels if self.out_channels is None else self.out_channels

    @property
    def uses_ssm(self) -> bool:
        return self.mixer in _SSM_MIXERS

    @property
    def uses_attention(self) -> bool:
        return self.mixer in _ATTENTION_MIXERS

    @property
    def pose_rotation_pairs(self) -> int:
        """Attention dimension pairs per head turned by the pose (a mixer without attention
        ignores `pose_rope_frequencies`, as it ignores the attention window)."""
        return 3 * self.pose_rope_frequencies if self.uses_attention else 0

    @property
    def ssm_pose_rotation_pairs(self) -> int:
        """Pairs of the SSM's B and C state dimensions turned by the pose (`pose_rope_ssm`)."""
        return 3 * self.pose_rope_frequencies if self.pose_rope_ssm and self.uses_ssm else 0

    @property
    def uses_spatial_memory(self) -> bool:
        return self.mixer == "spatial_memory"

    @property
    def window(self) -> FrameWindow | None:
        """The attention window of every layer (None without attention)."""
        if not self.uses_attention:
            return None
        if self.mixer == "causal_full":
            return FrameWindow.make(None, None, self.max_frames)
        return FrameWindow.make(self.attention_window, self.attention_chunk, self.max_frames)

    @property
    def unit(self) -> int:
        """Frames per streaming step: the attention chunk, else 1."""
        window = self.window
        return 1 if window is None else window.unit

    def layer_block_size(self, layer: int) -> tuple[int, int]:
        """(bh, bw) of layer `layer`'s block-wise scan."""
        if self.mixer != "lssvwm":
            return self.grid_hw
        entry = self.block_sizes[layer % len(self.block_sizes)]
        return resolve_block_size(self.grid_hw, None if entry == FULL_FRAME else entry)

    @property
    def jnp_dtype(self):
        return _DTYPES[self.dtype]

    @property
    def jnp_param_dtype(self):
        return _DTYPES[self.param_dtype]

    @property
    def attention_head_dim(self) -> int:
        return self.width // self.num_heads

    def attention_implementation(self, platform: str | None = None) -> str:
        """`attention_impl` resolved for this process's backend (or `platform`): "xla" or
        "cudnn"; a ValueError for "cudnn" where it cannot run (a mixer without attention: "xla",
        unused)."""
        if not self.uses_attention:
            return "xla"
        return resolve_attention_implementation(
            self.attention_impl,
            dtype=self.jnp_dtype,
            head_dim=self.attention_head_dim,
            tokens_per_frame=self.tokens_per_frame,
            platform=platform,
            key="model.attention_impl",
        )

    # ---- validation ---------------------------------------------------------------------------

    def __post_init__(self):
        object.__setattr__(self, "image_size", as_tuples(self.image_size))
        object.__setattr__(self, "block_sizes", as_tuples(self.block_sizes))
        if len(self.image_size) != 2:
            raise ValueError(f"image_size must be (H, W), got {self.image_size!r}")
        h, w = self.image_size
        if self.patch_size < 1 or h % self.patch_size or w % self.patch_size:
            raise ValueError(f"patch_size {self.patch_size} does not divide image_size {(h, w)}")
        if not isinstance(self.remat, bool):
            raise ValueError(f"remat must be a bool, got {self.remat!r}")
        if self.mixer not in MIXERS:
            raise ValueError(f"mixer must be one of {MIXERS}, got {self.mixer!r}")
        for name in ("width", "depth", "num_heads", "channels", "frequency_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.width % self.num_heads:
            raise ValueError(f"width {self.width} is not divisible by num_heads {self.num_heads}")
        if (self.width // self.num_heads) % 2:
            raise ValueError("attention head width (width / num_heads) must be even (RoPE)")
        if self.width % 4:
            raise ValueError(
                f"width must be a multiple of 4 (2-D position embedding), got {self.width}"
            )
        for name in ("dtype", "param_dtype"):
            if getattr(self, name) not in _DTYPES:
                raise ValueError(
                    f"{name} must be one of {tuple(_DTYPES)}, got {getattr(self, name)!r}"
                )
        if self.attention_impl not in ATTENTION_IMPLEMENTATIONS:
            raise ValueError(
                f"attention_impl must be one of {ATTENTION_IMPLEMENTATIONS}, got "
                f"{self.attention_impl!r}"
            )
        if self.attention_impl == "cudnn" and self.uses_attention:
            # What the inputs decide is checked here, on any machine; the backend when the
            # model is built (`attention_implementation`).
            unsupported = cudnn_unsupported(
                self.jnp_dtype, self.attention_head_dim, self.tokens_per_frame
            )
            if unsupported is not None:
                raise ValueError(f"attention_impl 'cudnn' {unsupported}")
        if self.action_mode not in ACTION_MODES:
            raise ValueError(f"action_mode must be one of {ACTION_MODES}, got {self.action_mode!r}")
        if self.action_mode == "discrete" and self.num_actions < 1:
            raise ValueError("action_mode 'discrete' needs num_actions >= 1")
        if self.pose_frequencies < 0:
            raise ValueError(f"pose_frequencies must be >= 0, got {self.pose_frequencies}")
        if self.pose_rope_frequencies < 0:
            raise ValueError(
                f"pose_rope_frequencies must be >= 0, got {self.pose_rope_frequencies}"
            )
        if self.pose_rope_frequencies:
            if self.action_mode not in ("pose", "pose_and_motion"):
                raise ValueError(
                    "pose_rope_frequencies needs absolute poses (action_mode 'pose' or "
                    f"'pose_and_motion'), got action_mode {self.action_mode!r}"
                )
            half = self.width // self.num_heads // 2
            if self.pose_rotation_pairs >= half:
                raise ValueError(
                    f"pose_rope_frequencies={self.pose_rope_frequencies} turns "
                    f"{self.pose_rotation_pairs} pairs; an attention head has {half}"
                )
            if self.ssm_pose_rotation_pairs > self.ssm_state // 2:
                raise ValueError(
                    f"pose_rope_ssm with pose_rope_frequencies={self.pose_rope_frequencies} turns "
                    f"{self.ssm_pose_rotation_pairs} pairs; ssm_state={self.ssm_state} has "
                    f"{self.ssm_state // 2}"
                )
        if self.pose_rope_ssm and not (self.pose_rope_frequencies and self.uses_ssm):
            raise ValueError(
                "pose_rope_ssm needs pose_rope_frequencies >= 1 and a mixer with an SSM, got "
                f"pose_rope_frequencies={self.pose_rope_frequencies}, mixer={self.mixer!r}"
            )
        if self.uses_ssm:
            inner = self.ssm_expand * self.width
            if inner % self.ssm_head_dim:
                raise ValueError(
                    f"ssm_expand * width ({inner}) is not a multiple of ssm_head_dim "
                    f"({self.ssm_head_dim})"
                )
            if (inner // self.ssm_head_dim) % self.ssm_groups:
                raise ValueError(
                    f"SSM heads ({inner // self.ssm_head_dim}) are not a multiple "
                    f"of ssm_groups ({self.ssm_groups})"
                )
        if self.mixer == "lssvwm":
            if not self.block_sizes:
                raise ValueError("block_sizes needs at least one entry")
            for layer in range(len(self.block_sizes)):
                try:
                    self.layer_block_size(layer)  # raises for sizes that do not tile the grid
                except ValueError as error:
                    raise ValueError(f"block_sizes: {error}") from None
        self.window  # noqa: B018 -- validates window, chunk and max_frames
        if self.uses_spatial_memory:
            self._check_spatial_memory()

    def _check_spatial_memory(self):
        if self.channels == 3:  # RGB data: the spatial memory adds its depth channel itself
            object.__setattr__(self, "channels", 4)
        if self.channels != 4:
            raise ValueError(
                "mixer 'spatial_memory' generates RGB-D frames: model.channels must be 4 "
                f"(RGB + depth; 3 is taken as RGB and extended), got {self.channels}"
            )
        if self.attention_chunk not in (None, 1):
            raise ValueError("mixer 'spatial_memory' needs the exact sliding window (no chunk)")
        if self.memory_store not in ("ring", "voxel"):
            raise ValueError(f"memory_store must be 'ring' or 'voxel', got {self.memory_store!r}")
        if self.memory_layers not in MEMORY_LAYERS:
            raise ValueError(
                f"memory_layers must be one of {MEMORY_LAYERS}, got {self.memory_layers!r}"
            )
        if self.depth_pool not in DEPTH_POOLS:
            raise ValueError(f"depth_pool must be one of {DEPTH_POOLS}, got {self.depth_pool!r}")
        for name in ("memory_frames", "memory_slots"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("memory_dropout", "memory_entry_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.memory_feature_noise < 0:
            raise ValueError(f"memory_feature_noise must be >= 0, got {self.memory_feature_noise}")
        for name in ("memory_voxel_size", "depth_near"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
