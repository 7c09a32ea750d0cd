"""What the OPE benchmarks (``test_bench_ope.py``, ``test_bench_slates.py``,
``test_catalogue_bench.py``) share: each timed run in a fresh subprocess (so peak RSS is
that run's alone), the memory readings and the machine line of ``reports/benchmarks.md``.

Each bench file loads it by path: the suite imports test files with ``--import-mode=importlib``
and ``tests/`` is not a package.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def peak_mb() -> float:
    """Peak resident memory of this process's own image so far, MB: ``VmHWM`` from ``/proc``.

    Not ``ru_maxrss``: Linux carries it over ``fork``/``exec``, so a worker started by a large
    parent (pytest after generating a 10M-row file) reports the parent's peak, not its own
    (measured: 682 MB for a run whose own peak was 157 MB)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_now_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run_worker(script: str | Path, args: list, timeout: int) -> dict:
    """Run ``python SCRIPT ARGS...`` (the bench file's ``__main__`` worker) on 2 BLAS threads and
    return the JSON object it prints last."""
    env = dict(os.environ, OMP_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2", MKL_NUM_THREADS="2",
               PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, str(Path(script).resolve()), *map(str, args)], capture_output=True,
                         text=True, timeout=timeout, env=env, cwd=str(ROOT))
    if out.returncode != 0:
        raise RuntimeError(f"worker {args[0] if args else ''} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def machine() -> str:
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or "?"
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, numpy {np.__version__}"
