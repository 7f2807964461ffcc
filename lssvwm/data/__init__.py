"""Datasets: the built-in maze3d world, Memory Maze, user video folders; TFDS + grain pipelines.

Modules (import what you need; importing the package itself loads nothing heavy):
  episodes      the episode field contract, validation, segmenting
  tfds_common   EpisodeDatasetBuilder: parallel, resumable TFDS array_record builder base
  sources       get_builder / open_split, SegmentSource (grain data source), EpisodeIndex
  pipeline      TrainingWindows (random windows), ConsecutiveWindows (TBPTT), fixed_windows
  eval_tasks    retrieval_task / reasoning_task slicing, iterate_tasks
  maze3d        the Maze3d builder; maze_grid, maze_render, maze_explorer its parts
  memory_maze   the MemoryMaze builder (optional extra `memory_maze`)
  video_folder  the VideoFolder builder for .npz/.mp4 folders
  config        maze3d_defaults(), video_folder_defaults(): `data` config sections
  build, preview   command lines: `python3 -m lssvwm.data.build`, `... .preview`
"""
