"""One line per mistake: how every lssvwm command line starts, and how it fails.

    if __name__ == "__main__":
        cli.run(main)          # in place of absl's app.run(main)

`run` is absl's `app.run` with three additions:

* Before absl parses the flags, each config-file flag on the command line (`--config=FILE[:arg]`
  or `--config=NAME[:arg]`, `--data=FILE[:arg]`) is loaded and every `--config.a.b=V` override's
  dotted key is checked against it (`check_config_flags`), so a missing file, a file that fails
  to import, a bad `:arg` or an unknown key is one line naming the file and the nearest known key:

      error: configs/quickstart.py:tiny: unknown config key model.widht (did you mean model.width?)

* An expected error -- a mistake in the input, not a bug -- is printed as one line,
  `error: <message>`, on stderr, and the program exits with status 2 (`EXIT_STATUS`):
  `lssvwm.errors.LssvwmError`, ValueError (config mistakes, bad flag values, TFDS's
  DatasetNotFoundError), OSError (FileNotFoundError, NotADirectoryError, PermissionError, ...),
  absl's flags.Error (unknown flags, IllegalFlagValueError, failed validators),
  app.UsageError, and a KeyError or AttributeError raised inside ml_collections or the config
  loader (a config key the code reads but the config lacks); while the flags are parsed, also
  a TypeError, KeyError, AttributeError or IndexError (ml_collections' errors for an override
  its config cannot take).
* `--verbose` (defined here, so every command line has it) or the environment variable
  `LSSVWM_VERBOSE=1` prints the full traceback instead of the line (same exit status).

Any other exception is a bug and keeps its traceback (exit status 1, as absl has it).
"""

from __future__ import annotations

import functools
import os
import re
import sys
import traceback

from absl import app, flags

from lssvwm.errors import LssvwmError

EXIT_STATUS = 2
VERBOSE_ENV = "LSSVWM_VERBOSE"
_MAX_CHARS = 2000
_TRUE = ("1", "true", "yes", "on")

# Expected wherever they are raised (see the module docstring).
EXPECTED = (LssvwmError, ValueError, OSError, flags.Error, app.UsageError)
# Expected too while the flags are parsed: what ml_collections raises for an override that its
# config cannot take (a value of another type, a field that is not there).
_PARSING = (TypeError, KeyError, AttributeError, IndexError)


def run(main) -> None:
    """absl's `app.run(main)` on `sys.argv` with config files checked first and expected
    errors in one line (module docstring). ml_collections reads its `--config.a.b` overrides
    from `sys.argv` itself, so this takes no other argv."""
    define_verbose_flag()
    argv = list(sys.argv)
    verbose = verbose_requested(argv)
    app.run(
        functools.partial(_run_main, main, verbose=verbose),
        argv=argv,
        flags_parser=functools.partial(parse_flags, verbose=verbose),
    )


def define_verbose_flag(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Defines `--verbose` (once)."""
    if "verbose" not in flag_values:
        flags.DEFINE_bool(
            "verbose",
            False,
            f"On an error, print the full traceback instead of one line (also {VERBOSE_ENV}=1).",
            flag_values=flag_values,
        )


def verbose_requested(argv, environ=None) -> bool:
    """Whether `argv` (`--verbose`, `--verbose=true`; `--noverbose` undoes it) or the
    environment (`LSSVWM_VERBOSE=1`) asks for tracebacks. Read from argv before absl parses it,
    so that a flag-parsing error can honour it."""
    environ = os.environ if environ is None else environ
    verbose = environ.get(VERBOSE_ENV, "").strip().lower() in _TRUE
    for arg in argv[1:]:
        if arg == "--":
            break
        match = re.fullmatch(r"--?(no)?verbose(?:=(.*))?", arg)
        if match:
            negated, value = match.groups()
            verbose = (value is None or value.strip().lower() in _TRUE) and not negated
    return verbose


def parse_flags(argv, *, verbose: bool = False, flag_values: flags.FlagValues = flags.FLAGS):
    """absl's flag parsing (the `flags_parser` of `app.run`) after `check_config_flags`; any
    failure but a bug here is one line (`fail`)."""
    try:
        check_config_flags(argv, flag_values)
        return flag_values(argv)
    except Exception as error:
        lenient = isinstance(error, _PARSING) and not _raised_in_this_module(error)
        if not (is_expected(error) or lenient):
            raise
        fail(error, verbose=verbose)


def _run_main(main, argv, *, verbose: bool):
    try:
        return main(argv)
    except Exception as error:
        if not is_expected(error):
            raise
        fail(error, verbose=verbose)


def is_expected(error: BaseException) -> bool:
    """Whether `error` is a mistake in the input (module docstring), not a bug."""
    if isinstance(error, EXPECTED):
        return True
    if type(error).__name__ == "DatasetNotFoundError":  # TFDS (a ValueError in 4.9)
        return True
    return isinstance(error, KeyError | AttributeError) and _raised_by_config(error)


def _innermost_file(error: BaseException) -> str:
    frame = error.__traceback__
    if frame is None:
        return ""
    while frame.tb_next is not None:
        frame = frame.tb_next
    return frame.tb_frame.f_code.co_filename


def _raised_by_config(error: BaseException) -> bool:
    """Raised inside ml_collections or the config loader: a config key that is not there."""
    filename = _innermost_file(error)
    return f"{os.sep}ml_collections{os.sep}" in filename or filename.endswith(
        f"lssvwm{os.sep}config_loading.py"
    )


def _raised_in_this_module(error: BaseException) -> bool:
    return os.path.abspath(_innermost_file(error)) == os.path.abspath(__file__)


def one_line(error: BaseException) -> str:
    """The message of `error` in one line (KeyErrors unquoted, wrapped errors unwrapped, line
    breaks joined, the type's name when there is no message)."""
    while len(error.args) == 1 and isinstance(error.args[0], BaseException):
        error = error.args[0]  # ml_collections: AttributeError(KeyError(message))
    if isinstance(error, KeyError) and len(error.args) == 1:
        message = str(error.args[0])
        if _raised_by_config(error) and not isinstance(error, LssvwmError):
            message = f"config has no key {message}"  # ml_collections: the bare key
    else:
        message = str(error)
    message = _join_lines(message)
    if not message:
        message = type(error).__name__
    if len(message) > _MAX_CHARS:
        message = message[:_MAX_CHARS] + f" ... (--verbose or {VERBOSE_ENV}=1: all of it)"
    return message


def _join_lines(message: str) -> str:
    """A message's lines as one: "; " between them unless a line ends in punctuation."""
    joined = ""
    for line in message.splitlines():
        line = line.strip()
        if line:
            separator = " " if not joined or joined[-1] in ".,:;(-" else "; "
            joined = f"{joined}{separator}{line}" if joined else line
    return joined


def fail(error: BaseException, *, verbose: bool = False):
    """Prints `error` -- as `error: <message>` in one line, or with `verbose` as its full
    traceback -- on stderr and exits with EXIT_STATUS."""
    if verbose:
        traceback.print_exception(error, file=sys.stderr)
    else:
        sys.stderr.write(f"error: {one_line(error)}\n")
    sys.stderr.flush()
    sys.exit(EXIT_STATUS)


def register_check(name: str, check, *, flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Makes `check(value)` -- a function that raises a ValueError naming the mistake -- a
    validator of flag `name` (None, the flag's "not given", is not checked): a bad value is
    one line when the flags are parsed, before anything loads or compiles."""

    def validator(value) -> bool:
        if value is None:
            return True
        try:
            check(value)
        except ValueError as error:
            raise flags.ValidationError(one_line(error)) from None
        return True

    flags.register_validator(name, validator, flag_values=flag_values)


def check_can_write(path: str, *, directory: bool = False, label: str = "") -> None:
    """A ValueError unless `path` (a directory with `directory`, else a file) exists as such or
    can be made: its nearest existing ancestor is a writable directory. Checks only; makes
    nothing (an output flag's validator, so that a run cannot fail at the very end). `label`
    (e.g. "--workdir") starts the message; URLs (gs://...) are not checked."""
    if "://" in str(path):
        return
    name = f"{label} {path}" if label else str(path)
    target = os.path.abspath(path)
    if os.path.exists(target):
        if directory and not os.path.isdir(target):
            raise ValueError(f"{name} exists and is not a directory")
        if not directory and os.path.isdir(target):
            raise ValueError(f"{name} is a directory, not a file")
        return
    parent = os.path.dirname(target)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise ValueError(f"{name} cannot be made: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{name} cannot be made: {parent} is not writable")


# ---- config-file flags -----------------------------------------------------------------------


def _flag_argument(argv, name: str) -> str | None:
    """The value `argv` gives flag `name` (`--name=V` or `--name V`; the last one), or None."""
    value = None
    for i, arg in enumerate(argv[1:], start=1):
        if arg == "--":
            break
        match = re.fullmatch(rf"--?{re.escape(name)}(?:=(.*))?", arg, flags=re.DOTALL)
        if match:
            if match.group(1) is not None:
                value = match.group(1)
            elif i + 1 < len(argv):
                value = argv[i + 1]
    return value


def default_config_argument(name: str, default: str) -> None:
    """Puts `--name=default` first in `sys.argv` unless the command line gives `--name`
    (call it before `DEFINE_config_file(name, default, ...)`): ml_collections then loads the
    default file, and applies its `--name.a.b` overrides, when `run` parses the flags -- after
    `check_config_flags` -- and not while the flag is defined, outside `run`'s checks."""
    if _flag_argument(sys.argv, name) is None:
        sys.argv.insert(1, f"--{name}={default}")


def override_keys(argv, name: str) -> list[str]:
    """The dotted keys of the `--name.a.b=V` (and `--noname.a.b`) overrides in `argv`."""
    keys = []
    for arg in argv[1:]:
        if arg == "--":
            break
        match = re.match(rf"--?(?:no)?{re.escape(name)}\.([^=]+)", arg)
        if match and match.group(1) not in keys:
            keys.append(match.group(1))
    return keys


class ConfigSpecParser(flags.ArgumentParser):
    """The parser `check_config_flags` gives every ml_collections config-file flag in place of
    its own: it loads with `lssvwm.config_loading.load_config`, so the flag takes a config name
    (`--config=quickstart:tiny`) as well as a path, and config files can import each other
    relatively (ml_collections loads a file outside any package, where they cannot)."""

    def parse(self, argument: str):
        from lssvwm import config_loading

        return config_loading.load_config(argument)

    def flag_type(self) -> str:
        return "config object"


def check_config_flags(argv, flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Loads the config of each config-file flag (ml_collections `DEFINE_config_file`) that
    `argv` names, and checks the dotted key of each of its overrides: a ConfigFileError or an
    UnknownConfigKeyError in one line naming the config and the key (lssvwm.config_loading).
    Each such flag then parses with `ConfigSpecParser`."""
    from ml_collections.config_flags import config_flags

    from lssvwm import config_loading

    for name in list(flag_values):
        flag = flag_values[name]
        if flag.name != name or not config_flags.is_config_flag(flag):
            continue
        from_file = isinstance(flag.parser, config_flags.ConfigFileFlagParser | ConfigSpecParser)
        if isinstance(flag.parser, config_flags.ConfigFileFlagParser):
            flag.parser = ConfigSpecParser()
        spec = _flag_argument(argv, name)
        keys = override_keys(argv, name)
        if spec is not None and from_file:
            config = config_loading.load_config(spec)
        elif keys:
            config = flag.value if flag.value is not None else flag.default
            spec = flag.default_unparsed if isinstance(flag.default_unparsed, str) else f"--{name}"
            if config is None:
                raise app.UsageError(f"--{name}.{keys[0]} overrides a field, but --{name} is unset")
        else:
            continue
        if getattr(flag, "_accept_new_attributes", False):
            continue
        for key in keys:
            config_loading.check_key(config, key, source=spec)
