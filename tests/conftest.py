"""Suite-wide settings, applied before any test module imports JAX.

Most tests are bound by XLA's CPU compiles of tiny programs, not by running them: LLVM's
optimisation level 0 compiles them ~35% faster (tests/nn/test_mamba2.py: 46 s against 71 s) and
changes no semantics (no fast-math; results are deterministic for given flags, and every
comparison in the suite is between computations compiled under the same flags). The flags go
into the environment, so the CLIs that tests start as subprocesses inherit them; the scripts that
fake N devices add their flag to them. Set LSSVWM_TEST_XLA_OPT=1 to test with
XLA's default optimisation.
"""

import os

_FAST_COMPILE_FLAGS = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"

if os.environ.get("LSSVWM_TEST_XLA_OPT") != "1":
    os.environ["XLA_FLAGS"] = f"{_FAST_COMPILE_FLAGS} {os.environ.get('XLA_FLAGS', '')}".strip()
