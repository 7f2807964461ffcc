"""Live play of a trained world model in the browser (`python -m lssvwm.play --workdir=DIR`).

  controls   what the keys do for a run's model and dataset, and the camera motion on maze3d
  maze_view  the maze3d side panel: the true view at the player's pose, a top-down map
  session    the generation loop (prefill a context, a unit per key press), no web code
  recording  a play-through saved so that `lssvwm.rollout` replays it
  server     the Starlette app: the page, one websocket, one generation at a time

Only `session` and below are needed to play from Python; the web part needs the `play` extra.
"""
