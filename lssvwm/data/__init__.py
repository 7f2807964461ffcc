"""Datasets: the built-in maze3d world, Memory Maze, user video folders; TFDS + grain pipelines."""
