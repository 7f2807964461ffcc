"""One parser for every config section: a frozen dataclass from a ConfigDict, checked key by key.

    model = parse_section(WorldModelConfig, config.model, "model")

Every section of a run's config (model, diffusion, optimizer, training, eval, sample, state,
curriculum, mesh, data) is a frozen dataclass whose fields are its keys. `parse_section` is the
only place that turns a mapping into one, so every section fails the same way, in one line that
names the dotted key:

    training.batch_sise is unknown (did you mean training.batch_size? known training keys: ...)
    training.steps must be an int, got '100'

Types come from the field annotations (int, float, bool, str, `X | None`, tuples); an int is
accepted where a float is expected (and converted), never a bool where a number is expected.
Value checks beyond the type (ranges, choices) live in each dataclass's `__post_init__`.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping
from typing import Any

_SCALARS = {int: "an int", float: "a number", bool: "a bool", str: "a string"}


class ConfigError(ValueError):
    """A config mistake, with the dotted key it is about (`key`) in the message's first word."""

    def __init__(self, key: str, message: str):
        separator = "" if message.startswith(":") else " "
        super().__init__(f"{key}{separator}{message}".rstrip())
        self.key = key


def as_tuples(value):
    """Lists (also nested, as ConfigDicts and JSON hold them) -> tuples, so configs hash."""
    if isinstance(value, list | tuple):
        return tuple(as_tuples(v) for v in value)
    return value


def as_dict(mapping) -> dict[str, Any]:
    """A ConfigDict, a dataclass or a mapping as a plain dict (None: empty)."""
    if mapping is None:
        return {}
    if dataclasses.is_dataclass(mapping):
        return {f.name: getattr(mapping, f.name) for f in dataclasses.fields(mapping)}
    if hasattr(mapping, "to_dict"):
        return mapping.to_dict()
    return dict(mapping)


def _allowed(annotation) -> tuple[type, ...] | None:
    """The scalar types an annotation allows (None in the tuple for `| None`); None when the
    annotation is not a plain scalar (tuples, mappings, nested dataclasses: checked by the
    dataclass itself)."""
    origin = typing.get_origin(annotation)
    members = typing.get_args(annotation) if origin in (typing.Union, types.UnionType) else ()
    members = members or (annotation,)
    allowed = []
    for member in members:
        if member is type(None):
            allowed.append(None)
        elif member in _SCALARS:
            allowed.append(member)
        else:
            return None
    return tuple(allowed)


def check_type(key: str, value, annotation):
    """`value` converted for a field of type `annotation` (int -> float, lists -> tuples), or a
    ConfigError naming `key`."""
    allowed = _allowed(annotation)
    if allowed is None:
        return as_tuples(value)
    if value is None:
        if None in allowed:
            return None
        raise ConfigError(key, f"must be {_describe(allowed)}, got None")
    for kind in allowed:
        if kind is None:
            continue
        if kind is bool and isinstance(value, bool):
            return value
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if kind is str and isinstance(value, str):
            return value
    raise ConfigError(key, f"must be {_describe(allowed)}, got {value!r}")


def _describe(allowed) -> str:
    names = [_SCALARS[kind] for kind in allowed if kind is not None]
    if None in allowed:
        names.append("None")
    return " or ".join(names)


def check_known_keys(section: str, given, known) -> None:
    """A ConfigError naming the first key of `given` not in `known` (`section.key`), and the
    nearest known key when one is close:

        training.batch_sise is unknown (did you mean training.batch_size? known training keys:
        batch_size, checkpoint_every, ...)
    """
    unknown = sorted(set(given) - set(known))
    if unknown:
        names = ", ".join(sorted(known))
        nearest = difflib.get_close_matches(str(unknown[0]), [str(k) for k in known], n=1)
        hint = f"did you mean {section}.{nearest[0]}? " if nearest else ""
        raise ConfigError(
            f"{section}.{unknown[0]}", f"is unknown ({hint}known {section} keys: {names})"
        )


def parse_section(cls, mapping, section: str, *, extra_known: tuple[str, ...] = ()):
    """`cls(**mapping)` after checking every key and type; errors name `section.key`.

    `mapping`: a ConfigDict, a dict, an instance of `cls` (returned as is) or None (all
    defaults). Keys in `extra_known` are accepted and left out (a section's keys that another
    parser reads, e.g. the reset-policy fields of `state`).
    """
    if isinstance(mapping, cls):
        return mapping
    given = as_dict(mapping)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    check_known_keys(section, given, (*fields, *extra_known))
    hints = typing.get_type_hints(cls)
    values = {}
    for name, field in fields.items():
        if name in given:
            values[name] = check_type(f"{section}.{name}", given[name], hints[name])
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{section}.{name}", "is missing")
    try:
        return cls(**values)
    except ConfigError:
        raise
    except ValueError as error:  # a value check: name the key it starts with, else the section
        message = str(error)
        first = message.split(" ", 1)[0].rstrip(":,")
        if first.startswith(f"{section}."):  # already names its key
            raise ConfigError(first, message[len(first) :].lstrip(" ")) from None
        if first in fields:  # "mixer must be ..." -> "model.mixer must be ..."
            raise ConfigError(f"{section}.{first}", message[len(first) :].lstrip(" ")) from None
        raise ConfigError(f"{section}:", message) from None


def section_dict(instance) -> dict[str, Any]:
    """A parsed section as JSON-ready plain values (tuples as lists), e.g. for checkpoint meta."""
    return {k: _plain(v) for k, v in as_dict(instance).items()}


def _plain(value):
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value
