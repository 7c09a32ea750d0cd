"""Readers for CSV, Parquet and DataFrames, whole or in batches.

``read_table`` loads a file (or copies nothing when given a DataFrame: the
frame is used read-only). ``iter_batches`` streams a Parquet file through
``pyarrow`` record batches (or a CSV through pandas chunks) so estimators can
process files larger than memory in one pass.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import pandas as pd

from causalrec.errors import InputError

PARQUET_SUFFIXES = {".parquet", ".pq", ".parq"}
CSV_SUFFIXES = {".csv", ".tsv", ".txt", ".gz", ".bz2", ".zip", ".xz"}


def _kind(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if any(s in PARQUET_SUFFIXES for s in suffixes) or path.is_dir():
        return "parquet"
    if any(s in CSV_SUFFIXES for s in suffixes):
        return "csv"
    raise InputError(
        f"cannot tell the format of '{path}' from its name",
        column=str(path),
        fix="use a .csv (optionally .csv.gz) or .parquet file",
    )


def _sep(path: Path) -> str:
    """The field separator: tab for .tsv; otherwise ',' unless the header line has no
    comma but a ';', tab or '|' (a European-locale or tab-separated export named .csv,
    which pandas would read as one column whose name is the whole header)."""
    if ".tsv" in [s.lower() for s in path.suffixes]:
        return "\t"
    if path.suffix.lower() not in (".csv", ".txt") or not path.is_file():
        return ","  # compressed files: pandas' default
    with open(path, encoding="utf-8", errors="replace") as fh:
        header = fh.readline()
    if "," in header:
        return ","
    counts = {sep: header.count(sep) for sep in (";", "\t", "|")}
    best = max(counts, key=counts.get)
    return best if counts[best] > 0 else ","


def _empty(path: Path) -> InputError:
    return InputError(f"file '{path}' is empty (not even a header line)", column=str(path),
                      fix="write the table with a header row of column names and at least one data row")


def _parquet_files(path: Path) -> list[Path]:
    return sorted(path.glob("*.parquet")) if path.is_dir() else [path]


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise InputError(f"file '{path}' does not exist", column=str(path),
                         fix="check the path (relative paths start from the current directory)")


def read_table(source: str | os.PathLike | pd.DataFrame, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Read a CSV/Parquet file into a DataFrame (``columns`` restricts what is read).

    A DataFrame passed in is returned as is; callers must treat it as read-only
    (every causalrec function works on copies or canonical views).
    """
    if isinstance(source, pd.DataFrame):
        if columns is not None:
            missing = [c for c in columns if c not in source.columns]
            if missing:
                raise InputError(f"column '{missing[0]}' is missing", column=missing[0],
                                 fix=f"columns present: {list(source.columns)[:12]}")
            return source[list(columns)]
        return source
    path = Path(source)
    _check_exists(path)
    kind = _kind(path)
    try:
        if kind == "parquet":
            return pd.read_parquet(path, columns=list(columns) if columns else None)
        return pd.read_csv(path, usecols=list(columns) if columns else None, sep=_sep(path))
    except InputError:
        raise
    except pd.errors.EmptyDataError as exc:
        raise _empty(path) from exc
    except ValueError as exc:
        if columns and ("not in list" in str(exc) or "Usecols" in str(exc) or "No match for" in str(exc)):
            raise InputError(f"'{path}': {exc}", column=str(path),
                             fix="check the column names passed on the command line") from exc
        raise InputError(f"cannot read '{path}': {exc}", column=str(path),
                         fix="check that the file is a valid CSV or Parquet file") from exc
    except Exception as exc:  # pyarrow / parser errors have many types
        raise InputError(f"cannot read '{path}': {type(exc).__name__}: {exc}", column=str(path),
                         fix="check that the file is a valid, uncorrupted CSV or Parquet file") from exc


def iter_batches(
    source: str | os.PathLike | pd.DataFrame,
    columns: Sequence[str] | None = None,
    batch_size: int = 1_000_000,
) -> Iterator[pd.DataFrame]:
    """Yield DataFrame batches of at most ``batch_size`` rows.

    Parquet is streamed with ``pyarrow.parquet.ParquetFile.iter_batches`` so
    peak memory is one batch (plus what the consumer keeps).
    """
    if isinstance(source, pd.DataFrame):
        for start in range(0, len(source), batch_size):
            yield source.iloc[start:start + batch_size]
        return
    path = Path(source)
    _check_exists(path)
    kind = _kind(path)
    try:
        if kind == "parquet":
            import pyarrow.parquet as pq

            for f in _parquet_files(path):
                pf = pq.ParquetFile(f)
                for rb in pf.iter_batches(batch_size=batch_size, columns=list(columns) if columns else None):
                    yield rb.to_pandas()
        else:
            yield from pd.read_csv(path, usecols=list(columns) if columns else None, chunksize=batch_size,
                                   sep=_sep(path))
    except InputError:
        raise
    except pd.errors.EmptyDataError as exc:
        raise _empty(path) from exc
    except Exception as exc:
        raise InputError(f"cannot read '{path}': {type(exc).__name__}: {exc}", column=str(path),
                         fix="check that the file is a valid CSV or Parquet file and the column names exist") from exc


def parquet_num_rows(path: str | os.PathLike) -> int | None:
    """Row count from Parquet metadata (no data read); None for other sources."""
    p = Path(path)
    if _kind(p) != "parquet":
        return None
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(f).metadata.num_rows for f in _parquet_files(p))


def column_names(source: str | os.PathLike | pd.DataFrame) -> list[str]:
    """Column names of a DataFrame or file, reading only the header / Parquet schema."""
    if isinstance(source, pd.DataFrame):
        return [str(c) for c in source.columns]
    path = Path(source)
    _check_exists(path)
    kind = _kind(path)
    try:
        if kind == "parquet":
            import pyarrow.parquet as pq

            return list(pq.ParquetFile(_parquet_files(path)[0]).schema_arrow.names)
        return [str(c) for c in pd.read_csv(path, nrows=0, sep=_sep(path)).columns]
    except pd.errors.EmptyDataError as exc:
        raise _empty(path) from exc
    except Exception as exc:
        raise InputError(f"cannot read '{path}': {type(exc).__name__}: {exc}", column=str(path),
                         fix="check that the file is a valid CSV or Parquet file") from exc
