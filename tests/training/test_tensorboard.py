"""What a run writes for TensorBoard, read back with TensorBoard's own reader: scalars, the
sample movie, the config as text and as hyperparameters; one complete event file per start that
writes anything, none for a start that writes nothing."""

import json
import pathlib

import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from lssvwm.config_loading import load_config
from lssvwm.training.metrics import MetricWriter, hyperparameters

CONFIG = {"seed": 0, "model": {"width": 32, "block_sizes": ["full", [1, 1]], "out_channels": None}}
METRICS = ("loss", "eval/val_loss")


def read_events(path: pathlib.Path) -> event_accumulator.EventAccumulator:
    """Every summary of one event file (or of a directory's files), as TensorBoard reads them."""
    accumulator = event_accumulator.EventAccumulator(
        str(path), size_guidance={event_accumulator.IMAGES: 0, event_accumulator.SCALARS: 0}
    )
    return accumulator.Reload()


def event_files(workdir: pathlib.Path) -> list[pathlib.Path]:
    return sorted((workdir / "tb").glob("events.out.tfevents.*"))


def hparams_of(accumulator) -> tuple[dict, list[str]]:
    """(hyperparameter values of the session, metric tags of the experiment) of the HParams
    plugin's summaries."""
    content = accumulator.PluginTagToContent("hparams")
    session = plugin_data_pb2.HParamsPluginData.FromString(
        content["_hparams_/session_start_info"]
    ).session_start_info
    experiment = plugin_data_pb2.HParamsPluginData.FromString(
        content["_hparams_/experiment"]
    ).experiment
    values = {}
    for name, value in session.hparams.items():
        values[name] = getattr(value, value.WhichOneof("kind"))
    return values, [metric.name.tag for metric in experiment.metric_infos]


def config_text(accumulator) -> dict:
    """The config the text summary `config` shows (a markdown code block of its JSON)."""
    from tensorboard.util import tensor_util

    (event,) = accumulator.Tensors("config/text_summary")  # tensorboardX adds the suffix
    markdown = tensor_util.make_ndarray(event.tensor_proto).item().decode()
    assert all(line.startswith("    ") for line in markdown.splitlines())  # a code block
    return json.loads(markdown)


def test_the_writer_leaves_scalars_a_movie_the_config_and_hparams(tmp_path):
    movie = np.random.default_rng(0).integers(0, 256, (5, 24, 40, 3), dtype=np.uint8)
    writer = MetricWriter(tmp_path, config=CONFIG, metric_names=METRICS)
    writer.write(1, {"loss": 0.5, "learning_rate": 1e-3})
    (file,) = event_files(tmp_path)
    assert read_events(file).Scalars("loss")[0].value == 0.5  # on disk before close()
    writer.write(2, {"loss": 0.25, "eval/val_loss": 0.3})
    writer.write_movie(2, "samples", movie)
    writer.close()

    assert event_files(tmp_path) == [file]
    events = read_events(file)
    assert [(s.step, s.value) for s in events.Scalars("loss")] == [(1, 0.5), (2, 0.25)]
    assert events.Scalars("eval/val_loss")[0].value == pytest.approx(0.3)
    (image,) = events.Images("samples")
    assert image.step == 2 and (image.height, image.width) == (24, 40)
    assert image.encoded_image_string.startswith(b"GIF89a")  # animated: the Images tab plays it
    assert config_text(events) == CONFIG
    values, metrics = hparams_of(events)
    assert values == {"seed": 0, "model.width": 32, "model.block_sizes": '["full", [1, 1]]'}
    assert metrics == list(METRICS)
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 2]


def test_a_start_that_writes_nothing_leaves_no_event_file(tmp_path):
    """Re-running a finished run re-reads its results: no empty event file beside the first."""
    MetricWriter(tmp_path, config=CONFIG).close()
    assert event_files(tmp_path) == []


def test_two_starts_in_one_second_keep_both_files_whole(tmp_path):
    """tensorboardX names files after the second and the host only: the second start would
    truncate the first one's file."""
    for step in (1, 2):
        writer = MetricWriter(tmp_path, config=CONFIG, metric_names=METRICS)
        writer.write(step, {"loss": float(step)})
        writer.close()
    files = event_files(tmp_path)
    assert len(files) == 2
    for step, file in zip((1, 2), files, strict=True):
        events = read_events(file)
        assert [(s.step, s.value) for s in events.Scalars("loss")] == [(step, float(step))]
        assert config_text(events) == CONFIG  # every file starts with the config


def test_hyperparameters_are_dotted_scalars_of_the_resolved_config():
    from lssvwm.run_spec import RunSpec

    spec = RunSpec.from_config(load_config("quickstart:tiny"), check_data=False)
    flat = hyperparameters(spec.resolved_config())
    assert flat["training.steps"] == 4 and flat["model.mixer"] == "lssvwm"
    assert flat["diffusion.target"] == spec.diffusion.target
    assert all(isinstance(value, bool | int | float | str) for value in flat.values())


@pytest.mark.slow
def test_a_run_and_its_resumption_each_write_a_complete_event_file(tmp_path):
    """The tiny quickstart trained, re-run once finished (nothing new), then extended: TensorBoard
    finds scalars, the sample movie, the config and the hparams in each run's file."""
    from lssvwm.train import SUMMARY_FIGURES, train_and_evaluate

    def config(steps):
        overrides = {"data.data_dir": str(tmp_path / "data"), "training.steps": steps}
        return load_config("quickstart:tiny", {**overrides, "training.sample_every": 2})

    workdir = tmp_path / "run"
    train_and_evaluate(config(4), workdir)
    (first,) = event_files(workdir)
    train_and_evaluate(config(4), workdir)  # finished: re-reads eval_final.json
    assert event_files(workdir) == [first]
    train_and_evaluate(config(6), workdir)
    first_again, second = event_files(workdir)
    assert first_again == first

    for file, steps in ((first, [1, 2, 3, 4]), (second, [5, 6])):
        events = read_events(file)
        assert [s.step for s in events.Scalars("loss")] == steps
        assert [image.step for image in events.Images("samples")] == steps[1::2]
        assert events.Scalars("eval/val_loss")[-1].step == steps[-1]
        assert config_text(events)["training"]["steps"] == steps[-1]
        values, metrics = hparams_of(events)
        assert values["training.steps"] == steps[-1] and values["model.width"] == 32
        assert metrics == ["loss", *(f"eval/{name}" for name in SUMMARY_FIGURES)]
