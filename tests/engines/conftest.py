"""One SparkSession ``local[2]`` for every Spark test (starting one costs seconds); the tests
skip, with the reason, when pyspark or a Java runtime is missing."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


def _java_problem() -> str | None:
    java = shutil.which("java") or (os.path.join(os.environ["JAVA_HOME"], "bin", "java")
                                    if os.environ.get("JAVA_HOME") else None)
    if not java or not os.path.exists(java):
        return "no Java runtime (install one: apt-get install default-jre-headless, or set JAVA_HOME)"
    try:
        subprocess.run([java, "-version"], capture_output=True, timeout=30, check=True)
    except Exception as exc:  # a broken java binary
        return f"the Java runtime at {java} does not run: {exc}"
    return None


@pytest.fixture(scope="session")
def spark():
    pytest.importorskip("pyspark", reason="pyspark is not installed (pip install 'causalrec[spark]')")
    problem = _java_problem()
    if problem:
        pytest.skip(problem)
    from causalrec.engines.spark import spark_session

    # small files splits, so one Parquet file becomes several partitions; 2 shuffle partitions
    session = spark_session("local[2]", app="causalrec-tests", conf={
        "spark.sql.files.maxPartitionBytes": "16k", "spark.sql.files.openCostInBytes": "1k",
        "spark.sql.shuffle.partitions": "3", "spark.default.parallelism": "2",
        "spark.sql.execution.arrow.maxRecordsPerBatch": "700",
        "spark.driver.memory": "1g"})
    yield session
    session.stop()


def _assert_same_estimates(remote, local, keys=("estimate", "se", "ci_low", "ci_high")):
    """A Spark result against the in-process one: every estimate key and diagnostic to 1e-9."""
    for a, b in zip(remote.to_dict()["estimates"], local.to_dict()["estimates"], strict=True):
        for k in keys:
            assert a[k] == pytest.approx(b[k], rel=1e-9), (a["estimator"], k)
    for k, v in local.diagnostics.items():
        if isinstance(v, float):
            assert remote.diagnostics[k] == pytest.approx(v, rel=1e-9), k
        else:
            assert remote.diagnostics[k] == v, k


@pytest.fixture
def same_estimates():
    """The comparison every Spark-vs-in-process debias test makes (a fixture: tests import no modules)."""
    return _assert_same_estimates

