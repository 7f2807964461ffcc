"""The run directory's guards (lssvwm.common.run_directory): the lock, config.json, leftovers."""

import json
import os
import subprocess
import sys
import time

import pytest

from lssvwm.common import run_directory
from lssvwm.common.errors import LssvwmError, RunDirectoryError
from lssvwm.common.run_directory import WorkdirLock

CONFIG = {"model": {"width": 32, "sizes": [1, 2]}, "training": {"steps": 4, "log_every": 1}}


def text(config) -> str:
    return json.dumps(config, indent=2, sort_keys=True)


def test_a_second_lock_names_the_holder_pid_and_a_release_frees_it(tmp_path):
    workdir = tmp_path / "run"
    with WorkdirLock(workdir) as lock:  # creates the directory
        assert lock.path.read_text() == f"{os.getpid()}\n"
        with pytest.raises(RunDirectoryError) as caught:
            WorkdirLock(workdir).acquire()  # another open file: flock excludes it
        message = str(caught.value)
        assert "\n" not in message and f"pid {os.getpid()}" in message and str(workdir) in message
        assert isinstance(caught.value, LssvwmError)
    with pytest.raises(KeyError), WorkdirLock(workdir):  # released on an exception too
        raise KeyError("boom")
    with WorkdirLock(workdir):
        pass


def test_the_lock_of_another_process_names_its_pid_and_dies_with_it(tmp_path):
    workdir = tmp_path / "run"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from lssvwm.common.run_directory import WorkdirLock; "
            f"lock = WorkdirLock({str(workdir)!r}); lock.acquire(); print('held', flush=True); "
            "time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(
            RunDirectoryError, match=rf"in use by another trainer \(pid {holder.pid},"
        ):
            WorkdirLock(workdir).acquire()
    finally:
        holder.kill()
        holder.wait()
    with WorkdirLock(workdir):  # the kernel dropped the dead holder's lock: no stale lock
        pass


def test_config_json_of_another_config_is_refused_only_when_the_run_has_checkpoints(tmp_path):
    (tmp_path / "config.json").write_text(text(CONFIG))
    other = {**CONFIG, "training": {"steps": 8, "log_every": 1}}
    run_directory.check_config(tmp_path, text(other), has_checkpoints=False)  # may overwrite
    run_directory.check_config(tmp_path, text(CONFIG), has_checkpoints=True)  # the same
    with pytest.raises(RunDirectoryError) as caught:
        run_directory.check_config(tmp_path, text(other), has_checkpoints=True)
    message = str(caught.value)
    assert "\n" not in message
    assert "training.steps: 4 in config.json, 8 now" in message and "log_every" not in message
    assert (tmp_path / "config.json").read_text() == text(CONFIG)  # nothing written
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(RunDirectoryError, match="cannot be read"):
        run_directory.check_config(tmp_path, text(CONFIG), has_checkpoints=True)


def test_a_key_the_code_added_since_with_its_default_is_the_same_config(tmp_path):
    (tmp_path / "config.json").write_text(text(CONFIG))
    newer = {**CONFIG, "training": {**CONFIG["training"], "nonfinite": "skip"}}
    defaults = {"training.nonfinite": "skip"}
    run_directory.check_config(tmp_path, text(newer), True, defaults)
    assert not run_directory.write_config(tmp_path, text(newer), defaults)  # left as it was
    assert (tmp_path / "config.json").read_text() == text(CONFIG)
    changed = {**CONFIG, "training": {**CONFIG["training"], "nonfinite": "stop"}}
    with pytest.raises(
        RunDirectoryError, match='training.nonfinite: absent in config.json, "stop"'
    ):
        run_directory.check_config(tmp_path, text(changed), True, defaults)


def test_resumable_keys_may_change_and_the_rest_may_not(tmp_path):
    (tmp_path / "config.json").write_text(text(CONFIG))
    extended = {**CONFIG, "training": {"steps": 8, "log_every": 5}, "mesh": {"process_id": 1}}
    resumable = ("training.steps", "training.log_every", "mesh")
    run_directory.check_config(tmp_path, text(extended), True, resumable=resumable)
    assert run_directory.write_config(tmp_path, text(extended))  # config.json tells the truth
    with pytest.raises(RunDirectoryError, match="training.log_every"):
        run_directory.check_config(
            tmp_path, text(CONFIG), True, resumable=("training.steps", "mesh")
        )
    # A section name covers its keys, never a key that merely starts alike.
    assert run_directory.config_differences({"meshy": 1}, {"meshy": 2}, resumable=("mesh",))


def test_write_config_writes_when_absent_or_different_and_not_when_identical(tmp_path):
    path = tmp_path / "run" / "config.json"
    assert run_directory.write_config(path.parent, text(CONFIG))
    before = path.stat().st_mtime_ns
    time.sleep(0.01)
    assert not run_directory.write_config(path.parent, text(CONFIG))
    assert path.stat().st_mtime_ns == before
    other = {**CONFIG, "seed": 1}
    assert run_directory.write_config(path.parent, text(other))
    assert json.loads(path.read_text()) == other
    assert [p.name for p in path.parent.iterdir()] == ["config.json"]  # no temporary left


def test_save_leftovers_are_removed_and_damaged_steps_set_aside_never_deleted(tmp_path):
    checkpoints = tmp_path / "checkpoints"
    for name in ("2", "4", "6.orbax-checkpoint-tmp", "8.orbax-checkpoint-tmp-1712345678"):
        (checkpoints / name).mkdir(parents=True)
        (checkpoints / name / "file").write_text(name)
    removed = run_directory.remove_save_leftovers(checkpoints)
    assert [p.name for p in removed] == [
        "6.orbax-checkpoint-tmp",
        "8.orbax-checkpoint-tmp-1712345678",
    ]
    assert sorted(p.name for p in checkpoints.iterdir()) == ["2", "4"]
    moved = run_directory.set_aside(checkpoints / "4", tmp_path)
    again = run_directory.set_aside(checkpoints / "2", tmp_path)
    assert moved.parent == tmp_path / "checkpoints_damaged" and moved.name.startswith("4-")
    assert (moved / "file").read_text() == "4" and (again / "file").read_text() == "2"
    assert not any(checkpoints.iterdir())
    assert run_directory.remove_save_leftovers(tmp_path / "absent") == []
