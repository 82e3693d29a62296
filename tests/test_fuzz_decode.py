"""Fuzzing the worker's decode path (`model.preprocess`) in a memory-limited child process.

Seeded mutations of the hostile corpus and of real photos (bit flips, truncations, header fields set to
extremes, chunk and segment edits) plus generated images of extreme shapes. The only outcomes allowed are a
3x224x224 tensor or a BadImage with a code and a reason. The seed is printed with every run; replay one with
SIGHTLINE_FUZZ_SEED=<seed> (and SIGHTLINE_FUZZ_ONLY=<index> for a single input).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from PIL import Image
from skimage import data as skdata

from tests import fuzz_inputs
from tests.decode_run import run_child
from tests.test_hostile_inputs import CORPUS

COUNT = int(os.environ.get("SIGHTLINE_FUZZ_COUNT", "5000"))
HEADROOM_MIB = 1536  # RLIMIT_AS above the warmed-up child's address space
PEAK_GROWTH_MIB = 512  # resident memory any input may add: small inputs, and shapes refused from their header
PHOTOS = ("chelsea", "coffee", "rocket", "astronaut")
SLOWEST_INPUT_S = 10.0
SKIPPED = {"huge-6000x4000.jpg"}  # 3 MB: its mutations would dominate the run; test_hostile_inputs covers it


def _seeds() -> dict[str, bytes]:
    seeds = {f"corpus/{name}": spec[0]() for name, spec in CORPUS.items() if name not in SKIPPED}
    for photo in PHOTOS:
        seeds.update(fuzz_inputs.photo_variants(photo, Image.fromarray(getattr(skdata, photo)())))
    return {name: blob for name, blob in seeds.items() if blob}


def test_decode_fuzz(tmp_path: Path) -> None:
    seed = int(os.environ.get("SIGHTLINE_FUZZ_SEED") or secrets.randbelow(2**32))
    only = os.environ.get("SIGHTLINE_FUZZ_ONLY")
    replay = f"replay with SIGHTLINE_FUZZ_SEED={seed}"
    print(f"decode fuzz: seed {seed}, {COUNT} inputs ({replay})")
    report = run_child(
        tmp_path,
        _seeds(),
        seed=seed,
        count=COUNT,
        only=int(only) if only else None,
        headroom_mib=HEADROOM_MIB,
        input_budget_s=SLOWEST_INPUT_S,
        timeout_s=600,
    )
    print(f"decode fuzz report: {report}")
    assert not report["unexpected"], f"{replay} SIGHTLINE_FUZZ_ONLY=<index>: {report['unexpected']}"
    assert report["inputs"] == (1 if only else COUNT)
    assert report["peak_growth_mib"] < PEAK_GROWTH_MIB, report
