"""``estimate(..., folds="hash")``: the folds the Spark engine assigns, reproduced in process."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from causalrec.errors import InputError
from causalrec.models.folds import cluster_hash_folds, row_hash_folds
from causalrec.uplift import estimate


def _logs(n=600, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    t = (rng.random(n) < 1 / (1 + np.exp(-x))).astype(int)
    y = x + 0.5 * t + rng.normal(size=n)
    return pd.DataFrame({"user_id": rng.integers(0, 80, n), "x": x, "t": t, "y": y})


def _run(df, **kw):
    from sklearn.linear_model import LogisticRegression, Ridge

    return estimate(df, treatment="t", outcome="y", covariates=["x"], features="covariates", methods=["aipw"],
                    propensity_model=LogisticRegression(), outcome_model=Ridge(), n_folds=4, seed=3, **kw)


def test_hash_folds_follow_the_user_or_the_row_number():
    df = _logs()
    by_user = _run(df, folds="hash")
    expect = cluster_hash_folds(df["user_id"].astype(str).to_numpy(), 4, 3)
    np.testing.assert_array_equal(by_user.nuisance["folds"], expect)
    assert by_user.config["folds"] == "hash"
    by_row = _run(df, folds="hash", group_by_user=False)
    np.testing.assert_array_equal(by_row.nuisance["folds"], row_hash_folds(0, len(df), 4, 3))
    split = _run(df)
    assert split.config["folds"] == "split"
    assert not np.array_equal(split.nuisance["folds"], by_user.nuisance["folds"])
    with pytest.raises(InputError, match="unknown folds"):
        _run(df, folds="kfold")
