"""Writes a build's shards in a child process, so building works whatever the caller's `__main__`.

A dataset build generates episodes in a pool of "spawn" processes (safe beside JAX's threads).
Such a pool re-imports the parent's `__main__` in every worker: from a script that builds at top
level, without an `if __name__ == "__main__":` guard, each worker would start the build again
and the pool breaks (`BrokenProcessPool`). `EpisodeDatasetBuilder` therefore runs the pool here,
in a child started as `python -m lssvwm.data.shard_writer`, whose `__main__` is this guarded
module, wherever the caller's `__main__` is not one of lssvwm's command lines
(`tfds_common._run_tasks`). The caller keeps everything else of the build (staging, resuming,
the progress bar, the TFDS metadata); the child only writes shard files into the staging folder.

Protocol: the parent writes the pickled `(tasks, num_workers, start_method)` to the child's
stdin; the child sends `("frames", n)` per generated episode and at the end `("done",)` or
`("error", pickled exception, one-line summary, traceback text)` over a pipe (a
`multiprocessing.connection.Connection`). The child inherits stdout/stderr, so a worker's logs
and prints show as before.

In-process fallback: where the tasks cannot go to another process -- an episode source defined
in the caller's `__main__` (not importable elsewhere), a child that cannot start or cannot load
them -- the shards are written one after another in the calling process, with a warning.

Public API: run_in_child_process(tasks, num_workers, start_method, progress)
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import signal
import subprocess
import sys
import traceback
import types
from multiprocessing import connection

# The child failed before running any task: it could not load them (fall back in-process).
_UNLOADABLE = "unloadable"
_STOP_TIMEOUT_S = 10.0


class _RemoteTraceback(Exception):
    """The child's traceback text, attached as `__cause__` (as concurrent.futures does)."""

    def __init__(self, text: str):
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return self.text


class _DefinedInMain(Exception):
    """A pickled object refers to a class or function of the caller's `__main__`."""


class _MainReferenceFinder(pickle.Pickler):
    """A pickler that refuses references to `__main__` (another process cannot import them)."""

    def reducer_override(self, obj):
        if isinstance(obj, type | types.FunctionType) and obj.__module__ == "__main__":
            raise _DefinedInMain(obj.__qualname__)
        return NotImplemented


def _pickle_for_child(payload) -> bytes:
    buffer = io.BytesIO()
    _MainReferenceFinder(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(payload)
    return buffer.getvalue()


def _child_environment() -> dict[str, str]:
    """The caller's environment with its `sys.path`, so the child imports the same modules
    (an episode source in a module beside the caller's script, say), as "spawn" does."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        os.path.abspath(p) if p else os.getcwd() for p in sys.path if isinstance(p, str)
    )
    return env


def run_in_child_process(tasks, num_workers: int, start_method: str, progress) -> None:
    """Writes `tasks` (`tfds_common._ShardTask`s) in a child process's pool of `num_workers`,
    updating `progress` with frame counts; re-raises the first worker exception here."""
    from lssvwm.data import tfds_common

    try:
        payload = _pickle_for_child((list(tasks), num_workers, start_method))
    except _DefinedInMain as error:
        logging.warning(
            "the episode source uses %s, defined in __main__, which worker processes cannot "
            "import: generating %d shards one after another in this process (define it in a "
            "module of its own for parallel generation)",
            error,
            len(tasks),
        )
        tfds_common._run_in_this_process(tasks, progress)
        return
    try:
        failure = _run_child(payload, progress)
    except OSError as error:  # no interpreter to start (embedded Python), no pipes left, ...
        failure = (_UNLOADABLE, f"the shard writer process did not start: {error}")
    if failure is None:
        return
    if failure[0] == _UNLOADABLE:
        logging.warning(
            "%s; generating %d shards one after another in this process", failure[1], len(tasks)
        )
        tfds_common._run_in_this_process(tasks, progress)
        return
    raise failure[1]


def _run_child(payload: bytes, progress):
    """Runs the child to the end; returns None, (_UNLOADABLE, reason) or ("error", exception)."""
    read_fd, write_fd = os.pipe()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", __name__, str(write_fd)],
            stdin=subprocess.PIPE,
            pass_fds=(write_fd,),
            env=_child_environment(),
            # Its own process group: on an interrupt here, the child and its pool are stopped
            # together (`_stop`), and a terminal's Ctrl-C reaches this process only.
            start_new_session=True,
        )
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)  # the child holds its copy; EOF here once the child has exited
    messages = connection.Connection(read_fd, writable=False)
    result = None
    try:
        try:
            process.stdin.write(payload)
            process.stdin.close()
        except BrokenPipeError:
            pass  # the child died at start; what it sent (or its exit status) says why
        while True:
            try:
                message = messages.recv()
            except EOFError:
                break
            if message[0] == "frames":
                progress.update(message[1])
            elif message[0] in ("error", _UNLOADABLE):
                result = message
        status = process.wait()
    except BaseException:  # an interrupt or a bug here: stop the child's whole group
        _stop(process)
        raise
    finally:
        messages.close()
    if result is None:
        if status == 0:
            return None
        return ("error", RuntimeError(f"the shard writer process exited with status {status}"))
    if result[0] == _UNLOADABLE:
        return (_UNLOADABLE, f"the shard writer process could not load the tasks: {result[1]}")
    _, pickled, summary, remote_traceback = result
    try:
        error = pickle.loads(pickled) if pickled is not None else RuntimeError(summary)
    except Exception:  # an exception type that does not unpickle here
        error = RuntimeError(summary)
    error.__cause__ = _RemoteTraceback(remote_traceback)
    return ("error", error)


def _stop(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=_STOP_TIMEOUT_S)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


class _ProgressSender:
    """`progress.update(n)` of the pool, sent to the parent."""

    def __init__(self, messages: connection.Connection):
        self._messages = messages

    def update(self, frames: int) -> None:
        self._messages.send(("frames", int(frames)))


def _child_main(fd: int) -> int:
    from lssvwm.data import tfds_common

    messages = connection.Connection(fd, readable=False)
    try:
        tasks, num_workers, start_method = pickle.loads(sys.stdin.buffer.read())
    except Exception as error:
        messages.send((_UNLOADABLE, f"{type(error).__name__}: {error}"))
        return 1
    try:
        tfds_common._run_pool(tasks, num_workers, start_method, _ProgressSender(messages))
    except BaseException as error:
        try:
            pickled = pickle.dumps(error)
        except Exception:
            pickled = None
        summary = f"{type(error).__name__}: {error}"
        # With its chain: a pool worker's own traceback is the cause of the re-raised error.
        remote_traceback = "".join(traceback.format_exception(error))
        messages.send(("error", pickled, summary, remote_traceback))
        return 1
    messages.send(("done",))
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(int(sys.argv[1])))
