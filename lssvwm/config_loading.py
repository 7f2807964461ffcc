"""Loads `configs/<name>.py[:arg]` files from Python, as absl's `--config` flag does.

The CLIs use `ml_collections.config_flags` (and `lssvwm.cli` checks their files and
`--config.a.b=V` keys with this module first); tests, notebooks and the Python API use
`load_config`, which also applies `a.b=value` overrides. Every mistake is one line naming the
file or the dotted key:

    configs/x.py: config file does not exist                        (MissingConfigFileError)
    configs/x.py: cannot import the config file: SyntaxError: ...   (ConfigFileError)
    configs/quickstart.py:huge: unknown quickstart variant 'huge'   (ConfigFileError)
    configs/quickstart.py:tiny: unknown config key model.widht (did you mean model.width?)
                                                                     (UnknownConfigKeyError)
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import pathlib
import sys
from collections.abc import Mapping

import ml_collections

from lssvwm.config_schema import ConfigError
from lssvwm.errors import LssvwmError

# Repository root, so that config files can `from configs import common`.
_REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent


class ConfigFileError(LssvwmError, ValueError):
    """A config file that cannot be loaded: not a file, fails to import, has no get_config(),
    or get_config(arg) rejects its argument. The message starts with the `file.py[:arg]`."""


class MissingConfigFileError(ConfigFileError, FileNotFoundError):
    """The config file does not exist."""


class NoGetConfigError(ConfigFileError, AttributeError):
    """The config file defines no get_config()."""


class UnknownConfigKeyError(LssvwmError, KeyError, ValueError):
    """A dotted key (`model.widht`) the config does not have; `key` is it and `suggestion` the
    nearest key the config has (None when nothing is close)."""

    def __init__(self, message: str, key: str, suggestion: str | None = None):
        super().__init__(message)
        self.key = key
        self.suggestion = suggestion

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def load_config(spec: str, overrides: Mapping[str, object] | None = None):
    """Returns the locked ConfigDict built by `get_config(arg)` of the file named in `spec`.

    Args:
      spec: `path/to/config.py` or `path/to/config.py:arg`.
      overrides: optional `{"model.width": 256}` style overrides applied after building.

    Raises ConfigFileError (MissingConfigFileError, NoGetConfigError) for a file that cannot be
    loaded and UnknownConfigKeyError for an override of a key the config lacks.
    """
    path_str, _, arg = spec.partition(":")
    path = pathlib.Path(path_str)
    if not path.exists():
        raise MissingConfigFileError(f"{spec}: config file does not exist")
    if not path.is_file():
        raise ConfigFileError(f"{spec}: config path {path_str} is not a file")
    if str(_REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(_REPO_ROOT))
    module_name = f"_lssvwm_config_{path.stem}"
    try:
        module_spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    except Exception as error:  # a config file is input: any failure to import is its fault
        raise ConfigFileError(
            f"{spec}: cannot import the config file: {_describe(error)}"
        ) from error
    if not hasattr(module, "get_config"):
        raise NoGetConfigError(f"{spec}: config file {path_str!r} defines no get_config()")
    try:
        config = module.get_config(arg) if arg else module.get_config()
    except Exception as error:
        raise ConfigFileError(f"{spec}: {_describe(error, plain=(ValueError,))}") from error
    if isinstance(config, ml_collections.ConfigDict):
        config.lock()
    for key, value in (overrides or {}).items():
        apply_override(config, key, value, source=spec)
    return config


def _describe(error: BaseException, plain: tuple[type, ...] = ()) -> str:
    """`Type: message` in one line (just the message for the types in `plain`)."""
    if isinstance(error, KeyError) and error.args:
        message = str(error.args[0])
    else:
        message = str(error)
    message = " ".join(line.strip() for line in message.splitlines() if line.strip())
    if isinstance(error, plain) and message:
        return message
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def _is_section(value) -> bool:
    return isinstance(value, ml_collections.ConfigDict | Mapping)


def config_keys(config, prefix: str = "") -> list[str]:
    """Every dotted key of `config`: sections and the leaves under them (`model`,
    `model.width`, ...)."""
    keys = []
    for name in config.keys():
        key = f"{prefix}{name}"
        keys.append(key)
        value = config[name]
        if _is_section(value):
            keys.extend(config_keys(value, key + "."))
    return keys


def nearest_key(config, dotted_key: str) -> str | None:
    """The key of `config` nearest to `dotted_key`, or None: the first unknown part spelled
    like a key beside it (`model.widht` -> `model.width`, `modle.depth` -> `model.depth`),
    else a key elsewhere with the same last part (`model.steps` -> `training.steps`), else the
    closest whole dotted key."""
    known = config_keys(config)
    parts = dotted_key.split(".")
    node, done = config, []
    for i, part in enumerate(parts):
        if not _is_section(node):
            break
        names = [str(name) for name in node.keys()]
        if part not in names:
            close = difflib.get_close_matches(part, names, n=3, cutoff=0.6)
            for name in close:
                candidate = ".".join([*done, name, *parts[i + 1 :]])
                if candidate in known:
                    return candidate
            if close and i == len(parts) - 1:
                return ".".join([*done, close[0]])
            break
        done.append(part)
        node = node[part]
    same_leaf = [key for key in known if key.rsplit(".", 1)[-1] == parts[-1] and key != dotted_key]
    if len(same_leaf) == 1:
        return same_leaf[0]
    close = difflib.get_close_matches(dotted_key, known, n=1, cutoff=0.75)
    return close[0] if close else None


def unknown_key_error(
    config, dotted_key: str, *, source: str | None = None, prefix: str = ""
) -> UnknownConfigKeyError:
    """The one-line error for a key `config` lacks (`prefix`: the section `config` is, for the
    message: "data" for a run's data section)."""
    suggestion = nearest_key(config, dotted_key)
    full = f"{prefix}.{dotted_key}" if prefix else dotted_key
    message = f"unknown config key {full}"
    if suggestion is not None:
        message += f" (did you mean {prefix + '.' if prefix else ''}{suggestion}?)"
    else:
        *parents, _ = dotted_key.split(".")
        node = config
        for name in parents:
            if not _is_section(node) or name not in node:
                node = None
                break
            node = node[name]
        if node is not None and _is_section(node):
            where = ".".join(filter(None, [prefix, *parents])) or "the config"
            message += f" ({where} has: {', '.join(sorted(str(k) for k in node.keys()))})"
    if source:
        message = f"{source}: {message}"
    return UnknownConfigKeyError(message, full, suggestion)


def check_key(config, dotted_key: str, *, source: str | None = None, prefix: str = "") -> None:
    """An UnknownConfigKeyError unless `config` has `dotted_key` (a section or a leaf).
    List items (`a.b[0]`) are checked up to their list."""
    node, done = config, []
    for name in dotted_key.split("."):
        name = name.split("[", 1)[0]
        if done and not _is_section(node):
            full = ".".join(filter(None, [prefix, dotted_key]))
            parent = ".".join(filter(None, [prefix, *done]))
            message = f"unknown config key {full} ({parent} is a value, not a section)"
            raise UnknownConfigKeyError(f"{source}: {message}" if source else message, full)
        if name not in node:
            raise unknown_key_error(config, dotted_key, source=source, prefix=prefix)
        done.append(name)
        node = node[name]


def apply_override(
    config: ml_collections.ConfigDict,
    dotted_key: str,
    value,
    *,
    source: str | None = None,
    prefix: str = "",
) -> None:
    """Sets `config.a.b = value`; strings are parsed as Python literals when they are ones.
    An unknown key is an UnknownConfigKeyError naming the nearest known one; a value of the
    wrong type a ConfigError naming the key (`source`, `prefix`: for the messages)."""
    check_key(config, dotted_key, source=source, prefix=prefix)
    *parents, leaf = dotted_key.split(".")
    node = config
    for name in parents:
        node = node[name]
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            pass
    try:
        node[leaf] = value
    except TypeError as error:  # a locked ConfigDict keeps each field's type
        full = f"{prefix}.{dotted_key}" if prefix else dotted_key
        message = " ".join(str(error).split())
        raise ConfigError(full, f"cannot be set to {value!r}: {message}") from None
