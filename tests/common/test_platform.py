"""`lssvwm.common.platform`: what the library traces for, and `compiling_for` another platform."""

import jax
import jax.numpy as jnp
import pytest

from lssvwm.common.platform import backend_platform, compiling_for, target_platform
from lssvwm.nn.attention_kernels import resolve_attention_implementation
from lssvwm.ssm import scan

# Inputs cuDNN's fused attention accepts (bfloat16, head dim 64, even tokens per frame).
QUALIFIED = dict(dtype=jnp.bfloat16, head_dim=64, tokens_per_frame=4)


def test_target_is_this_backend_unless_compiling_for_another():
    assert target_platform() == backend_platform()
    if jax.default_backend() == "cpu":
        assert backend_platform() == "cpu"
    with compiling_for("tpu"):
        assert target_platform() == "tpu"
        with compiling_for("cuda"):  # nested: the innermost wins, then the outer comes back
            assert target_platform() == "cuda"
        assert target_platform() == "tpu"
    assert target_platform() == backend_platform()


def test_the_platform_is_restored_after_an_error_inside():
    with pytest.raises(KeyError):
        with compiling_for("tpu"):
            raise KeyError("inside")
    assert target_platform() == backend_platform()


def test_an_unknown_platform_is_a_one_line_error():
    with pytest.raises(ValueError, match=r"^platform must be one of .*'gpu'"):
        with compiling_for("gpu"):  # JAX's name does not tell CUDA from ROCm
            pass


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the CPU's own choices")
def test_trace_time_choices_follow_the_target():
    # The SSD schedule: one chunk per loop step on CPU, all chunks at once on accelerators.
    assert scan._chunks_per_step_for_backend() == 1
    for platform in ("tpu", "cuda"):
        with compiling_for(platform):
            assert scan._chunks_per_step_for_backend() is None
    # The attention kernel of "auto": cuDNN only when tracing for an NVIDIA GPU.
    assert resolve_attention_implementation("auto", **QUALIFIED) == "xla"
    with compiling_for("cuda"):
        assert resolve_attention_implementation("auto", **QUALIFIED) == "cudnn"
        assert resolve_attention_implementation("cudnn", **QUALIFIED) == "cudnn"
    with compiling_for("tpu"):
        assert resolve_attention_implementation("auto", **QUALIFIED) == "xla"
