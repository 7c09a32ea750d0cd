"""Refutations and sensitivity to unobserved confounding, through dowhy and econml.

The suite re-estimates the effect with an econml ``LinearDML`` *instance*
handed to dowhy (the string route ``"backdoor.econml..."`` is deprecated) and
runs dowhy's refuters on perturbed data. Each test has a stated pass rule
(``se`` is the standard error of the original estimate, ``z`` the normal
critical value at ``ci_level``):

* **placebo treatment** (treatment permuted across rows): the true effect of a
  placebo is zero. Pass if ``|placebo effect| <= z * se``.
* **random common cause** (an independent random covariate added to the
  controls): adjusting for noise must not move the estimate. Pass if
  ``|new - original| <= se``.
* **data subset** (re-estimate on random ``subset_fraction`` subsets): a
  stable estimate should not depend on which rows were drawn. Pass if
  ``|mean subset estimate - original| <= se``.
* **unobserved confounder** (Chernozhukov et al. 2022, the omitted-variable
  bias bound that generalises Cinelli & Hazlett's partial-R2 analysis; econml's
  ``sensitivity_interval`` / ``robustness_value``): a confounder explaining a
  share ``c_y`` of the outcome's residual variance and ``c_t`` of the
  treatment's. Pass if the sensitivity interval at ``(c_y, c_t)`` excludes zero
  (the conclusion survives such a confounder). The robustness value is the
  confounding strength (same share on both) at which the interval first
  includes zero.

The refutation estimator sees the controls ``W`` (reduced to their leading
principal components when wider than ``max_controls``) plus, unreduced, any
``scores`` -- pass the main analysis's cross-fitted propensity logit and outcome
predictions there: they are balancing / prognostic scores, so the reduced
control set still blocks the confounding that PCA alone could drop -- and, by default, fast
linear nuisance models (ridge / logistic regression), because every simulation
re-fits it: a 10-simulation suite on 100k rows takes about a minute on two
cores, where dowhy's 100-simulation default with neural nuisances would take
hours. Pass ``model_y``/``model_t`` (e.g. causalrec's models) to refute with
the main analysis's models.

Unlike DML and the CATE learners, which run on the run's cross-fitted nuisances
(:mod:`causalrec.models.crossfit`), a refutation must re-fit its nuisances: each refuter
re-estimates on perturbed data (a permuted treatment, an added covariate, a subset), and
nuisances fitted on the original data would make the test vacuous. The run's nuisances
enter as the balancing / prognostic ``scores`` above.

dowhy 0.14 writes a ``propensity_score`` column into the frame it is given and
later refuters reuse those stale scores (a false "refuted"): dowhy gets a
fresh frame, without any such column, for every test.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from causalrec.errors import InputError, require
from causalrec.inference import z_value
from causalrec.results import jsonable

TESTS = ("placebo", "random_common_cause", "data_subset", "sensitivity")


@dataclass
class Refutation:
    """One refutation: the original and the new estimate, and its reading."""

    test: str
    original: float
    new_effect: float
    passed: bool | None
    rule: str
    p_value: float | None = None
    detail: str = ""

    def to_dict(self) -> dict:
        return jsonable(asdict(self))


@dataclass
class RefutationSuite:
    """All refutations of one estimate (see the module docstring for the rules)."""

    estimate: float
    se: float
    n_rows: int
    n_controls: int
    num_simulations: int
    ci_level: float
    refutations: list[Refutation] = field(default_factory=list)
    sensitivity: dict[str, Any] = field(default_factory=dict)
    runtime_s: float = 0.0

    @property
    def all_passed(self) -> bool:
        return all(r.passed for r in self.refutations if r.passed is not None)

    def to_frame(self) -> pd.DataFrame:
        rows = [{"test": r.test, "original": r.original, "new_effect": r.new_effect,
                 "reading": "pass" if r.passed else ("fail" if r.passed is not None else "n/a"),
                 "rule": r.rule} for r in self.refutations]
        return pd.DataFrame(rows, columns=["test", "original", "new_effect", "reading", "rule"])

    def to_dict(self) -> dict:
        return jsonable({"estimate": self.estimate, "se": self.se, "n_rows": self.n_rows,
                         "n_controls": self.n_controls, "num_simulations": self.num_simulations,
                         "ci_level": self.ci_level, "all_passed": self.all_passed, "runtime_s": self.runtime_s,
                         "refutations": [r.to_dict() for r in self.refutations], "sensitivity": self.sensitivity})

    def summary(self) -> str:
        lines = [f"refutations of DML estimate {self.estimate:.4g} (se {self.se:.3g}), n={self.n_rows:,}, "
                 f"{self.num_simulations} simulations each, {self.runtime_s:.0f} s"]
        for r in self.refutations:
            lines.append(f"  {r.test:<20} new {r.new_effect:.4g}  "
                         f"{'PASS' if r.passed else ('FAIL' if r.passed is not None else 'n/a')}  ({r.rule})")
        return "\n".join(lines)


def econml_sensitivity(est, *, c_y: float = 0.05, c_t: float = 0.05, ci_level: float = 0.95,
                       treatment_level: int | None = None) -> dict[str, Any]:
    """econml's omitted-variable sensitivity of a fitted DML/DR estimator's ATE.

    Returns the sensitivity interval at ``(c_y, c_t)``, the robustness value
    (for the CI) and whether the interval excludes zero; ``{}`` when the
    estimator does not support it.
    """
    if not hasattr(est, "sensitivity_interval"):
        return {}
    alpha = 1.0 - ci_level
    args = (treatment_level,) if treatment_level is not None else ()
    lo, hi = est.sensitivity_interval(*args, alpha=alpha, c_y=c_y, c_t=c_t)
    rv = est.robustness_value(*args, alpha=alpha)
    lo, hi = float(np.asarray(lo).reshape(-1)[0]), float(np.asarray(hi).reshape(-1)[0])
    return {"c_y": c_y, "c_t": c_t, "interval_low": lo, "interval_high": hi,
            "robustness_value": float(np.asarray(rv).reshape(-1)[0]), "excludes_zero": bool(lo > 0 or hi < 0)}


def _reduce_controls(W: np.ndarray, max_controls: int, seed: int) -> np.ndarray:
    if W.shape[1] <= max_controls:
        return W
    from causalrec.diagnostics.balance import leading_components

    return leading_components(W, max_controls, random_state=seed)


def refute(
    y, t, W, *,
    scores=None,
    model_y=None,
    model_t=None,
    tests: tuple[str, ...] = TESTS,
    num_simulations: int = 10,
    subset_fraction: float = 0.8,
    max_controls: int = 20,
    max_rows: int | None = None,
    c_y: float = 0.05,
    c_t: float = 0.05,
    cv: int = 3,
    ci_level: float = 0.95,
    seed: int = 0,
    progress: bool | None = None,
) -> RefutationSuite:
    """Run the refutation suite of the module docstring on ``(y, t, W)``."""
    unknown = set(tests) - set(TESTS)
    if unknown:
        raise InputError(f"unknown refutation(s) {sorted(unknown)}", column="refute", fix=f"use {', '.join(TESTS)}")
    if num_simulations < 1:
        raise InputError("num_simulations must be >= 1", column="num_simulations", fix="use e.g. 10")
    dowhy = require("dowhy", "refutations")
    from dowhy.causal_estimator import estimate_effect
    from dowhy.causal_estimators.econml import Econml
    from econml.dml import LinearDML
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from tqdm.auto import tqdm

    started = time.perf_counter()
    y = np.asarray(y, dtype=float).reshape(-1)
    t = np.asarray(t).reshape(-1).astype(int)
    W = np.asarray(W, dtype=float)
    W = W[:, None] if W.ndim == 1 else W
    if not (y.shape[0] == t.shape[0] == W.shape[0]):
        raise InputError("outcome, treatment and controls differ in length", column="W",
                         fix="pass one row of controls per observation")
    rng = np.random.default_rng(seed)
    S = None if scores is None else np.asarray(scores, dtype=float)
    S = S[:, None] if S is not None and S.ndim == 1 else S
    if S is not None and S.shape[0] != y.shape[0]:
        raise InputError("scores differ in length from the outcome", column="scores",
                         fix="pass one row of scores per observation")
    if max_rows is not None and y.shape[0] > max_rows:
        idx = np.sort(rng.choice(y.shape[0], max_rows, replace=False))
        y, t, W = y[idx], t[idx], W[idx]
        S = None if S is None else S[idx]
    Wr = _reduce_controls(W, max_controls, seed)
    if S is not None:
        Wr = np.column_stack([S, Wr])
    names = [f"w{j}" for j in range(Wr.shape[1])]

    def frame() -> pd.DataFrame:
        df = pd.DataFrame(Wr, columns=names)
        df["treatment"] = t
        df["outcome"] = y
        return df.drop(columns=["propensity_score"], errors="ignore")

    def estimator():
        return LinearDML(model_y=RidgeCV() if model_y is None else model_y,
                         model_t=LogisticRegression(max_iter=1000) if model_t is None else model_t,
                         discrete_treatment=True, cv=cv, random_state=seed)

    for name in ("dowhy", "dowhy.causal_model", "dowhy.causal_refuters"):
        logging.getLogger(name).setLevel(logging.ERROR)
    data = frame()
    model = dowhy.CausalModel(data=data, treatment="treatment", outcome="outcome", common_causes=names)
    estimand = model.identify_effect(proceed_when_unidentifiable=True)
    wrapped = Econml(estimand, econml_estimator=estimator())
    est = estimate_effect(data, "treatment", "outcome", "backdoor", wrapped, target_units="ate",
                          effect_modifiers=[], method_params={})
    econ = wrapped.estimator
    original = float(est.value)
    inf = econ.ate_inference()
    se = float(np.asarray(inf.stderr_mean).reshape(-1)[0])
    z = z_value(ci_level)
    suite = RefutationSuite(original, se, int(y.shape[0]), len(names), int(num_simulations), ci_level)
    show = progress if progress is not None else y.shape[0] >= 50000
    for test in tqdm(list(tests), desc="refutations", disable=not show):
        if test == "sensitivity":
            s = econml_sensitivity(econ, c_y=c_y, c_t=c_t, ci_level=ci_level)
            suite.sensitivity = s
            suite.refutations.append(Refutation(
                "unobserved_confounder", original, float("nan"), s["excludes_zero"],
                f"sensitivity interval at c_y={c_y:g}, c_t={c_t:g} excludes 0",
                detail=(f"interval [{s['interval_low']:.4g}, {s['interval_high']:.4g}]; robustness value "
                        f"{s['robustness_value']:.3g} (confounder explaining that share of residual variance "
                        "of both treatment and outcome would make the effect insignificant)")))
            continue
        # a fresh frame per refuter: dowhy may write columns into the one it gets
        kw: dict[str, Any] = {"num_simulations": num_simulations, "random_seed": seed}
        if test == "placebo":
            r = model.refute_estimate(estimand, est, method_name="placebo_treatment_refuter",
                                      placebo_type="permute", **kw)
            new = float(r.new_effect)
            ok, rule = abs(new) <= z * se, f"|placebo effect| <= {z:.2f} x se"
        elif test == "random_common_cause":
            r = model.refute_estimate(estimand, est, method_name="random_common_cause", **kw)
            new = float(r.new_effect)
            ok, rule = abs(new - original) <= se, "|new - original| <= se"
        else:
            r = model.refute_estimate(estimand, est, method_name="data_subset_refuter",
                                      subset_fraction=subset_fraction, **kw)
            new = float(r.new_effect)
            ok, rule = abs(new - original) <= se, "|mean subset estimate - original| <= se"
        model._data = frame()
        p = (r.refutation_result or {}).get("p_value") if isinstance(r.refutation_result, dict) else None
        suite.refutations.append(Refutation(test, original, new, bool(ok), rule,
                                            None if p is None else float(p)))
    suite.runtime_s = time.perf_counter() - started
    return suite
