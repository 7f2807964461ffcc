"""Setting Memory Maze up: the extra's name works with old pips, a missing GL library is one line.

These run without the extra: the simulator's import is replaced by packages that fail the way
the real ones do.
"""

import pathlib
import re
import sys
import tomllib

import pytest

from lssvwm import cli
from lssvwm.data import memory_maze_env
from lssvwm.errors import LssvwmError

REPO = pathlib.Path(__file__).resolve().parents[2]


def test_the_extra_is_spelled_as_its_metadata_stores_it():
    # Metadata normalises extra names (PEP 685: "memory_maze" is stored as "memory-maze");
    # pip < 23.3 compares the name as typed, so only the stored spelling works with every pip.
    with open(f"{REPO}/pyproject.toml", "rb") as f:
        extras = tomllib.load(f)["project"]["optional-dependencies"]
    for name in extras:
        assert name == re.sub(r"[-_.]+", "-", name).lower(), name
    assert "memory-maze" in extras
    with open(f"{REPO}/README.md") as f:
        readme = f.read()
    assert "pip install -e '.[memory-maze]'" in readme
    assert "[memory_maze]" not in readme


def _fake_memory_maze(tmp_path, monkeypatch, tasks_source):
    package = tmp_path / "memory_maze"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "tasks.py").write_text(tasks_source)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("memory_maze", "memory_maze.tasks"):
        monkeypatch.delitem(sys.modules, name, raising=False)


def test_a_missing_osmesa_is_one_line_naming_what_to_install(tmp_path, monkeypatch):
    # PyOpenGL without libOSMesa: its platform's GL handle is None (the real failure, measured
    # with memory-maze 1.0.3, dm-control 1.0.50 and PyOpenGL 3.1.10 on a host without OSMesa).
    _fake_memory_maze(tmp_path, monkeypatch, "platform_gl = None\nplatform_gl.glGetError\n")
    monkeypatch.setenv("MUJOCO_GL", "osmesa")
    with pytest.raises(memory_maze_env.RenderingBackendError) as caught:
        memory_maze_env.make_environment(9, 64, seed=0)
    message = cli.one_line(caught.value)
    assert "\n" not in message and isinstance(caught.value, LssvwmError)
    assert "MUJOCO_GL=osmesa did not load" in message
    assert "apt-get install libosmesa6" in message and "MUJOCO_GL=egl" in message
    assert "'NoneType' object has no attribute 'glGetError'" in message


def test_a_missing_extra_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "memory_maze", None)  # "import memory_maze" fails
    with pytest.raises(ImportError, match=r"pip install 'lssvwm\[memory-maze\]'"):
        memory_maze_env.make_environment(9, 64, seed=0)


def test_other_errors_of_the_simulator_are_not_blamed_on_gl(tmp_path, monkeypatch):
    _fake_memory_maze(tmp_path, monkeypatch, "raise KeyError('maze_layout')\n")
    with pytest.raises(KeyError, match="maze_layout"):
        memory_maze_env.make_environment(9, 64, seed=0)
