"""Execution engines: where the per-row terms of an estimator are computed.

causalrec's estimators reduce a log to mergeable sufficient statistics (OPE's
:class:`~causalrec.ope.estimators.Moments` and cluster moments, A/B's
:class:`~causalrec.experiments.stats.ABStats`). In process those are summed over the
whole table or over Parquet batches; :mod:`causalrec.engines.spark` sums them over
the partitions of a Spark DataFrame on the executors and merges them on the driver,
where the same finishing code turns them into estimates. Only the statistics travel.
"""

from __future__ import annotations


def is_spark_dataframe(obj) -> bool:
    """True for a ``pyspark.sql.DataFrame`` (classic or Connect), without importing pyspark."""
    mod = type(obj).__module__ or ""
    return mod.startswith("pyspark.sql") and type(obj).__name__ == "DataFrame"


__all__ = ["is_spark_dataframe"]
