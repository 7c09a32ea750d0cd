"""Off-policy estimators of a target policy's value, as small dataclasses.

Notation (one row = one logged impression):

- ``y_i`` the outcome, ``a_i`` the logged item, ``k_i`` its position, ``x_i`` the context;
- ``p_i = pi_0(a_i, k_i | x_i)`` the logging propensity;
- ``w_i = pi_e(a_i | x_i, k_i) / p_i`` the position-aware importance weight (Open Bandit
  protocol: the target chooses an item *for the logged position*);
- ``q(x, a, k)`` an outcome model, ``qhat_i = q(x_i, a_i, k_i)`` and
  ``qpi_i = sum_a pi_e(a | x_i, k_i) q(x_i, a, k_i)`` (cross-fitted, see ``outcome.py``);
- ``V = E_x E_{a ~ pi_e}[y]`` the target's value per impression.

Every estimator here is written in one common form,

    V_hat = mean(c) + sum(a) / sum(b),

with per-row terms ``(c_i, a_i, b_i)`` (``b_i = 1`` for the estimators that are plain
means). That single form gives, without per-estimator code:

- the influence function ``psi_i = c_i + (a_i - R b_i) / mean(b)``, ``R = sum(a)/sum(b)``
  (for the self-normalised ones this is the linearised ratio, i.e. the delta method);
- the standard error ``sd(psi) / sqrt(n)`` and a normal interval;
- mergeable sufficient statistics (:class:`Moments`: counts, means and the centred
  co-moment matrix of ``(c, a, b)``) so a file can be streamed in batches and give the
  same estimate and standard error as in memory;
- a vectorised bootstrap from resampling counts: ``V_b = n_b.c / sum(n_b) + n_b.a / n_b.b``.

Why hand-written: the reference implementation (Open Bandit Pipeline) does not install
on Python >= 3.11 and works in memory only; the estimators are a few lines each.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar

import numpy as np

from causalrec.errors import InputError


@dataclass
class OPEArrays:
    """Per-row inputs of the estimators (already validated, one entry per impression).

    ``w`` is the *unclipped* weight; each estimator clips it itself. ``q_logged`` and
    ``q_target`` are ``None`` when no outcome model was fitted.
    """

    y: np.ndarray
    w: np.ndarray
    q_logged: np.ndarray | None = None
    q_target: np.ndarray | None = None
    #: cluster-level weights ``p(e_i | x_i, pi_e) / p(e_i | x_i, pi_0)`` per cluster count K (large
    #: catalogues, :mod:`causalrec.ope.mips`); ``None`` without an item catalogue
    w_emb: dict | None = None
    #: large catalogues with the cell-mean outcome model: ``K -> (q_logged, q_target)`` of the model
    #: shrunk towards the K clusters (OffCEM's cluster-level model plus item residual); ``None`` otherwise
    q_emb: Any = None

    @property
    def n(self) -> int:
        return int(self.y.shape[0])


@dataclass
class Moments:
    """Mergeable sufficient statistics of the per-row terms ``(c, a, b)``.

    ``mean`` holds the three means and ``m2`` the centred co-moment matrix
    ``sum (z_i - mean)(z_i - mean)^T``; batches merge with Chan et al.'s pairwise
    update, which is numerically stable (no ``sum z^2 - n mean^2`` cancellation).
    """

    n: int = 0
    mean: np.ndarray = field(default_factory=lambda: np.zeros(3))
    m2: np.ndarray = field(default_factory=lambda: np.zeros((3, 3)))

    @classmethod
    def of(cls, c: np.ndarray, a: np.ndarray, b: np.ndarray) -> Moments:
        return cls.of_array(np.stack([c, a, b]))

    @classmethod
    def of_array(cls, z: np.ndarray) -> Moments:
        """From a ``(d, n)`` array: one row per component, one column per observation."""
        n = z.shape[1]
        if n == 0:
            return cls()
        mean = z.mean(axis=1)
        zc = z - mean[:, None]
        return cls(n, mean, zc @ zc.T)

    @classmethod
    def of_terms(cls, c: np.ndarray | None, a: np.ndarray, b: np.ndarray | None) -> Moments:
        """Like :meth:`of`, with ``c = None`` for zeros and ``b = None`` for ones (no stacking)."""
        n = a.shape[0]
        if n == 0:
            return cls()
        arrs = [c, a, b]
        mean = np.zeros(3)
        mean[2] = 1.0
        centred = [None, None, None]
        for i, z in enumerate(arrs):
            if z is not None:
                mean[i] = z.mean()
                centred[i] = z - mean[i]
        m2 = np.zeros((3, 3))
        for i in range(3):
            if centred[i] is None:
                continue
            for j in range(i, 3):
                if centred[j] is not None:
                    m2[i, j] = m2[j, i] = vdot(centred[i], centred[j])
        return cls(n, mean, m2)

    def merge(self, other: Moments) -> Moments:
        if other.n == 0:
            return self
        if self.n == 0:
            return other
        n = self.n + other.n
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.n / n)
        m2 = self.m2 + other.m2 + np.outer(delta, delta) * (self.n * other.n / n)
        return type(self)(n, mean, m2)

    def estimate_se(self) -> tuple[float, float]:
        """``(V_hat, se)`` from the moments alone."""
        n = self.n
        mc, ma, mb = self.mean
        if n == 0 or mb == 0:
            return float("nan"), float("nan")
        r = ma / mb
        est = mc + r
        if n < 2:
            return float(est), float("nan")
        u = np.array([1.0, 1.0 / mb, -r / mb])
        ss = float(u @ self.m2 @ u)
        return float(est), float(np.sqrt(max(ss, 0.0) / (n - 1) / n))


@dataclass
class OPEEstimator:
    """Base class: subclasses define ``name`` and ``terms``; the rest is shared."""

    name: ClassVar[str] = "base"
    needs_outcome_model: ClassVar[bool] = False
    #: this instance's name in a result (default: derived from the parameters, see ``label``)
    alias: str | None = field(default=None, kw_only=True)

    @property
    def label(self) -> str:
        """The instance's name: ``alias`` when given, else the estimator's name followed by the
        parameters that differ from their defaults, e.g. ``"ips(clip=10)"`` (``"ips"`` with
        defaults)."""
        if self.alias:
            return str(self.alias)
        diff = [f"{f.name}={_show(getattr(self, f.name))}" for f in fields(self)
                if f.name != "alias" and f.default is not MISSING and getattr(self, f.name) != f.default]
        return f"{self.name}({', '.join(diff)})" if diff else self.name

    # -- what each estimator defines ---------------------------------------
    def terms(self, d: OPEArrays) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
        """Per-row ``(c, a, b)`` with ``V_hat = mean(c) + sum(a) / sum(b)``.

        ``c = None`` stands for zeros and ``b = None`` for ones (no arrays allocated).
        """
        raise NotImplementedError

    def params(self) -> dict:
        """Hyper-parameters, for the JSON config."""
        return {}

    # -- shared machinery ----------------------------------------------------
    def _check(self, d: OPEArrays) -> None:
        if self.needs_outcome_model and (d.q_logged is None or d.q_target is None):
            raise InputError(f"estimator '{self.name}' needs an outcome model",
                             fix="pass outcome_model=None (per item x position means) or a regressor")

    def estimate(self, d: OPEArrays) -> float:
        return summarise(*self.terms_checked(d))[0]

    def influence(self, d: OPEArrays) -> np.ndarray:
        """Per-row influence values ``psi_i``; ``mean(psi) = V_hat`` and ``se = sd(psi)/sqrt(n)``."""
        return summarise(*self.terms_checked(d))[1]

    def terms_checked(self, d: OPEArrays):
        self._check(d)
        return self.terms(d)

    def moments(self, d: OPEArrays) -> Moments:
        return Moments.of_terms(*self.terms_checked(d))

    def bootstrap_statistic(self, d: OPEArrays):
        """``statistic(counts) -> replicates`` for :func:`causalrec.inference.bootstrap_ci`."""
        c, a, b = _dense(*self.terms_checked(d))

        def stat(counts: np.ndarray) -> np.ndarray:
            tot = counts.sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                return counts @ c / tot + (counts @ a) / (counts @ b)

        return stat


def summarise(c: np.ndarray | None, a: np.ndarray, b: np.ndarray | None) -> tuple[float, np.ndarray]:
    """``(V_hat, psi)`` from the terms: ``psi = c + (a - R b) / mean(b) + R``."""
    n = a.shape[0]
    if b is None:  # a plain mean
        psi = a if c is None else c + a
        return (float(psi.mean()) if n else float("nan")), psi
    sb = b.sum()
    if sb == 0:
        return float("nan"), np.full(n, np.nan)
    r = a.sum() / sb
    psi = b * -r  # psi = (a - r b) n / sum(b) + r, with one temporary
    psi += a
    psi *= n / sb
    psi += r
    if c is not None:
        psi += c
    est = r + (float(c.mean()) if c is not None else 0.0)
    return float(est), psi


def influence_se_fast(psi: np.ndarray) -> float:
    """``sd(psi) / sqrt(n)`` (ddof 1) in one pass, falling back to two passes when
    ``sum psi^2`` and ``n mean^2`` nearly cancel. Equals :func:`causalrec.inference.influence_se`."""
    n = psi.shape[0]
    if n < 2:
        return float("nan")
    m = float(psi.mean())
    sq = vdot(psi, psi)
    ss = sq - n * m * m
    if not np.isfinite(ss) or ss <= 1e-6 * sq:
        d = psi - m
        ss = vdot(d, d)
    return float(np.sqrt(max(ss, 0.0) / (n - 1) / n))


def _dense(c, a, b):
    n = a.shape[0]
    return (np.zeros(n) if c is None else c), a, (np.ones(n) if b is None else b)


def vdot(x: np.ndarray, y: np.ndarray) -> float:
    """``sum x*y`` without BLAS: OpenBLAS's threaded ``ddot`` slows down several-fold on a
    busy machine, and a vector dot gains nothing from threads."""
    return float(np.einsum("i,i->", x, y))


def _clipped(w: np.ndarray, clip: float | None) -> np.ndarray:
    return w if clip is None else np.minimum(w, clip)


@dataclass
class DM(OPEEstimator):
    """Direct method: plug the outcome model into the target policy.

    ``V_DM = (1/n) sum_i sum_a pi_e(a | x_i, k_i) q(x_i, a, k_i)``.

    Unbiased only if ``q`` is correct; its interval reflects sampling of the
    contexts, not the outcome model's error (no correction term), so it is
    usually too narrow. Beygelzimer & Langford (2009); Dudik et al. (2011).
    """

    name: ClassVar[str] = "dm"
    needs_outcome_model: ClassVar[bool] = True

    def terms(self, d):
        return None, d.q_target, None


@dataclass
class IPS(OPEEstimator):
    """Inverse propensity scoring (Horvitz & Thompson 1952; Precup et al. 2000).

    ``V_IPS = (1/n) sum_i min(w_i, clip) y_i``, ``w_i = pi_e(a_i | x_i, k_i) / p_i``.

    Unbiased when the logged propensities are correct and the target only puts mass
    where the logging policy does (positivity); clipping trades a downward bias (for
    non-negative outcomes) for variance. Influence ``psi_i = min(w_i, clip) y_i``.
    """

    name: ClassVar[str] = "ips"
    clip: float | None = None

    def terms(self, d):
        return None, _clipped(d.w, self.clip) * d.y, None

    def params(self):
        return {"clip": self.clip}


@dataclass
class SNIPS(OPEEstimator):
    """Self-normalised IPS (Swaminathan & Joachims 2015).

    ``V_SNIPS = sum_i w_i y_i / sum_i w_i`` (weights clipped at ``clip`` if set).

    Consistent, invariant to rescaling all weights, bounded by the outcome range;
    influence (delta method) ``psi_i = w_i (y_i - V) / mean(w)``.
    """

    name: ClassVar[str] = "snips"
    clip: float | None = None

    def terms(self, d):
        w = _clipped(d.w, self.clip)
        return None, w * d.y, w

    def params(self):
        return {"clip": self.clip}


@dataclass
class DR(OPEEstimator):
    """Doubly robust (Dudik, Langford & Li 2011; Jiang & Li 2016).

    ``V_DR = (1/n) sum_i [ qpi_i + w_i (y_i - qhat_i) ]`` (``w`` clipped at ``clip`` if set).

    Unbiased if either the propensities or the outcome model are correct; with a
    cross-fitted ``q`` the influence is ``psi_i = qpi_i + w_i (y_i - qhat_i)``.
    """

    name: ClassVar[str] = "dr"
    needs_outcome_model: ClassVar[bool] = True
    clip: float | None = None

    def terms(self, d):
        w = _clipped(d.w, self.clip)
        return d.q_target, w * (d.y - d.q_logged), None

    def params(self):
        return {"clip": self.clip}


@dataclass
class SNDR(OPEEstimator):
    """Self-normalised doubly robust (Kallus & Uehara 2019).

    ``V_SNDR = (1/n) sum_i qpi_i + sum_i w_i (y_i - qhat_i) / sum_i w_i``.

    Influence (delta method on the ratio) ``psi_i = qpi_i + w_i (r_i - R) / mean(w)``
    with ``r_i = y_i - qhat_i`` and ``R`` the weighted mean residual.
    """

    name: ClassVar[str] = "sndr"
    needs_outcome_model: ClassVar[bool] = True
    clip: float | None = None

    def terms(self, d):
        w = _clipped(d.w, self.clip)
        return d.q_target, w * (d.y - d.q_logged), w

    def params(self):
        return {"clip": self.clip}


@dataclass
class SwitchDR(OPEEstimator):
    """Switch doubly robust (Wang, Agarwal & Dudik 2017), in the Open Bandit form.

    ``V_Switch = (1/n) sum_i [ qpi_i + w_i (y_i - qhat_i) 1{w_i <= tau} ]``:
    rows whose weight exceeds ``tau`` contribute only the model term (DM), the others
    the DR correction. ``tau = inf`` is DR; ``tau = 0`` is DM. ``tau`` defaults to 100,
    a convention, not a tuned value: set it from the weight quantiles in the diagnostics.
    """

    name: ClassVar[str] = "switch_dr"
    needs_outcome_model: ClassVar[bool] = True
    tau: float = 100.0
    clip: float | None = None

    def terms(self, d):
        w = _clipped(d.w, self.clip)
        w = np.where(d.w <= self.tau, w, 0.0)
        return d.q_target, w * (d.y - d.q_logged), None

    def params(self):
        return {"tau": self.tau, "clip": self.clip}


@dataclass
class DRos(OPEEstimator):
    """Doubly robust with optimistic shrinkage (Su, Dimakopoulou, Krishnamurthy & Dudik 2020).

    ``V_DRos = (1/n) sum_i [ qpi_i + w~_i (y_i - qhat_i) ]``,
    ``w~_i = lambda w_i / (w_i^2 + lambda)``.

    Shrinks large weights towards zero (``lambda -> inf`` is DR, ``lambda = 0`` is DM).
    ``lambda`` defaults to 100, a convention rather than the paper's tuned value.
    """

    name: ClassVar[str] = "dros"
    needs_outcome_model: ClassVar[bool] = True
    lam: float = 100.0
    clip: float | None = None

    def terms(self, d):
        w = _clipped(d.w, self.clip)
        ws = self.lam * w / (w * w + self.lam) if self.lam > 0 else np.zeros_like(w)
        return d.q_target, ws * (d.y - d.q_logged), None

    def params(self):
        return {"lambda": self.lam, "clip": self.clip}


ESTIMATORS: dict[str, type[OPEEstimator]] = {
    cls.name: cls for cls in (DM, IPS, SNIPS, DR, SNDR, SwitchDR, DRos)
}


def _show(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def run_names(ests) -> list[str]:
    """Names of the estimators of one run, distinct: the plain name (``"ips"``) where it is
    unique in the run, the instance's ``label`` (``"ips(clip=10)"``, or its ``alias``) where
    two estimators share a name. Two identical estimators are an error."""
    base = [e.alias or e.name for e in ests]
    names = [b if base.count(b) == 1 else e.label for b, e in zip(base, ests, strict=True)]
    dup = sorted({x for x in names if names.count(x) > 1})
    if dup:
        raise InputError(f"estimator {dup[0]!r} is requested twice with the same parameters", column="estimators",
                         fix="drop the repeat, or give the instances different parameters or alias='...'")
    return names


def make_estimators(
    names,
    *,
    clip: float | None = None,
    switch_tau: float = 100.0,
    dros_lambda: float = 100.0,
) -> list[OPEEstimator]:
    """Estimator instances from names (or pass instances through unchanged)."""
    if clip is not None and not clip > 0:
        raise InputError(f"clip must be > 0, got {clip}", column="clip", fix="pass a positive weight cap, e.g. --clip 50")
    out: list[OPEEstimator] = []
    for n in names:
        if isinstance(n, OPEEstimator):
            out.append(n)
            continue
        key = str(n).strip().lower().replace("-", "_")
        if key not in ESTIMATORS:
            raise InputError(
                f"unknown estimator '{n}'", column="estimators",
                fix=f"choose from {', '.join(ESTIMATORS)}",
            )
        cls = ESTIMATORS[key]
        kw: dict = {}
        if key != "dm":
            kw["clip"] = clip
        if key == "switch_dr":
            kw["tau"] = switch_tau
        if key == "dros":
            kw["lam"] = dros_lambda
        out.append(cls(**kw))
    if not out:
        raise InputError("no estimators requested", column="estimators", fix=f"choose from {', '.join(ESTIMATORS)}")
    return out
