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


# --- 3. plausible bad input on every command: an error naming the file/column, never a traceback ----

def _no_traceback(rc: int, text: str) -> None:
    assert rc == 2, text
    assert "Traceback" not in text and "internal error" not in text
    assert "causalrec: error:" in text and "fix:" in text


def _commands(log: str, tmp_path: Path) -> dict[str, list[str]]:
    target = str(SAMPLES / "ope" / "target_greedy_mix.csv")
    return {
        "ope": ["ope", log, "--target", target, "--outcome", "click", "--quiet"],
        "uplift": ["uplift", log, "--treatment", "treatment", "--outcome", "click", "--method", "naive"],
        "debias": ["debias", log, "--outcome", "click", "--method", "ips", "--out", str(tmp_path / "o.parquet")],
        "rank-train": ["rank", "train", log, "--label", "click", "--out", str(tmp_path / "m")],
        "ab": ["ab", log, "--variant", "variant", "--metric", "click"],
    }


@pytest.mark.parametrize("command", ["ope", "uplift", "debias", "rank-train", "ab"])
@pytest.mark.parametrize("kind", ["missing", "empty", "header-only", "not-parquet"])
def test_unreadable_log_files(capsys, tmp_path, command, kind):
    path = {"missing": tmp_path / "nope.csv", "empty": tmp_path / "empty.csv",
            "header-only": tmp_path / "header.csv", "not-parquet": tmp_path / "bad.parquet"}[kind]
    if kind == "empty":
        path.write_text("")
    elif kind == "header-only":
        path.write_text("request_id,item_id,position,click,propensity,treatment,variant\n")
    elif kind == "not-parquet":
        path.write_bytes(b"this is not parquet")
    rc, text = _run(capsys, _commands(str(path), tmp_path)[command])
    _no_traceback(rc, text)
    needle = {"missing": "does not exist", "empty": "is empty", "header-only": "no rows",
              "not-parquet": "cannot read"}[kind]
    assert needle in text and (kind == "header-only" or str(path) in text)


@pytest.mark.parametrize("sep", [";", "\t", "|"])
def test_csv_with_another_separator_is_read(capsys, small_log, tmp_path, sep):
    d, df = small_log
    df.to_csv(tmp_path / "semi.csv", sep=sep, index=False)
    rc_ref, ref = _run(capsys, ["ope", str(d / "logs.csv"), "--target", str(d / "target.csv"), "--outcome", "click",
                                "--estimators", "ips"])
    rc, text = _run(capsys, ["ope", str(tmp_path / "semi.csv"), "--target", str(d / "target.csv"), "--outcome",
                             "click", "--estimators", "ips"])
    assert rc == rc_ref == 0, text
    assert text == ref.replace(str(d / "logs.csv"), str(tmp_path / "semi.csv"))


def test_read_table_separator_sniffing(tmp_path):
    from causalrec.data.readers import column_names, iter_batches, read_table

    (tmp_path / "a.csv").write_text("x;y\n1;2\n3;4\n")
    (tmp_path / "b.csv").write_text("x,y\n1;5,2\n")  # a comma in the header wins: ';' is data here
    assert read_table(tmp_path / "a.csv").to_dict("list") == {"x": [1, 3], "y": [2, 4]}
    assert column_names(tmp_path / "a.csv") == ["x", "y"]
    assert next(iter_batches(tmp_path / "a.csv", batch_size=1)).to_dict("list") == {"x": [1], "y": [2]}
    assert read_table(tmp_path / "b.csv").columns.tolist() == ["x", "y"]


@pytest.fixture(scope="module")
def text_log_csv(tmp_path_factory):
    import pandas as pd

    df = pd.read_parquet(TEXT_LOG, columns=["user_id", "item_id", "treatment", "outcome", "click", "item_price"])
    return df.head(400)


@pytest.mark.parametrize("mutate,column,needle", [
    (lambda df: df.assign(outcome=df["outcome"].astype(str).where(df.index != 3, "n/a?")), "outcome",
     "must be numeric"),
    (lambda df: df.assign(treatment=df["treatment"].astype(float).where(df.index != 5)), "treatment",
     "missing values"),
    (lambda df: df.assign(treatment=df["treatment"].map({0: "no", 1: "yes"})), "treatment", "binary"),
    (lambda df: df.assign(item_price=df["item_price"].where(df.index != 2)), "item_price", "missing"),
])
def test_uplift_bad_columns(capsys, tmp_path, text_log_csv, mutate, column, needle):
    mutate(text_log_csv).to_csv(tmp_path / "bad.csv", index=False)
    rc, text = _run(capsys, ["uplift", str(tmp_path / "bad.csv"), "--treatment", "treatment", "--outcome", "outcome",
                             "--covariates", "item_price", "--method", "naive,ipw", "--n-folds", "2"])
    _no_traceback(rc, text)
    assert f"'{column}'" in text and needle in text


def test_ab_bad_columns(capsys, tmp_path):
    import pandas as pd

    ab = pd.read_csv(SAMPLES / "ab" / "experiment.csv")
    ab.assign(revenue=ab["revenue"].astype(str).where(ab.index != 1, "$3")).to_csv(tmp_path / "s.csv", index=False)
    rc, text = _run(capsys, ["ab", str(tmp_path / "s.csv"), "--variant", "variant", "--metric", "revenue"])
    _no_traceback(rc, text)
    assert "'revenue'" in text and "numeric" in text


@pytest.mark.parametrize("option,value,example", [
    ("--power", "1.5", "--power 0.8"), ("--srm-alpha", "2", "--srm-alpha 0.001"), ("--alpha", "0", "--alpha 0.05"),
])
def test_ab_levels_checked_while_parsing(capsys, option, value, example):
    # --power 1.5 used to crash the sample-size root finder ("f(a) and f(b) must have different signs")
    rc, text = _run(capsys, ["ab", "absent.csv", "--variant", "variant", "--metric", "revenue", option, value])
    _no_traceback(rc, text)
    assert option in text and example in text and "does not exist" not in text


def test_ab_api_rejects_power_outside_unit_interval():
    from causalrec.errors import InputError
    from causalrec.experiments import analyze

    with pytest.raises(InputError, match="--power"):
        analyze(SAMPLES / "ab" / "experiment.csv", variant="variant", metrics=["revenue"], power=1.5)


def test_debias_position_column_that_does_not_exist(capsys, small_log, tmp_path):
    d, _ = small_log
    rc, text = _run(capsys, ["debias", str(d / "logs.csv"), "--outcome", "click", "--method", "ips", "--position",
                             "slot", "--out", str(tmp_path / "o.parquet")])
    _no_traceback(rc, text)  # it used to run without the position correction
    assert "--position names column 'slot'" in text
    assert not (tmp_path / "o.parquet").exists()


def test_output_paths_that_cannot_be_written(capsys, small_log, tmp_path):
    d, _ = small_log
    base = ["ope", str(d / "logs.csv"), "--target", str(d / "target.csv"), "--outcome", "click", "--estimators",
            "ips", "--quiet"]
    rc, text = _run(capsys, [*base, "--out", str(tmp_path)])  # a folder
    _no_traceback(rc, text)
    assert "is a folder" in text
    (tmp_path / "file").write_text("")
    rc, text = _run(capsys, [*base, "--out", str(tmp_path / "file" / "r.json")])  # parent is a file
    _no_traceback(rc, text)
    assert str(tmp_path / "file") in text


# --- 4. start-up: the CLI, `ope` and `ab` load no torch / transformers / econml / dowhy ---------

HEAVY = ("torch", "transformers", "econml", "dowhy", "sklearn", "statsmodels")
NEVER_ON_RUN = ("torch", "transformers", "econml", "dowhy")  # ab computes power with statsmodels

_STARTUP = r"""
import contextlib, io, json, sys
heavy = {heavy!r}
seen = {{}}
def record(step):
    seen[step] = sorted(m for m in heavy + ("pandas", "numpy", "pyarrow") if m in sys.modules)
from causalrec.cli import main
record("import")
for cmd in ("ope", "ab"):
    with contextlib.redirect_stdout(io.StringIO()):
        main([cmd, "--help"])
    record(cmd + " --help")
with contextlib.redirect_stdout(io.StringIO()):
    rc_ope = main(["ope", {logs!r}, "--target", {target!r}, "--outcome", "click", "--estimators", "ips,snips"])
    record("ope run")
    rc_ab = main(["ab", {ab!r}, "--variant", "variant", "--metric", "revenue"])
    record("ab run")
print(json.dumps({{"seen": seen, "rc": [rc_ope, rc_ab]}}))
"""


def test_cli_start_up_imports(small_log):
    import json

    d, _ = small_log
    code = _STARTUP.format(heavy=HEAVY, logs=str(d / "logs.csv"), target=str(d / "target.csv"),
                           ab=str(SAMPLES / "ab" / "experiment.csv"))
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["rc"] == [0, 0], proc.stderr
    seen = out["seen"]
    # importing the CLI and printing help need neither the heavy libraries nor pandas/numpy
    for step in ("import", "ope --help", "ab --help"):
        assert seen[step] == [], (step, seen[step])
    # running ope and ab loads the data stack, never torch, transformers, econml or dowhy
    for step in ("ope run", "ab run"):
        assert not set(seen[step]) & set(NEVER_ON_RUN), (step, seen[step])
        assert "pandas" in seen[step]


@pytest.mark.parametrize("value", [0.0, 1.0, 1.5])
def test_uplift_logged_propensity_outside_open_unit_interval(capsys, tmp_path, text_log_csv, value):
    # uplift needs 1/e and 1/(1-e): a logged exposure propensity must lie strictly inside (0, 1)
    df = text_log_csv.assign(p=0.4)
    df.loc[3, "p"] = value
    df.to_csv(tmp_path / "p.csv", index=False)
    rc, text = _run(capsys, ["uplift", str(tmp_path / "p.csv"), "--treatment", "treatment", "--outcome", "outcome",
                             "--covariates", "item_price", "--propensity", "p", "--method", "ipw", "--n-folds", "2"])
    _no_traceback(rc, text)
    assert "'p'" in text and "(0, 1)" in text


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_uplift_history_empty_for_every_row(capsys, tmp_path, text_log_csv, fmt):
    # separator-joined strings that are all empty (CSV) or list cells that are all [] (Parquet)
    if fmt == "csv":
        path, sep = tmp_path / "h.csv", ["--history-sep", " | "]
        text_log_csv.assign(hist="", title="a title").to_csv(path, index=False)
    else:
        path, sep = tmp_path / "h.parquet", []
        text_log_csv.assign(hist=[[] for _ in range(len(text_log_csv))], title="a title").to_parquet(path)
    rc, text = _run(capsys, ["uplift", str(path), "--treatment", "treatment", "--outcome", "outcome",
                             "--user-history", "hist", *sep, "--item-text", "title", "--method", "aipw",
                             "--n-folds", "2"])
    _no_traceback(rc, text)
    assert "history column 'hist' is empty for every row" in text and "fix:" in text


# --- 3. an option value outside its set fails before any data is read, naming the option -----

OPE = SAMPLES / "ope"


@pytest.mark.parametrize("args,option,needle", [
    ([str(OPE / "logs.csv"), "--target", str(OPE / "target_uniform.csv"), "--outcome", "click",
      "--value-per", "bogus"], "--value-per", "impression"),
    ([str(OPE / "slates" / "logs.csv"), "--target", str(OPE / "slates" / "target_scores.csv"), "--outcome",
      "click", "--target-kind", "bogus"], "--target-kind", "plackett-luce, topk"),
])
def test_ope_option_value_outside_its_set(capsys, args, option, needle):
    rc, text = _run(capsys, ["ope", *args, "--quiet"])
    assert rc == 2, text
    assert f"option '{option}'" in text and "bogus" in text
    assert needle in text
    assert "Traceback" not in text


@pytest.mark.parametrize("method", ["ips", "dr"])
def test_debias_n_folds_below_two_is_refused_on_every_path(capsys, tmp_path, method):
    # ips with an item-share propensity never cross-fits: the value used to pass silently there
    rc, text = _run(capsys, ["debias", str(SAMPLES / "text_logs" / "logs.parquet"), "--method", method,
                             "--outcome", "click", "--estimate-propensity", "--n-folds", "0",
                             "--out", str(tmp_path / "o.parquet"), "--quiet"])
    assert rc == 2, text
    assert "option '--n-folds'" in text and "got 0" in text
    assert not (tmp_path / "o.parquet").exists()


def test_uplift_ci_target_outside_its_set(capsys):
    rc, text = _run(capsys, ["uplift", str(SAMPLES / "text_logs" / "logs.parquet"), "--treatment", "treatment",
                             "--outcome", "outcome", "--ci-target", "bogus", "--quiet"])
    assert rc == 2, text
    assert "option '--ci-target'" in text and "population" in text
