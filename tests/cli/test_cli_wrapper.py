"""lssvwm.cli: one line and exit status 2 per expected error, the traceback with --verbose or
LSSVWM_VERBOSE=1, bugs untouched; config files and `--config.a.b` keys checked before absl."""

import os

import pytest
from absl import flags

from lssvwm import cli
from tests.cli.cli_harness import error_lines, run_main

TOY = "tests.cli.toy_cli"
TINY = "configs/quickstart.py:tiny"


def toy(monkeypatch, capsys, *args):
    return run_main(TOY, *args, monkeypatch=monkeypatch, capsys=capsys)


@pytest.mark.parametrize(
    "kind, message",
    [
        ("value", "error: training.steps must be >= 1, got -5"),
        ("lssvwm", "error: checkpoint /x/4 cannot be restored"),
        ("usage", "error: --workdir is required"),
        ("config_key", "error: config has no key 'widht'; Did you mean \"width\""),
        ("missing_file", "error: [Errno 2] No such file or directory: '/nonexistent/lssvwm/"),
    ],
)
def test_an_expected_error_is_one_line_and_status_2(monkeypatch, capsys, kind, message):
    monkeypatch.delenv(cli.VERBOSE_ENV, raising=False)
    status, stderr = toy(monkeypatch, capsys, f"--fail={kind}")
    assert status == cli.EXIT_STATUS == 2
    assert error_lines(stderr) == [stderr.strip()], stderr
    assert stderr.startswith(message), stderr


def test_success_exits_0(monkeypatch, capsys):
    status, _ = toy(monkeypatch, capsys)
    assert status == 0 and capsys.readouterr().out == ""  # run_main read stdout already


@pytest.mark.parametrize("how", ["--verbose", "env"])
def test_verbose_shows_the_traceback_with_the_same_status(monkeypatch, capsys, how):
    args = ["--fail=value"]
    if how == "env":
        monkeypatch.setenv(cli.VERBOSE_ENV, "1")
    else:
        monkeypatch.delenv(cli.VERBOSE_ENV, raising=False)
        args.append("--verbose")
    status, stderr = toy(monkeypatch, capsys, *args)
    assert status == 2
    assert "Traceback (most recent call last)" in stderr and "toy_cli.py" in stderr
    assert "ValueError: training.steps must be >= 1" in stderr


@pytest.mark.parametrize("kind, error", [("runtime", RuntimeError), ("dict_key", KeyError)])
def test_a_bug_keeps_its_traceback(monkeypatch, capsys, kind, error):
    with pytest.raises(error):  # not SystemExit(2): absl lets it through, Python prints it
        toy(monkeypatch, capsys, f"--fail={kind}")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--count=0"], "error: flag --count=0: 0 is not a positive integer"),
        (["--cuont=2"], "error: Unknown command line flag 'cuont'. Did you mean: count ?"),
        (["--fail=nope"], "error: flag --fail=nope: value should be one of"),
        (
            [f"--config={TINY}", "--config.model.widht=3"],
            f"error: {TINY}: unknown config key model.widht (did you mean model.width?)",
        ),
        (
            [f"--config={TINY}", "--config.modle.depth=3"],
            f"error: {TINY}: unknown config key modle.depth (did you mean model.depth?)",
        ),
        (
            [f"--config={TINY}", "--config.model.width=wide"],
            "error: flag --config.model.width=wide: invalid literal for int()",
        ),
        (["--config=configs/nope.py"], "error: configs/nope.py: config file does not exist"),
        (
            ["--config=configs/quickstart.py:huge"],
            "error: configs/quickstart.py:huge: unknown quickstart variant 'huge'",
        ),
        (
            ["--config=configs"],  # a name, not a path (no .py): the listing is named
            "error: configs: no config named configs (`python -m lssvwm.configs` lists them; "
            "a path ends in .py)",
        ),
    ],
)
def test_a_flag_mistake_is_one_line_and_status_2(monkeypatch, capsys, args, message):
    monkeypatch.delenv(cli.VERBOSE_ENV, raising=False)
    status, stderr = toy(monkeypatch, capsys, *args)
    assert status == 2
    assert error_lines(stderr) == [stderr.strip()], stderr
    assert stderr.startswith(message), stderr


def test_a_config_file_that_fails_to_import_names_the_file(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv(cli.VERBOSE_ENV, raising=False)
    (tmp_path / "syntax.py").write_text("def get_config(:\n    pass\n")
    (tmp_path / "imports.py").write_text("import no_such_module\n")
    (tmp_path / "raises.py").write_text("def get_config():\n    return 1 / 0\n")
    for name, message in [
        ("syntax.py", "cannot import the config file: SyntaxError: invalid syntax"),
        ("imports.py", "cannot import the config file: ModuleNotFoundError: No module named"),
        ("raises.py", "ZeroDivisionError: division by zero"),
    ]:
        status, stderr = toy(monkeypatch, capsys, f"--config={tmp_path / name}")
        assert status == 2 and stderr.startswith(f"error: {tmp_path / name}: "), stderr
        assert message in stderr and len(stderr.strip().splitlines()) == 1, stderr


def test_verbose_requested_reads_the_flag_and_the_environment():
    assert not cli.verbose_requested(["p"], environ={})
    assert cli.verbose_requested(["p", "--verbose"], environ={})
    assert cli.verbose_requested(["p", "--verbose=true"], environ={})
    assert not cli.verbose_requested(["p", "--verbose", "--noverbose"], environ={})
    assert cli.verbose_requested(["p"], environ={cli.VERBOSE_ENV: "1"})
    assert not cli.verbose_requested(["p", "--noverbose"], environ={cli.VERBOSE_ENV: "1"})
    assert not cli.verbose_requested(["p", "--", "--verbose"], environ={})


def test_one_line_unquotes_and_joins():
    assert cli.one_line(KeyError("no key 'a'")) == "no key 'a'"
    assert cli.one_line(ValueError("a:\n  b\nc")) == "a: b; c"
    assert cli.one_line(ValueError()) == "ValueError"
    assert cli.one_line(AttributeError(KeyError("inner"))) == "inner"


def test_check_can_write(tmp_path):
    cli.check_can_write(str(tmp_path / "new" / "deeper" / "out.json"))
    cli.check_can_write(str(tmp_path), directory=True)
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="is not a directory"):
        cli.check_can_write(str(tmp_path / "file" / "out.json"))
    with pytest.raises(ValueError, match="exists and is not a directory"):
        cli.check_can_write(str(tmp_path / "file"), directory=True)
    with pytest.raises(ValueError, match="is a directory, not a file"):
        cli.check_can_write(str(tmp_path))
    assert not (tmp_path / "new").exists()


def test_register_check_turns_a_value_error_into_a_flag_error():
    registry = flags.FlagValues()
    flags.DEFINE_string("reset", None, "x", flag_values=registry)

    def check(value):
        if value == "bad":
            raise ValueError("unknown reset policy 'bad'")

    cli.register_check("reset", check, flag_values=registry)
    registry(["p"])  # None: not given, not checked
    registry.unparse_flags()
    with pytest.raises(flags.IllegalFlagValueError, match="unknown reset policy 'bad'"):
        registry(["p", "--reset=bad"])


def test_the_wrapper_module_imports_nothing_heavy():
    # cli is imported by every command line before its flags parse: no JAX, no TFDS.
    assert os.path.basename(cli.__file__) == "cli.py"
    source = open(cli.__file__).read()
    assert "import jax" not in source and "tensorflow" not in source
