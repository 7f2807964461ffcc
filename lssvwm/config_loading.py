"""Loads configs -- by name (`quickstart:tiny`) or by path (`configs/quickstart.py:tiny`) -- from
Python, and is how every CLI's `--config` flag loads them.

The configs that ship are the modules of the top-level `configs/` folder, which the wheel installs
as the package `lssvwm.configs` (the build maps the folder there; see setup.py). A name is a module
of that package; `python -m lssvwm.configs` lists them with their variants (`available_configs`).
A path is any `get_config(arg)` file: one in the configs folder is imported as a module of its
package, any other is loaded as a module inside the package too, so a copied config's relative
imports (`from . import base, common`) read the shipped ones.

The CLIs define `--config` with `ml_collections.config_flags`; `lssvwm.cli` makes those flags load
with this module (`cli.ConfigSpecParser`) and checks their `--config.a.b=V` keys. Tests, notebooks
and the Python API use `load_config`, which also applies `a.b=value` overrides. Every mistake is
one line naming the config or the dotted key:

    configs/x.py: config file does not exist                        (MissingConfigFileError)
    quickstrat: no config named quickstrat (did you mean quickstart? ...)  (MissingConfigFileError)
    configs/x.py: cannot import the config file: SyntaxError: ...   (ConfigFileError)
    quickstart:huge: unknown quickstart variant 'huge'              (ConfigFileError)
    quickstart:tiny: unknown config key model.widht (did you mean model.width?)
                                                                     (UnknownConfigKeyError)
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import importlib
import importlib.util
import itertools
import pathlib
import pkgutil
import re
import sys
import types
from collections.abc import Mapping

import ml_collections

from lssvwm.config_schema import ConfigError
from lssvwm.errors import LssvwmError

# The package the configs folder is installed as, and the checkout's own folder (used where the
# package is not installed: a checkout that was not `pip install`ed, or installed before the
# mapping existed).
PACKAGE = "lssvwm.configs"
_REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
_CHECKOUT_PACKAGE = "configs"
# Shows every config and its variants.
LIST_COMMAND = f"python -m {PACKAGE}"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_loaded_files = itertools.count()


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


def configs_package() -> types.ModuleType:
    """The package of the shipped configs: `lssvwm.configs` where it is installed (a wheel, an
    editable install), else the checkout's `configs` folder as the package `configs` (its root put
    on sys.path, which also lets a config file `from configs import common`)."""
    try:
        return importlib.import_module(PACKAGE)
    except ModuleNotFoundError as error:
        if error.name != PACKAGE:
            raise
    if not (_REPO_ROOT / _CHECKOUT_PACKAGE / "__init__.py").is_file():
        raise ConfigFileError(f"no configs: {PACKAGE} is not installed") from None
    if str(_REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(_REPO_ROOT))
    return importlib.import_module(_CHECKOUT_PACKAGE)


def _config_names(package: types.ModuleType) -> list[str]:
    """The public modules of the configs package (experiments and the modules they share)."""
    return sorted(
        info.name for info in pkgutil.iter_modules(package.__path__) if not info.name[0] == "_"
    )


def config_module(target: str, *, spec: str | None = None) -> types.ModuleType:
    """The module of a config name (`quickstart`) or file path (`configs/quickstart.py`);
    ConfigFileError (MissingConfigFileError) starting with `spec` when it cannot be loaded."""
    spec = target if spec is None else spec
    package = configs_package()
    path = pathlib.Path(target)
    try:
        if _NAME.fullmatch(target):
            names = _config_names(package)
            if target not in names:
                raise MissingConfigFileError(f"{spec}: {_unknown_name(target, names)}")
            return importlib.import_module(f"{package.__name__}.{target}")
        if not path.exists():
            raise MissingConfigFileError(f"{spec}: config file does not exist{_hint(path)}")
        if not path.is_file():
            raise ConfigFileError(f"{spec}: config path {target} is not a file")
        if any(path.resolve().parent == pathlib.Path(p).resolve() for p in package.__path__):
            return importlib.import_module(f"{package.__name__}.{path.stem}")
        # Another file: a fresh module inside the package, for its relative imports.
        name = f"{package.__name__}._file{next(_loaded_files)}_{path.stem}"
        module_spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        return module
    except ConfigFileError:
        raise
    except Exception as error:  # a config file is input: any failure to import is its fault
        raise ConfigFileError(
            f"{spec}: cannot import the config file: {_describe(error)}"
        ) from error


def _unknown_name(name: str, names: list[str]) -> str:
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}? " if close else ""
    return f"no config named {name} ({hint}`{LIST_COMMAND}` lists them; a path ends in .py)"


def _hint(path: pathlib.Path) -> str:
    """For `configs/quickstart.py` outside a checkout: the name that loads the shipped one."""
    if path.suffix == ".py" and path.parent.name == "configs" and _NAME.fullmatch(path.stem):
        if path.stem in _config_names(configs_package()):
            return f" (the shipped config of that name is --config={path.stem})"
    return ""


def load_config(spec: str, overrides: Mapping[str, object] | None = None):
    """Returns the locked ConfigDict built by `get_config(arg)` of the config `spec` names.

    Args:
      spec: `name`, `name:arg`, `path/to/config.py` or `path/to/config.py:arg` (module
        docstring).
      overrides: optional `{"model.width": 256}` style overrides applied after building.

    Raises ConfigFileError (MissingConfigFileError, NoGetConfigError) for a config that cannot be
    loaded and UnknownConfigKeyError for an override of a key the config lacks.
    """
    target, _, arg = spec.partition(":")
    module = config_module(target, spec=spec)
    if not hasattr(module, "get_config"):
        raise NoGetConfigError(
            f"{spec}: config {target!r} defines no get_config() (a module the configs share)"
        )
    try:
        config = module.get_config(arg) if arg else module.get_config()
    except Exception as error:
        raise ConfigFileError(f"{spec}: {_describe(error, plain=(ValueError,))}") from error
    if isinstance(config, ml_collections.ConfigDict):
        config.lock()
    for key, value in (overrides or {}).items():
        apply_override(config, key, value, source=spec)
    return config


@dataclasses.dataclass(frozen=True)
class ConfigEntry:
    """A shipped config: its name, the first sentence of its docstring, and its variants
    (`name:arg` specs, from the module's VARIANTS)."""

    name: str
    description: str
    variants: tuple[str, ...]


def available_configs() -> list[ConfigEntry]:
    """Every shipped config with a get_config(), by name (imports each one)."""
    package = configs_package()
    entries = []
    for name in _config_names(package):
        module = config_module(name)
        if hasattr(module, "get_config"):
            variants = tuple(f"{name}:{variant}" for variant in getattr(module, "VARIANTS", ()))
            entries.append(ConfigEntry(name, _first_sentence(module.__doc__), variants))
    return entries


def _first_sentence(doc: str | None) -> str:
    paragraph = " ".join((doc or "").strip().split("\n\n", 1)[0].split())
    match = re.match(r"(.+?\.)(\s|$)", paragraph)
    return match.group(1) if match else paragraph


def format_config_list(entries: list[ConfigEntry]) -> str:
    """The listing `python -m lssvwm.configs` prints: each name and description, then its
    variants."""
    width = max(len(entry.name) for entry in entries) + 2
    lines = ["Configs (--config=NAME[:ARG], or a path to a .py file):", ""]
    for entry in entries:
        lines.append(f"  {entry.name:<{width}}{entry.description}")
        lines.extend(f"  {'':<{width}}  {variant}" for variant in entry.variants)
    return "\n".join(lines)


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
