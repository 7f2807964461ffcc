"""Runs a test script in a fresh Python process (JAX fixes its device count at start-up, so a
script that fakes N CPU devices with XLA_FLAGS needs its own process)."""

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def run_script(script: str, timeout: float = 600) -> None:
    """Runs `script` from the repository root; it must print "ok" and exit 0."""
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-3000:]
