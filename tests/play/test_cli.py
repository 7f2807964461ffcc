"""The player's command line on bad input: one line, exit status 2, before anything serves."""

import shutil
import socket
import subprocess
import sys

import pytest

from lssvwm.play.listening import PortInUseError, bind


def run_player(*flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lssvwm.play", *flags], capture_output=True, text=True, timeout=600
    )


def test_a_port_in_use_is_one_line():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(PortInUseError, match=f"--port={port} on 127.0.0.1 is in use"):
            bind("127.0.0.1", port)
        result = run_player("--workdir=/nonexistent", f"--port={port}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: --port={port} on 127.0.0.1 is in use (another player?): pass another --port, "
        "or --port=0 for any free one"
    ]


def test_a_workdir_without_checkpoints_is_one_line(tiny_run, tmp_path):
    workdir = tmp_path / "no_checkpoints"
    workdir.mkdir()
    shutil.copy(tiny_run[0] / "config.json", workdir / "config.json")
    result = run_player(f"--workdir={workdir}", "--port=0")
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line == f"error: {workdir / 'checkpoints'} does not exist: the run has no checkpoint yet"
