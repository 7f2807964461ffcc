"""Layering read from the source (ast, nothing imported): evaluation and its command lines never
import training, and lssvwm.common, which both share, imports only itself."""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "lssvwm"


def imported_modules(source: str, package: str) -> set[str]:
    """Every module a file of `package` with this source imports, absolute, with `from a import
    b` also giving "a.b" (b may be a submodule); function-level imports included."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against the file's package
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def modules_of(path: pathlib.Path) -> set[str]:
    package = ".".join(path.relative_to(PACKAGE.parent).parts[:-1])
    return imported_modules(path.read_text(), package)


def sources(*relative: str) -> list[pathlib.Path]:
    paths = []
    for name in relative:
        path = PACKAGE / name
        paths += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return paths


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


@pytest.mark.parametrize(
    "path", sources("evaluation", "evaluate.py", "rollout.py"), ids=lambda p: p.name
)
def test_evaluation_does_not_import_training(path):
    offending = sorted(m for m in modules_of(path) if _within(m, "lssvwm.training"))
    assert not offending, f"{path.relative_to(PACKAGE.parent)} imports {offending}"


@pytest.mark.parametrize("path", sources("common"), ids=lambda p: p.name)
def test_common_imports_only_itself(path):
    lssvwm_imports = {m for m in modules_of(path) if _within(m, "lssvwm")}
    offending = sorted(m for m in lssvwm_imports if not _within(m, "lssvwm.common"))
    assert not offending, f"{path.relative_to(PACKAGE.parent)} imports {offending}"


def test_the_parser_sees_every_import_form():
    """The check itself: plain, from, relative and function-level imports are all found."""
    source = (
        "import lssvwm.training.metrics\n"
        "from lssvwm import training\n"
        "from ..training import videos\n"
        "from . import loading\n"
        "def f():\n"
        "    from lssvwm.training.evaluation import evaluate\n"
    )
    found = imported_modules(source, "lssvwm.evaluation")
    assert {
        "lssvwm.training.metrics",
        "lssvwm.training",
        "lssvwm.training.videos",
        "lssvwm.evaluation.loading",
        "lssvwm.training.evaluation",
    } <= found
