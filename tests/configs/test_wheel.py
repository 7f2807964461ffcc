"""The built wheel carries the configs (as `lssvwm.configs`): installed in a fresh virtual
environment and run from another folder, it lists them, trains the tiny quickstart by name, and
rolls it out and evaluates it with the README's commands."""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import zipfile

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
# What the build reads (a copy, so that building leaves nothing in the checkout).
BUILD_INPUTS = ("pyproject.toml", "setup.py", "README.md", "lssvwm", "configs")


def run(command, cwd, timeout=900):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    return result.stdout


@pytest.mark.slow
def test_the_wheel_lists_and_trains_the_quickstart_by_name_outside_the_checkout(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in BUILD_INPUTS:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=ignore)
        else:
            shutil.copy(REPO / name, source / name)
    dist = tmp_path / "dist"
    # Built as pip builds it for a user: in isolation, with the setuptools pyproject.toml asks for.
    run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-w", str(dist)], tmp_path)
    (wheel,) = dist.glob("lssvwm-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {p.name for p in (REPO / "configs").glob("*.py")}
    assert {f"lssvwm/configs/{name}" for name in shipped} <= set(names)
    assert not any(name.startswith("configs/") for name in names)  # no top-level `configs`

    # The project's dependencies come from this environment; the package only from the wheel.
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], cwd=tmp_path)
    python = str(venv / "bin" / "python")
    run([python, "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)], cwd=tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = run([python, "-c", "import lssvwm.configs; print(lssvwm.configs.__file__)"], elsewhere)
    assert pathlib.Path(where.strip()).is_relative_to(venv)

    listing = run([python, "-m", "lssvwm.configs"], elsewhere)
    assert "quickstart:tiny" in listing and "maze3d_memory" in listing
    run([python, "-m", "lssvwm.train", "--config=quickstart:tiny", "--workdir=run",
         "--config.data.data_dir=data"], elsewhere)  # fmt: skip
    final = json.loads((elsewhere / "run" / "eval_final.json").read_text())
    assert final["step"] == 4
    # The README's "Rollout and evaluation" commands, on this run instead of /tmp/qs.
    run([python, "-m", "lssvwm.rollout", "--workdir=run", "--frames=1000",
         "--output_dir=run/rollout"], elsewhere)  # fmt: skip
    assert any((elsewhere / "run" / "rollout").iterdir())
    evaluate = ["--workdir=run", "--task=retrieval", "--output=run/eval/retrieval.json"]
    run([python, "-m", "lssvwm.evaluate", *evaluate, "--data=maze3d.test_episodes=32"], elsewhere)
    retrieval = json.loads((elsewhere / "run" / "eval" / "retrieval.json").read_text())
    assert retrieval["num_episodes"] > 0 and retrieval["psnr"] > 0
