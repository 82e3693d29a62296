"""Runs tests/decode_child.py on a job and returns its report; a child that dies names the input it died on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests import fuzz_inputs

ROOT = Path(__file__).resolve().parent.parent


def run_child(tmp_path: Path, seeds: dict[str, bytes], *, timeout_s: float, **job: Any) -> dict[str, Any]:
    folder = tmp_path / "seeds"
    folder.mkdir()
    fuzz_inputs.write_seeds(folder, seeds)
    progress = tmp_path / "progress"
    job = {**job, "seeds_dir": str(folder), "progress_file": str(progress)}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "tests.decode_child"],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        cwd=ROOT,
        env=env,
    )
    if out.returncode != 0:
        last = progress.read_text().strip() if progress.exists() else "(before the first input)"
        raise AssertionError(f"the decode child died (rc {out.returncode}) on input {last}:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])
