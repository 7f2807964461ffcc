"""Datasets: the built-in maze3d world, Memory Maze, user video folders; TFDS + grain pipelines.

Importing the package registers its TFDS builders (`maze3d`, `memory_maze`, `video_folder`), so
TFDS's own calls find them and build on first use:

    import lssvwm.data
    import tensorflow_datasets as tfds
    source = tfds.data_source("maze3d/small", data_dir=DIR)["train"]   # no TensorFlow needed
    builder = tfds.builder("maze3d/quickstart", data_dir=DIR)

The presets are named TFDS configs (maze3d: default, small, quickstart, quickstart_tiny;
memory_maze: tiny, 9x9, 15x15); any other parameters get `custom_<hash of the parameters>`.
Registering imports TFDS but not Memory Maze's simulator (needed only to record).

Modules:
  episodes      the episode field contract, validation, segmenting
  tfds_common   EpisodeDatasetBuilder: parallel, resumable TFDS array_record builder base
  shard_writer  the child process a build's worker pool runs in (any caller's `__main__` works)
  sources       get_builder / open_split, SegmentSource (grain data source), EpisodeIndex
  pipeline      TrainingWindows (random windows), ConsecutiveWindows (TBPTT), fixed_windows
  eval_tasks    retrieval_task / reasoning_task slicing, iterate_tasks
  maze3d        the Maze3d builder; maze_grid, maze_render, maze_explorer its parts
  memory_maze   the MemoryMaze builder (optional extra `memory_maze` to record)
  video_folder  the VideoFolder builder for .npz/.mp4 folders
  config        maze3d_defaults(), video_folder_defaults(): `data` config sections
  build, preview   command lines: `python3 -m lssvwm.data.build`, `... .preview`
"""

# Defining the builder classes registers them with TFDS (tfds.builder / tfds.data_source).
from lssvwm.data import maze3d, memory_maze, video_folder  # noqa: F401
