"""ONNX Runtime serves the same answers as torch; settings pick the backend, workers and threads strictly."""

from __future__ import annotations

import dataclasses
import os

import pytest
import torch
from torchvision.models import resnet50

from classifier import model
from classifier.config import Config, ConfigError

BASE = {"GCP_PROJECT": "sightline-test", "BUCKET_NAME": "sightline-test-images", "SIGHTLINE_LOCAL": "1"}


def _labels(predictions: list[model.Prediction]) -> list[str]:
    return [p.classification for p in predictions]


def _both(cfg: Config) -> tuple[model.Classifier, model.Classifier]:
    return (
        model.load(dataclasses.replace(cfg, inference_backend="torch")),
        model.load(dataclasses.replace(cfg, inference_backend="onnx")),
    )


def _assert_same_top5(torch_clf: model.Classifier, onnx_clf: model.Classifier, photos: dict[str, bytes]) -> None:
    assert torch_clf.backend == "torch" and onnx_clf.backend == "onnxruntime"
    batch = [torch_clf.preprocess(data) for data in photos.values()]
    for want, got in zip(torch_clf.predict(batch), onnx_clf.predict(batch), strict=True):
        assert _labels(got) == _labels(want)
        assert [p.confidence for p in got] == pytest.approx([p.confidence for p in want], abs=1e-3)


def test_onnx_gives_the_same_top5_as_torch_for_efficientnet_lite0(cfg, photos, tmp_path):
    lite0 = dataclasses.replace(cfg, model="efficientnet_lite0", models_dir=tmp_path)
    _assert_same_top5(*_both(lite0), photos)


def test_onnx_gives_the_same_top5_as_torch_for_resnet50(cfg, photos, tmp_path):
    torch.manual_seed(0)  # random weights: speed and export do not depend on the values
    torch.save(resnet50().state_dict(), tmp_path / model.RESNET50_FILES[0])
    _assert_same_top5(*_both(dataclasses.replace(cfg, model="resnet50", models_dir=tmp_path)), photos)


def test_the_export_is_cached_beside_the_weights(cfg, tmp_path):
    lite0 = dataclasses.replace(cfg, model="efficientnet_lite0", models_dir=tmp_path, inference_backend="onnx")
    model.load(lite0)
    (exported,) = tmp_path.glob("*.onnx")
    before = exported.stat().st_mtime_ns
    assert model.load(lite0).backend == "onnxruntime"
    assert exported.stat().st_mtime_ns == before


def test_auto_backend_is_onnx_on_cpu_and_torch_for_forking_workers(cfg):
    cpu = torch.device("cpu")
    assert model.resolve_backend(dataclasses.replace(cfg, inference_backend="auto"), cpu) == "onnx"
    assert model.resolve_backend(dataclasses.replace(cfg, inference_backend="auto", worker_fork=True), cpu) == "torch"
    assert model.resolve_backend(dataclasses.replace(cfg, inference_backend="auto"), torch.device("cuda")) == "torch"


def test_threads_default_to_cores_per_worker():
    cores = os.cpu_count() or 1
    assert Config.from_env({**BASE, "WORKERS": "1"}).torch_threads == cores
    assert Config.from_env({**BASE, "WORKERS": str(cores)}).torch_threads == 1
    assert Config.from_env({**BASE, "WORKERS": "2", "TORCH_THREADS": "3"}).torch_threads == 3


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"INFERENCE_BACKEND": "tensorrt"}, "INFERENCE_BACKEND"),
        ({"WORKERS": "0"}, "WORKERS"),
        ({"WORKER_FORK": "maybe"}, "WORKER_FORK"),
        ({"WORKER_FORK": "1", "INFERENCE_BACKEND": "onnx"}, "INFERENCE_BACKEND"),
    ],
)
def test_bad_performance_settings_stop_start_up(env, name):
    with pytest.raises(ConfigError, match=name):
        Config.from_env({**BASE, **env})
