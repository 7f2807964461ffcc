"""Building works whatever the caller's `__main__` is (lssvwm.data.shard_writer).

A spawn pool re-imports the parent's `__main__`: a script that builds at top level, with no
`if __name__ == "__main__":` guard, used to break the pool (BrokenProcessPool). The pool now
runs in a child process whose `__main__` is guarded; where the tasks cannot go to another
process, the shards are written in the calling process.
"""

import logging
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import toy_episode_builder as toy

from lssvwm.data import episodes, shard_writer, sources, tfds_common


def test_an_unguarded_script_builds_in_parallel(tmp_path):
    script = tmp_path / "build_at_top_level.py"
    script.write_text(
        textwrap.dedent(
            f"""
            from lssvwm.data import config, sources

            data = config.maze3d_defaults("quickstart_tiny")
            data.data_dir = {str(tmp_path / "tfds")!r}
            data.num_workers = 2
            train = sources.open_split(data, "train")
            print("records", len(train), train[0]["frames"].shape)
            """
        )
    )
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "records 4 (32, 16, 16, 3)" in result.stdout  # 2 episodes x 2 segments of 32 frames
    assert "BrokenProcessPool" not in result.stderr


def test_the_child_reraises_a_worker_error_with_its_traceback(tmp_path):
    builder = toy.FailingToyEpisodes(data_dir=tmp_path, num_workers=2)
    with pytest.raises(ValueError, match="episode 3 is broken") as caught:
        builder.download_and_prepare()
    remote = str(caught.value.__cause__)  # the worker's own frames, from the child process
    assert "toy_episode_builder.py" in remote and 'raise ValueError(f"episode' in remote


class _MainSource(toy.ToySource):
    """An episode source as a user's script would define it: in `__main__`."""


_MainSource.__module__ = "__main__"  # what pickle sees for a class of the caller's script


class _MainToyEpisodes(toy.ToyEpisodes, skip_registration=True):
    def episode_source(self):
        return _MainSource(length=self.params["length"])


def test_a_source_defined_in_main_is_built_in_this_process(tmp_path, caplog):
    builder = _MainToyEpisodes(data_dir=tmp_path, num_workers=2)
    with caplog.at_level(logging.WARNING):
        builder.download_and_prepare()
    assert "_MainSource, defined in __main__" in caplog.text
    assert "one after another in this process" in caplog.text
    source = sources.SegmentSource(builder, "train", fields=episodes.ALL_FIELDS)
    assert len(source) == 5 * 3
    np.testing.assert_array_equal(
        source[4]["frames"], _MainSource(length=12)("train", 1)["frames"][4:8]
    )


def test_a_child_that_cannot_start_falls_back_to_this_process(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no_python_here"))
    builder = toy.ToyEpisodes(data_dir=tmp_path, num_workers=2)
    with caplog.at_level(logging.WARNING):
        builder.download_and_prepare()
    assert "the shard writer process did not start" in caplog.text
    assert builder.info.splits["train"].num_examples == 5 * 3


def test_the_pool_stays_in_this_process_under_lssvwm_command_lines(monkeypatch):
    calls = []
    monkeypatch.setattr(tfds_common, "_run_pool", lambda *args: calls.append("pool here"))
    monkeypatch.setattr(
        shard_writer, "run_in_child_process", lambda *args: calls.append("child process")
    )
    main = type(sys)("__main__")
    main.__spec__ = type("Spec", (), {"name": "lssvwm.data.build"})()
    monkeypatch.setitem(sys.modules, "__main__", main)
    tfds_common._run_tasks(["task"], 2, "spawn", progress=None)
    main.__spec__.name = "my_experiment"  # a user's module run with -m: no guard known
    tfds_common._run_tasks(["task"], 2, "spawn", progress=None)
    tfds_common._run_tasks(["task"], 2, "fork", progress=None)  # fork re-imports nothing
    assert calls == ["pool here", "child process", "pool here"]
