"""The run directory's guards: one trainer at a time, a config.json that describes the run, and
what a killed or damaged save leaves behind (lssvwm.train uses them before it writes anything).

    check_config(workdir, config_text, has_checkpoints)   # RunDirectoryError: another run's
    with WorkdirLock(workdir):                            # RunDirectoryError: in use (pid N)
        write_config(workdir, config_text)                # only when absent or different
        remove_save_leftovers(workdir / "checkpoints")    # a killed save's temporary dirs
        set_aside(step_dir, workdir)                      # -> checkpoints_damaged/<step>-<time>

The lock is `fcntl.flock` on `WORKDIR/.lock`, which holds the holder's pid: the kernel drops it
when the process ends, however it ends, so a crashed trainer leaves no stale lock (the file
stays; its pid is only the last holder's). Readers (evaluation, rollouts) take no lock. On a
network filesystem the lock is as good as its flock support (NFS emulates it with POSIX locks).
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import time
from collections.abc import Mapping

from lssvwm.common.errors import RunDirectoryError

LOCK_NAME = ".lock"
CONFIG_NAME = "config.json"
DAMAGED_NAME = "checkpoints_damaged"
# What orbax names a step directory while it is written (`<step>.orbax-checkpoint-tmp` in orbax
# 0.12, `<step>.orbax-checkpoint-tmp-<timestamp>` before): renamed to `<step>` when complete.
ORBAX_TEMPORARY = ".orbax-checkpoint-tmp"


class WorkdirLock:
    """An exclusive lock on a run directory (`with WorkdirLock(workdir): ...`); a second holder
    gets a one-line RunDirectoryError naming the first one's pid. Creates the directory."""

    def __init__(self, workdir: str | pathlib.Path):
        self.path = pathlib.Path(workdir) / LOCK_NAME
        self._file = None

    def acquire(self) -> None:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_file = open(self.path, "a+")  # noqa: SIM115 - closed in release()
        try:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock_file.seek(0)
            holder = lock_file.read().strip() or "unknown"
            lock_file.close()
            raise RunDirectoryError(
                f"{self.path.parent} is in use by another trainer (pid {holder}, lock "
                f"{self.path}): wait for it to end or stop it, or use another --workdir"
            ) from None
        lock_file.seek(0)
        lock_file.truncate()
        lock_file.write(f"{os.getpid()}\n")
        lock_file.flush()
        self._file = lock_file

    def release(self) -> None:
        if self._file is None:
            return
        import fcntl

        fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
        self._file.close()
        self._file = None

    def __enter__(self) -> WorkdirLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


# ---- config.json --------------------------------------------------------------------------------


def _flatten(tree, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


_ABSENT = object()


def config_differences(
    written: Mapping,
    current: Mapping,
    defaults: Mapping[str, object] | None = None,
    resumable: tuple[str, ...] = (),
) -> list[str]:
    """Lines `key: A in config.json, B now`, one per dotted key whose value differs. A key missing
    from `written` whose current value is its default in `defaults` (dotted key -> value; an
    option the code gained after the run started) is no difference; nor is a key in (or under
    a section named in) `resumable`."""
    defaults = defaults or {}
    old, new = _flatten(written), _flatten(current)
    lines = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, _ABSENT), new.get(key, _ABSENT)
        if a == b or any(key == r or key.startswith(r + ".") for r in resumable):
            continue
        if a is _ABSENT and key in defaults and defaults[key] == b:
            continue
        shown = lambda v: "absent" if v is _ABSENT else json.dumps(v)  # noqa: E731
        lines.append(f"{key}: {shown(a)} in config.json, {shown(b)} now")
    return lines


def check_config(
    workdir: str | pathlib.Path,
    config_text: str,
    has_checkpoints: bool,
    defaults: Mapping[str, object] | None = None,
    resumable: tuple[str, ...] = (),
) -> None:
    """A RunDirectoryError when `workdir/config.json` holds another config (or no JSON) and the
    run has checkpoints; they were trained under it. Reads only. `defaults`, `resumable`: see
    `config_differences`."""
    path = pathlib.Path(workdir) / CONFIG_NAME
    if not has_checkpoints or not path.is_file():
        return
    try:
        written = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise RunDirectoryError(
            f"{path} cannot be read ({type(error).__name__}: {error}) and the run has "
            "checkpoints; restore it, or move it away to resume under this config"
        ) from None
    differences = config_differences(written, json.loads(config_text), defaults, resumable)
    if differences:
        shown = "; ".join(differences[:4])
        more = f"; and {len(differences) - 4} more" if len(differences) > 4 else ""
        raise RunDirectoryError(
            f"{path} is another config than this one ({shown}{more}) and the run has "
            "checkpoints: resume with the same config, or use a new --workdir (or move "
            "config.json away to continue this run under the new config on purpose)"
        )


def write_config(workdir: str | pathlib.Path, config_text: str, defaults=None) -> bool:
    """Writes config.json unless it already holds this config (up to `defaults`); returns
    whether it wrote. Call `check_config` first: this overwrites another config."""
    path = pathlib.Path(workdir) / CONFIG_NAME
    if path.is_file():
        try:
            written = json.loads(path.read_text())
        except (OSError, ValueError):
            written = None
        if written is not None and not config_differences(
            written, json.loads(config_text), defaults
        ):
            return False
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{CONFIG_NAME}.{os.getpid()}.tmp")
    temporary.write_text(config_text)
    os.replace(temporary, path)  # never a half-written config.json
    return True


# ---- checkpoint directories ------------------------------------------------------------------


def save_leftovers(checkpoint_dir: str | pathlib.Path) -> list[pathlib.Path]:
    """The temporary step directories of saves that never finished (a killed process)."""
    directory = pathlib.Path(checkpoint_dir)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if ORBAX_TEMPORARY in p.name)


def remove_save_leftovers(checkpoint_dir: str | pathlib.Path) -> list[pathlib.Path]:
    """Removes `save_leftovers` (never a complete checkpoint: orbax renames a step directory to
    its step only when the save is complete); returns what it removed."""
    leftovers = save_leftovers(checkpoint_dir)
    for path in leftovers:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    return leftovers


def set_aside(step_dir: str | pathlib.Path, workdir: str | pathlib.Path) -> pathlib.Path:
    """Moves a damaged step directory to WORKDIR/checkpoints_damaged/<step>-<time> (never
    deletes it: it may hold what a person wants back); returns the new path."""
    step_dir = pathlib.Path(step_dir)
    destination = pathlib.Path(workdir) / DAMAGED_NAME
    destination.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = destination / f"{step_dir.name}-{stamp}"
    suffix = 1
    while target.exists():
        suffix += 1
        target = destination / f"{step_dir.name}-{stamp}-{suffix}"
    os.replace(step_dir, target)
    return target
