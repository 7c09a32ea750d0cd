"""Off-policy estimators for ranked lists (slates), in the common ``(c, a, b)`` form.

Notation: request ``i`` shows a list ``a_i = (a_{i1}, .., a_{iL})`` with slot rewards
``y_{ik}``; the logging policy's probability of the item at slot ``k`` given the items
above is ``mu(a_{ik} | x_i, a_{i,<k})`` (the log's propensity column) and its marginal
``mu(a_{ik} at k | x_i)`` (``propensity_marginal``); ``pi`` is the target. Per-slot
ratios and the weights built from them (:mod:`causalrec.ope.slate_eval` computes them per
list, vectorised):

- ``rho_{ik} = pi(a_{ik} | x_i, a_{i,<k}) / mu(a_{ik} | x_i, a_{i,<k})``;
- cascade weight ``W_{ik} = prod_{j <= k} rho_{ij}`` (the joint probability ratio of the
  top ``k`` items), and the whole-list weight ``W_{iL}``;
- marginal weight ``omega_{ik} = pi(a_{ik} at k | x_i) / mu(a_{ik} at k | x_i)``.

The value of the target is ``V = E[sum_k y_k] / E[L]`` per impression (the default,
comparable with the item-level estimators) or ``E[sum_k y_k]`` per list
(``value_per="list"``, Open Bandit Pipeline's convention). Every estimator here is
``V_hat = sum(a) / sum(b)`` over rows with per-row ``a`` and ``b = 1`` per impression or
``b = 1 / L_i`` per list (so ``sum(b)`` counts lists); the self-normalised versions
multiply ``b`` by the weight. So the influence function, the cluster-robust standard
error by request (the default), streaming and the bootstrap are those of
:mod:`causalrec.ope.estimators` and :mod:`causalrec.ope.clusters`, unchanged.

Assumptions beyond correct propensities and overlap, per estimator: ``sips`` none on the
reward; ``iips`` each slot's reward depends only on its own item and slot
(item-position model); ``rips`` and ``cascade_dr`` a slot's reward depends only on the
items at and above it (cascade model); ``pi`` the list's reward is a sum of per-slot terms
that depend on the item and slot (additive), with a logging policy that fills slots
independently (see :class:`PI`).

Why hand-written: Open Bandit Pipeline's slate estimators (the reference, matched to 1e-8
in ``tests/ope/test_slate_obp.py``) do not install on Python >= 3.11, work in memory on
dense arrays only and have no influence-function intervals; PseudoInverse lives in
per-paper code.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np

from causalrec.ope.estimators import ESTIMATORS, OPEArrays, OPEEstimator, _clipped


@dataclass
class SlateArrays(OPEArrays):
    """Per-row inputs of the slate estimators (rows sorted by request and slot).

    ``w`` is the cascade weight ``W_k`` (used for the weight diagnostics), ``w_prev``
    ``W_{k-1}`` (1 at the top slot), ``w_list`` the whole-list weight, ``w_marg`` the
    marginal weight and ``w_pi`` the PseudoInverse weight of the row's list (``None`` when
    no estimator needs them); ``norm`` is ``1 / L`` per row for values per list, else
    ``None``. ``w_marg_batches`` / ``w_pi_batches`` hold one version per Monte Carlo batch
    of the target's marginals (``None`` when exact).
    """

    w_prev: np.ndarray | None = None
    w_list: np.ndarray | None = None
    w_marg: np.ndarray | None = None
    w_pi: np.ndarray | None = None
    norm: np.ndarray | None = None
    w_marg_batches: np.ndarray | None = None
    w_pi_batches: np.ndarray | None = None

    def mc_batch(self, b: int) -> SlateArrays:
        """The same arrays with the marginal-based weights of Monte Carlo batch ``b``."""
        return replace(self, w_marg=None if self.w_marg_batches is None else self.w_marg_batches[b],
                       w_pi=None if self.w_pi_batches is None else self.w_pi_batches[b])


@dataclass
class SlateEstimator(OPEEstimator):
    """Base class of the slate estimators: ``V = sum(a) / sum(b)``, ``b = norm`` (x weight if SN)."""

    slate: ClassVar[bool] = True
    needs_marginal: ClassVar[bool] = False
    needs_whole_list: ClassVar[bool] = False  # the weight uses every slot of the list
    self_normalised: ClassVar[bool] = False
    weight: ClassVar[str] = "w"
    clip: float | None = None

    def _w(self, d: SlateArrays) -> np.ndarray:
        return _clipped(getattr(d, self.weight), self.clip)

    def terms(self, d: SlateArrays):
        w = self._w(d)
        a = w * d.y
        if self.self_normalised:
            return None, a, w if d.norm is None else w * d.norm
        return None, a, d.norm

    def params(self):
        return {"clip": self.clip}


@dataclass
class SIPS(SlateEstimator):
    """Standard slate IPS (Li et al. 2018; McInerney et al. 2020, eq. 1).

    ``V_SIPS = sum_i W_{iL} sum_k y_{ik} / n_b``, ``W_{iL} = prod_{k=1..L} rho_{ik}`` = the
    ratio of the whole list's probabilities. Unbiased for any reward (no assumption on
    how slots interact); its variance grows exponentially with ``L``.
    """

    name: ClassVar[str] = "sips"
    needs_whole_list: ClassVar[bool] = True
    weight: ClassVar[str] = "w_list"


@dataclass
class SNSIPS(SIPS):
    """Self-normalised SIPS: ``sum_ik W_{iL} y_{ik} / sum_ik W_{iL} b_{ik}`` (Swaminathan & Joachims 2015),
    normalised over all rows as in Open Bandit Pipeline. Consistent, bounded by the outcome range."""

    name: ClassVar[str] = "snsips"
    self_normalised: ClassVar[bool] = True


@dataclass
class IIPS(SlateEstimator):
    """Independent IPS (Li et al. 2018, "Offline evaluation of ranking policies with click models").

    ``V_IIPS = sum_ik omega_{ik} y_{ik} / n_b`` with the marginal item-at-slot weight
    ``omega_{ik} = pi(a_{ik} at k) / mu(a_{ik} at k)``. Unbiased under the item-position
    model (a slot's reward depends only on its own item and slot); far lower variance
    than SIPS. Needs the logging policy's marginal (``propensity_marginal``).
    """

    name: ClassVar[str] = "iips"
    needs_marginal: ClassVar[bool] = True
    weight: ClassVar[str] = "w_marg"


@dataclass
class SNIIPS(IIPS):
    """Self-normalised IIPS: ``sum_ik omega_{ik} y_{ik} / sum_ik omega_{ik} b_{ik}``."""

    name: ClassVar[str] = "sniips"
    self_normalised: ClassVar[bool] = True


@dataclass
class RIPS(SlateEstimator):
    """Reward-interaction IPS (McInerney et al. 2020, eqs. 3-4), the cascade estimator.

    ``V_RIPS = sum_ik W_{ik} y_{ik} / n_b``, ``W_{ik} = prod_{j <= k} rho_{ij}``: slot ``k``
    is weighted by the probability ratio of the items at and above it only. Unbiased under
    the cascade model (a slot's reward depends on the items at and above it, not below).
    """

    name: ClassVar[str] = "rips"
    weight: ClassVar[str] = "w"


@dataclass
class SNRIPS(RIPS):
    """Self-normalised RIPS: ``sum_ik W_{ik} y_{ik} / sum_ik W_{ik} b_{ik}`` (normalised over all rows)."""

    name: ClassVar[str] = "snrips"
    self_normalised: ClassVar[bool] = True


@dataclass
class CascadeDR(SlateEstimator):
    """Cascade doubly robust (Kiyohara, Saito, Matsuhiro, Narita, Shimizu & Yamamoto, WSDM 2022).

    ``V = sum_ik [ W_{ik} (y_{ik} - Qhat_k(x_i, a_{i,<=k}))
                 + W_{i,k-1} sum_a pi(a | x_i, a_{i,<k}) Qhat_k(x_i, a_{i,<k}, a) ] / n_b``

    with ``W_{i0} = 1`` and ``Qhat_k`` a cross-fitted model of the reward to go from slot
    ``k``, ``sum_{j >= k} y_j``. Under the cascade model it is unbiased for any fixed
    ``Qhat`` (the two terms cancel in expectation) and has less variance than RIPS when
    ``Qhat`` is good; the per-slot sum telescopes to the direct method when ``Qhat`` is exact.
    ``clip`` caps both weights. The model term is averaged over the target's whole
    conditional distribution at each slot (see :mod:`causalrec.ope.slate_eval`).
    """

    name: ClassVar[str] = "cascade_dr"
    needs_outcome_model: ClassVar[bool] = True

    def terms(self, d: SlateArrays):
        w = _clipped(d.w, self.clip)
        wp = _clipped(d.w_prev, self.clip)
        a = np.subtract(d.y, d.q_logged)
        a *= w
        b = np.multiply(wp, d.q_target)
        a += b  # the same operations as w * (y - q) + wp * q_target, in two buffers
        return None, a, d.norm


@dataclass
class PI(SlateEstimator):
    """PseudoInverse estimator (Swaminathan, Krishnamurthy, Agarwal, Dudik, Langford, Jose & Zitouni,
    NeurIPS 2017), for additive slot rewards.

    ``V_PI = sum_ik w^PI_i y_{ik} / n_b`` with ``w^PI_i = q_pi^T Gamma_mu^+ 1_{a_i}``, where
    ``q_pi`` stacks the target's item-at-slot marginals and ``Gamma_mu = E_mu[1_a 1_a^T]``.
    When the logging policy fills slots independently (a product distribution, Example 4
    of the paper), ``w^PI_i = sum_k omega_{ik} - (L - 1)``, which is what is computed here
    (unbiased for additive rewards: ``E[r | x, a] = sum_k phi_x(a_k, k)``). With a logging
    policy that does not (e.g. sampling without replacement) this closed form is biased;
    ``slate_eval`` warns when the logged conditionals and marginals show it. The weight can
    be negative.
    """

    name: ClassVar[str] = "pi"
    needs_marginal: ClassVar[bool] = True
    needs_whole_list: ClassVar[bool] = True
    weight: ClassVar[str] = "w_pi"


@dataclass
class SNPI(PI):
    """Self-normalised PseudoInverse (Swaminathan et al. 2017, wPI):
    ``sum_ik w^PI_i y_{ik} / sum_ik w^PI_i b_{ik}``."""

    name: ClassVar[str] = "snpi"
    self_normalised: ClassVar[bool] = True


SLATE_ESTIMATORS: dict[str, type[SlateEstimator]] = {
    cls.name: cls for cls in (SIPS, SNSIPS, IIPS, SNIIPS, RIPS, SNRIPS, CascadeDR, PI, SNPI)
}
ESTIMATORS.update(SLATE_ESTIMATORS)  # registry entries: make_estimators finds them by name


def is_slate(est) -> bool:
    return bool(getattr(est, "slate", False))


__all__ = ["SlateArrays", "SlateEstimator", "SIPS", "SNSIPS", "IIPS", "SNIIPS", "RIPS", "SNRIPS", "CascadeDR",
           "PI", "SNPI", "SLATE_ESTIMATORS", "is_slate"]
