"""The one comparison of a checkpoint's meta with a config (resume, warm start, evaluation)."""

from lssvwm.common.checkpointing import meta_differences

SAVED = {"model": {"width": 32, "block_sizes": ["full", [1, 1]]}, "diffusion": {"target": "v"}}


def test_equal_meta_has_no_differences_and_tuples_match_lists():
    current = {**SAVED, "model": {"width": 32, "block_sizes": ("full", (1, 1))}}
    assert meta_differences(SAVED, current) == []


def test_differences_are_named_by_dotted_key():
    current = {"model": {"width": 64, "block_sizes": ["full", [1, 1]]}, "diffusion": {}}
    assert meta_differences(SAVED, current) == [
        "diffusion.target: checkpoint 'v' vs config '<missing>'",
        "model.width: checkpoint 32 vs config 64",
    ]


def test_unchecked_keys_may_differ_or_be_absent():
    current = {**SAVED, "model": {**SAVED["model"], "width": 64, "remat": True}}
    assert meta_differences(SAVED, current, unchecked=("model.width", "model.remat")) == []


def test_a_key_the_checkpoint_lacks_matches_only_its_default():
    """An option added after the run was trained: accepted where the config keeps its default."""
    defaults = {"model": {"remat": False, "block_sizes": ("full",)}}
    at_default = {**SAVED, "model": {**SAVED["model"], "remat": False}}
    assert meta_differences(SAVED, at_default, defaults=defaults) == []
    changed = {**SAVED, "model": {**SAVED["model"], "remat": True}}
    assert meta_differences(SAVED, changed, defaults=defaults) == [
        "model.remat: checkpoint '<missing>' vs config True"
    ]
    # Defaults never excuse a key the checkpoint holds with another value.
    other = {**SAVED, "model": {**SAVED["model"], "block_sizes": ["full"]}}
    assert meta_differences(SAVED, other, defaults=defaults) == [
        "model.block_sizes: checkpoint ['full', [1, 1]] vs config ['full']"
    ]
