"""The README's Python snippets are complete programs: each runs as a script of its own.

Fast: every block parses and uses no name it does not define (ruff's undefined-name rule), the
mistake of snippets that name inputs they never make. Slow: every block is saved as a script
in an empty temporary directory and run with `python script.py` (no `__main__` guard, not the
repository root), with TFDS's data directory in a temporary folder shared by the blocks.
"""

import importlib.util
import os
import pathlib
import re
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
README = REPO / "README.md"

# Blocks that cannot run everywhere: heading -> (reason, whether it can run here).
NEEDS = {
    "Memory Maze": (
        "needs the optional extra memory-maze and OSMesa or EGL",
        all(importlib.util.find_spec(m) for m in ("memory_maze", "mujoco", "gym")),
    ),
}
# Blocks known not to run as scripts yet: heading -> why (strict: a fixed block fails here,
# so that the mark goes).
NOT_YET: dict[str, str] = {}


def python_blocks() -> list[tuple[str, str]]:
    """(nearest heading above, code) of every ```python block of the README, in order."""
    blocks, heading = [], "README"
    # Fenced blocks are matched whole, so a `# comment` inside one is never taken for a heading.
    pattern = r"^(#+ [^\n]*)$|^```(\w*)\n(.*?)^```$"
    for match in re.finditer(pattern, README.read_text(), re.M | re.S):
        if match.group(1):
            heading = match.group(1).lstrip("#").strip()
        elif match.group(2) == "python":
            blocks.append((heading, match.group(3)))
    return blocks


BLOCKS = python_blocks()
IDS = [re.sub(r"\W+", "_", heading).strip("_").lower() for heading, _ in BLOCKS]


def test_the_readme_has_the_snippets_it_promises():
    headings = [heading for heading, _ in BLOCKS]
    for expected in ("The SSM scan", "The network", "Data", "Memory Maze"):
        assert expected in headings, headings
    assert set(NEEDS) | set(NOT_YET) <= set(headings)


@pytest.mark.parametrize("heading, code", BLOCKS, ids=IDS)
def test_a_snippet_defines_every_name_it_uses(heading, code, tmp_path):
    script = tmp_path / "snippet.py"
    script.write_text(code)
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--isolated", "--select", "F821", str(script)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    _expect_success(heading, result.returncode == 0, result.stdout + result.stderr)


def _expect_success(heading: str, succeeded: bool, output: str) -> None:
    if heading in NOT_YET:
        assert not succeeded, f"{heading} works now: take it out of NOT_YET"
        pytest.xfail(NOT_YET[heading])
    assert succeeded, f"{heading}:\n{output[-4000:]}"


@pytest.fixture(scope="module")
def tfds_data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tfds")


@pytest.mark.slow
@pytest.mark.parametrize("heading, code", BLOCKS, ids=IDS)
def test_a_snippet_runs_as_a_script_from_anywhere(heading, code, tmp_path, tfds_data_dir):
    if heading in NEEDS and not NEEDS[heading][1]:
        pytest.skip(NEEDS[heading][0])
    script = tmp_path / "snippet.py"
    script.write_text(code)
    env = {**os.environ, "TFDS_DATA_DIR": str(tfds_data_dir)}  # never ~/tensorflow_datasets
    env.pop("PYTHONPATH", None)  # the installed package, as a user has it
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    _expect_success(heading, result.returncode == 0, result.stderr)
