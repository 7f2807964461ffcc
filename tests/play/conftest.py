"""Fixtures of the player's tests: the evaluation tests' tiny run directory (random weights:
the tests check mechanics, and random AdaLN weights make every action change the frame)."""

import pytest

from tests.evaluation.conftest import tiny_run  # noqa: F401 (the fixture, shared)


@pytest.fixture(scope="module")
def tiny_loaded_run(tiny_run):  # noqa: F811
    from lssvwm.evaluation import loading

    return loading.load_run(tiny_run[0])
