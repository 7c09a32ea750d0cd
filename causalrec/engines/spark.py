"""Apache Spark as an engine: per-partition statistics on the executors, merged on the driver.

The pattern every Spark path in causalrec follows:

1. the driver checks the options and the column names (``df.columns``) with the same
   validation code as in process;
2. :func:`run_partitions` ships a Python function to every partition through
   ``mapInPandas`` (Arrow batches); the function validates its batches with the in-process
   validation, computes the per-row terms with the in-process code and returns a small,
   mergeable statistic (``Moments``, ``WeightStats``, ``ABStats``, cell sums), pickled into
   one binary cell per partition;
3. the driver collects those cells (a few KB per partition: :attr:`PartitionResults.nbytes`
   counts them), merges them and finishes with the in-process code.

A causalrec :class:`~causalrec.errors.InputError` raised on an executor (a bad propensity,
an unknown item) is shipped back as a value and re-raised on the driver unchanged, so
``--engine spark`` fails with the same message and exit code 2 as in process.

Row order: folds of rows without a cluster are a hash of the global row number (see
:func:`causalrec.ope.outcome.fold_ids`). :func:`partition_offsets` counts the rows of
each partition so that partition ``k`` starts at the number of rows before it. A Parquet
scan keeps the file's row order across its partitions, so the row numbers (and the folds)
equal the in-process ones; after a shuffle (``repartition``) they follow the new order.

Why hand-written: Spark has no notion of these statistics; ``mapInPandas`` plus
``collect`` of one cell per partition is the smallest bridge (no shuffle of the rows).
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from causalrec.errors import InputError, require

RESULT_SCHEMA = "pid int, kind string, payload binary"
ARROW_BATCH_ROWS = 262_144  # rows per Arrow batch handed to a partition function


def spark_session(master: str | None = None, app: str = "causalrec", conf: dict | None = None):
    """The active SparkSession, or a new one on ``master`` (e.g. ``local[*]``) with Arrow on.

    An active session is returned as it is when ``master`` is ``None`` or its own master: its
    settings are the caller's. ``builder.getOrCreate()`` on a running session would apply the
    builder's options to it, so a CLI call with ``--spark-master`` silently reset, e.g., the
    session's Arrow batch size (and with it how rows are batched for every later job). Another
    ``master`` than the running session's is an ``InputError``: one process holds one
    SparkContext, so it could not be honoured.
    """
    require("pyspark", "the Spark engine (--engine spark)")
    import sys

    from pyspark.sql import SparkSession

    # executors run this interpreter (with causalrec and its dependencies), not whatever
    # "python3" is first on the PATH
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    active = SparkSession.getActiveSession()
    if active is not None:
        running = active.conf.get("spark.master", None)
        if master is None or running is None or master == running:
            return active
        raise InputError(f"a SparkSession on {running!r} is already running in this process; "
                         f"--spark-master {master!r} cannot start another", column="--spark-master",
                         fix=f"leave --spark-master out (or pass {running!r}) to use the running session, "
                             "or stop it first")
    b = SparkSession.builder.appName(app)
    if master:
        b = b.master(master)
    settings = {"spark.sql.execution.arrow.pyspark.enabled": "true",
                "spark.sql.execution.arrow.maxRecordsPerBatch": str(ARROW_BATCH_ROWS),
                "spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false"}
    settings.update(conf or {})
    for k, v in settings.items():
        b = b.config(k, v)
    return b.getOrCreate()


def read_source(spark, source: str | os.PathLike):
    """A Spark DataFrame from a Parquet file/folder, a Delta table folder, a CSV file, or a table name."""
    text = str(source)
    path = Path(text)
    if path.exists():
        if path.is_dir() and (path / "_delta_log").exists():
            return spark.read.format("delta").load(text)
        if path.suffix.lower() in (".csv", ".tsv"):
            return spark.read.csv(text, header=True, inferSchema=True, sep="\t" if path.suffix.lower() == ".tsv"
                                  else ",")
        return spark.read.parquet(text)
    if "/" in text or text.endswith((".parquet", ".csv")):
        raise InputError(f"file '{text}' does not exist", column=text, fix="check the path")
    try:
        return spark.table(text)
    except Exception as exc:  # AnalysisException: not a table either
        raise InputError(f"'{text}' is neither an existing path nor a table in the Spark catalog", column=text,
                         fix="pass a Parquet/Delta path or a table name that spark.table() knows") from exc


def empty_frame(sdf) -> pd.DataFrame:
    """A column-only pandas frame of a Spark DataFrame: what the in-process checks read."""
    return pd.DataFrame(columns=list(sdf.columns))


@dataclass
class PartitionResults:
    """What :func:`run_partitions` brought back: one value per partition, and its size."""

    values: list[Any]
    nbytes: int
    n_partitions: int


def run_partitions(sdf, fn: Callable[[int, Iterator[pd.DataFrame]], Any]) -> PartitionResults:
    """Run ``fn(partition_id, batches)`` on every partition of ``sdf``; collect its return values.

    ``fn`` runs on an executor; it must consume pandas batches and return a small picklable
    value. A causalrec ``InputError`` it raises is re-raised here (the first, in partition
    order). Everything else propagates as Spark's own error.
    """
    def run(batches):
        from pyspark import TaskContext

        pid = TaskContext.get().partitionId()
        try:
            value, kind = fn(pid, batches), "ok"
        except InputError as exc:
            value, kind = exc, "error"
        yield pd.DataFrame({"pid": [pid], "kind": [kind], "payload": [pickle.dumps(value, protocol=5)]})

    rows = sdf.mapInPandas(run, RESULT_SCHEMA).collect()
    rows = sorted(rows, key=lambda r: r["pid"])
    for r in rows:
        if r["kind"] == "error":
            raise pickle.loads(r["payload"])
    nbytes = int(sum(len(r["payload"]) for r in rows))
    return PartitionResults([pickle.loads(r["payload"]) for r in rows], nbytes, len(rows))


def grouped_totals(sdf, terms_part: Callable[[int, Iterator[pd.DataFrame]], Iterator], n_cols: int,
                   key_type: str, reduce_part: Callable[[int, Iterator[np.ndarray]], Any]):
    """Complete per-key totals of per-row terms whose keys (users, requests) may span partitions.

    ``terms_part(pid, batches)`` is a generator run on each partition: it yields ``(keys, z)`` per
    batch (``z`` of shape ``(n_cols, rows)``) and returns a small picklable value. Each batch leaves
    the worker as one row of partial sums per key; ``groupBy(key).sum`` completes them and
    ``reduce_part(pid, blocks)`` reduces the complete totals (``blocks`` of shape ``(n_cols, keys)``)
    per partition. Returns ``(return values in partition order, the reduced values, bytes collected,
    partitions)``; a causalrec ``InputError`` raised on a partition is re-raised here.
    """
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    tcols = [f"t{j}" for j in range(n_cols)]
    schema = f"pid int, kind string, payload binary, key {key_type}, " + ", ".join(f"{c} double" for c in tcols)

    def run(it):
        from pyspark import TaskContext

        pid = TaskContext.get().partitionId()
        gen = terms_part(pid, it)
        try:
            while True:
                keys, z = next(gen)
                codes, uniques = pd.factorize(keys, sort=False)
                g = len(uniques)
                frame = {"pid": np.full(g, pid, dtype=np.int32), "kind": "c", "payload": None,
                         "key": uniques.astype(str) if key_type == "string" else uniques}
                for j, c in enumerate(tcols):
                    frame[c] = np.bincount(codes, weights=z[j], minlength=g)
                yield pd.DataFrame(frame)  # partial totals leave the worker batch by batch
        except StopIteration as stop:
            value, kind = stop.value, "ok"
        except InputError as exc:
            value, kind = exc, "error"
        last = {"pid": [pid], "kind": [kind], "payload": [pickle.dumps(value, protocol=5)], "key": [None]}
        last.update({c: [np.nan] for c in tcols})
        yield pd.DataFrame(last)

    # one row per (partition, key): about as many rows as keys, so at 100M rows it is GBs.
    # DISK_ONLY streams it to local disk; MEMORY_AND_DISK first unrolls blocks on the JVM heap
    # and, with pyspark's default 1g heap in local mode, died of OutOfMemoryError at 100M rows
    part = sdf.mapInPandas(run, schema).persist(StorageLevel.DISK_ONLY)
    try:
        rows = sorted(part.filter(F.col("kind") != "c").select("pid", "kind", "payload").collect(),
                      key=lambda r: r["pid"])
        for r in rows:
            if r["kind"] == "error":
                raise pickle.loads(r["payload"])
        values = [pickle.loads(r["payload"]) for r in rows]
        nbytes = int(sum(len(r["payload"]) for r in rows))
        totals = (part.filter(F.col("kind") == "c").groupBy("key")
                  .agg(*[F.sum(c).alias(c) for c in tcols]).drop("key"))
        res = run_partitions(totals, lambda pid, it: reduce_part(
            pid, (b[tcols].to_numpy(dtype=np.float64).T for b in it if len(b))))
    finally:
        part.unpersist()
    return values, res.values, nbytes + res.nbytes, len(rows)


class Shipped:
    """A driver-side object (a fitted model) for the executors: a broadcast variable, sent once per
    executor, where the session has a SparkContext; under Spark Connect, which has none, it travels
    with the tasks. ``value()`` on an executor returns it. A closure that captures this holder, not
    the object, ships only the broadcast handle."""

    def __init__(self, sdf, obj):
        self._obj, self._bc = obj, None
        if obj is not None:
            try:
                self._bc = sdf.sparkSession.sparkContext.broadcast(obj)
            except Exception:  # Spark Connect: no SparkContext on the client
                self._bc = None

    def value(self):
        return self._bc.value if self._bc is not None else self._obj

    def release(self) -> None:
        if self._bc is not None:
            self._bc.unpersist()

    def __getstate__(self):  # the closure ships the broadcast handle, never the object itself
        return {"_obj": None if self._bc is not None else self._obj, "_bc": self._bc}


def partition_offsets(sdf) -> tuple[dict[int, int], int, int]:
    """``({partition: first global row number}, total rows, bytes collected)`` in partition order."""
    first = sdf.columns[:1]
    res = run_partitions(sdf.select(*first) if first else sdf, lambda pid, batches: sum(len(b) for b in batches))
    counts = np.asarray(res.values, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return {i: int(s) for i, s in enumerate(starts)}, int(counts.sum()), res.nbytes


def write_parquet(sdf, path: str | os.PathLike) -> Path:
    """Write a Spark DataFrame as a Parquet folder: into a temporary sibling, then renamed into place,
    so a failed job never leaves a half-written ``path``."""
    import shutil
    import uuid

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        sdf.write.parquet(str(tmp))
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def spark_type(sdf, column: str) -> str:
    """The DDL type of one column (e.g. ``bigint``, ``string``)."""
    return sdf.schema[column].dataType.simpleString()


__all__ = ["spark_session", "read_source", "run_partitions", "partition_offsets", "PartitionResults", "Shipped",
           "empty_frame", "spark_type", "write_parquet"]
