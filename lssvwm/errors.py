"""The exception types a command line catches and reports in one line (`error: <message>`).

    from lssvwm.errors import LssvwmError

    except (LssvwmError, ValueError, OSError) as error:   # ValueError: config mistakes
        cli.fail(error)       # `error: <message>` in one line, exit status 2 (lssvwm.cli)

A SIGTERM / SIGINT stop is no error: `lssvwm.train.train` finishes the step, saves it and
returns normally, so the command line exits 0 with nothing to catch. The classes are defined
in `lssvwm.common.errors` (the layer every part of lssvwm may import); this is their public
name.
"""

from lssvwm.common.errors import (
    CheckpointError,
    DataError,
    LssvwmError,
    NonFiniteError,
    RunDirectoryError,
)

__all__ = ["CheckpointError", "DataError", "LssvwmError", "NonFiniteError", "RunDirectoryError"]
