"""The exception types a command line catches and reports in one line (`error: <message>`).

    from lssvwm.errors import LssvwmError

    except (LssvwmError, ValueError, FileNotFoundError) as error:   # ValueError: config mistakes
        status = getattr(error, "exit_status", 1)
        if status:
            print(f"error: {error}", file=sys.stderr)
        sys.exit(status)

`LssvwmError.exit_status` is 1 except for `Interrupted` (a SIGTERM / SIGINT stop that finished
its step and saved: exit 0, not printed as an error). Defined in `lssvwm.common.errors` (the
layer every part of lssvwm may import); this module is their public name.
"""

from lssvwm.common.errors import (
    CheckpointError,
    Interrupted,
    LssvwmError,
    NonFiniteError,
    RunDirectoryError,
)

__all__ = ["CheckpointError", "Interrupted", "LssvwmError", "NonFiniteError", "RunDirectoryError"]
