"""Debias weights and labels on Spark equal the in-process ones (per row and summary, 1e-9)."""

from __future__ import annotations

import numpy as np
import pytest

from causalrec.data.schema import LogSchema
from causalrec.debias import debias
from causalrec.errors import InputError
from causalrec.ope.synthetic import make_bandit_logs

SCHEMA = LogSchema(outcome="click")
CURVE = [1.0, 0.7, 0.45]


@pytest.fixture(scope="module")
def logs():
    return make_bandit_logs(4_000, n_items=15, seed=8).logs


@pytest.mark.parametrize("method", ["snips", pytest.param("ips", marks=pytest.mark.slow)])
def test_weights_and_labels_equal_in_process(spark, logs, method, same_estimates):
    kw = dict(schema=SCHEMA, method=method, clip=0.02, cap=40.0, examination=CURVE, bootstrap=0)
    local = debias(logs, **kw)
    remote = debias(spark.createDataFrame(logs).repartition(3), **kw)
    frame = remote.frame.toPandas().sort_values(["request_id", "position"]).reset_index(drop=True)
    mine = local.frame.sort_values(["request_id", "position"]).reset_index(drop=True)
    for col in ("weight", "corrected_label", "debias_propensity", "debias_examination"):
        np.testing.assert_allclose(frame[col].to_numpy(), mine[col].to_numpy(), rtol=1e-9, atol=0)
    assert (frame["debias_model"] == mine["debias_model"]).all()
    same_estimates(remote, local)
    assert remote.warnings == local.warnings


def test_bad_propensity_same_error(spark, logs):
    bad = logs.copy()
    bad.loc[10, "propensity"] = 1.5
    with pytest.raises(InputError) as local:
        debias(bad, schema=SCHEMA, method="ips", examination="none")
    with pytest.raises(InputError) as remote:
        debias(spark.createDataFrame(bad), schema=SCHEMA, method="ips", examination="none")
    assert str(remote.value) == str(local.value)
    with pytest.raises(InputError, match="examination"):
        debias(spark.createDataFrame(logs), schema=SCHEMA, method="ips", examination="em")
