"""The spatial-memory model's data needs are checked before anything is built or compiled."""

import numpy as np
import pytest

from lssvwm.config_loading import load_config
from lssvwm.data.config import video_folder_defaults
from lssvwm.train import train_and_evaluate


def test_a_dataset_without_depth_is_refused_naming_the_field(tmp_path):
    episodes = tmp_path / "episodes"
    episodes.mkdir()
    np.savez(
        episodes / "a.npz",
        video=np.zeros((8, 16, 16, 3), np.uint8),
        actions=np.zeros((8,), np.int32),
    )
    config = load_config("configs/quickstart.py:tiny")
    config.model.mixer = "spatial_memory"
    config.data = video_folder_defaults(str(episodes))
    config.data.video_folder.segment_length = 8
    with pytest.raises(ValueError, match="no 'depth' field"):
        train_and_evaluate(config, tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()
    assert not list(tmp_path.glob("**/*.array_record*"))  # nothing was built
