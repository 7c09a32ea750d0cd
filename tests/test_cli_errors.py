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


# --- 2. clear errors naming the column / option, raised before any work ----------------

TEXT_LOG = SAMPLES / "text_logs" / "logs.parquet"
UPLIFT = ["uplift", str(TEXT_LOG), "--treatment", "treatment", "--outcome", "outcome", "--method", "naive"]


@pytest.mark.parametrize("extra,option,column", [
    (["--covariates", "item_price", "--item-text", "title_missing"], "--item-text", "title_missing"),
    (["--user-text", "user_txt"], "--user-text", "user_txt"),
    (["--items", str(SAMPLES / "text_logs" / "items.csv"), "--item-text", "title_missing"], "--item-text",
     "title_missing"),
    (["--items", str(SAMPLES / "text_logs" / "items.csv"), "--item-text", "title", "--item-key", "itemid"],
     "--item-key", "itemid"),
])
def test_uplift_text_column_that_does_not_exist(capsys, extra, option, column):
    rc, text = _run(capsys, [*UPLIFT, *extra])
    assert rc == 2, text
    assert f"{option} names column '{column}'" in text
    assert "covariate" not in text  # the old error blamed the covariates
    assert "fix:" in text and "Traceback" not in text


def test_uplift_misspelt_text_column_gets_the_close_match(capsys):
    rc, text = _run(capsys, [*UPLIFT, "--user-text", "user_txt"])
    assert rc == 2 and "did you mean 'user_text'?" in text


@pytest.mark.parametrize("command", [
    ["uplift", "missing.parquet", "--treatment", "t", "--outcome", "y"],
    ["debias", "missing.parquet", "--outcome", "y", "--method", "ips", "--out", "o.parquet"],
    ["rank", "eval", "no_model", "missing.parquet", "--out", "r.json"],
    ["ope", "missing.csv", "--target", "t.csv"],
], ids=["uplift", "debias", "rank-eval", "ope"])
@pytest.mark.parametrize("level", ["95", "1", "0", "-0.5", "nan"])
def test_invalid_ci_level_is_rejected_before_reading_anything(capsys, command, level):
    # the log does not exist: an error about the level proves nothing was read or fitted first
    rc, text = _run(capsys, [*command, "--ci-level", level])
    assert rc == 2, text
    assert "ci-level" in text or "ci_level" in text
    assert "does not exist" not in text and "Traceback" not in text
    if level == "95":
        assert "0.95" in text


def test_z_value_raises_input_error():
    from causalrec.errors import InputError
    from causalrec.inference import z_value

    with pytest.raises(InputError, match="ci_level"):
        z_value(95.0)
    assert z_value(0.95) == pytest.approx(1.959964, abs=1e-6)


@pytest.fixture(scope="module")
def small_log(tmp_path_factory):
    """60 impressions: 20 requests x 3 slots (0-based), clicks and logged propensities."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(3)
    n = 60
    df = pd.DataFrame({
        "request_id": np.repeat(np.arange(20), 3), "item_id": rng.integers(0, 5, n),
        "position": np.tile(np.arange(3), 20), "click": rng.integers(0, 2, n),
        "propensity": rng.uniform(0.1, 0.9, n),
    })
    d = tmp_path_factory.mktemp("small_log")
    df.to_csv(d / "logs.csv", index=False)
    pd.DataFrame({"item_id": np.arange(5), "prob": np.full(5, 0.2)}).to_csv(d / "target.csv", index=False)
    return d, df


@pytest.mark.parametrize("value", [1.5, 0.0, -0.2])
@pytest.mark.parametrize("command", ["ope", "debias"])
def test_logged_propensity_outside_unit_interval(capsys, small_log, tmp_path, command, value):
    d, df = small_log
    bad = df.copy()
    bad.loc[7, "propensity"] = value
    bad.to_csv(tmp_path / "bad.csv", index=False)
    args = {"ope": ["ope", str(tmp_path / "bad.csv"), "--target", str(d / "target.csv"), "--outcome", "click",
                    "--quiet"],
            "debias": ["debias", str(tmp_path / "bad.csv"), "--outcome", "click", "--method", "ips",
                       "--propensity", "propensity", "--out", str(tmp_path / "o.parquet"), "--quiet"]}[command]
    rc, text = _run(capsys, args)
    assert rc == 2, text
    assert "'propensity'" in text and "(0, 1]" in text and "first at row 7" in text
    assert not (tmp_path / "o.parquet").exists()


def test_one_based_positions_read_as_zero_based_name_the_fix(capsys, small_log, tmp_path):
    _, df = small_log
    df.assign(position=df["position"] + 1).to_csv(tmp_path / "pos1.csv", index=False)
    base = ["debias", str(tmp_path / "pos1.csv"), "--outcome", "click", "--method", "ips", "--propensity",
            "propensity", "--position", "position", "--bootstrap", "0", "--quiet"]
    rc, text = _run(capsys, [*base, "--out", str(tmp_path / "a.parquet")])
    assert rc == 2, text
    assert "--position-base 1" in text and "starts at 1" in text
    assert "n_positions" not in text  # the old advice ("lower n_positions") was wrong
    rc, text = _run(capsys, [*base, "--position-base", "1", "--out", str(tmp_path / "b.parquet")])
    assert rc == 0, text
    assert (tmp_path / "b.parquet").exists()


def test_validate_log_one_based_positions_api():
    import pandas as pd

    from causalrec.data.schema import LogSchema
    from causalrec.data.validation import validate_log
    from causalrec.errors import InputError

    df = pd.DataFrame({"item_id": [1, 2, 3], "outcome": [0, 1, 0], "slot": [1, 2, 3]})
    with pytest.raises(InputError, match="--position-base 1"):
        validate_log(df, LogSchema(position="slot"), require=("item_id", "outcome", "position"))
    canon = validate_log(df, LogSchema(position="slot", position_base=1), require=("item_id", "outcome", "position"))
    assert canon["position"].tolist() == [0, 1, 2]
    # a 0-based log whose top slot is present is untouched
    ok = validate_log(df.assign(slot=[0, 1, 2]), LogSchema(position="slot"), require=("item_id", "outcome", "position"))
    assert ok["position"].tolist() == [0, 1, 2]
