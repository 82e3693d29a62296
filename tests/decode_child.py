"""The worker's decode path under a memory limit, in a child process: `python -m tests.decode_child < job.json`.

The parent (tests/test_decode.py, tests/test_fuzz_decode.py) sends a JSON job on stdin: the seed files' folder
and either a fuzz seed and count, or a list of named inputs. The child imports torch first (its shared libraries
map gigabytes of address space), warms up, then caps its address space at what it has plus `headroom_mib`
(RLIMIT_AS), so an input that needs more memory meets a MemoryError instead of the machine's OOM killer.
Every input goes through `model.preprocess`, as a worker's would; the only outcomes allowed are a 3x224x224
tensor or a BadImage with a code and a reason. The last line of stdout is a JSON report.
"""

from __future__ import annotations

import json
import os
import re
import resource
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")  # thread pools started under the cap would fail to map their stacks
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import torch

from classifier import model
from tests import fuzz_inputs

MEAN = STD = (0.5, 0.5, 0.5)


def _status_kib(field: str) -> int:
    status = Path("/proc/self/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) if match else 0


def _run_one(data: bytes, max_pixels: int) -> str:
    try:
        tensor = model.preprocess(data, mean=MEAN, std=STD, max_pixels=max_pixels)
    except model.BadImage as exc:
        if not exc.code or not exc.reason:
            return "unexpected:BadImage without a code or reason"
        return f"failure:{exc.code}"
    if tuple(tensor.shape) != (3, model.CROP, model.CROP) or not bool(torch.isfinite(tensor).all()):
        return f"unexpected:tensor {tuple(tensor.shape)}"
    return "tensor"


def _inputs(job: dict[str, Any]) -> list[tuple[str, bytes]] | fuzz_inputs.Stream:
    seeds = fuzz_inputs.load_seeds(Path(job["seeds_dir"]))
    if "names" in job:
        return [(name, seeds[name]) for name in job["names"]]
    return fuzz_inputs.Stream(seeds, seed=job["seed"], count=job["count"], only=job.get("only"))


def main() -> None:
    job = json.loads(sys.stdin.read())
    torch.set_num_threads(1)
    max_pixels = int(job.get("max_pixels", 64_000_000))
    inputs = _inputs(job)
    model.preprocess(fuzz_inputs.warmup_png(), mean=MEAN, std=STD, max_pixels=max_pixels)
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM: the peak measured is the inputs' own
    base_rss = _status_kib("VmRSS")
    limit = _status_kib("VmSize") * 1024 + int(job["headroom_mib"]) * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    progress = Path(job["progress_file"])
    budget_s = float(job.get("input_budget_s", 10))
    total_s = float(job.get("total_budget_s", 400))
    outcomes: Counter[str] = Counter()
    unexpected: list[dict[str, str]] = []
    results: list[tuple[str, str]] = []
    slowest = (0.0, "")
    started = time.monotonic()
    for index, (name, data) in enumerate(inputs):
        progress.write_text(f"{index} {name}\n")  # names the input if this process dies on it
        t0 = time.monotonic()
        try:
            outcome = _run_one(data, max_pixels)
        except BaseException as exc:  # anything but a tensor or BadImage is a finding, MemoryError included
            outcome = f"unexpected:{exc.__class__.__name__}: {exc}"[:300]
        elapsed = time.monotonic() - t0
        slowest = max(slowest, (elapsed, name))
        if elapsed > budget_s and not outcome.startswith("unexpected"):
            outcome = f"unexpected:took {elapsed:.1f} s (over {budget_s:g} s)"
        if "names" in job:
            results.append((name, outcome))
        outcomes[outcome.split(":", 1)[0] if outcome.startswith("unexpected") else outcome] += 1
        if outcome.startswith("unexpected"):
            unexpected.append({"index": str(index), "name": name, "outcome": outcome})
        if time.monotonic() - started > total_s:  # report what was found rather than be killed by the timeout
            unexpected.append({"index": str(index), "name": name, "outcome": f"unexpected:run over {total_s:g} s"})
            break
    report = {
        "inputs": sum(outcomes.values()),
        "outcomes": dict(outcomes),
        "unexpected": unexpected[:20],
        "results": dict(results),
        "seconds": round(time.monotonic() - started, 1),
        "slowest_s": round(slowest[0], 2),
        "slowest": slowest[1],
        "peak_growth_mib": round((_status_kib("VmHWM") - base_rss) / 1024, 1),
        "base_rss_mib": round(base_rss / 1024, 1),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
