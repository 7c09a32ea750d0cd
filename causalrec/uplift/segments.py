"""Effects per item and per user segment, with a multiple-comparison correction.

Within a group ``g`` the AIPW (doubly robust) estimate of the group's average
effect is the mean of the influence values of its rows,

    psi_i = mu1(x_i) - mu0(x_i) + T_i (Y_i - mu1(x_i)) / e(x_i)
            - (1 - T_i) (Y_i - mu0(x_i)) / (1 - e(x_i)),
    tau_g = mean_{i in g} psi_i,   se_g = sd_{i in g}(psi) / sqrt(n_g),

or, with ``clusters`` (the user), the cluster-robust
``se_g^2 = C_g / (C_g - 1) sum_c (sum_{i in g, c} (psi_i - tau_g))^2 / n_g^2`` over the
``C_g`` users with rows in the group, so a user's rows do not count as independent,

valid under no unmeasured confounding and overlap within the group, with
cross-fitted nuisances ``e, mu0, mu1``. Reporting many groups invites false
discoveries, so every table carries Holm (family-wise error) and
Benjamini-Hochberg (false discovery rate) adjusted p-values from statsmodels.

Segments are a user-supplied column or KMeans clusters of user embeddings
(:func:`embedding_segments`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from causalrec.diagnostics.overlap import handle_overlap
from causalrec.errors import InputError
from causalrec.inference import z_value
from causalrec.results import jsonable
from causalrec.uplift.ate import aipw_scores


@dataclass
class GroupEffects:
    """AIPW effect per group with CI and adjusted p-values."""

    by: str
    ci_level: float
    table: pd.DataFrame  # group, n, n_treated, estimate, se, ci_low, ci_high, p_value, p_holm, p_bh
    n_groups_total: int
    n_groups_dropped: int
    overlap_note: str = ""

    @property
    def note(self) -> str:
        k = len(self.table)
        holm = int((self.table["p_holm"] < 1 - self.ci_level).sum()) if k else 0
        bh = int((self.table["p_bh"] < 1 - self.ci_level).sum()) if k else 0
        raw = int((self.table["p_value"] < 1 - self.ci_level).sum()) if k else 0
        alpha = 1 - self.ci_level
        text = (f"{k} groups tested against zero: {raw} significant at {alpha:g} unadjusted, {holm} after Holm "
                f"(family-wise error), {bh} after Benjamini-Hochberg (false discovery rate). Intervals are "
                "per-group (unadjusted); read them with the adjusted p-values.")
        if self.n_groups_dropped:
            text += (f" {self.n_groups_dropped} of {self.n_groups_total} groups were left out (too few rows or "
                     "no treated/control rows).")
        return text

    def to_dict(self) -> dict:
        return jsonable({"by": self.by, "ci_level": self.ci_level, "note": self.note,
                         "n_groups_total": self.n_groups_total, "n_groups_dropped": self.n_groups_dropped,
                         "groups": self.table.to_dict(orient="records")})

    def summary(self, top: int = 10) -> str:
        return f"effects by {self.by}:\n{self.table.head(top).to_string(index=False)}\n{self.note}"


def group_effects(
    y, t, e_hat, mu0, mu1, groups, *,
    by: str = "group",
    min_size: int = 30,
    ci_level: float = 0.95,
    overlap: str = "clip",
    clip: float = 0.01,
    sort_by: str = "n",
    clusters=None,
) -> GroupEffects:
    """AIPW effect of each value of ``groups`` (see module docstring).

    Groups with fewer than ``min_size`` rows or without both treated and control
    rows are left out and counted. ``overlap``/``clip`` as in
    :func:`causalrec.diagnostics.handle_overlap`. ``clusters``: one label per row (the
    user); standard errors are then cluster-robust within each group.
    """
    from statsmodels.stats.multitest import multipletests

    t = np.asarray(t).astype(float)
    groups = np.asarray(groups)
    n = t.shape[0]
    if groups.shape[0] != n:
        raise InputError(f"group labels have {groups.shape[0]} rows, data has {n}", column=by,
                         fix="pass one group label per row")
    oh = handle_overlap(e_hat, overlap, clip)
    psi = aipw_scores(t, np.asarray(y, dtype=float), oh.e_used, np.asarray(mu0, dtype=float),
                      np.asarray(mu1, dtype=float))
    frame = pd.DataFrame({"g": groups, "psi": psi, "t": t})
    if clusters is not None:
        cl = np.asarray(clusters)
        if cl.shape[0] != n:
            raise InputError(f"clusters have {cl.shape[0]} rows, data has {n}", column="user_id",
                             fix="pass one user label per row")
        frame["c"] = cl
    frame = frame[oh.keep]
    agg = frame.groupby("g", sort=False, observed=True).agg(
        n=("psi", "size"), n_treated=("t", "sum"), estimate=("psi", "mean"), sd=("psi", "std"))
    total = len(agg)
    ok = (agg["n"] >= min_size) & (agg["n_treated"] > 0) & (agg["n_treated"] < agg["n"])
    agg = agg[ok].copy()
    z = z_value(ci_level)
    if clusters is None:
        agg["se"] = agg["sd"] / np.sqrt(agg["n"])
    else:
        # sums of centred psi per (group, user), then the Liang-Zeger sum per group
        dev = frame["psi"] - frame["g"].map(agg["estimate"])
        cs = dev.groupby([frame["g"], frame["c"]], sort=False, observed=True).sum()
        ss = (cs ** 2).groupby(level=0, observed=True).sum()
        n_cl = cs.groupby(level=0, observed=True).size()
        ss, n_cl = ss.reindex(agg.index), n_cl.reindex(agg.index)
        with np.errstate(divide="ignore", invalid="ignore"):
            agg["se"] = np.sqrt(n_cl / (n_cl - 1) * ss) / agg["n"]
    agg["ci_low"] = agg["estimate"] - z * agg["se"]
    agg["ci_high"] = agg["estimate"] + z * agg["se"]
    from scipy import stats

    with np.errstate(divide="ignore", invalid="ignore"):
        agg["p_value"] = 2.0 * stats.norm.sf(np.abs(agg["estimate"] / agg["se"]))
    if len(agg):
        pv = agg["p_value"].fillna(1.0).to_numpy()
        agg["p_holm"] = multipletests(pv, method="holm")[1]
        agg["p_bh"] = multipletests(pv, method="fdr_bh")[1]
    else:
        agg["p_holm"] = agg["p_bh"] = np.array([], dtype=float)
    agg["n_treated"] = agg["n_treated"].astype(int)
    table = agg.drop(columns="sd").reset_index().rename(columns={"g": by})
    table = table.sort_values(sort_by, ascending=False, kind="stable").reset_index(drop=True)
    return GroupEffects(by, ci_level, table, total, int(total - len(table)), oh.estimand_note)


def embedding_segments(user_emb: np.ndarray, n_clusters: int = 8, random_state: int = 0,
                       max_fit_rows: int = 50000) -> np.ndarray:
    """User segments as KMeans clusters of user embeddings (labels ``seg0..``).

    Clusters are fit on at most ``max_fit_rows`` sampled rows (MiniBatchKMeans
    would change little; KMeans on a sample keeps it seeded and fast) and every
    row is assigned to its nearest centre.
    """
    from sklearn.cluster import KMeans

    emb = np.asarray(user_emb, dtype=np.float32)
    if emb.ndim != 2 or emb.shape[0] < n_clusters:
        raise InputError(f"need a 2-d embedding matrix with at least {n_clusters} rows", column="user_text",
                         fix="pass user embeddings or lower n_clusters")
    rng = np.random.default_rng(random_state)
    fit = emb if emb.shape[0] <= max_fit_rows else emb[rng.choice(emb.shape[0], max_fit_rows, replace=False)]
    km = KMeans(n_clusters=n_clusters, n_init=3, random_state=random_state).fit(fit)
    labels = km.predict(emb)
    return np.array([f"seg{k}" for k in range(n_clusters)], dtype=object)[labels]
