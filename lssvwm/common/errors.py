"""The exception types of lssvwm that a command line reports in one line (`lssvwm.errors`
re-exports them; they live here because `lssvwm.common` imports only itself).

    try:
        train(spec, workdir)
    except LssvwmError as error:
        cli.fail(error)                    # `error: <message>`, exit status 2 (lssvwm.cli)

Every one's `str()` is a complete message for a person (naming the file, key, step or process
it is about), so a command line prints it as `error: <message>` with no traceback. Library code
that only needs "something a user must fix" catches `LssvwmError`; the subclasses say which.
"""

from __future__ import annotations


class LssvwmError(Exception):
    """A failure a user can act on; `str(error)` is the message. A command line prints
    `error: <message>` and exits non-zero (lssvwm.cli). (A SIGTERM / SIGINT stop is no error:
    `lssvwm.train.train` saves and returns normally, and the command line exits 0.)"""


class CheckpointError(LssvwmError, RuntimeError):
    """A checkpoint exists but cannot be restored into this run (damaged, another config, other
    shapes), or there is none where one is needed."""


class RunDirectoryError(LssvwmError):
    """The run directory cannot be used as asked: another trainer holds its lock, or its
    config.json belongs to another config of a run that already has checkpoints."""


class NonFiniteError(LssvwmError, FloatingPointError):
    """Training produced a non-finite loss, gradient norm or parameter norm and stopped
    (`training.nonfinite="stop"`, or too many consecutive skipped steps). No non-finite state
    was saved; the message names the step, the quantity and the newest checkpoint."""


class DataError(LssvwmError):
    """The data does not fit the run: e.g. a resumed state-carrying run whose windows no longer
    continue the carried state (the data or the schedule changed under it)."""
