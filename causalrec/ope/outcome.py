"""Outcome models ``q(x, a, k) ~ E[y | x, item a, position k]`` for DM and the DR family.

Three kinds, one interface (``partial_fit`` over batches, ``finalize``, ``predict``):

- :class:`CellMeanOutcome` (the default): the mean outcome of each (item, position)
  cell, shrunk towards the global mean with ``prior_strength`` pseudo-rows, so unseen
  cells fall back to the global mean. It is fitted from sums and counts, so it works
  on streamed files (one pass to fit, one to estimate).
- :class:`SklearnOutcome`: any scikit-learn regressor (or classifier, whose
  ``predict_proba[:, 1]`` is used for 0/1 outcomes) on ``[covariates, one-hot item,
  one-hot position]``. In memory only.
- :class:`FixedOutcome`: a known function ``q(frame) -> array`` (no fitting), e.g.
  the true reward model of a simulation.

Cross-fitting: a row's prediction comes from a model fitted without the row's fold,
so the DR correction ``w (y - q)`` carries no own-observation bias (Chernozhukov et al.
2018). Folds come from :mod:`causalrec.models.folds` (a seeded hash of the global row
number, or of the cluster key), so they are the same whether the file is read in memory
or in any batch size. A scikit-learn outcome model is cross-fitted by the engine
(:func:`causalrec.models.crossfit.cross_fit`, fold models only); its fold models then
predict *counterfactual* (item, position) pairs of the held-out rows. For cell means,
leaving a fold out is a subtraction of that fold's sums (a streaming form of the same
cross-fitting, hand-written because it needs only sums and counts).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import pandas as pd

from causalrec.errors import InputError
from causalrec.models.folds import row_hash_folds as fold_ids  # noqa: F401  (the one fold spec)


class CellMeanOutcome:
    """Cross-fitted, shrunk mean outcome per (item, position) cell.

    ``q_f(a, k) = (S_{-f}(a, k) + m * g_{-f}) / (N_{-f}(a, k) + m)`` where ``S``/``N``
    are the outcome sum and count of the cell outside fold ``f``, ``g_{-f}`` the global
    mean outside fold ``f`` and ``m = prior_strength``. Assumes the outcome depends on
    the context only through the item and position (otherwise DM is biased; DR stays
    consistent through the weights).
    """

    supports_streaming = True
    name = "cell_mean"

    def __init__(self, prior_strength: float = 1.0, n_folds: int = 5):
        self.prior_strength = prior_strength
        self.n_folds = n_folds

    def describe(self) -> dict:
        return {"outcome_model": self.name, "prior_strength": self.prior_strength, "n_folds": self.n_folds}

    def begin(self, vocab, schema) -> None:
        self.vocab = vocab
        self._s = np.zeros((max(self.n_folds, 1), 0, 0))
        self._n = np.zeros((max(self.n_folds, 1), 0, 0))
        self._ss = 0.0  # sum of squared outcomes: the within-cell variance of :meth:`clustered`

    def _grow(self, n_items: int, n_pos: int) -> None:
        k, a, p = self._s.shape
        if n_items > a or n_pos > p:
            s = np.zeros((k, max(a, n_items), max(p, n_pos)))
            n = np.zeros_like(s)
            s[:, :a, :p] = self._s
            n[:, :a, :p] = self._n
            self._s, self._n = s, n

    def partial_fit(self, batch, items, pos, y, folds) -> None:
        n_items = max(len(self.vocab), int(items.max()) + 1 if items.size else 0)
        n_pos = int(pos.max()) + 1 if pos.size else 1
        self._grow(n_items, n_pos)
        k, a, p = self._s.shape
        flat = folds * a
        flat += items
        flat *= p
        flat += pos
        self._s += np.bincount(flat, weights=y, minlength=k * a * p).reshape(k, a, p)
        self._n += np.bincount(flat, minlength=k * a * p).reshape(k, a, p)
        self._ss += _sum_squares(y)

    def partial_fit_lists(self, items, lists, y, folds_list) -> None:
        """:meth:`partial_fit` for the rows of a block of ranked lists (rows sorted by list and slot,
        ``lists`` a :class:`causalrec.ope.lists.Lists`) with one fold per list. With lists of one
        length the cell index ``(f a + i) p + k`` is built from the per-list fold and the slot
        pattern broadcast over the ``(lists, L)`` view, without per-row fold and slot arrays: the
        same integers, so the same sums (bit for bit)."""
        ell = lists.single_length
        n_items = max(len(self.vocab), int(items.max()) + 1 if items.size else 0)
        if ell is None or not items.size:
            self.partial_fit(None, items, lists.slot, y, np.repeat(np.asarray(folds_list, dtype=np.int64),
                                                                   lists.lengths))
            return
        self._grow(n_items, ell)
        k, a, p = self._s.shape
        flat = np.multiply(items, p, dtype=np.int64)
        grid = flat.reshape(lists.n_lists, ell)
        grid += (np.asarray(folds_list, dtype=np.int64) * (a * p))[:, None]
        grid += np.arange(ell, dtype=np.int64)[None, :]
        self._s += np.bincount(flat, weights=y, minlength=k * a * p).reshape(k, a, p)
        self._n += np.bincount(flat, minlength=k * a * p).reshape(k, a, p)
        self._ss += _sum_squares(y)

    def merge_sums(self, s: np.ndarray, n: np.ndarray, ss: float = 0.0) -> None:
        """Add outcome sums, counts per (fold, item, position) and the sum of squared outcomes
        accumulated elsewhere (a Spark partition's ``partial_fit``): fitting is additive, so
        partitions fit like batches."""
        self._grow(s.shape[1], s.shape[2])
        _, a, p = s.shape
        self._s[:, :a, :p] += s
        self._n[:, :a, :p] += n
        self._ss += float(ss)

    def finalize(self) -> None:
        s_tot, n_tot = self._s.sum(0), self._n.sum(0)
        n_all = n_tot.sum()
        g_all = s_tot.sum() / n_all if n_all else 0.0
        if self.n_folds <= 1:
            s_oof, n_oof = s_tot[None], n_tot[None]
        else:
            s_oof, n_oof = s_tot[None] - self._s, n_tot[None] - self._n
        n_f = n_oof.sum(axis=(1, 2))
        g = np.where(n_f > 0, s_oof.sum(axis=(1, 2)) / np.maximum(n_f, 1), g_all)
        m = self.prior_strength
        with np.errstate(invalid="ignore", divide="ignore"):
            q = (s_oof + m * g[:, None, None]) / (n_oof + m)
        self.q_ = np.where(n_oof + m > 0, q, g[:, None, None])
        self.global_ = g  # per fold, used for cells outside the fitted grid
        self.cell_counts_ = n_tot
        self._oof = (s_oof, n_oof)  # kept for :meth:`clustered`

    def clustered(self, item_cluster: np.ndarray) -> CellMeanOutcome:
        """This model with each (item, position) cell shrunk towards its *cluster's* mean instead
        of the global one: the cluster-level model plus an item-level residual of OffCEM
        (Saito, Ren & Joachims 2023, who fit ``q(x, a) = g(x, e(a)) + h(x, a)``).

        ``item_cluster[a]`` is the cluster of item code ``a``. Per fold ``f`` (out-of-fold sums, so
        cross-fitting is kept) and position ``k``, with ``S``/``N`` the outcome sums/counts:

            c_f(e, k) = (S_f(e, k) + m_c g_f) / (N_f(e, k) + m_c)            (cluster level)
            q_f(a, k) = (S_f(a, k) + m_a c_f(e(a), k)) / (N_f(a, k) + m_a)   (item residual)

        an item never logged gets its cluster's mean (not the global mean, which biases OffCEM
        towards the log's average when the target prefers other clusters). The pseudo-counts are
        empirical Bayes, ``m = sigma^2 / tau^2``: ``sigma^2`` the pooled within-cell variance and
        ``tau^2`` the method-of-moments variance of the true cell means around their cluster's
        (``m_a``) or of the cluster means around the global one (``m_c``),
        ``tau^2 = (sum_j N_j d_j^2 - J sigma^2) / sum_j N_j`` over the ``J`` non-empty cells with
        deviations ``d_j`` (``m = inf``, i.e. no item residual, when ``tau^2 <= 0``). Why empirical
        Bayes: with a few rows per item a fixed pseudo-count of 1 makes the residual mostly noise
        (the item means of a 2,000-item, 5,000-row log), while the hyper-parameters here are two
        numbers estimated on the whole log. Assumes, like the cell means, that the outcome depends
        on the context only through the item and position.
        """
        import scipy.sparse as sp

        s_oof, n_oof = self._oof
        k, a, p = s_oof.shape
        lab = np.asarray(item_cluster, dtype=np.int64)
        if lab.shape[0] < a:  # items outside the catalogue's map get one cluster of their own
            lab = np.r_[lab, np.full(a - lab.shape[0], int(lab.max(initial=-1)) + 1)]
        lab = lab[:a]
        n_c = int(lab.max(initial=-1)) + 1
        onehot = sp.csr_matrix((np.ones(a), (lab, np.arange(a))), shape=(n_c, a))
        s_tot, n_tot = self._s.sum(0), self._n.sum(0)
        sc_tot, nc_tot = onehot @ s_tot, onehot @ n_tot  # (clusters, positions)
        sigma2 = _within_variance(s_tot, n_tot, self._ss)
        n_all = n_tot.sum()
        g_all = s_tot.sum() / n_all if n_all else 0.0
        m_c = _eb_prior(sc_tot, nc_tot, np.full_like(sc_tot, g_all), sigma2)
        m_a = _eb_prior(s_tot, n_tot, _shrunk(sc_tot, nc_tot, g_all, m_c)[lab], sigma2)
        out = copy.copy(self)
        q = np.empty_like(s_oof)
        for f in range(k):
            cm = _shrunk(onehot @ s_oof[f], onehot @ n_oof[f], self.global_[f], m_c)[lab]  # (items, positions)
            q[f] = _shrunk(s_oof[f], n_oof[f], cm, m_a)
        out.q_ = q
        out.name = "cell_mean (cluster + item residual)"
        out.eb_ = {"sigma2": sigma2, "prior_cluster": m_c, "prior_item": m_a}
        return out

    def predict(self, batch, rows, items, pos, folds) -> np.ndarray:
        k, a, p = self.q_.shape
        if items.size and items.max() < a and pos.max() < p:  # the usual case: one flat gather
            idx = folds * a
            idx += items
            idx *= p
            idx += pos
            return np.take(self.q_.reshape(-1), idx)
        inside = (items < a) & (pos < p)
        out = self.global_[folds].astype(float)
        out[inside] = self.q_[folds[inside], items[inside], pos[inside]]
        return out

    def target_value(self, matrix: np.ndarray, pos: np.ndarray, folds: np.ndarray) -> np.ndarray:
        """``sum_a pi(a | k) q_f(a, k)`` per row for a context-free target matrix (fast path).

        One ``(folds x positions)`` table, then a gather: no per-pair work.
        """
        k, a, p = self.q_.shape
        n_items, n_tpos = matrix.shape
        q = np.empty((k, n_items, p))
        q[:] = self.global_[:, None, None]
        m = min(a, n_items)
        q[:, :m, :] = self.q_[:, :m, :]
        if n_tpos == 1:  # the same distribution at every position
            v = np.einsum("a,fak->fk", matrix[:, 0], q)
        else:
            kk = min(p, n_tpos)
            v = np.einsum("ak,fak->fk", matrix[:, :kk], q[:, :, :kk])
        width = v.shape[1]
        return np.take(v.reshape(-1), folds * width + (pos if pos.max() < width else np.minimum(pos, width - 1)))


def _shrunk(s: np.ndarray, n: np.ndarray, prior, m: float) -> np.ndarray:
    """``(S + m prior) / (N + m)``; the prior itself where ``m`` is infinite or the cell is empty with ``m = 0``."""
    prior = np.broadcast_to(np.asarray(prior, dtype=np.float64), s.shape)
    if np.isinf(m):
        return prior.copy()
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (s + m * prior) / (n + m)
    return np.where(n + m > 0, out, prior)


def _sum_squares(y: np.ndarray) -> float:
    """``sum y^2`` without BLAS (as :func:`causalrec.ope.estimators.vdot`): OpenBLAS's threaded
    ``ddot`` takes 10-16 ms instead of 0.1 ms for a million rows on a busy two-core machine."""
    return float(np.einsum("i,i->", y, y))


def _within_variance(s: np.ndarray, n: np.ndarray, ss: float) -> float:
    """Pooled within-cell variance ``(sum y^2 - sum_j S_j^2 / N_j) / (n - J)`` over the ``J`` non-empty cells."""
    nz = n > 0
    dof = n.sum() - nz.sum()
    if dof <= 0:
        return float("nan")
    return float(max(ss - np.sum(s[nz] ** 2 / n[nz]), 0.0) / dof)


def _eb_prior(s: np.ndarray, n: np.ndarray, centre: np.ndarray, sigma2: float) -> float:
    """Empirical-Bayes pseudo-count ``sigma^2 / tau^2`` for cell means ``S / N`` shrunk towards ``centre``
    (method of moments: ``E[N (ybar - mu)^2] = N tau^2 + sigma^2``); ``inf`` when ``tau^2 <= 0``."""
    nz = n > 0
    if not nz.any() or not np.isfinite(sigma2):
        return float("inf")
    d = s[nz] / n[nz] - centre[nz]
    tau2 = (np.sum(n[nz] * d ** 2) - nz.sum() * sigma2) / n[nz].sum()
    return float(sigma2 / tau2) if tau2 > 0 else float("inf")


class SklearnOutcome:
    """Any scikit-learn estimator on ``[covariates, one-hot item, one-hot position]``, cross-fitted."""

    supports_streaming = False

    def __init__(self, estimator, n_folds: int = 5, covariates: tuple[str, ...] = ()):
        self.estimator = estimator
        self.n_folds = n_folds
        self.covariates = tuple(covariates)
        self.name = type(estimator).__name__

    def describe(self) -> dict:
        return {"outcome_model": self.name, "n_folds": self.n_folds, "covariates": list(self.covariates),
                "params": {k: repr(v) for k, v in self.estimator.get_params(deep=False).items()}
                if hasattr(self.estimator, "get_params") else {}}

    def begin(self, vocab, schema) -> None:
        self.vocab = vocab
        self.covariates = self.covariates or tuple(schema.covariates)
        self._fitted = False

    def _design(self, batch: pd.DataFrame, rows: np.ndarray, items: np.ndarray, pos: np.ndarray) -> np.ndarray:
        n = rows.shape[0]
        x = np.zeros((n, len(self.covariates) + self.n_items_ + self.n_pos_))
        if self.covariates:
            x[:, : len(self.covariates)] = batch[list(self.covariates)].to_numpy(dtype=np.float64)[rows]
        base = len(self.covariates)
        ok = items < self.n_items_
        x[np.flatnonzero(ok), base + items[ok]] = 1.0
        okp = pos < self.n_pos_
        x[np.flatnonzero(okp), base + self.n_items_ + pos[okp]] = 1.0
        return x

    def partial_fit(self, batch, items, pos, y, folds) -> None:
        if self._fitted:
            raise InputError("a scikit-learn outcome model needs the whole log in memory",
                             column="outcome_model", fix="drop batch_size, or use the default cell-mean model")
        for c in self.covariates:
            if c not in batch.columns:
                raise InputError(f"covariate '{c}' is not in the log", column=c, fix="check --covariates")
            if not pd.api.types.is_numeric_dtype(batch[c]):
                raise InputError(f"covariate '{c}' must be numeric for the outcome model", column=c,
                                 fix="one-hot encode it first, or leave it out")
        self.n_items_ = max(len(self.vocab), int(items.max()) + 1)
        self.n_pos_ = int(pos.max()) + 1
        rows = np.arange(len(batch))
        x = self._design(batch, rows, items, pos)
        self._proba = hasattr(self.estimator, "predict_proba")
        if self._proba and not np.isin(y, (0.0, 1.0)).all():
            raise InputError("a classifier outcome model needs a 0/1 outcome", column="outcome",
                             fix="use a regressor (e.g. sklearn.linear_model.Ridge) for non-binary outcomes")
        from causalrec.models.crossfit import cross_fit

        k = max(self.n_folds, 1)
        cf = cross_fit(_OutcomeSpec(self.estimator, self._proba), {"X": x, "y": y},
                       folds if k > 1 else np.zeros(len(y), dtype=np.int64), predict=False)
        self.models_ = [fitted["model"] for fitted in cf.models]
        self._fitted = True

    def finalize(self) -> None:
        pass

    def predict(self, batch, rows, items, pos, folds) -> np.ndarray:
        out = np.empty(rows.shape[0])
        for f, m in enumerate(self.models_):
            sel = np.flatnonzero(folds == f)
            if sel.size == 0:
                continue
            for lo in range(0, sel.size, 200_000):  # bound the design matrix's memory
                s = sel[lo:lo + 200_000]
                x = self._design(batch, rows[s], items[s], pos[s])
                out[s] = m.predict_proba(x)[:, 1] if self._proba and not isinstance(m, _Constant) else m.predict(x)
        return out


class _OutcomeSpec:
    """The engine's spec for an outcome model on the design matrix: one fold model per fold
    (a classifier whose training fold holds a single outcome value predicts that value)."""

    names = ("q",)

    def __init__(self, estimator, proba: bool):
        self.estimator, self.proba = estimator, proba

    def fit(self, data, train):
        from sklearn.base import clone

        y = data["y"][train]
        if self.proba and np.unique(y).size < 2:
            return {"model": _Constant(float(y.mean()))}
        return {"model": clone(self.estimator).fit(data["X"][train], y)}

    def predict(self, fitted, data, rows):
        raise NotImplementedError("OPE predicts counterfactual actions through SklearnOutcome.predict")


class _Constant:
    """A fold whose training outcomes are all equal predicts that value."""

    def __init__(self, value: float):
        self.value = value

    def fit(self, x, y):
        return self

    def predict(self, x):
        return np.full(x.shape[0], self.value)


class FixedOutcome:
    """A known outcome function ``q(frame) -> array`` (no fitting, no folds).

    ``frame`` holds the context columns of the rows with ``item_id`` and ``position``
    (0-based) set to the candidate action.
    """

    supports_streaming = True

    def __init__(self, fn: Callable[[pd.DataFrame], np.ndarray]):
        self.fn = fn
        self.name = getattr(fn, "__name__", "fixed")

    def describe(self) -> dict:
        return {"outcome_model": f"fixed:{self.name}"}

    def begin(self, vocab, schema) -> None:
        self.vocab = vocab

    def partial_fit(self, *args) -> None:
        pass

    def finalize(self) -> None:
        pass

    def predict(self, batch, rows, items, pos, folds) -> np.ndarray:
        frame = batch.iloc[rows].reset_index(drop=True)
        frame = frame.assign(item_id=self.vocab.decode(items), position=pos)
        out = np.asarray(self.fn(frame), dtype=np.float64).reshape(-1)
        if out.shape[0] != rows.shape[0] or not np.isfinite(out).all():
            raise InputError("the outcome function must return one finite value per row",
                             column="outcome_model", fix="check the function passed as outcome_model")
        return out


def make_outcome_model(spec, *, n_folds: int = 5, covariates: tuple[str, ...] = ()):
    """``None``/``"cell_mean"`` -> cell means; an sklearn estimator -> cross-fitted; a function -> fixed."""
    if spec is None or (isinstance(spec, str) and spec in ("cell_mean", "cell", "default")):
        return CellMeanOutcome(n_folds=n_folds)
    if isinstance(spec, (CellMeanOutcome, SklearnOutcome, FixedOutcome)):
        return copy.copy(spec)  # fitted state goes on the copy, not on the caller's object
    if hasattr(spec, "fit") and (hasattr(spec, "predict") or hasattr(spec, "predict_proba")):
        return SklearnOutcome(spec, n_folds=n_folds, covariates=covariates)
    if callable(spec):
        return FixedOutcome(spec)
    raise InputError(f"cannot use {spec!r} as an outcome model", column="outcome_model",
                     fix="pass None (cell means), a scikit-learn regressor, or a function q(frame)")
