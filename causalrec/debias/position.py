"""Position bias: how likely a user is to examine each slot of a list.

The examination hypothesis (Richardson et al. 2007; Joachims et al. 2017)
factorises a click at position ``k`` into examination and relevance::

    P(C = 1 | x, a, k) = theta_k * gamma(x, a),   E ~ Bernoulli(theta_k), R ~ Bernoulli(gamma)

Only ratios ``rho_k = theta_k / theta_0`` are identified from clicks (scaling
``theta`` up and ``gamma`` down leaves every click probability unchanged), so
both estimators below report examination *relative to the first slot*.

Two estimators, for the two situations a team is in:

* :func:`examination_from_randomized` -- randomised traffic (a uniform-random
  slice, the Open Bandit Dataset's random logs, or swap interventions): items
  are assigned to positions independently of their relevance, so
  ``E[C | k] = theta_k E[gamma]`` and ``rho_k = CTR_k / CTR_0``. Intervals by
  the delta method on ``log rho_k``
  (``Var = Var(C|k) / (n_k CTR_k^2) + Var(C|0) / (n_0 CTR_0^2)``) or a
  bootstrap stratified by position. Assumption: the randomisation really is
  independent of relevance.
* :func:`regression_em` -- no randomisation: regression-EM (Wang et al., WSDM
  2018, "Position bias estimation for unbiased learning to rank in personal
  search"). The E-step computes, for non-clicks,
  ``P(E=1, R=0 | C=0) = theta (1 - gamma) / (1 - theta gamma)`` and
  ``P(E=0, R=1 | C=0) = (1 - theta) gamma / (1 - theta gamma)``; the M-step sets
  ``theta_k`` to the mean posterior examination at ``k`` and refits ``gamma``
  to the posterior relevance, either per relevance group (item, or query-item:
  the closed-form EM of Chapelle & Zhang) or by a logistic regression on
  features (the "regression" in regression-EM). Identification needs the same
  relevance group to appear at several positions (ranker changes, time
  variation); intervals by a row bootstrap (re-running EM on multinomial
  resampling weights).

* :func:`harvest_interventions` -- several rankers (or one ranker whose
  order varies for reasons unrelated to relevance) logged the same
  (context, item) pair at different slots: intervention harvesting (Agarwal
  et al., WSDM 2019). Only pairs seen at two or more slots are used (their
  "interventional sets"), with a Poisson fixed-effects fit of
  ``E[clicks_{pair, k}] = n_{pair, k} theta_k gamma_pair``: alternating
  closed-form updates, each pair's relevance a free parameter, so the
  relevance of a pair never leaks into the slot it got. Assumption: which
  slot a pair gets is independent of its click noise given the pair (the
  rankers differ for reasons other than this user's relevance of this item).

Which assumption holds where. Regression-EM per item (``groups=item ids``)
assumes an item's relevance does not depend on the slot it is shown at; a
personalised ranking breaks that (the item is higher for the users who like
it more), biasing the curve downwards. Regression-EM with a relevance model on
the ranker's features (``features=`` e.g. text embeddings and their product)
needs those features to explain the relevance the ranking used. Harvesting
needs the same (context, item) pair at several slots.
:func:`identification_check` measures the share of rows in such pairs.

Both are written by hand: they are a few vectorised ``bincount`` lines and no
maintained Python library implements them for logged data (``allRank`` and
``ULTRA`` target TensorFlow / learning-to-rank benchmarks, not click logs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from causalrec.data.validation import zero_based_positions
from causalrec.errors import InputError
from causalrec.inference import z_value
from causalrec.results import Estimate, jsonable


@dataclass
class PositionBias:
    """Examination probabilities per position, relative to the first slot.

    ``examination[k] = theta_k / theta_0`` (so ``examination[0] == 1``) with
    standard errors and an interval per position; ``n[k]`` rows and
    ``ctr[k]`` observed click rate at each position. ``method`` is
    ``"randomized"`` or ``"regression_em"``.
    """

    examination: np.ndarray
    se: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    n: np.ndarray
    ctr: np.ndarray
    method: str
    ci_level: float = 0.95
    extra: dict[str, Any] = field(default_factory=dict)
    relevance: np.ndarray | None = field(default=None, repr=False)  # regression-EM: fitted gamma per row

    @property
    def n_positions(self) -> int:
        return int(self.examination.shape[0])

    def at(self, positions: np.ndarray) -> np.ndarray:
        """Relative examination of each row's (0-based) position."""
        pos = np.asarray(positions, dtype=np.int64)
        if pos.size and (pos.min() < 0 or pos.max() >= self.n_positions):
            raise InputError(
                f"position {int(pos.max())} has no examination estimate (estimated for 0..{self.n_positions - 1})",
                column="position", fix="estimate position bias on logs covering the same positions",
            )
        return self.examination[pos]

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({
            "position": np.arange(self.n_positions), "examination": self.examination, "se": self.se,
            "ci_low": self.ci_low, "ci_high": self.ci_high, "n": self.n, "ctr": self.ctr,
        })

    def estimates(self) -> list[Estimate]:
        return [
            Estimate(self.method, "examination", float(self.examination[k]), float(self.se[k]),
                     float(self.ci_low[k]), float(self.ci_high[k]), self.ci_level, extra={"position": k})
            for k in range(self.n_positions)
        ]

    def to_dict(self) -> dict[str, Any]:
        return jsonable({"method": self.method, "ci_level": self.ci_level,
                         "positions": self.to_frame().to_dict(orient="records"), **self.extra})

    def summary(self) -> str:
        lines = [f"examination relative to position 0 ({self.method}, {self.ci_level:.0%} CI)"]
        for k in range(self.n_positions):
            lines.append(f"  position {k}: {self.examination[k]:.3f} [{self.ci_low[k]:.3f}, {self.ci_high[k]:.3f}]"
                         f"  n={int(self.n[k]):,} ctr={self.ctr[k]:.4f}")
        if "trusted" in self.extra:
            lines.append("  verdict: trusted" if self.extra["trusted"] else
                         "  verdict: NOT trusted -- " + "; ".join(self.extra.get("issues", [])))
        return "\n".join(lines)


def _check_positions(clicks: np.ndarray, positions: np.ndarray, n_positions: int | None) -> tuple[np.ndarray, np.ndarray, int]:
    c = np.asarray(clicks, dtype=np.float64)
    pos = np.asarray(positions)
    if c.shape != pos.shape or c.ndim != 1:
        raise InputError("clicks and positions must be 1-d and of equal length", column="position",
                         fix="pass one click and one position per row")
    if not np.all(np.isfinite(c)):
        raise InputError("clicks have missing values", column="outcome", fix="drop or fill those rows")
    if pos.size == 0:
        raise InputError("no rows to estimate position bias from", column="position", fix="pass a non-empty log")
    # canonical 0-based slots here; the one position-base check names --position-base 1 for 1-based ones
    pos = zero_based_positions(pos, 0, "position")
    if pos.min() >= 1:
        # the reference slot 0 must be present: every ratio is relative to it
        raise InputError(f"no rows at position 0 (the positions start at {int(pos.min())}): examination is "
                         "estimated relative to the top slot", column="position",
                         fix="include rows of the top slot, or pass --position-base 1 if your slots count from 1")
    k = int(pos.max()) + 1 if n_positions is None else int(n_positions)
    if pos.max() >= k:
        raise InputError(f"position {int(pos.max())} is outside 0..{k - 1}", column="position",
                         fix="check n_positions / --n-positions")
    return c, pos, k


def examination_from_randomized(
    clicks: np.ndarray,
    positions: np.ndarray,
    *,
    n_positions: int | None = None,
    ci_level: float = 0.95,
    bootstrap: int = 0,
    seed: int = 0,
) -> PositionBias:
    """``rho_k = CTR_k / CTR_0`` on randomised traffic, with delta-method or bootstrap CIs.

    Assumes items reach positions independently of their relevance (uniform
    random slice, randomised swaps). With ``bootstrap > 0`` the interval is
    the percentile interval of a bootstrap stratified by position (binomial
    draws when clicks are 0/1) and ``se`` the bootstrap standard deviation.
    """
    c, pos, k = _check_positions(clicks, positions, n_positions)
    n = np.bincount(pos, minlength=k).astype(np.float64)
    if np.any(n == 0):
        raise InputError(f"no rows at position(s) {np.flatnonzero(n == 0).tolist()}", column="position",
                         fix="estimate only positions present in the randomised logs (lower n_positions)")
    s = np.bincount(pos, weights=c, minlength=k)
    ctr = s / n
    if ctr[0] <= 0:
        raise InputError("no clicks at the first position: examination ratios are undefined", column="outcome",
                         fix="use more randomised traffic")
    rho = ctr / ctr[0]
    var_k = np.bincount(pos, weights=c * c, minlength=k) / n - ctr**2
    var_k = var_k * n / np.maximum(n - 1, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        v_log = var_k / (n * ctr**2) + var_k[0] / (n[0] * ctr[0] ** 2)
    v_log[0] = 0.0
    z = z_value(ci_level)
    if bootstrap and bootstrap > 1:
        rng = np.random.default_rng(seed)
        binary = bool(np.all((c == 0) | (c == 1)))
        reps = np.empty((bootstrap, k))
        for j in range(k):
            if binary:
                reps[:, j] = rng.binomial(int(n[j]), ctr[j], size=bootstrap) / n[j]
            else:
                cj = c[pos == j]
                idx = rng.integers(0, cj.shape[0], size=(bootstrap, cj.shape[0]))
                reps[:, j] = cj[idx].mean(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            rr = reps / reps[:, :1]
        a = (1 - ci_level) / 2
        lo, hi = np.nanquantile(rr, [a, 1 - a], axis=0)
        se = np.nanstd(rr, axis=0, ddof=1)
        extra = {"interval": "bootstrap", "n_boot": int(bootstrap)}
    else:
        sd_log = np.sqrt(v_log)
        lo, hi = rho * np.exp(-z * sd_log), rho * np.exp(z * sd_log)
        se = rho * sd_log
        extra = {"interval": "delta_log"}
    se[0], lo[0], hi[0] = 0.0, 1.0, 1.0
    return PositionBias(rho, se, lo, hi, n, ctr, "randomized", ci_level, extra)


def _em(
    c: np.ndarray, pos: np.ndarray, k: int, g: np.ndarray | None, n_groups: int, X: np.ndarray | None,
    w: np.ndarray, max_iter: int, tol: float, theta0: np.ndarray | None, seed: int,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Weighted (regression-)EM; returns theta (absolute), gamma per row, iterations."""
    wk = np.bincount(pos, weights=w, minlength=k)
    ctr_k = np.bincount(pos, weights=w * c, minlength=k) / np.maximum(wk, 1e-12)
    theta = theta0.copy() if theta0 is not None else np.clip(ctr_k / max(ctr_k.max(), 1e-12), 0.05, 1.0)
    base = float(np.sum(w * c) / np.sum(w))
    gamma = np.full(c.shape[0], np.clip(base / theta.mean(), 1e-4, 0.999))
    clf = None
    if X is not None:
        from sklearn.linear_model import LogisticRegression

        # warm start: each M-step starts from the previous fit, so an EM step costs a few solver iterations
        clf = LogisticRegression(C=1e4, max_iter=100, warm_start=True, random_state=seed)  # ~unpenalised: a penalty shrinks gamma and biases theta
    done = 0
    for it in range(1, max_iter + 1):
        done = it
        t = theta[pos]
        denom = np.maximum(1.0 - t * gamma, 1e-12)
        p_e1r0 = t * (1.0 - gamma) / denom
        p_e0r1 = (1.0 - t) * gamma / denom
        post_e = c + (1.0 - c) * p_e1r0
        post_r = c + (1.0 - c) * p_e0r1
        new_theta = np.bincount(pos, weights=w * post_e, minlength=k) / np.maximum(wk, 1e-12)
        new_theta = np.clip(new_theta, 1e-6, 1.0)
        old_gamma = gamma
        if X is None:
            wg = np.bincount(g, weights=w, minlength=n_groups)
            gam_g = np.bincount(g, weights=w * post_r, minlength=n_groups) / np.maximum(wg, 1e-12)
            gamma = np.clip(gam_g[g], 1e-6, 1.0 - 1e-6)
        else:
            # soft labels: each row counted as a positive with weight post_r and a negative with 1 - post_r
            n = X.shape[0]
            XX = np.vstack([X, X])
            yy = np.r_[np.ones(n), np.zeros(n)]
            ww = np.r_[w * post_r, w * (1.0 - post_r)]
            clf.fit(XX, yy, sample_weight=ww)
            gamma = np.clip(clf.predict_proba(X)[:, 1], 1e-6, 1.0 - 1e-6)
        # both blocks must settle: the starting point can be a fixed point of theta alone
        delta = max(float(np.max(np.abs(new_theta - theta))), float(np.max(np.abs(gamma - old_gamma))))
        theta = new_theta
        if delta < tol:
            break
    return theta, gamma, done


def regression_em(
    clicks: np.ndarray,
    positions: np.ndarray,
    *,
    groups: np.ndarray | None = None,
    features: np.ndarray | None = None,
    n_positions: int | None = None,
    max_iter: int = 300,
    tol: float = 1e-7,
    bootstrap: int = 50,
    ci_level: float = 0.95,
    seed: int = 0,
) -> PositionBias:
    """Regression-EM estimate of examination per position from click logs.

    ``groups`` (e.g. item ids, or query-item keys) gives the closed-form
    relevance M-step ``gamma_g = mean posterior relevance in g``;
    ``features`` (a numeric matrix) fits ``gamma(x)`` by logistic regression
    on the posterior relevance instead. One of the two is required.
    Intervals: percentile bootstrap over rows (``bootstrap`` replicates; 0 for
    none, then ``se`` is NaN). Assumes the examination hypothesis and that
    each relevance group is seen at several positions.
    """
    c, pos, k = _check_positions(clicks, positions, n_positions)
    if not np.all((c == 0) | (c == 1)):
        raise InputError("regression-EM needs 0/1 clicks", column="outcome",
                         fix="binarise the outcome (click = outcome > 0) or use randomised traffic")
    if (groups is None) == (features is None):
        raise InputError("pass exactly one of groups= or features= to regression_em", column="groups",
                         fix="groups=item ids for the closed-form EM, or features=X for regression-EM")
    g, n_groups, X = None, 0, None
    if groups is not None:
        _, g = np.unique(np.asarray(groups), return_inverse=True)
        n_groups = int(g.max()) + 1
    else:
        X = np.asarray(features, dtype=np.float64)
        if X.ndim != 2 or X.shape[0] != c.shape[0]:
            raise InputError("features must be a 2-d array with one row per click", column="features",
                             fix="pass X of shape (n_rows, n_features)")
    n = np.bincount(pos, minlength=k).astype(np.float64)
    if np.any(n == 0):
        raise InputError(f"no rows at position(s) {np.flatnonzero(n == 0).tolist()}", column="position",
                         fix="lower n_positions to the positions present in the logs")
    ctr = np.bincount(pos, weights=c, minlength=k) / n
    ones = np.ones_like(c)
    theta, gamma, iters = _em(c, pos, k, g, n_groups, X, ones, max_iter, tol, None, seed)
    rho = theta / theta[0]
    se = np.full(k, np.nan)
    lo, hi = rho.copy(), rho.copy()
    # the EM loop breaks before max_iter only once the change per iteration is below tol
    converged = iters < max_iter
    extra: dict[str, Any] = {"theta_absolute": theta.tolist(), "iterations": iters, "converged": bool(converged),
                             "max_iter": int(max_iter),
                             "relevance_model": "groups" if X is None else "logistic_regression"}
    if g is not None:
        # identification comes from groups seen at several positions
        seen = np.zeros((n_groups, k), dtype=bool)
        seen[g, pos] = True
        extra["share_rows_multi_position"] = float(np.mean(seen.sum(axis=1)[g] >= 2))
    extra["at_upper_bound"] = [int(j) for j in np.flatnonzero(theta[1:] >= 1.0 - 1e-9) + 1]
    if bootstrap and bootstrap > 1:
        rng = np.random.default_rng(seed)
        nrow = c.shape[0]
        reps = np.empty((bootstrap, k))
        from tqdm.auto import tqdm

        for b in tqdm(range(bootstrap), desc="regression-EM bootstrap", disable=bootstrap < 20 or nrow < 200_000):
            wb = rng.multinomial(nrow, np.full(nrow, 1.0 / nrow)).astype(np.float64)
            tb, _, _ = _em(c, pos, k, g, n_groups, X, wb, max_iter, tol * 10, theta, seed)
            reps[b] = tb / tb[0]
        a = (1 - ci_level) / 2
        lo, hi = np.quantile(reps, [a, 1 - a], axis=0)
        se = np.std(reps, axis=0, ddof=1)
        extra.update({"interval": "bootstrap", "n_boot": int(bootstrap)})
    se[0], lo[0], hi[0] = 0.0, 1.0, 1.0
    return PositionBias(rho, se, lo, hi, n, ctr, "regression_em", ci_level, extra, relevance=gamma)


def identification_check(positions: np.ndarray, items: np.ndarray,
                         contexts: np.ndarray | None = None) -> dict[str, float]:
    """Share of rows whose item (and whose (context, item) pair) appears at two or more slots.

    Item-level EM is identified by items seen at several slots, but is right
    only when that variation is unrelated to relevance; what protects against
    a personalised ranking is the same (context, item) pair at several slots
    (``share_rows_pair_multi_position``), which harvesting and pair-level EM use.
    """
    pos = np.asarray(positions, dtype=np.int64)
    out: dict[str, float] = {}
    for name, keys in (("item", (np.asarray(items),)),
                       ("pair", None if contexts is None else (np.asarray(contexts), np.asarray(items)))):
        if keys is None:
            continue
        codes = _key_codes(*keys)
        n_k = int(codes.max()) + 1 if codes.size else 0
        cell = np.unique(codes * (int(pos.max()) + 1) + pos) if codes.size else np.zeros(0, np.int64)
        n_slots = np.bincount(cell // (int(pos.max()) + 1), minlength=n_k) if codes.size else np.zeros(0)
        out[f"share_rows_{name}_multi_position"] = float(np.mean(n_slots[codes] >= 2)) if codes.size else 0.0
    return out


#: largest 95%-interval half-width (on rho_k, any slot) a curve may have and still be trusted
TRUST_HALF_WIDTH = 0.05


def split_half_width(fit, keys: np.ndarray, *, ci_level: float = 0.95, seed: int = 0,
                     n_splits: int = 4) -> np.ndarray:
    """Interval half-width per slot from split-half replicates (for estimators run without bootstrap).

    Each replicate splits the rows in two by a seeded coin per distinct
    ``keys`` value (a request or context: rows that share one stay together)
    and ``fit(mask)`` re-estimates the curve on each half. With ``d_r`` the
    difference of the two halves' curves in replicate ``r``::

        se_full^2 ~ mean_r d_r^2 / 4,   half-width = z_{ci} * se_full

    (each half has twice the full-sample variance, their difference four
    times it). ``n_splits`` replicates cost ``2 n_splits`` fits on half the
    rows; it is a rough measure, meant to flag a curve that is plainly too
    noisy. Returns NaN when a half cannot be fitted (e.g. a slot empty in it).
    """
    _, codes = np.unique(np.asarray(keys), return_inverse=True)
    n_keys = int(codes.max()) + 1 if codes.size else 0
    rng = np.random.default_rng([int(seed), 11])
    d2 = []
    for _ in range(max(1, int(n_splits))):
        half = (rng.random(n_keys) < 0.5)[codes]
        try:
            a, b = np.asarray(fit(half), dtype=np.float64), np.asarray(fit(~half), dtype=np.float64)
        except InputError:
            return np.full(1, np.nan)
        d2.append((a - b) ** 2)
    return z_value(ci_level) * np.sqrt(np.mean(d2, axis=0) / 4.0)


def examination_verdict(pb: PositionBias, *, randomised: bool | None = None, half_width: np.ndarray | None = None,
                        precision_from: str = "interval", max_half_width: float = TRUST_HALF_WIDTH) -> PositionBias:
    """Whether the curve can be trusted, and why not: sets ``pb.extra["trusted"]`` and ``["issues"]``.

    Issues (each an assumption that failed or a check that could not pass):

    * ``not randomised`` -- regression-EM (per group or with a relevance model)
      on logs whose slots follow the items (``randomised`` False, the ANOVA of
      :func:`causalrec.debias.correct`): per-group EM is then biased by a
      personalised ranking, feature EM right only if the features explain the
      ranking's relevance, which clicks cannot verify. For logs declared
      randomised, the same test failing says the declaration is wrong.
    * ``not converged`` -- regression-EM reached ``max_iter`` with the curve
      still moving (a flat likelihood); its bootstrap interval can then
      exclude the estimate.
    * ``weak identification`` -- under half of the rows in relevance groups
      seen at two or more slots, or examination at its upper bound.
    * ``few repeated (context, item) pairs at different slots`` -- EM on a
      non-randomised ranking with under half of the rows in pairs seen at two
      or more slots (the pairs cannot identify the curve either), or
      harvesting on under 10% of the rows.
    * ``imprecise`` -- the largest interval half-width over slots (bootstrap
      or delta-method interval, else :func:`split_half_width`) above
      ``max_half_width`` (0.05), or not measurable.
    """
    e = pb.extra
    issues: list[str] = []
    method = pb.method
    if randomised is False:
        issues.append("not randomised: the slots follow the items (ANOVA p="
                      f"{e.get('ranking_randomised_test_p', float('nan')):.2g}), so "
                      + ("the randomised-slice ratio is biased" if method == "randomized" else
                         "EM's relevance can depend on the slot (a personalised ranking biases the curve)"))
    share = e.get("share_rows_multi_position")
    if method == "regression_em" and ((share is not None and share < 0.5) or e.get("at_upper_bound")):
        issues.append(f"weak identification: {(share if share is not None else float('nan')):.0%} of rows in "
                      "relevance groups seen at two or more slots"
                      + (f", examination at its bound at slots {e['at_upper_bound']}" if e.get("at_upper_bound") else ""))
    if method == "regression_em" and e.get("converged") is False:
        # a flat likelihood (few groups seen at several slots): the curve depends on where EM started, and the
        # warm-started bootstrap replicates can land elsewhere, so the interval may not even hold the estimate
        issues.append(f"not converged: regression-EM stopped at max_iter={e.get('max_iter')} iterations with the "
                      "curve still moving, so it depends on the starting point")
    pair = e.get("share_rows_pair_multi_position")
    if method == "regression_em" and randomised is False and pair is not None and pair < 0.5:
        issues.append(f"few repeated (context, item) pairs at different slots: {pair:.0%} of rows")
    if method == "intervention_harvesting" and e.get("share_rows_used", 1.0) < 0.1:
        issues.append(f"few repeated (context, item) pairs at different slots: harvesting used "
                      f"{e['share_rows_used']:.1%} of rows")
    if half_width is None:
        # an estimator run without intervals has ci_low == ci_high: that is not precision
        half_width = (pb.ci_high - pb.ci_low) / 2.0 if e.get("interval") else np.full(1, np.nan)
    hw = np.asarray(half_width, dtype=np.float64)
    worst = float(np.nanmax(hw)) if hw.size and np.isfinite(hw).any() else float("nan")
    if not np.isfinite(worst):
        issues.append("imprecise: the precision could not be measured (a slot too thin to split in two)")
    elif worst > max_half_width:
        issues.append(f"imprecise: {precision_from} interval half-width up to {worst:.3f} "
                      f"(slot {int(np.nanargmax(hw))}) > {max_half_width}")
    e.update({"trusted": not issues, "issues": issues, "max_half_width": worst, "precision_from": precision_from})
    return pb


def _key_codes(*cols: np.ndarray) -> np.ndarray:
    """One integer code per distinct tuple of the given columns (vectorised)."""
    if len(cols) == 1:
        return np.unique(cols[0], return_inverse=True)[1].astype(np.int64)
    frame = pd.DataFrame({f"k{j}": c for j, c in enumerate(cols)})
    return frame.groupby(list(frame.columns), sort=False, dropna=False).ngroup().to_numpy(np.int64)


def _poisson_fe(c_cell: np.ndarray, n_cell: np.ndarray, key: np.ndarray, pos: np.ndarray, k: int, n_keys: int,
                max_iter: int, tol: float) -> tuple[np.ndarray, int]:
    """Alternating MLE of ``E[c] = n theta_pos gamma_key`` over (key, slot) cells; theta with theta_0 = 1."""
    theta = np.ones(k)
    it = 0
    while it < max_iter:
        it += 1
        gamma = np.bincount(key, weights=c_cell, minlength=n_keys) / np.maximum(
            np.bincount(key, weights=n_cell * theta[pos], minlength=n_keys), 1e-300)
        new = np.bincount(pos, weights=c_cell, minlength=k) / np.maximum(
            np.bincount(pos, weights=n_cell * gamma[key], minlength=k), 1e-300)
        new = new / new[0] if new[0] > 0 else new
        delta = float(np.max(np.abs(new - theta)))
        theta = new
        if delta < tol:
            break
    return theta, it


def harvest_interventions(
    clicks: np.ndarray,
    positions: np.ndarray,
    contexts: np.ndarray,
    items: np.ndarray,
    *,
    n_positions: int | None = None,
    max_iter: int = 500,
    tol: float = 1e-8,
    bootstrap: int = 50,
    ci_level: float = 0.95,
    seed: int = 0,
) -> PositionBias:
    """Examination per slot from (context, item) pairs logged at two or more slots (see module docstring).

    Intervals: percentile bootstrap over pairs (multinomial weights on the
    pairs, so a pair's rows stay together). Raises when a slot has no
    harvested pair (it is then not identified from these logs).
    """
    c, pos, k = _check_positions(clicks, positions, n_positions)
    key = _key_codes(np.asarray(contexts), np.asarray(items))
    if key.shape != c.shape:
        raise InputError("contexts and items must have one value per row", column="user_id",
                         fix="pass aligned columns")
    n_keys = int(key.max()) + 1
    cell = key * k + pos
    ucell, inv = np.unique(cell, return_inverse=True)
    c_cell = np.bincount(inv, weights=c)
    n_cell = np.bincount(inv).astype(np.float64)
    ckey, cpos = ucell // k, ucell % k
    slots_per_key = np.bincount(ckey, minlength=n_keys)
    use = slots_per_key[ckey] >= 2
    n_rows_used = float(n_cell[use].sum())
    covered = np.bincount(cpos[use], weights=n_cell[use], minlength=k)
    clicks_at = np.bincount(cpos[use], weights=c_cell[use], minlength=k)
    if np.any(covered == 0) or clicks_at[0] <= 0:
        bad = np.flatnonzero(covered == 0).tolist() or [0]
        raise InputError(f"no (context, item) pair is logged both at slot(s) {bad} and elsewhere"
                         + ("" if covered[0] else "") + ": intervention harvesting cannot identify them",
                         column="position",
                         fix="use a randomised slice (--examination randomized), or logs of several rankers "
                             "that place the same pairs at different slots")
    _, kk = np.unique(ckey[use], return_inverse=True)
    n_used_keys = int(kk.max()) + 1
    theta, iters = _poisson_fe(c_cell[use], n_cell[use], kk, cpos[use], k, n_used_keys, max_iter, tol)
    se = np.full(k, np.nan)
    lo, hi = theta.copy(), theta.copy()
    extra: dict[str, Any] = {"iterations": iters, "n_pairs_used": n_used_keys,
                             "share_rows_used": n_rows_used / c.shape[0],
                             "rows_used_per_position": covered.tolist(),
                             "relevance_model": "per (context, item) pair (Poisson fixed effects)"}
    if bootstrap and bootstrap > 1:
        rng = np.random.default_rng(seed)
        reps = np.empty((bootstrap, k))
        cu, nu, pu = c_cell[use], n_cell[use], cpos[use]
        for b in range(bootstrap):
            wk = rng.multinomial(n_used_keys, np.full(n_used_keys, 1.0 / n_used_keys)).astype(np.float64)
            reps[b], _ = _poisson_fe(cu * wk[kk], nu * wk[kk], kk, pu, k, n_used_keys, max_iter, tol * 10)
        a = (1 - ci_level) / 2
        lo, hi = np.nanquantile(reps, [a, 1 - a], axis=0)
        se = np.nanstd(reps, axis=0, ddof=1)
        extra.update({"interval": "bootstrap over pairs", "n_boot": int(bootstrap)})
    n = np.bincount(pos, minlength=k).astype(np.float64)
    ctr = np.bincount(pos, weights=c, minlength=k) / np.maximum(n, 1)
    se[0], lo[0], hi[0] = 0.0, 1.0, 1.0
    return PositionBias(theta, se, lo, hi, n, ctr, "intervention_harvesting", ci_level, extra)


def position_bias_from_curve(examination: np.ndarray | list[float], method: str = "given") -> PositionBias:
    """Wrap a known examination curve (e.g. from an earlier study) as a :class:`PositionBias`."""
    e = np.asarray(examination, dtype=np.float64)
    if e.ndim != 1 or e.size == 0 or not np.all(np.isfinite(e)) or np.any(e <= 0):
        raise InputError("an examination curve must be positive numbers, one per position", column="examination",
                         fix="pass e.g. [1.0, 0.6, 0.4]")
    rho = e / e[0]
    k = rho.shape[0]
    z = np.zeros(k)
    return PositionBias(rho, z, rho.copy(), rho.copy(), np.full(k, np.nan), np.full(k, np.nan), method)
