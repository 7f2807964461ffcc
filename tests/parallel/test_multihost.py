"""Multi-host training for real: two processes on localhost (a loopback coordinator, gloo CPU
collectives, one CPU device each) train the tiny quickstart in one shared workdir, and end with
the checkpoint of one process training the same global batch on two CPU devices."""

import json
import os
import pathlib
import re
import socket
import subprocess
import sys
import textwrap
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from lssvwm.config_loading import load_config
from lssvwm.data.build import build

REPO = pathlib.Path(__file__).resolve().parents[2]
STEPS = 4

# Runs `python -m lssvwm.train ARGS` and lists, in LOG, every file it opens for writing in
# WORKDIR outside checkpoints/ (orbax coordinates the checkpoint writes of all processes itself).
LAUNCH = textwrap.dedent(
    """
    import os, runpy, sys
    workdir, log_path, *args = sys.argv[1:]
    workdir = os.path.realpath(workdir)
    log = open(log_path, "w")
    WRITE = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT

    def audit(event, event_args):
        if event != "open" or isinstance(event_args[0], int) or not event_args[2] & WRITE:
            return
        path = os.path.relpath(os.path.realpath(os.fsdecode(event_args[0])), workdir)
        if not path.startswith((os.pardir, "checkpoints")):
            log.write(path + "\\n")
            log.flush()

    sys.addaudithook(audit)
    sys.argv = ["lssvwm.train", *args]
    runpy.run_module("lssvwm.train", run_name="__main__", alter_sys=True)
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(workdir, log, args, devices, stderr_path):
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
    }
    command = [sys.executable, "-c", LAUNCH, str(workdir), str(log), *args]
    with open(stderr_path, "w") as stderr:
        return subprocess.Popen(
            command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=stderr, text=True
        )


def _final_state(workdir):
    """The step-STEPS train state of `workdir` as host arrays (restored onto one device)."""
    path = workdir / "checkpoints" / str(STEPS) / "state"
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    with ocp.StandardCheckpointer() as checkpointer:
        metadata = checkpointer.metadata(path).item_metadata
        target = jax.tree.map(
            lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), metadata
        )
        return jax.tree.map(np.asarray, checkpointer.restore(path, target))


def _multi(address: str, index: int) -> list[str]:
    return [
        "--config.mesh.distributed=True",
        f"--config.mesh.coordinator_address={address}",
        "--config.mesh.num_processes=2",
        f"--config.mesh.process_id={index}",
    ]


@pytest.mark.slow  # three processes each compile the tiny model's train, eval and sample steps
def test_two_processes_train_like_one_process_with_two_devices(tmp_path):
    data_dir = tmp_path / "data"  # built once, before any training process starts
    config = load_config("configs/quickstart.py:tiny", {"data.data_dir": str(data_dir)})
    build(config.data, num_workers=1)
    common = [
        "--config=configs/quickstart.py:tiny",
        f"--config.data.data_dir={data_dir}",
        f"--config.training.steps={STEPS}",
        "--config.eval.num_windows=2",  # the cheapest eval_final and sample video
        "--config.eval.noise_levels=(1.0,)",
        "--config.sample.window_length=5",
        "--config.sample.sampler_steps=1",
    ]
    shared, single = tmp_path / "two_processes", tmp_path / "one_process"
    address = f"127.0.0.1:{_free_port()}"
    processes = {}
    for name, workdir, devices, launch in (
        ("process_0", shared, 1, _multi(address, 0)),
        ("process_1", shared, 1, _multi(address, 1)),
        ("one_process_two_devices", single, 2, []),
    ):
        writes, log = tmp_path / f"{name}.writes", tmp_path / f"{name}.log"
        args = [*common, f"--workdir={workdir}", *launch]
        processes[name] = (_launch(workdir, writes, args, devices, log), writes, log)

    deadline = time.monotonic() + 1500
    failed = []
    for name, (process, _, _) in processes.items():
        try:
            process.wait(timeout=max(deadline - time.monotonic(), 1))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.returncode != 0:
            failed.append(name)
    if failed:
        tails = "\n".join(
            f"---- {name} (exit {process.returncode}):\n{log.read_text()[-3000:]}"
            for name, (process, _, log) in processes.items()
        )
        pytest.fail(f"{', '.join(failed)} failed\n{tails}")

    # Same parameters (and EMA, optimizer moments, step) as one process with two devices.
    two, one = _final_state(shared), _final_state(single)
    assert jax.tree.structure(two) == jax.tree.structure(one)
    differences = jax.tree.map(
        lambda a, b: float(np.max(np.abs(a.astype(np.float64) - b), initial=0.0)), two, one
    )
    print(
        "largest |two processes - one process| in the train state:",
        max(jax.tree.leaves(differences)),
    )
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), two, one)

    # One set of files: process 0 wrote them, process 1 opened none for writing.
    # config.json is written as `.config.json.<pid>.tmp` and renamed (never half-written).
    renamed = lambda name: re.sub(r"^\.(.+)\.\d+\.tmp$", r"\1", name)  # noqa: E731
    written = {
        name: {renamed(path) for path in writes.read_text().split()}
        for name, (_, writes, _) in processes.items()
    }
    assert written["process_1"] == set(), written["process_1"]
    expected = {"config.json", "metrics.jsonl", "eval_final.json", f"samples/step_{STEPS}.gif"}
    expected.add(".lock")  # the run directory's lock: process 0 alone takes it
    assert expected <= written["process_0"], written["process_0"]
    assert len(list((shared / "tb").iterdir())) == 1  # one TensorBoard event file
    records = [json.loads(line) for line in (shared / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == list(range(1, STEPS + 1))
    final = {d: json.loads((d / "eval_final.json").read_text()) for d in (shared, single)}
    assert final[shared]["step"] == STEPS
    for key in ("val_loss", "val_loss_shuffled_actions", "tf_next_frame_psnr"):
        np.testing.assert_allclose(final[shared][key], final[single][key], rtol=1e-5)
