"""Running a command line's `main` in this process, through `lssvwm.cli.run`, as the shell would.

    def test_x(monkeypatch, capsys):
        status, stderr = run_main("lssvwm.evaluate", "--context=0", monkeypatch=monkeypatch,
                                  capsys=capsys)

(A helper module, not a conftest.py: tests elsewhere import their directory's `conftest`.)

Every lssvwm command line defines its flags on absl's one global registry, and two of them
(`--workdir` of lssvwm.train and lssvwm.evaluate, ...) cannot be defined at once; the suite
imports lssvwm.train elsewhere. So each call sets aside every flag that is not absl's own,
imports the command line's module afresh (build and preview define theirs in
`_define_flags`), runs it, and puts the registry and `sys.modules` back as they were.
"""

import contextlib
import importlib
import re
import sys

import pytest
from absl import app, flags

from lssvwm import cli


@contextlib.contextmanager
def isolated_flags():
    """absl's flag registry with only absl's own flags; restored on exit."""
    registry = flags.FLAGS
    app.define_help_flags()  # absl's, defined once per process: keep them in the saved state
    saved = {}
    for key, value in registry.__dict__.items():
        if isinstance(value, dict):
            saved[key] = {k: list(v) if isinstance(v, list) else v for k, v in value.items()}
        elif isinstance(value, set):
            saved[key] = set(value)
        else:
            saved[key] = value
    try:
        for name in list(registry):
            module = registry.find_module_defining_flag(name, default="")
            if name in registry and not module.startswith("absl"):
                delattr(registry, name)
        registry.unparse_flags()
        yield registry
    finally:
        registry.__dict__.update(saved)


def restore_module(module_name: str, previous) -> None:
    """Puts `sys.modules[module_name]` and its parent package's attribute back as they were
    before a fresh import: an import binds the new module on the parent package too, and
    `from package import module` reads that attribute, so a test that patched the old module
    (tests/data/test_build_anywhere.py patches lssvwm.data.shard_writer) would see the new one."""
    sys.modules.pop(module_name, None)
    parent_name, _, child = module_name.rpartition(".")
    parent = sys.modules.get(parent_name) if parent_name else None
    if previous is not None:
        sys.modules[module_name] = previous
        if parent is not None:
            setattr(parent, child, previous)
    elif parent is not None and hasattr(parent, child):
        delattr(parent, child)


@contextlib.contextmanager
def fresh_cli_module(module_name: str):
    """`module_name` imported afresh with its absl flags defined in an isolated registry:
    yields (module, registry); the registry and the module's old import are restored on exit."""
    previous = sys.modules.pop(module_name, None)
    try:
        with isolated_flags() as registry:
            module = importlib.import_module(module_name)
            if hasattr(module, "_define_flags"):
                module._define_flags()
            yield module, registry
    finally:
        restore_module(module_name, previous)


def run_main(module_name: str, *args: str, monkeypatch, capsys):
    """(exit status, stderr) of `python -m module_name *args` run in this process."""
    monkeypatch.setattr(sys, "argv", [module_name, *args])
    capsys.readouterr()
    with fresh_cli_module(module_name) as (module, _):
        with pytest.raises(SystemExit) as exited:
            cli.run(module.main)
    code = exited.value.code
    return (0 if code is None else code), capsys.readouterr().err


_ABSL_LOG_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ [^ ]+:\d+\] ")


def error_lines(stderr: str) -> list[str]:
    """The lines of `stderr` that are not absl log lines (`I1126 07:00:00.000 ... file.py:1] `)."""
    log = _ABSL_LOG_LINE
    return [line for line in stderr.splitlines() if line.strip() and not log.match(line)]
