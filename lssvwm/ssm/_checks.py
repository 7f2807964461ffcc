"""Shape checks shared by the SSD entry points; errors name the offending argument."""

from __future__ import annotations


def check_ssd_shapes(x, dt, A, B, C, initial_state=None, reset=None, *, has_length: bool):
    """Validates SSD argument shapes; returns (batch, length or None, heads, head_dim, groups, n).

    With `has_length` the arrays carry a length axis (`x [b, l, h, p]`), as in `ssd`; without it
    they describe one token (`x [b, h, p]`), as in `ssd_step`.
    """
    x_rank = 4 if has_length else 3
    x_desc = "[b, l, h, p]" if has_length else "[b, h, p]"
    if x.ndim != x_rank:
        raise ValueError(f"x must be {x_desc}, got shape {x.shape}")
    if has_length:
        b, l, h, p = x.shape
        lead = (b, l)
    else:
        b, h, p = x.shape
        l = None
        lead = (b,)
    lead_desc = "b, l" if has_length else "b"
    if dt.shape != (*lead, h):
        raise ValueError(f"dt must be [{lead_desc}, h] = {(*lead, h)}, got {dt.shape}")
    if A.shape != (h,):
        raise ValueError(f"A must be [h] = {(h,)}, got {A.shape}")
    if B.ndim != len(lead) + 2 or B.shape[: len(lead)] != lead:
        raise ValueError(f"B must be [{lead_desc}, g, n] with {lead_desc} = {lead}, got {B.shape}")
    g, n = B.shape[-2:]
    if C.shape != B.shape:
        raise ValueError(f"C must have the shape of B {B.shape}, got {C.shape}")
    if h % g:
        raise ValueError(f"heads ({h}) must be a multiple of groups ({g})")
    if initial_state is not None and initial_state.shape != (b, h, p, n):
        raise ValueError(f"state must be [b, h, p, n] = {(b, h, p, n)}, got {initial_state.shape}")
    if reset is not None and reset.shape != lead:
        raise ValueError(f"reset must be [{lead_desc}] = {lead}, got {reset.shape}")
    return b, l, h, p, g, n
