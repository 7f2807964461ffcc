"""Loads `configs/<name>.py[:arg]` files from Python, as absl's `--config` flag does.

The CLIs use `ml_collections.config_flags`; tests, notebooks and the Python API use
`load_config`, which also applies `a.b=value` overrides with a clear error for unknown keys.
"""

from __future__ import annotations

import ast
import importlib.util
import pathlib
import sys
from collections.abc import Mapping

import ml_collections

# Repository root, so that config files can `from configs import common`.
_REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent


def load_config(spec: str, overrides: Mapping[str, object] | None = None):
    """Returns the locked ConfigDict built by `get_config(arg)` of the file named in `spec`.

    Args:
      spec: `path/to/config.py` or `path/to/config.py:arg`.
      overrides: optional `{"model.width": 256}` style overrides applied after building.
    """
    path_str, _, arg = spec.partition(":")
    path = pathlib.Path(path_str)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path_str!r} does not exist")
    if str(_REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(_REPO_ROOT))
    module_name = f"_lssvwm_config_{path.stem}"
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise AttributeError(f"config file {path_str!r} defines no get_config()")
    config = module.get_config(arg) if arg else module.get_config()
    if isinstance(config, ml_collections.ConfigDict):
        config.lock()
    for key, value in (overrides or {}).items():
        apply_override(config, key, value)
    return config


def apply_override(config: ml_collections.ConfigDict, dotted_key: str, value) -> None:
    """Sets `config.a.b = value`; strings are parsed as Python literals when they are ones."""
    *parents, leaf = dotted_key.split(".")
    node = config
    for i, name in enumerate(parents):
        if name not in node:
            raise KeyError(f"config has no key {'.'.join(parents[: i + 1])!r}")
        node = node[name]
    if leaf not in node:
        raise KeyError(f"config has no key {dotted_key!r}; known here: {sorted(node.keys())}")
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            pass
    node[leaf] = value
