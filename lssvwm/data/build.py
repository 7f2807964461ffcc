r"""Builds an episode dataset (maze3d, memory_maze, video_folder) from the command line.

    python3 -m lssvwm.data.build                                  # maze3d, 64x64 preset
    python3 -m lssvwm.data.build --data=lssvwm/data/config.py:maze3d_small \
        --data.maze3d.train_episodes=16 --data.data_dir=/tmp/tfds --num_workers=2
    python3 -m lssvwm.data.build --data=lssvwm/data/config.py:video_folder \
        --data.video_folder.path=/my/episodes --data.video_folder.segment_length=16
    python3 -m lssvwm.data.build --config=configs/quickstart.py   # an experiment's `data`

Shows a progress bar (frames), writes into `data_dir` as TFDS array_record files, and can be
interrupted and started again: shards already written are kept. Prints where the data is and
the generation rate.
"""

from __future__ import annotations

import os
import time

from absl import app, flags
from ml_collections import config_flags

from lssvwm import cli
from lssvwm.data import sources


def _define_flags():
    """Defines the CLI flags (only when run as a program, so importing stays side-effect free)."""
    default_data = os.path.join(os.path.dirname(__file__), "config.py") + ":maze3d"
    cli.default_config_argument("data", default_data)  # loaded under lssvwm.cli's checks
    config_flags.DEFINE_config_file(
        "data",
        default_data,
        "Data config file (a `data` section, e.g. lssvwm/data/config.py:maze3d_small).",
        lock_config=True,
    )
    config_flags.DEFINE_config_file(
        "config", None, "Experiment config file; its `data` section is built (overrides --data)."
    )
    flags.DEFINE_integer(
        "num_workers",
        None,
        "Generating processes (default: data.num_workers, else all CPUs; 0: this process).",
        lower_bound=0,
    )
    flags.DEFINE_enum(
        "start_method", "spawn", ["spawn", "forkserver", "fork"], "multiprocessing start method."
    )


def build(data_config, *, num_workers=None, start_method="spawn"):
    """Builds (or finds) the dataset of `data_config`; returns the builder."""
    kwargs = {"start_method": start_method}
    if num_workers is not None:
        kwargs["num_workers"] = num_workers
    builder = sources.get_builder(data_config, build=False, **kwargs)
    builder.download_and_prepare()
    return builder


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    config = flags.FLAGS.config
    if config is not None and "data" not in config:
        raise app.UsageError("the --config file has no `data` section")
    data = config.data if config is not None else flags.FLAGS.data
    if data.get("data_dir"):  # one line before anything is built or read
        cli.check_can_write(data.data_dir, directory=True, label="data.data_dir")
    start = time.time()
    builder = build(
        data, num_workers=flags.FLAGS.num_workers, start_method=flags.FLAGS.start_method
    )
    elapsed = time.time() - start
    print(f"{builder.name}/{builder.builder_config.name} at {builder.data_path}")
    for split, info in builder.info.splits.items():
        print(f"  {split}: {info.num_examples} segment records in {info.num_shards} shards")
    stats = getattr(builder, "last_build_stats", None)
    if stats and stats["frames"]:
        rate = stats["frames"] / max(stats["seconds"], 1e-9)
        print(
            f"generated {stats['frames']} frames in {stats['seconds']:.1f} s "
            f"({rate:.0f} frames/s; {elapsed:.1f} s in all)"
        )
    else:
        print(f"already built; nothing generated ({elapsed:.1f} s)")


if __name__ == "__main__":
    _define_flags()
    cli.run(main)
