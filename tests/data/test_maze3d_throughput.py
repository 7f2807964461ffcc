"""The issue's target: a 64x64 maze3d dataset generates at >= 1,000 frames/s end to end
(rendered, serialised, written to array_record), here with two worker processes."""

import time

import pytest

from lssvwm.data import maze3d


@pytest.mark.slow
def test_64x64_generation_rate(tmp_path):
    params = maze3d.Maze3dParams(train_episodes=16, test_episodes=0, reasoning_episodes=0)
    builder = maze3d.Maze3d(
        config=maze3d.Maze3d.builder_config_for(params.to_dict()),
        data_dir=tmp_path,
        num_workers=2,
    )
    start = time.time()
    builder.download_and_prepare()
    rate = 16 * 1024 / (time.time() - start)
    print(f"maze3d 64x64: {rate:.0f} frames/s end to end")
    assert builder.info.splits["train"].num_examples == 16 * 16
    assert rate >= 1000
