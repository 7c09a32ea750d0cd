"""Bad input on the command line: usage errors, clear errors naming the column, exit code 2.

Runs the real entry point, :func:`causalrec.cli.main` (what ``python -m causalrec``
and the ``causalrec`` script call), in-process; one test goes through a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from causalrec.cli import main

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data_samples"


def _run(capsys, args: list[str]) -> tuple[int, str]:
    rc = main(args)
    cap = capsys.readouterr()
    return rc, cap.out + cap.err


# --- 1. a mistyped option: click's usage message with the close match, exit 2 ----------

TYPOS = [
    (["simulate", "--out", "x", "--n-rwos", "10"], "--n-rwos", "--n-rows"),
    (["ope", "logs.csv", "--targt", "t.csv"], "--targt", "--target"),
    (["uplift", "logs.csv", "--treatmnt", "t", "--outcome", "y"], "--treatmnt", "--treatment"),
    (["debias", "logs.csv", "--outcme", "y", "--method", "ips", "--out", "o.parquet"], "--outcme", "--outcome"),
    (["rank", "train", "data.csv", "--lable", "y", "--out", "m"], "--lable", "--label"),
    (["rank", "eval", "m", "data.csv", "--out", "r.json", "--relevnce", "r"], "--relevnce", "--relevance"),
    (["ab", "logs.csv", "--varint", "v", "--metric", "m"], "--varint", "--variant"),
    (["demo", "--samles", "data_samples"], "--samles", "--samples"),
]


@pytest.mark.parametrize("args,typed,meant", TYPOS, ids=[" ".join(t[0][:2]) for t in TYPOS])
def test_mistyped_option_is_a_usage_error(capsys, args, typed, meant):
    rc, text = _run(capsys, args)
    assert rc == 2, text
    assert f"No such option: {typed}" in text
    assert f"Did you mean {meant}?" in text
    assert "Usage:" in text and "--help' for help" in text
    assert "Traceback" not in text and "internal error" not in text


@pytest.mark.parametrize("args,needle", [
    (["opee", "logs.csv"], "No such command 'opee'"),
    (["rank", "trian"], "No such command 'trian'"),
    (["ope"], "Missing argument"),
    (["ope", "logs.csv", "--target"], "requires an argument"),
    (["simulate", "--out", "x", "--n-rows", "ten"], "Invalid value for '--n-rows'"),
    (["uplift", "logs.csv", "--outcome", "y"], "Missing option '--treatment'"),
])
def test_other_usage_errors_exit_2_without_traceback(capsys, args, needle):
    rc, text = _run(capsys, args)
    assert rc == 2, text
    assert needle in text
    assert "Traceback" not in text and "internal error" not in text


def test_help_exits_0(capsys):
    rc, text = _run(capsys, ["ope", "--help"])
    assert rc == 0
    assert "--target" in text


def test_typo_through_python_dash_m():
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-m", "causalrec", "ope", "logs.csv", "--targt", "t.csv"],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "Did you mean --target?" in proc.stderr
    assert "Traceback" not in proc.stderr
