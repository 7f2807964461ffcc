"""Every `python -m ...` command in the README parses with the flags its command line has.

Each command (fenced blocks and inline code spans) goes through its module's own parser and
stops there, so nothing trains or reads data:
* lssvwm's absl command lines: `lssvwm.cli.parse_flags`, which loads each `--config=`/`--data=`
  file and checks every `--config.a.b=V` override against it before absl parses the flags;
* the experiments' argparse command lines: the module runs as `__main__` until its
  `parse_args` returns;
* modules without flags (`python -m lssvwm.configs`): they must exist.
A command the README shows failing (`$ command` then `error: ...`) must fail with that line.

README placeholders (`configs/x.py`, `--config.mesh.num_processes=N`, `...`) are given real
values by `PLACEHOLDERS`; a renamed or removed flag fails here.
"""

import argparse
import importlib
import importlib.util
import pathlib
import re
import runpy
import shlex
import sys

import pytest

from lssvwm import cli
from tests.cli.cli_harness import error_lines, fresh_cli_module

REPO = pathlib.Path(__file__).resolve().parents[2]
README = REPO / "README.md"

# README placeholder -> a value the parser can take (whole-argument regex substitutions).
PLACEHOLDERS = [
    (r"(--config=)configs/x\.py", r"\1configs/quickstart.py"),
    (r"(--config\.mesh\.num_processes=)N", r"\g<1>2"),
    (r"(--config\.mesh\.process_id=)I", r"\g<1>0"),
]
# Command lines without flags of their own: only their existence is checked.
NO_FLAGS = {"lssvwm.configs", "configs", "configs.maze3d_lssvwm"}


def _commands_in(text: str):
    """(line, expected error or None) of each python -m command in a README-like text."""
    found = []
    for match in re.finditer(r"^```\w*\n(.*?)^```$", text, re.M | re.S):
        lines = match.group(1).replace("\\\n", " ").splitlines()
        for index, line in enumerate(lines):
            command = line.strip().removeprefix("$ ")
            if command.startswith("python -m "):
                following = lines[index + 1].strip() if index + 1 < len(lines) else ""
                found.append((command, following if following.startswith("error:") else None))
    prose = re.sub(r"^```\w*\n.*?^```$", "", text, flags=re.M | re.S)
    for match in re.finditer(r"`(python -m [^`]+)`", prose):
        found.append((" ".join(match.group(1).split()), None))
    return found


def readme_commands():
    """(module, argv without the program, expected error or None) per README command."""
    commands = []
    for line, expected in _commands_in(README.read_text()):
        words = shlex.split(line, comments=True)
        for operator in ("&&", "||", "|", ";"):
            if operator in words:
                words = words[: words.index(operator)]
        module, args = words[2], words[3:]
        if not module.startswith(("lssvwm", "experiments", "configs")):
            continue  # pytest, pip: not this project's command lines
        args = [arg for arg in args if "..." not in arg]
        for pattern, value in PLACEHOLDERS:
            args = [re.sub(f"^{pattern}$", value, arg) for arg in args]
        commands.append((module, args, expected))
    return commands


COMMANDS = readme_commands()


def test_the_readme_has_commands_of_every_kind():
    modules = {module for module, _, _ in COMMANDS}
    assert {"lssvwm.train", "lssvwm.evaluate", "lssvwm.rollout", "lssvwm.play"} <= modules
    assert any(module.startswith("experiments.") for module in modules)
    assert any(expected for _, _, expected in COMMANDS)


class _Parsed(Exception):
    """Raised by the patched argparse once a command line's arguments parsed."""


def _parse_absl(module_name, args, monkeypatch, capsys):
    """(exit status or None, stderr) of parsing `args` with the module's absl flags."""
    monkeypatch.setattr(sys, "argv", [module_name, *args])
    with fresh_cli_module(module_name) as (_, registry):
        cli.define_verbose_flag(registry)
        capsys.readouterr()
        try:
            cli.parse_flags(sys.argv, flag_values=registry)
            status = None
        except SystemExit as exited:
            status = exited.code
    return status, capsys.readouterr().err


def _parse_argparse(module_name, args, monkeypatch, capsys):
    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(parser, *a, **k):
        original(parser, *a, **k)
        raise _Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    monkeypatch.setattr(sys, "argv", [module_name, *args])
    capsys.readouterr()
    try:
        runpy.run_module(module_name, run_name="__main__", alter_sys=False)
    except _Parsed:
        return None, capsys.readouterr().err
    except SystemExit as exited:
        return exited.code, capsys.readouterr().err
    pytest.fail(f"{module_name} ran to the end without parsing arguments")


@pytest.mark.parametrize(
    "module, args, expected",
    COMMANDS,
    ids=[f"{module} {' '.join(args)}"[:80] for module, args, _ in COMMANDS],
)
def test_a_readme_command_parses(module, args, expected, monkeypatch, capsys):
    spec = importlib.util.find_spec(module)
    assert spec is not None, f"no module {module}"
    if module in NO_FLAGS:
        return
    if spec.submodule_search_locations is not None:  # a package: `python -m` runs its __main__
        module = f"{module}.__main__"
        spec = importlib.util.find_spec(module)
    source = pathlib.Path(spec.origin).read_text()
    parse = _parse_argparse if "argparse" in source else _parse_absl
    status, stderr = parse(module, args, monkeypatch, capsys)
    if expected is None:
        assert status is None, f"python -m {module} {' '.join(args)}: {stderr[-2000:]}"
    else:
        assert status == cli.EXIT_STATUS, stderr
        assert error_lines(stderr) == [expected]
