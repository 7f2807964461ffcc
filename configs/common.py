"""Shared helpers for config files.

Config files are loaded as `configs/<name>.py` or `configs/<name>.py:<arg>`; everything after the
colon is handed to `get_config(arg)`. `parse_arg` turns that string into typed fields, e.g.

    parse_arg("variant=tiny,runlocal", variant="base", runlocal=False, steps=1000)
    -> ConfigDict(variant="tiny", runlocal=True, steps=1000)

A bare word (`runlocal`) sets a bool field to True; a bare word that names no bool field is taken
as the value of the first field (so `file.py:tiny` works when the first field is `variant`).
"""

from __future__ import annotations

import ml_collections


def _convert(key: str, value: str, default):
    """Parses `value` into the type of `default`, with an error naming the field."""
    if isinstance(default, bool):
        lowered = value.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"config arg {key!r}: expected a bool, got {value!r}")
    try:
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
    except ValueError as error:
        raise ValueError(
            f"config arg {key!r}: expected {type(default).__name__}, got {value!r}"
        ) from error
    return value


def parse_arg(arg: str | None, **spec) -> ml_collections.ConfigDict:
    """Parses a `k1=v1,k2,k3=v3` config argument against typed defaults in `spec`.

    Unknown keys raise a ValueError that lists the known ones, so a typo never passes silently.
    """
    result = ml_collections.ConfigDict(dict(spec))
    if not arg:
        return result
    first_field = next(iter(spec), None)
    for item in arg.split(","):
        item = item.strip()
        if not item:
            continue
        if "=" in item:
            key, value = (part.strip() for part in item.split("=", 1))
        elif item in spec and isinstance(spec[item], bool):
            key, value = item, "true"
        elif first_field is not None and not isinstance(spec[first_field], bool):
            key, value = first_field, item
        else:
            raise ValueError(f"config arg {item!r} is not one of {sorted(spec)}")
        if key not in spec:
            raise ValueError(f"config arg {key!r} is not one of {sorted(spec)}")
        result[key] = _convert(key, value, spec[key])
    return result
