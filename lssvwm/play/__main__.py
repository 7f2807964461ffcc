r"""Plays a trained world model live in the browser: keyboard in, frames out (absl app).

    python -m lssvwm.play --workdir=/tmp/qs                    # then open the printed URL
    python -m lssvwm.play --workdir=DIR --episode=3 --context=32 --port=8800 --hold_fps=15

Loads the newest checkpoint of DIR (`--step`, `--weights`, `--sampler_steps` as rollout),
prefills `--context` frames of episode `--episode` of the run's eval split, and serves a page
on http://HOST:PORT (127.0.0.1 by default: only this machine) that shows the generated stream
and reads the keyboard (lssvwm.play.controls): one frame per key press, `--hold_fps` frames per
second at most while a key is held. "record" writes the play-through under `--record_dir`
(default WORKDIR/play) with the `lssvwm.rollout` command line that replays it.
Needs the `play` extra (pip install 'lssvwm[play]').
"""

from __future__ import annotations

import warnings

from absl import app, flags

from lssvwm import cli
from lssvwm.errors import LssvwmError
from lssvwm.evaluation import loading
from lssvwm.play.listening import bind

_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory written by lssvwm.train.")
_HOST = flags.DEFINE_string("host", "127.0.0.1", "Address to serve on (0.0.0.0: every one).")
_PORT = flags.DEFINE_integer("port", 8765, "Port to serve on (0: any free one).", lower_bound=0)
_CONTEXT = flags.DEFINE_integer("context", 16, "Context frames from the episode.", lower_bound=1)
_SPLIT = flags.DEFINE_string("split", None, "Dataset split (default: the run's eval split).")
_EPISODE = flags.DEFINE_integer("episode", 0, "Episode of the split (0-based).", lower_bound=0)
_START = flags.DEFINE_integer("start", 0, "First context frame within the episode.", lower_bound=0)
_SEED = flags.DEFINE_integer("seed", 0, "Sampling seed (a recording replays with it).")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the newest).", lower_bound=0)
_WEIGHTS = flags.DEFINE_enum("weights", "ema", loading.WEIGHTS, "EMA or raw parameters.")
_SAMPLER_STEPS = flags.DEFINE_integer(
    "sampler_steps", None, "DDIM steps (default: config's).", lower_bound=1
)
_HOLD_FPS = flags.DEFINE_float("hold_fps", 10.0, "Frames per second at most while a key is held.")
_RESET_SCOPE = flags.DEFINE_enum(
    "reset_scope",
    "ssm",
    ("ssm", "all"),
    "What 'reset memory' forgets: the long-term memory (SSM state or spatial store) or all.",
)
_RECORD_DIR = flags.DEFINE_string("record_dir", None, "Where recordings go (default WORKDIR/play).")
_VIDEO_FORMAT = flags.DEFINE_enum("video_format", "auto", ("auto", "gif", "mp4"), "Video type.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Datasets directory (default: the run's).")
_DATA = flags.DEFINE_multi_string("data", [], "Data config override KEY=VALUE (repeatable).")

flags.register_validator("hold_fps", lambda fps: fps > 0, message="--hold_fps must be > 0")
cli.register_check("data", loading.parse_data_overrides)
cli.register_check("record_dir", lambda path: cli.check_can_write(path, directory=True))


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if _WORKDIR.value is None:
        raise app.UsageError("--workdir is required")
    try:
        import uvicorn

        from lssvwm.play.server import Player, create_app
    except ImportError as error:
        raise LssvwmError(
            f"the player needs the play extra ({error.name} is missing): pip install 'lssvwm[play]'"
        ) from None
    from lssvwm.play.session import PlayOptions, PlaySession

    loading.quiet_library_logging()
    warnings.filterwarnings("ignore", message="Sharding info not provided when restoring")
    listening = bind(_HOST.value, _PORT.value)
    print(f"play: loading {_WORKDIR.value} and compiling (a minute or more on a CPU)", flush=True)
    run = loading.load_run(
        _WORKDIR.value, step=_STEP.value, weights=_WEIGHTS.value, sampler_steps=_SAMPLER_STEPS.value
    )
    session = PlaySession(
        run,
        PlayOptions(
            context=_CONTEXT.value,
            split=_SPLIT.value,
            episode=_EPISODE.value,
            start=_START.value,
            seed=_SEED.value,
            reset_scope=_RESET_SCOPE.value,
            data_dir=_DATA_DIR.value,
            data_overrides=tuple(_DATA.value),
        ),
        log=lambda line: print(line, flush=True),
    )
    player = Player(
        session,
        hold_fps=_HOLD_FPS.value,
        record_dir=_RECORD_DIR.value or run.workdir / "play",
        video_format=_VIDEO_FORMAT.value,
    )
    host, port = listening.getsockname()[:2]
    shown_host = f"[{host}]" if ":" in host else host
    print(f"play: open http://{shown_host}:{port}/  (Ctrl-C stops)", flush=True)
    config = uvicorn.Config(create_app(player), log_level="warning", ws="websockets-sansio")
    uvicorn.Server(config).run(sockets=[listening])


if __name__ == "__main__":
    cli.run(main)
