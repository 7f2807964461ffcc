"""Mamba-2 mixer (Flax NNX): projection, causal depthwise conv, SSD scan, D skip, gated RMSNorm.

    [z | xBC | dt] = in_proj(u)                       one fused matmul
    xBC            = silu(causal_conv(xBC))          depthwise, kernel K, carried conv state
    x, B, C        = split(xBC)                      B, C per head *group* (not per head)
    y, ssm_state   = ssd(x, softplus(dt + dt_bias), -exp(A_log), B, C)
    out            = out_proj(rms_norm((y + D * x) * silu(z)))

The recurrent state is a `Mamba2State(ssm [b, h, p, n] float32, conv [b, K-1, c])`: the SSM state
and the last K-1 conv inputs (pre-conv x|B|C, c = d_inner + 2 * groups * d_state). `__call__` runs
a whole sequence from a given state and returns the next one; `step` advances one token; both
give the same result (tests/nn/test_mamba2.py).

Resets (a new episode at position l) cut both recurrences: the SSM decay into l is 0 (`ssd`'s
`reset`), and the conv at l and later reads no input from before l. The carried conv state holds
zeros for inputs that precede the latest reset, so a reset stays in force across calls.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from lssvwm.nn.mamba2_fused import causal_conv_silu, gated_rms_norm, split_last
from lssvwm.nn.partitioning import logical, param
from lssvwm.nn.rope import apply_pose_rotation
from lssvwm.ssm import ssd, ssd_step


class Mamba2State(NamedTuple):
    """Recurrent state of one Mamba-2 mixer (a pytree).

    ssm: [b, heads, head_dim, d_state] float32.
    conv: [b, conv_kernel - 1, conv_channels] the last K-1 pre-conv inputs, oldest first, in the
      mixer's compute dtype; inputs from before the latest reset are zero.
    """

    ssm: jax.Array
    conv: jax.Array


def _dt_bias_init(dt_min: float, dt_max: float, floor: float):
    """dt_bias = softplus^-1(dt) for dt log-uniform in [dt_min, dt_max] (Mamba-2's init)."""

    def init(key, shape, dtype=jnp.float32):
        u = jax.random.uniform(key, shape, jnp.float32)
        dt = jnp.exp(u * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = jnp.maximum(dt, floor)
        return (dt + jnp.log(-jnp.expm1(-dt))).astype(dtype)

    return init


def _A_log_init(low: float, high: float):
    """A_log = log(A) for A uniform in [low, high]; the decay rate is -exp(A_log)."""

    def init(key, shape, dtype=jnp.float32):
        return jnp.log(jax.random.uniform(key, shape, jnp.float32, low, high)).astype(dtype)

    return init


def _reset_masks(reset_BL: jax.Array | None, num_lags: int) -> list[jax.Array | None]:
    """valid[j][b, l]: may output l read the input at l - j (no reset in (l - j, l])?

    valid[0] is None (always). Inputs before position 0 come from the carried conv state, whose
    pre-reset entries are already zero, so positions before 0 count as "no reset" here.
    """
    if reset_BL is None:
        return [None] * num_lags
    keep_BL = ~reset_BL.astype(bool)
    length = keep_BL.shape[1]
    masks: list[jax.Array | None] = [None]
    valid = None
    for lag in range(1, num_lags):
        # keep[l - (lag - 1)]: the position entered when reaching one step further back.
        keep_shifted = jnp.pad(keep_BL, ((0, 0), (lag - 1, 0)), constant_values=True)[:, :length]
        valid = keep_shifted if valid is None else valid & keep_shifted
        masks.append(valid)
    return masks


class Mamba2Mixer(nnx.Module):
    """The Mamba-2 sequence mixer over `[b, l, d_model]` with an explicit recurrent state.

    Args:
      d_model: input and output width.
      d_state: SSM state size n.
      head_dim: SSM head width p; heads = expand * d_model / head_dim.
      expand: inner width factor.
      n_groups: head groups sharing B and C (heads must be a multiple).
      conv_kernel: taps of the causal depthwise conv.
      chunk_size: chunk length of the SSD scan.
      scan_method: `lssvwm.ssm.ScanMethod` value handed to `ssd`.
      dt_min, dt_max, dt_init_floor: range of the initial step sizes.
      A_init_range: range of the initial decay rates -A.
      norm_eps: epsilon of the gated RMSNorm.
      use_bias: biases on the in/out projections.
      dtype: compute dtype of projections and conv (None: float32). The scan accumulates in
        float32 and its state is float32 whatever this is.
      param_dtype: dtype of the projection and conv weights (A_log, dt_bias, D stay float32).
      pose_pairs: pairs of B's and C's state dimensions rotated by the camera pose
        (lssvwm/nn/rope.py; 0: none). B_s . C_t on them is then a function of the pose
        difference, so the state is a memory addressed by where a token was seen -- what made
        attention look places up. With it, every call takes `pose_angles [b, l, pose_pairs]`.
    """

    def __init__(
        self,
        d_model: int,
        *,
        d_state: int = 64,
        head_dim: int = 64,
        expand: int = 2,
        n_groups: int = 1,
        conv_kernel: int = 4,
        chunk_size: int = 64,
        scan_method: str = "auto",
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        dt_init_floor: float = 1e-4,
        A_init_range: tuple[float, float] = (1.0, 16.0),
        norm_eps: float = 1e-5,
        use_bias: bool = False,
        dtype=None,
        param_dtype=jnp.float32,
        pose_pairs: int = 0,
        rngs: nnx.Rngs,
    ):
        d_inner = expand * d_model
        if d_inner % head_dim:
            raise ValueError(
                f"expand * d_model ({d_inner}) must be a multiple of head_dim ({head_dim})"
            )
        heads = d_inner // head_dim
        if heads % n_groups:
            raise ValueError(f"heads ({heads}) must be a multiple of n_groups ({n_groups})")
        if conv_kernel < 1:
            raise ValueError(f"conv_kernel must be >= 1, got {conv_kernel}")
        if not 0 <= pose_pairs <= d_state // 2:
            raise ValueError(
                f"pose_pairs must be in [0, d_state / 2 = {d_state // 2}], got {pose_pairs}"
            )
        self.pose_pairs = pose_pairs
        self.d_model = d_model
        self.d_state = d_state
        self.head_dim = head_dim
        self.d_inner = d_inner
        self.heads = heads
        self.n_groups = n_groups
        self.conv_kernel = conv_kernel
        self.chunk_size = chunk_size
        self.scan_method = scan_method
        self.norm_eps = norm_eps
        self.dtype = dtype or jnp.float32
        self.conv_channels = d_inner + 2 * n_groups * d_state
        f32 = jnp.float32

        self.in_proj = nnx.Linear(
            d_model,
            2 * d_inner + 2 * n_groups * d_state + heads,  # z | x | B | C | dt
            use_bias=use_bias,
            dtype=self.dtype,
            param_dtype=param_dtype,
            kernel_init=logical(nnx.initializers.lecun_normal(), ("embed", "ssm_inner")),
            bias_init=logical(nnx.initializers.zeros_init(), ("ssm_inner",)),
            rngs=rngs,
        )
        # PyTorch's default conv init (fan_in = kernel taps), as in the reference Mamba-2.
        bound = 1.0 / math.sqrt(conv_kernel)
        conv_init = nnx.initializers.uniform(2 * bound)
        shifted = lambda key, shape, dtype: conv_init(key, shape, dtype) - bound
        self.conv_weight = param(
            rngs,
            shifted,
            (conv_kernel, self.conv_channels),
            ("conv_kernel", "ssm_inner"),
            param_dtype,
        )
        self.conv_bias = param(rngs, shifted, (self.conv_channels,), ("ssm_inner",), param_dtype)
        self.dt_bias = param(
            rngs, _dt_bias_init(dt_min, dt_max, dt_init_floor), (heads,), ("heads",), f32
        )
        self.A_log = param(rngs, _A_log_init(*A_init_range), (heads,), ("heads",), f32)
        self.D = param(rngs, nnx.initializers.ones_init(), (heads,), ("heads",), f32)
        self.norm_scale = param(
            rngs, nnx.initializers.ones_init(), (d_inner,), ("ssm_inner",), param_dtype
        )
        self.out_proj = nnx.Linear(
            d_inner,
            d_model,
            use_bias=use_bias,
            dtype=self.dtype,
            param_dtype=param_dtype,
            kernel_init=logical(nnx.initializers.lecun_normal(), ("ssm_inner", "embed")),
            bias_init=logical(nnx.initializers.zeros_init(), ("embed",)),
            rngs=rngs,
        )

    # ---- state --------------------------------------------------------------------------------

    def init_state(self, batch_size: int) -> Mamba2State:
        """The zero state (an empty history) for `batch_size` sequences."""
        return Mamba2State(
            ssm=jnp.zeros((batch_size, self.heads, self.head_dim, self.d_state), jnp.float32),
            conv=jnp.zeros((batch_size, self.conv_kernel - 1, self.conv_channels), self.dtype),
        )

    def _check_state(self, state: Mamba2State, batch: int) -> None:
        want_ssm = (batch, self.heads, self.head_dim, self.d_state)
        want_conv = (batch, self.conv_kernel - 1, self.conv_channels)
        if tuple(state.ssm.shape) != want_ssm:
            raise ValueError(f"state.ssm must be [b, h, p, n] = {want_ssm}, got {state.ssm.shape}")
        if tuple(state.conv.shape) != want_conv:
            raise ValueError(
                f"state.conv must be [b, K-1, c] = {want_conv}, got {state.conv.shape}"
            )

    # ---- pieces shared by __call__ and step ---------------------------------------------------

    def _split_projection(self, zxbcdt):
        """[..., z | xBC | dt] -> (z, xBC, dt); the backward writes one concatenated gradient."""
        return split_last(zxbcdt, (self.d_inner, self.conv_channels, self.heads))

    def _split_conv_output(self, xBC):
        gn = self.n_groups * self.d_state
        lead = xBC.shape[:-1]
        x, B, C = split_last(xBC, (self.d_inner, gn, gn))
        return (
            x.reshape(*lead, self.heads, self.head_dim),
            B.reshape(*lead, self.n_groups, self.d_state),
            C.reshape(*lead, self.n_groups, self.d_state),
        )

    def _turn_by_pose(self, B_LGN, C_LGN, pose_angles_LN):
        """B and C [..., l, g, n] with their last `pose_pairs` pairs rotated by the pose."""
        if not self.pose_pairs:
            return B_LGN, C_LGN
        lead = B_LGN.shape[:-2]
        expected = lead + (self.pose_pairs,)
        if pose_angles_LN is None or tuple(pose_angles_LN.shape) != expected:
            got = None if pose_angles_LN is None else tuple(pose_angles_LN.shape)
            raise ValueError(
                f"this SSM turns B and C by pose: needs pose_angles {expected}, got {got}"
            )
        # apply_pose_rotation works on [b, t, S, H, P]: here one "token" per position, G heads.
        angles = pose_angles_LN.reshape(-1, 1, self.pose_pairs)
        turn = lambda x: apply_pose_rotation(x.reshape(-1, 1, 1, *x.shape[-2:]), angles)
        return turn(B_LGN).reshape(B_LGN.shape), turn(C_LGN).reshape(C_LGN.shape)

    def _ssm_inputs(self, dt_raw):
        dt = jax.nn.softplus(dt_raw.astype(jnp.float32) + self.dt_bias[...])
        A = -jnp.exp(self.A_log[...])
        return dt, A

    def _gated_output(self, y_HP, x_HP, z):
        """out_proj(rms_norm((y + D x) * silu(z))), normalised in float32.

        The norm's scale is folded into the output projection's kernel (diag(scale) @ W): a
        weight-sized product instead of one more pass over the activations, forward and backward.
        """
        y = gated_rms_norm(y_HP, x_HP, z, self.D[...], self.norm_eps)
        kernel = self.norm_scale[...][:, None] * self.out_proj.kernel[...]
        out = jnp.einsum("...e,ed->...d", y.astype(self.dtype), kernel.astype(self.dtype))
        if self.out_proj.bias is not None:
            out = out + self.out_proj.bias[...].astype(self.dtype)
        return out

    # ---- full sequence ------------------------------------------------------------------------

    def _causal_conv_silu(self, xBC_BLC, conv_BKC, reset_BL):
        """silu(depthwise causal conv), fused (lssvwm/nn/mamba2_fused.py); returns (out, next
        conv state)."""
        K = self.conv_kernel
        L = xBC_BLC.shape[1]
        valid = _reset_masks(reset_BL, K)
        out = causal_conv_silu(
            xBC_BLC,
            conv_BKC,
            self.conv_weight[...].astype(xBC_BLC.dtype),
            self.conv_bias[...].astype(xBC_BLC.dtype),
            None if reset_BL is None else tuple(valid[1:]),
        )
        # The last K-1 inputs, oldest first (from the carried state too when L < K-1). Not a
        # slice of concat(state, x): XLA would store that whole concatenation.
        if L >= K - 1:
            next_conv = xBC_BLC[:, L - (K - 1) :]
        else:
            next_conv = jnp.concatenate([conv_BKC[:, L:].astype(xBC_BLC.dtype), xBC_BLC], axis=1)
        if reset_BL is not None and K > 1:
            # Entry i (lag K-2-i from the last position) survives only without a later reset.
            keep = [valid[K - 2 - i] for i in range(K - 1)]
            keep_BK = jnp.stack(
                [jnp.ones_like(reset_BL[:, -1], bool) if k is None else k[:, -1] for k in keep],
                axis=1,
            )
            next_conv = jnp.where(keep_BK[..., None], next_conv, 0)
        return out, next_conv

    def __call__(
        self,
        u_BLD: jax.Array,
        state: Mamba2State | None = None,
        *,
        reset: jax.Array | None = None,
        pose_angles_BLN: jax.Array | None = None,
    ) -> tuple[jax.Array, Mamba2State]:
        """Runs a whole sequence.

        Args:
          u_BLD: [b, l, d_model] inputs.
          state: the state after the previous call (default: zero state).
          reset: optional [b, l] 0/1; 1 starts a new episode at that position (SSM and conv).
          pose_angles_BLN: [b, l, pose_pairs] each position's pose angles (with `pose_pairs`).

        Returns:
          y [b, l, d_model] in the compute dtype and the state after the last position.
        """
        if u_BLD.ndim != 3 or u_BLD.shape[-1] != self.d_model:
            raise ValueError(f"input must be [b, l, {self.d_model}], got {u_BLD.shape}")
        b, L, _ = u_BLD.shape
        if state is None:
            state = self.init_state(b)
        self._check_state(state, b)
        if reset is not None and reset.shape != (b, L):
            raise ValueError(f"reset must be [b, l] = {(b, L)}, got {reset.shape}")

        z, xBC, dt_raw = self._split_projection(self.in_proj(u_BLD))
        xBC, next_conv = self._causal_conv_silu(xBC, state.conv, reset)
        x_BLHP, B_BLGN, C_BLGN = self._split_conv_output(xBC)
        B_BLGN, C_BLGN = self._turn_by_pose(B_BLGN, C_BLGN, pose_angles_BLN)
        dt_BLH, A_H = self._ssm_inputs(dt_raw)
        y_BLHP, next_ssm = ssd(
            x_BLHP,
            dt_BLH,
            A_H,
            B_BLGN,
            C_BLGN,
            chunk_size=self.chunk_size,
            initial_state=state.ssm,
            reset=reset,
            method=self.scan_method,
        )
        return self._gated_output(y_BLHP, x_BLHP, z), Mamba2State(next_ssm, next_conv)

    # ---- one token ----------------------------------------------------------------------------

    def step(
        self,
        u_BD: jax.Array,
        state: Mamba2State,
        *,
        reset: jax.Array | None = None,
        pose_angles_BN: jax.Array | None = None,
    ) -> tuple[jax.Array, Mamba2State]:
        """Advances one token: u_BD [b, d_model], optional reset [b], pose_angles_BN
        [b, pose_pairs] -> (y [b, d_model], state)."""
        if u_BD.ndim != 2 or u_BD.shape[-1] != self.d_model:
            raise ValueError(f"input must be [b, {self.d_model}], got {u_BD.shape}")
        b = u_BD.shape[0]
        self._check_state(state, b)
        if reset is not None and reset.shape != (b,):
            raise ValueError(f"reset must be [b] = {(b,)}, got {reset.shape}")

        z, xBC, dt_raw = self._split_projection(self.in_proj(u_BD))
        conv = state.conv.astype(xBC.dtype)
        if reset is not None:
            conv = jnp.where(reset.astype(bool)[:, None, None], 0, conv)
        window_BKC = jnp.concatenate([conv, xBC[:, None]], axis=1)
        w_KC = self.conv_weight[...].astype(xBC.dtype)
        xBC = jnp.einsum("bkc,kc->bc", window_BKC, w_KC) + self.conv_bias[...].astype(xBC.dtype)
        x_BHP, B_BGN, C_BGN = self._split_conv_output(jax.nn.silu(xBC))
        B_BGN, C_BGN = self._turn_by_pose(B_BGN, C_BGN, pose_angles_BN)
        dt_BH, A_H = self._ssm_inputs(dt_raw)
        y_BHP, next_ssm = ssd_step(state.ssm, x_BHP, dt_BH, A_H, B_BGN, C_BGN, reset=reset)
        return self._gated_output(y_BHP, x_BHP, z), Mamba2State(next_ssm, window_BKC[:, 1:])
