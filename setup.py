"""The one build setting pyproject.toml cannot say: the top-level configs/ folder ships inside the
wheel as the package `lssvwm.configs` (setuptools' package discovery and a package mapped from
another folder do not combine in pyproject.toml). Everything else is in pyproject.toml."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["lssvwm", "lssvwm.*"]), "lssvwm.configs"],
    package_dir={"lssvwm.configs": "configs"},
)
