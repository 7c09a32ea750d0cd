"""A/B sufficient statistics of a Spark DataFrame: a year of sessions is one aggregation.

``causalrec.experiments.analyze(spark_df, ...)`` builds its plan in process and calls
:func:`unit_stats` instead of reducing a pandas frame. The result is the same
:class:`~causalrec.experiments.stats.ABStats` (per variant, segment and stratum: ``n``,
sums and sums of products of the unit-level variables), finished by the same code
(:func:`causalrec.experiments.finish.finish`), so CUPED, Lin, ratios (delta method),
post-stratification, SRM, segments and the sequential tests need no Spark code.

Steps: without ``unit`` every row is a unit and each partition reduces its rows with the
in-process :func:`~causalrec.experiments.units.to_units` and
:meth:`ABStats.from_units` (which also validate, with the in-process messages). With
``unit``, a validation pass checks the rows the same way, then Spark sums the rows per unit
(``groupBy(unit)``: metric sums, covariate means, first segment value, row count; units seen
in more than one variant are dropped, as in process), and the partitions of the unit table
reduce to ``ABStats``. Only those statistics reach the driver.

Not on Spark (raise ``InputError``): quantile metrics, CUPAC, capping, looks by timestamp,
and covariates with missing values (in process they get an imputed value and an indicator,
which needs the pooled mean first); ``first`` values per unit (segment, stratum) are taken
in Spark's order, so they should be constant within a unit.
"""

from __future__ import annotations

from collections.abc import Sequence

from causalrec.engines.spark import run_partitions
from causalrec.errors import InputError

NVAR = "_causalrec_n_variants"


def unit_stats(sdf, *, variant: str, unit: str | None, wanted: Sequence[str], sums: Sequence[str],
               means: Sequence[str], firsts: Sequence[str], names: Sequence[str], by: Sequence[str],
               plain_covs: Sequence[str]):
    """``(ABStats, rows, warnings)`` of the log; see the module docstring."""
    from pyspark.sql import functions as F

    from causalrec.experiments.stats import ABStats
    from causalrec.experiments.units import N_ROWS, to_units

    narrow = sdf.select(*wanted)
    warnings: list[str] = []
    units = narrow
    n_rows = None
    if unit is not None:
        def check(pid, it):
            n = 0
            for b in it:
                to_units(b, variant=variant, unit=unit, sums=sums, means=means, firsts=firsts)
                n += len(b)
            return n

        n_rows = int(sum(run_partitions(narrow, check).values))
        aggs = [F.first(variant).alias(variant), F.countDistinct(variant).alias(NVAR),
                F.count(F.lit(1)).cast("double").alias(N_ROWS)]
        aggs += [F.sum(F.col(c).cast("double")).alias(c) for c in sums]
        aggs += [F.avg(F.col(c).cast("double")).alias(c) for c in means if c not in sums]
        aggs += [F.first(c).alias(c) for c in firsts if c not in sums and c not in means]
        per_unit = narrow.groupBy(unit).agg(*aggs)
        counts = per_unit.agg(F.count(F.lit(1)).alias("units"),
                              F.sum((F.col(NVAR) > 1).cast("long")).alias("crossed")).collect()[0]
        crossed = int(counts["crossed"] or 0)
        if crossed:
            share = crossed / int(counts["units"])
            warnings.append(f"{crossed:,} units ({100 * share:.2g}%) appear in more than one variant and were "
                            "dropped: a unit must stay in one arm (check the assignment)")
        units = per_unit.filter(F.col(NVAR) == 1).drop(NVAR)

    def reduce_part(pid, it):
        out = None
        n = 0
        for b in it:
            if len(b) == 0:
                continue
            n += len(b)
            if unit is None:
                frame, _ = to_units(b, variant=variant, unit=None, sums=sums, means=means, firsts=firsts)
            else:
                frame = b.copy()
                frame[variant] = frame[variant].astype(str)
            for c in plain_covs:
                if frame[c].isna().any():
                    raise InputError(f"covariate '{c}' has missing values; on Spark they are not imputed",
                                     column=c, fix="fill them before the analysis, or run it in process "
                                     "(drop --engine spark), where they get the pooled mean and an indicator")
                frame[c] = frame[c].astype(float)
            for c in by:
                frame[c] = frame[c].astype("string").fillna("<missing>").astype(str)
            st = ABStats.from_units(frame, variant=variant, names=names, by=by)
            out = st if out is None else out.merge(st)
        return out, n

    res = run_partitions(units, reduce_part)
    parts = [st for st, _ in res.values if st is not None]
    if not parts:
        raise InputError("the log has no rows", fix="check the file")
    stats = parts[0]
    for st in parts[1:]:
        stats = stats.merge(st)
    if n_rows is None:
        n_rows = int(sum(n for _, n in res.values))
    return stats, n_rows, warnings, res.nbytes


def user_id_repeats(sdf) -> bool:
    """Whether a ``user_id`` column repeats (the in-process warning about a missing ``--unit``)."""
    from pyspark.sql import functions as F

    row = sdf.agg(F.count("user_id").alias("n"), F.countDistinct("user_id").alias("d")).collect()[0]
    return int(row["d"]) < int(row["n"])


__all__ = ["unit_stats", "user_id_repeats"]

