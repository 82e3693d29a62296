"""The model alone: batched inference on preprocessed photos (the ceiling), and the original's per-image recipe."""

from __future__ import annotations

import dataclasses
import gc
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
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
            # The ceiling of `threads` cores as that many single-threaded processes (the workers' layout), all running at
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
    """`processes` single-threaded processes measured at the same time: their summed rate, their mean CPU per image.

    Plain child interpreters on pipes (`python -m bench.inference`), not multiprocessing: after a spawn context's
    processes and barrier, the benchmark's later rq workers died at start (gRPC: epoll_wait on a bad descriptor)."""
    with tempfile.TemporaryDirectory(prefix="sightline-bare-") as folder:
        arrays = Path(folder) / "tensors.npz"
        np.savez(arrays, *[t.numpy() for t in tensors])
        spec = json.dumps({"backend": backend, "arrays": str(arrays), "batches": batches, "seconds": seconds})
        children = [
            subprocess.Popen(
                [sys.executable, "-m", "bench.inference", spec],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                cwd=Path(__file__).resolve().parent.parent,
                env={**os.environ, "MODEL": cfg.model, "MODELS_DIR": str(cfg.models_dir)},
            )
            for _ in range(processes)
        ]
        each = [_overlapped(children, size) for size in batches]
        for child in children:
            assert child.stdin is not None
            child.stdin.close()
            child.wait(timeout=60)
    return {
        size: (sum(rate for rate, _ in measured), sum(cpu for _, cpu in measured) / processes)
        for size, measured in zip(batches, each, strict=True)
    }


_SAYS = "sightline-bare "  # the child's protocol lines; libraries print their own lines on stdout too


def _overlapped(children: list[subprocess.Popen[str]], size: int) -> list[tuple[float, float]]:
    """Each child says it is warm, then all are told to go at once; each answers rate and CPU as JSON."""
    for child in children:
        if _said(child) != "ready":
            raise RuntimeError(f"bare-model child {child.pid} failed before batch {size}")
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    out = []
    for child in children:
        rate, cpu = json.loads(_said(child))
        out.append((float(rate), float(cpu)))
    return out


def _said(child: subprocess.Popen[str]) -> str:
    assert child.stdout is not None
    for line in child.stdout:
        if line.startswith(_SAYS):
            return line[len(_SAYS) :].strip()
    return ""


def _child(spec: dict[str, Any]) -> None:
    """One single-threaded process of `_concurrent`: load, warm, then measure each batch size on the word go."""
    from classifier.config import get_config

    torch.set_num_threads(1)
    clf = model.load(dataclasses.replace(get_config(), inference_backend=spec["backend"], torch_threads=1))
    with np.load(spec["arrays"]) as stored:
        tensors = [torch.from_numpy(stored[name]) for name in stored.files]
    for size in spec["batches"]:
        call = _batch_call(clf, tensors, size)
        call()
        print(f"{_SAYS}ready", flush=True)
        sys.stdin.readline()
        print(_SAYS + json.dumps(_rate_cpu(call, size, spec["seconds"])), flush=True)


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


if __name__ == "__main__":
    logging.disable(logging.INFO)
    _child(json.loads(sys.argv[1]))
