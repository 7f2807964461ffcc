"""Checkpoints of a run: train state, data-iterator position and run metadata, with orbax.

    checkpoints = Checkpoints(workdir / "checkpoints", keep=3)
    checkpoints.save(step, state, data_state={"step": n}, meta={"model": {...}})
    if checkpoints.latest_step() is not None:
        state, data_state, meta = checkpoints.restore_latest(abstract_state, expected_meta)
    weights, step, meta = checkpoints.restore_weights(abstract_weights, expected_meta)
    restored = checkpoints.restore_newest(target_for_step, expected_meta)   # skips damaged ones

One `ocp.CheckpointManager` with three items per step: `state` (the whole train-state pytree:
parameters, optimizer state, EMA, step; StandardSave), `data` (the pipeline's `get_state()`, JSON)
and `meta` (JSON: the model and diffusion sections the weights were trained with). Orbax writes
each step into a temporary directory and renames it when complete, so a run killed mid-save
leaves no step that `latest_step()` would pick. Saving is synchronous: a small model saves in
well under a second, and a Ctrl-C right after `save` returns cannot lose the step.

A checkpoint that cannot be restored (files missing or damaged, or a state of other shapes)
raises `CheckpointError` naming the step directory and the problem; a `meta` that disagrees with
the current config names the differing keys (`meta_differences`: the one comparison, for resuming,
warm starts and loading a run for evaluation), which is clearer than a shape mismatch deep in
orbax. Training and evaluation both read checkpoints through this class.

Damage is not a config change: `restore_newest` (the trainer's start) restores the newest step
that restores completely and reports the newer ones that could not be read (files missing,
truncated or garbled: `DamagedCheckpointError`) for the caller to move aside; a step whose meta
names another config, or whose arrays have other shapes, still stops the run, as does damage
when no older step restores (nothing is then reported as damaged: a run whose every checkpoint
fails is more likely read by the wrong code than damaged throughout).
"""

from __future__ import annotations

import pathlib
from collections.abc import Collection, Mapping
from typing import Any

import jax
import orbax.checkpoint as ocp

from lssvwm.common.errors import CheckpointError

__all__ = ["CheckpointError", "Checkpoints", "DamagedCheckpointError", "meta_differences"]


class DamagedCheckpointError(CheckpointError):
    """A step directory that cannot be read: an item missing, unreadable or garbled (as opposed
    to a readable checkpoint of another config or of other shapes)."""

    def __init__(self, message: str, step: int, cause: str = ""):
        super().__init__(message)
        self.step = step
        self.cause = cause or message  # what failed, in a few words (for a warning)


_MISSING = "<missing>"


def meta_differences(
    saved: Mapping,
    current: Mapping,
    *,
    unchecked: Collection[str] = (),
    defaults: Mapping | None = None,
    prefix: str = "",
) -> list[str]:
    """Lines "key: checkpoint A vs config B" for every dotted key where a checkpoint's meta and
    this run's differ (lists and tuples compare alike, as JSON stores both as lists).

    `unchecked`: dotted keys that may differ or be absent. `defaults` (nested like `current`):
    values a key missing from the checkpoint is taken to have -- an option added to the code
    after the run was trained, which the run did not use (the config's dataclass defaults)."""
    defaults = defaults or {}
    keys = []
    for key in sorted(set(saved) | set(current)):
        name = f"{prefix}{key}"
        if name in unchecked:
            continue
        a, b = saved.get(key, _MISSING), current.get(key, _MISSING)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            inner = defaults.get(key)
            keys += meta_differences(
                a,
                b,
                unchecked=unchecked,
                defaults=inner if isinstance(inner, Mapping) else None,
                prefix=name + ".",
            )
        elif a == _MISSING and key in defaults and _normalise(defaults[key]) == _normalise(b):
            continue
        elif _normalise(a) != _normalise(b):
            keys.append(f"{name}: checkpoint {a!r} vs config {b!r}")
    return keys


def _normalise(value):
    if isinstance(value, list | tuple):
        return tuple(_normalise(v) for v in value)
    return value


def _first_line(error: BaseException) -> str:
    """`Type: first line of the message` (orbax's and tensorstore's run to many lines)."""
    lines = str(error).strip().splitlines()
    message = lines[0] if lines else ""
    if len(message) > 300:
        message = message[:300] + " ..."
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def _check_shapes(restored, abstract, where) -> None:
    """Orbax may hand back saved arrays whose shapes differ from the target: refuse them."""
    got = jax.tree_util.tree_flatten_with_path(restored)[0]
    want = jax.tree_util.tree_flatten_with_path(abstract)[0]
    if len(got) != len(want):
        raise CheckpointError(
            f"checkpoint {where} holds {len(got)} arrays, this run's train state {len(want)}"
        )
    for (path, array), (_, target) in zip(got, want, strict=True):
        if tuple(array.shape) != tuple(target.shape) or array.dtype != target.dtype:
            raise CheckpointError(
                f"checkpoint {where} cannot be restored into this run's train state: "
                f"{jax.tree_util.keystr(path)} is {array.dtype}{list(array.shape)} there, "
                f"{target.dtype}{list(target.shape)} here; use a new --workdir for a new config"
            )


def _check_meta(
    saved: Mapping,
    expected: Mapping,
    unchecked: Collection[str],
    where,
    hint: str = "use a new --workdir for a new config",
    defaults: Mapping | None = None,
) -> None:
    differences = meta_differences(saved, expected, unchecked=unchecked, defaults=defaults)
    if differences:
        raise CheckpointError(
            f"checkpoint {where} was trained with a different config; differing keys:\n  "
            + "\n  ".join(differences[:20])
            + "\n"
            + hint
        )


class Checkpoints:
    """The checkpoints of one run directory (see the module docstring)."""

    def __init__(self, directory: str | pathlib.Path, *, keep: int = 3, read_only: bool = False):
        """`read_only`: only read (nothing is created, not even the directory)."""
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self.directory = pathlib.Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep,
            create=not read_only,
            read_only=read_only,
            enable_async_checkpointing=False,
        )
        self._manager = ocp.CheckpointManager(
            self.directory, item_names=("state", "data", "meta"), options=options
        )

    def latest_step(self) -> int | None:
        """The newest complete checkpoint's step (None: none yet)."""
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def step_directory(self, step: int) -> pathlib.Path:
        return self.directory / str(step)

    def reload(self) -> None:
        """Re-reads which steps exist (after step directories were moved by someone else)."""
        self._manager.reload()

    def newest_meta(self) -> tuple[int, dict] | None:
        """(step, meta) of the newest step whose `meta` item reads (None: no such step)."""
        for step in reversed(self.all_steps()):
            try:
                return step, self._read_meta(step)
            except DamagedCheckpointError:
                continue
        return None

    def check_newest_meta(
        self, expected_meta: Mapping[str, Any], unchecked: Collection[str] = ()
    ) -> None:
        """A CheckpointError naming the differing keys when the newest readable meta is not
        `expected_meta` (a run started under another config); reads nothing else."""
        newest = self.newest_meta()
        if newest is not None:
            step, meta = newest
            _check_meta(meta, expected_meta, unchecked, self.step_directory(step))

    def save(
        self, step: int, state, *, data_state: Mapping[str, Any], meta: Mapping[str, Any]
    ) -> None:
        """Writes step `step` (no-op if that step is already saved)."""
        if step in self._manager.all_steps():
            return
        self._manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state),
                data=ocp.args.JsonSave(dict(data_state)),
                meta=ocp.args.JsonSave(dict(meta)),
            ),
            force=True,
        )
        self._manager.wait_until_finished()

    def _read_meta(self, step: int) -> dict:
        """The `meta` item of step `step` (CheckpointError when it cannot be read)."""
        try:
            meta = self._manager.restore(
                step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())
            )["meta"]
        except Exception as error:  # orbax raises many types for damaged files
            raise DamagedCheckpointError(
                f"checkpoint {self.directory / str(step)} is unreadable (its 'meta' item: "
                f"{_first_line(error)}); move that step directory away to resume from an older "
                "one, or use a new --workdir",
                step,
                f"its 'meta' item: {_first_line(error)}",
            ) from error
        return meta or {}

    def restore(
        self,
        step: int,
        abstract_state,
        expected_meta: Mapping[str, Any] | None = None,
        unchecked: Collection[str] = (),
    ):
        """(state, data_state, meta) of step `step`; raises CheckpointError on any problem.

        `unchecked`: dotted meta keys (e.g. "model.remat") that may differ or be absent --
        execution choices that do not change what the weights mean."""
        where = self.directory / str(step)
        meta = self._read_meta(step)
        if expected_meta is not None:
            _check_meta(meta, expected_meta, unchecked, where)
        try:
            restored = self._manager.restore(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract_state),
                    data=ocp.args.JsonRestore(),
                ),
            )
        except Exception as error:
            raise DamagedCheckpointError(
                f"checkpoint {where} cannot be restored into this run's train state "
                f"({_first_line(error)}); move that step directory away to resume from an "
                "older one, or use a new --workdir",
                step,
                _first_line(error),
            ) from error
        _check_shapes(restored["state"], abstract_state, where)
        if not isinstance(restored["data"], Mapping) or "step" not in restored["data"]:
            raise DamagedCheckpointError(f"checkpoint {where} has no data-iterator position", step)
        return restored["state"], restored["data"], meta

    def restore_latest(
        self,
        abstract_state,
        expected_meta: Mapping[str, Any] | None = None,
        unchecked: Collection[str] = (),
    ):
        """`restore` of `latest_step()`; None when there is no checkpoint."""
        step = self.latest_step()
        if step is None:
            return None
        return self.restore(step, abstract_state, expected_meta, unchecked)

    def restore_newest(
        self,
        target_for_step,
        expected_meta: Mapping[str, Any] | None = None,
        unchecked: Collection[str] = (),
        agree=bool,
    ):
        """The newest step that restores completely: (state, data_state, meta, step, damaged),
        `damaged` the newer steps' `DamagedCheckpointError`s (newest first) for the caller to
        move aside; None when there is no checkpoint.

        `target_for_step(step)`: the abstract state to restore that step into. A meta or shape
        mismatch raises at once (another config, not damage); so does damage when no older step
        restores (the newest step's error). `agree(failed)`: the same decision on every process
        of a multi-host run (default: this process's own)."""
        damaged = []
        for step in reversed(self.all_steps()):
            try:
                state, data_state, meta = self.restore(
                    step, target_for_step(step), expected_meta, unchecked
                )
                error = None
            except DamagedCheckpointError as caught:
                error = caught
            if not agree(error is not None):
                return state, data_state, meta, step, damaged
            damaged.append(
                error
                or DamagedCheckpointError(
                    f"checkpoint {self.step_directory(step)} failed to restore on another process",
                    step,
                )
            )
        if damaged:
            raise damaged[0]
        return None

    def restore_weights(
        self,
        abstract_weights: Mapping[str, Any],
        expected_meta: Mapping[str, Any],
        unchecked: Collection[str] = (),
        step: int | None = None,
        defaults: Mapping[str, Any] | None = None,
    ) -> tuple[dict, int, dict]:
        """(weights, step, meta): only the items of `abstract_weights` (params, rest, ema) of the
        newest checkpoint (or `step`), for a warm start or for sampling; the rest of the saved
        train state (optimizer moments, step, carried state) is not read -- so it also loads
        runs whose train state has items this reader does not build (a state-carrying run's
        `carry`), and needs no optimizer to describe them.

        `expected_meta` is compared with the sections of the saved meta that it names (e.g. only
        "model": a fine-tune may change the diffusion recipe, not the network); `unchecked` and
        `defaults` as in `meta_differences`."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise CheckpointError(f"no checkpoint to start from in {self.directory}")
        where = self.directory / str(step)
        meta = self._read_meta(step)
        saved = {key: meta.get(key, "<missing>") for key in expected_meta}
        _check_meta(
            saved,
            expected_meta,
            unchecked,
            where,
            hint="its weights load only into the same network they were trained with",
            defaults=defaults,
        )
        restore_args = jax.tree.map(
            lambda leaf: ocp.ArrayRestoreArgs(sharding=getattr(leaf, "sharding", None)),
            abstract_weights,
        )
        try:
            restored = self._manager.restore(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.PyTreeRestore(
                        item=dict(abstract_weights), restore_args=restore_args, partial_restore=True
                    )
                ),
            )["state"]
        except Exception as error:
            raise CheckpointError(
                f"the weights of checkpoint {where} cannot be read into this run "
                f"({type(error).__name__}: {error})"
            ) from error
        _check_shapes(restored, dict(abstract_weights), where)
        return restored, step, meta

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()
