"""The model alone: batched inference on preprocessed photos (the ceiling), and the original's per-image recipe."""

from __future__ import annotations

import dataclasses
import gc
import logging
import multiprocessing
import time
from pathlib import Path
from typing import Any

import torch

from classifier import model
from classifier.config import Config

log = logging.getLogger("bench")


def _rate_cpu(run: Any, per_call: int, seconds: float) -> tuple[float, float]:
    """Images per second (wall clock), and CPU milliseconds per image (all threads: robust to a busy machine)."""
    run()  # first-call costs are not the steady rate
    calls, start, cpu = 0, time.perf_counter(), time.process_time()
    while True:
        run()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and calls >= 3:
            return calls * per_call / elapsed, (time.process_time() - cpu) * 1000 / (calls * per_call)


def preprocess_ms(clf: model.Classifier, photos: dict[str, bytes]) -> dict[str, float]:
    out = {}
    for name, data in photos.items():
        clf.preprocess(data)
        start = time.perf_counter()
        for _ in range(5):
            clf.preprocess(data)
        out[name] = round((time.perf_counter() - start) / 5 * 1000, 1)
    return out


def bare(
    cfg: Config, photos: dict[str, bytes], *, threads: int, batches: tuple[int, ...], seconds: float
) -> dict[str, Any]:
    """Images per second per backend and batch size, no I/O: the same preprocessed photos, again and again."""
    torch.set_num_threads(threads)
    results: dict[str, Any] = {"threads": threads, "images_per_s": {}, "cpu_ms_per_image": {}, "one_process_alone": {}}
    for backend in ("torch", "onnx"):
        clf = model.load(dataclasses.replace(cfg, inference_backend=backend, torch_threads=threads))
        if backend == "torch":
            results["preprocess_ms"] = preprocess_ms(clf, photos)
        tensors = [clf.preprocess(data) for data in photos.values()]
        label = clf.backend
        _record(results, label, {size: _rate_cpu(_batch_call(clf, tensors, size), size, seconds) for size in batches})
        del clf
        gc.collect()
        if threads > 1:
            # The ceiling of `threads` cores as as many single-threaded processes (the workers' layout), all running at
            # once: they share the memory bus and the last-level cache, so one process alone times the cores is not a
            # rate the machine reaches (ResNet50 here: ~6% more CPU per image each when two run together). That one
            # alone is kept beside it, not used as the ceiling.
            multi = f"{label}, 1 thread x {threads} processes"
            _record(results, multi, _concurrent(cfg, backend, tensors, batches, seconds, threads))
            torch.set_num_threads(1)
            alone = model.load(dataclasses.replace(cfg, inference_backend=backend, torch_threads=1))
            measured = {size: _rate_cpu(_batch_call(alone, tensors, size), size, seconds) for size in batches}
            results["one_process_alone"][f"{label}, 1 thread"] = {
                str(size): {"images_per_s": round(rate, 2), "cpu_ms_per_image": round(cpu, 1)}
                for size, (rate, cpu) in measured.items()
            }
            del alone
            gc.collect()
            torch.set_num_threads(threads)
    return results


def _batch_call(clf: model.Classifier, tensors: list[torch.Tensor], size: int) -> Any:
    batch = [tensors[i % len(tensors)] for i in range(size)]
    return lambda: clf.predict(batch)


def _record(results: dict[str, Any], label: str, measured: dict[int, tuple[float, float]]) -> None:
    results["images_per_s"][label] = {str(size): round(rate, 2) for size, (rate, _) in measured.items()}
    results["cpu_ms_per_image"][label] = {str(size): round(cpu, 1) for size, (_, cpu) in measured.items()}
    for size, (rate, cpu) in measured.items():
        log.info("bare %s batch %d: %.2f images/s, %.1f CPU ms each", label, size, rate, cpu)


def _concurrent(
    cfg: Config, backend: str, tensors: list[torch.Tensor], batches: tuple[int, ...], seconds: float, processes: int
) -> dict[int, tuple[float, float]]:
    """`processes` single-threaded processes measured at the same time: their summed rate, their mean CPU per image."""
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked thread pools of this one
    start, results = ctx.Barrier(processes), ctx.Queue()
    arrays = [t.numpy() for t in tensors]
    children = [
        ctx.Process(target=_measure_child, args=(cfg, backend, arrays, batches, seconds, start, results))
        for _ in range(processes)
    ]
    for child in children:
        child.start()
    each = [results.get(timeout=600) for _ in children]
    for child in children:
        child.join()
    return {size: (sum(r[size][0] for r in each), sum(r[size][1] for r in each) / processes) for size in batches}


def _measure_child(
    cfg: Config,
    backend: str,
    arrays: list[Any],
    batches: tuple[int, ...],
    seconds: float,
    start: Any,
    results: Any,
) -> None:
    torch.set_num_threads(1)
    clf = model.load(dataclasses.replace(cfg, inference_backend=backend, torch_threads=1))
    tensors = [torch.from_numpy(a) for a in arrays]
    out = {}
    for size in batches:
        call = _batch_call(clf, tensors, size)
        call()
        start.wait()  # every process loaded and warm: the measurements overlap
        out[size] = _rate_cpu(call, size, seconds)
    results.put(out)


def single_image_s(cfg: Config, photos: dict[str, bytes], *, backend: str, threads: int, repeat: int = 20) -> float:
    """Median seconds for one preprocessed photo through the model, as a job runs it."""
    torch.set_num_threads(threads)
    clf = model.load(dataclasses.replace(cfg, inference_backend=backend, torch_threads=threads))
    tensor = clf.preprocess(next(iter(photos.values())))
    clf.predict([tensor])
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        clf.predict([tensor])
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def _imageai(weights: Path) -> Any:
    from imageai.Classification import ImageClassification

    classifier = ImageClassification()
    classifier.setModelTypeAsResNet50()
    classifier.setModelPath(str(weights))
    classifier.loadModel()  # prints and swallows loading errors: check that it really loaded
    if not classifier._ImageClassification__model_loaded:
        raise RuntimeError("ImageAI could not load the weights")
    return lambda path: classifier.classifyImage(str(path), result_count=5)


def _recipe(cfg: Config) -> Any:
    """ImageAI 3.0.3's classifyImage re-created for a model it does not know: one image per call, full PIL decode,
    Resize 256 / CenterCrop 224 / ToTensor / Normalize, no_grad, default memory format, no batching."""
    from PIL import Image
    from torchvision import transforms

    clf = model.load(dataclasses.replace(cfg, inference_backend="torch"))
    net = clf.net.to(memory_format=torch.contiguous_format)
    pre = transforms.Compose(
        [
            transforms.Resize(256),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize(mean=list(clf.mean), std=list(clf.std)),
        ]
    )

    def classify(path: Path) -> Any:
        images = torch.stack([pre(Image.open(path).convert("RGB"))])
        with torch.no_grad():
            probs = torch.softmax(net(images), dim=1)
        conf, idx = torch.topk(probs, 5)
        return [model.CATEGORIES[i] for i in idx[0].tolist()], [round(c * 100, 4) for c in conf[0].tolist()]

    return classify


def original(
    cfg: Config, photos: dict[str, bytes], workdir: Path, *, threads: int, seconds: float, weights: Path | None
) -> dict[str, Any]:
    """The seed's approach on the same photos and weights: a file per call, one image per forward pass."""
    torch.set_num_threads(threads)
    folder = workdir / "original-photos"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, data in photos.items():
        (folder / name).write_bytes(data)
        paths.append(folder / name)
    if weights is not None:
        classify, how = _imageai(weights), "ImageAI 3.0.3 ImageClassification.classifyImage"
    else:
        classify, how = _recipe(cfg), "ImageAI 3.0.3's classifyImage recipe re-created (ImageAI has no such model)"
    counter = iter(range(10**9))
    rate, cpu = _rate_cpu(lambda: classify(paths[next(counter) % len(paths)]), 1, seconds)
    log.info("original %s (%s): %.2f images/s, %.1f CPU ms each", cfg.model, how, rate, cpu)
    return {"how": how, "images_per_s": round(rate, 2), "cpu_ms_per_image": round(cpu, 1), "threads": threads}
