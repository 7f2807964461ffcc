"""A toy command line for the tests of lssvwm.cli: `--fail=KIND` makes `main` raise that kind of
error; `--config=FILE[:arg]` is a config-file flag as lssvwm.train has it."""

import ml_collections
from absl import app, flags
from ml_collections import config_flags

from lssvwm.errors import CheckpointError


def _define_flags():
    flags.DEFINE_enum(
        "fail",
        "none",
        ["none", "value", "lssvwm", "usage", "config_key", "dict_key", "runtime", "missing_file"],
        "What main raises.",
    )
    flags.DEFINE_integer("count", 1, "A positive count.", lower_bound=1)
    config_flags.DEFINE_config_file("config", None, "Config file.")


def main(argv):
    del argv
    kind = flags.FLAGS.fail
    if kind == "value":
        raise ValueError("training.steps must be >= 1,\ngot -5")
    if kind == "lssvwm":
        raise CheckpointError("checkpoint /x/4 cannot be restored")
    if kind == "usage":
        raise app.UsageError("--workdir is required")
    if kind == "config_key":  # a key the code reads but the config lacks
        return ml_collections.ConfigDict({"width": 3}).widht
    if kind == "dict_key":  # a bug
        return {}["oops"]
    if kind == "runtime":
        raise RuntimeError("a bug")
    if kind == "missing_file":
        open("/nonexistent/lssvwm/file.txt")
    print("ok")
