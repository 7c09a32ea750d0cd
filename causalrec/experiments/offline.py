"""Offline vs online: what off-policy evaluation predicted, beside what the A/B test measured.

Before an experiment, OPE estimates the treatment policy's value ``V_t`` from
the logs of the current (control) policy. The experiment then measures it.
``compare_with_ope`` puts the two side by side:

- predicted value ``V_hat_t^OPE`` (``causalrec.ope.evaluate`` on the control
  arm's logs, with its influence-function SE) vs measured value ``ybar_t``
  (the treatment arm's on-policy mean, per unit);
- predicted lift ``V_hat_t^OPE / ybar_c - 1`` vs measured lift
  ``ybar_t / ybar_c - 1`` (``ybar_c``: the control arm's on-policy mean);
- agreement: the prediction error ``V_hat_t^OPE - ybar_t`` with
  ``se = sqrt(se_OPE^2 + se_t^2)`` (the two come from different arms, hence
  independent samples), a two-sided z-test of "no error" and whether the two
  intervals overlap. ``agree`` is True when the test does not reject at
  ``alpha``. The lift error is the value error divided by ``ybar_c``.

Both sides are clustered by the experiment's unit. The A/B side is analysed per
unit (impressions summed per user), so the OPE side must be too: with ``unit``
(or the ``unit`` the :class:`ABResult` was analysed with) the OPE standard errors
are cluster-robust by that column (``causalrec.ope.evaluate(cluster=unit)``).
Per-impression OPE errors beside per-unit A/B errors understate the OPE
uncertainty when a user's impressions are correlated, and the agreement test then
rejects more often than ``alpha`` even when OPE is right.

The predicted lift's SE. ``V_hat^OPE`` and ``ybar_c`` come from the same
logs. By default the delta method treats them as independent; for IPS-type
estimators of a 0/1 outcome their covariance is ``V_t (1 - ybar_c) / n >= 0``,
which *narrows* the true interval of a ratio, so the default is conservative.
``lift_bootstrap=B`` instead re-runs ``evaluate`` on ``B`` resamples of the
control logs (rows, or whole units when ``unit`` is given) and reports
percentile intervals and the bootstrap SE of the predicted lift.

Assumptions: those of OPE (logged propensities are the control policy's true
probabilities, positivity, the same population and period as the
experiment's treatment arm) and of the A/B test (randomised arms).
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from causalrec.data.readers import read_table
from causalrec.data.schema import LogSchema
from causalrec.errors import InputError
from causalrec.experiments.analyze import analyze
from causalrec.experiments.result import ABResult
from causalrec.results import CausalResult, Estimate


@dataclass
class OPEComparison(CausalResult):
    """Predicted (OPE) vs measured (A/B) value and lift of the treatment policy.

    ``estimates`` hold, per OPE estimator, targets ``value`` and ``lift`` with
    ``source`` ``"ope"`` (predicted) or ``"ab"`` (measured), and
    ``prediction_error`` (predicted minus measured value). ``agreement`` is one
    row per OPE estimator: error, its SE, z, p-value, interval overlap, ``agree``.
    """

    command: str = "ab_vs_ope"
    n_rows: int = 0
    estimates: list = field(default_factory=list)
    title: str = "Offline (OPE) vs online (A/B) estimate of the treatment"
    agreement: pd.DataFrame = field(default_factory=pd.DataFrame)
    ab: ABResult | None = None
    ope: Any = None

    def _extra_dict(self) -> dict[str, Any]:
        return {
            "agreement": self.agreement.to_dict(orient="records"),
            "ab": self.ab.to_dict() if self.ab is not None else None,
            "ope": self.ope.to_dict() if self.ope is not None else None,
        }

    def table(self) -> pd.DataFrame:
        """Predicted and measured value and lift side by side, one row per OPE estimator."""
        f = self.to_frame()
        rows = []
        for name in self.agreement["ope_estimator"] if not self.agreement.empty else []:
            row: dict[str, Any] = {"ope_estimator": name}
            for target in ("value", "lift"):
                for src in ("ope", "ab"):
                    sel = f[(f["target"] == target) & (f["source"] == src) & (f["ope_estimator"] == name)]
                    if sel.empty:
                        continue
                    e = sel.iloc[0]
                    tag = f"{'predicted' if src == 'ope' else 'measured'}_{target}"
                    row[tag] = e["estimate"]
                    row[f"{tag}_ci_low"] = e["ci_low"]
                    row[f"{tag}_ci_high"] = e["ci_high"]
            rows.append(row)
        out = pd.DataFrame(rows)
        if not out.empty:
            out = out.merge(self.agreement, on="ope_estimator")
        return out

    def summary(self) -> str:
        lines = [self.title]
        if self.ab is not None and self.ab.srm is not None:
            lines.insert(0, ("!!! " if self.ab.srm.mismatch else "") + self.ab.srm.message())
        t = self.table()
        if not t.empty:
            keep = ["ope_estimator", "predicted_value", "predicted_value_ci_low", "predicted_value_ci_high",
                    "measured_value", "measured_value_ci_low", "measured_value_ci_high", "predicted_lift",
                    "measured_lift", "error", "z", "p_value", "agree"]
            lines.append(t[[c for c in keep if c in t.columns]].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        lines += [f"WARNING: {w}" for w in self.warnings]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        t = self.table()
        body = t.to_html(index=False, float_format=lambda v: f"{v:.4g}", escape=True) if not t.empty else ""
        return f"<h4>{html.escape(self.title)}</h4>{body}"


def compare_with_ope(
    control_logs: str | os.PathLike | pd.DataFrame,
    treatment_policy: Any,
    measured: ABResult | str | os.PathLike | pd.DataFrame,
    *,
    schema: LogSchema = LogSchema(),
    estimators: Sequence[str] = ("snips", "dr"),
    metric: str | None = None,
    variant: str | None = None,
    unit: str | None = None,
    alpha: float = 0.05,
    lift_bootstrap: int = 0,
    seed: int = 0,
    ope_kwargs: dict[str, Any] | None = None,
    ab_kwargs: dict[str, Any] | None = None,
) -> OPEComparison:
    """Set the OPE prediction of the treatment policy beside the A/B measurement.

    Parameters
    ----------
    control_logs: the control arm's impression logs with logging propensities
        (columns named by ``schema``: item, outcome, propensity, [position]).
    treatment_policy: the treatment policy for ``causalrec.ope.evaluate``
        (long table or callable).
    measured: an :class:`ABResult` of the experiment (then ``metric`` names the
        metric and ``variant`` the treatment arm when there are several), or the
        treatment arm's logs (same schema), in which case the A/B comparison of
        ``schema.outcome`` between the two logs is computed here (per ``unit``
        when given, else per row).
    estimators: OPE estimators to compare (one agreement row each).
    lift_bootstrap: replicates for the predicted lift's interval (0: delta method,
        conservative; see the module docstring).
    """
    from causalrec.ope import evaluate

    ope_kwargs = dict(ope_kwargs or {})
    ci_level = 1.0 - alpha
    ctrl = read_table(control_logs) if not isinstance(control_logs, pd.DataFrame) else control_logs
    outcome = schema.outcome
    if outcome is None or outcome not in ctrl.columns:
        raise InputError(f"the control logs have no outcome column '{outcome}'", column=str(outcome),
                         fix="name the outcome column in the schema (LogSchema(outcome=...))")
    warnings: list[str] = []

    if isinstance(measured, ABResult):
        ab = measured
        metric = metric or _only(ab, "metric")
        variant = variant or _only(ab, "variant")
        unit = unit or ab.config.get("unit")
    else:
        treat = read_table(measured) if not isinstance(measured, pd.DataFrame) else measured
        if outcome not in treat.columns:
            raise InputError(f"the treatment logs have no outcome column '{outcome}'", column=outcome,
                             fix="both arms' logs must use the same schema")
        cols = [outcome, *([unit] if unit else [])]
        both = pd.concat([ctrl[cols].assign(_arm="control"), treat[cols].assign(_arm="treatment")],
                         ignore_index=True)
        sizes = ((ctrl[unit].nunique(), treat[unit].nunique()) if unit else (len(ctrl), len(treat)))
        kw = {"expected_split": {"control": sizes[0], "treatment": sizes[1]}, "planning": False}
        kw.update(ab_kwargs or {})
        ab = analyze(both, variant="_arm", metrics=[outcome], unit=unit, control="control", alpha=alpha, **kw)
        metric, variant = outcome, "treatment"
        if "expected_split" not in (ab_kwargs or {}):
            warnings.append("no designed split was given: the SRM check uses the observed arm sizes and is not informative")
    try:
        base = next(e for e in ab.estimates if e.extra.get("metric") == metric and e.extra.get("variant") == variant
                    and e.target == "diff" and e.extra.get("primary"))
        lift_e = next(e for e in ab.estimates if e.extra.get("metric") == metric and e.extra.get("variant") == variant
                      and e.target == "lift" and e.estimator == base.estimator)
    except StopIteration:
        raise InputError(f"the A/B result has no estimate for metric {metric!r} and variant {variant!r}",
                         column="metric", fix="pass metric= and variant= as they appear in the A/B result") from None
    m_c, m_t = base.extra["value_control"], base.extra["value_treatment"]
    se_c, se_t = base.extra["se_control"], base.extra["se_treatment"]

    if unit is not None and "cluster" not in ope_kwargs:
        if unit not in ctrl.columns:
            raise InputError(f"the control logs have no unit column '{unit}' to cluster the OPE errors by",
                             column=unit, fix="keep the randomisation unit in the control logs (or pass unit=None "
                             "when the experiment was randomised per impression)")
        ope_kwargs["cluster"] = unit
    ope = evaluate(ctrl, treatment_policy, schema=schema, estimators=tuple(estimators), ci_level=ci_level,
                   seed=seed, **ope_kwargs)
    boot = _bootstrap_lift(ctrl, treatment_policy, schema, estimators, outcome, unit, lift_bootstrap, seed,
                           ope_kwargs, ci_level) if lift_bootstrap else None

    from scipy import stats

    z_crit = float(stats.norm.ppf(0.5 + ci_level / 2))
    t_lo, t_hi = m_t - z_crit * se_t, m_t + z_crit * se_t
    estimates: list[Estimate] = []
    rows = []
    for name in estimators:
        e = ope.get(name)
        lab = {"ope_estimator": name, "metric": metric, "variant": variant}
        estimates.append(Estimate(name, "value", e.estimate, e.se, e.ci_low, e.ci_high, ci_level, None,
                                  dict(lab, source="ope")))
        estimates.append(Estimate(base.estimator, "value", m_t, se_t, t_lo, t_hi, ci_level, None,
                                  dict(lab, source="ab")))
        p_lift = e.estimate / m_c - 1.0
        if boot is not None:
            reps = boot[name]
            lo, hi = np.quantile(reps, [alpha / 2, 1 - alpha / 2])
            lse, method = float(np.std(reps, ddof=1)), f"bootstrap ({lift_bootstrap} resamples of the control logs)"
        else:
            lse = float(np.sqrt(e.se**2 / m_c**2 + e.estimate**2 * se_c**2 / m_c**4))
            lo, hi = p_lift - z_crit * lse, p_lift + z_crit * lse
            method = "delta method, OPE and control mean treated as independent (conservative)"
        estimates.append(Estimate(name, "lift", p_lift, lse, float(lo), float(hi), ci_level, None,
                                  dict(lab, source="ope", ci_method=method)))
        estimates.append(Estimate(lift_e.estimator, "lift", lift_e.estimate, lift_e.se, lift_e.ci_low,
                                  lift_e.ci_high, ci_level, lift_e.p_value, dict(lab, source="ab")))
        err = e.estimate - m_t
        err_se = float(np.sqrt(e.se**2 + se_t**2))
        err_e = Estimate.normal(name, "prediction_error", err, err_se, ci_level, null=0.0, **lab, source="ope-ab")
        estimates.append(err_e)
        rows.append({"ope_estimator": name, "error": err, "error_se": err_se, "z": err / err_se if err_se > 0 else np.nan,
                     "p_value": err_e.p_value, "relative_error": err / m_t if m_t else np.nan,
                     "lift_error": err / m_c if m_c else np.nan,
                     "ci_overlap": bool(max(e.ci_low, t_lo) <= min(e.ci_high, t_hi)),
                     "agree": bool(err_e.p_value >= alpha)})
    diag = {"control_value": m_c, "control_se": se_c, "treatment_value": m_t, "treatment_se": se_t,
            "ope_ess": ope.diagnostics.get("ess"), "ope_weight_max": ope.diagnostics.get("weight_max")}
    config = {"estimators": list(estimators), "metric": metric, "variant": variant, "unit": unit,
              "ope_cluster": ope_kwargs.get("cluster"), "alpha": alpha,
              "lift_bootstrap": lift_bootstrap, "seed": seed, "schema": schema.to_dict(),
              "ope_kwargs": {k: str(v) for k, v in ope_kwargs.items()}}
    return OPEComparison(n_rows=len(ctrl) + (ab.n_rows if ab is not None else 0), estimates=estimates,
                         diagnostics=diag, warnings=warnings + list(ope.warnings), config=config,
                         agreement=pd.DataFrame(rows), ab=ab, ope=ope)


def _only(ab: ABResult, key: str) -> str:
    vals = sorted({str(e.extra.get(key)) for e in ab.estimates if e.extra.get(key) is not None})
    if len(vals) != 1:
        raise InputError(f"the A/B result has several {key}s ({vals}); say which one to compare", column=key,
                         fix=f"pass {key}=... to compare_with_ope")
    return vals[0]


def _bootstrap_lift(ctrl, policy, schema, estimators, outcome, unit, n_boot, seed, ope_kwargs, ci_level):
    """Predicted-lift replicates: ``evaluate`` and the control mean on resampled control logs."""
    from tqdm import tqdm

    from causalrec.ope import evaluate

    if n_boot < 2:
        raise InputError("lift_bootstrap must be 0 or >= 2", column="lift_bootstrap", fix="e.g. 200")
    rng = np.random.default_rng(seed)
    n = len(ctrl)
    if unit is not None:
        codes, _ = pd.factorize(ctrl[unit])
        order = np.argsort(codes, kind="stable")
        lens = np.bincount(codes)
        starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
    reps: dict[str, list[float]] = {e: [] for e in estimators}
    y = ctrl[outcome].to_numpy(dtype=float)
    for _ in tqdm(range(n_boot), desc="bootstrap of the predicted lift", mininterval=5, leave=False):
        if unit is None:
            rows = rng.integers(0, n, n)
        else:
            sel = rng.integers(0, len(lens), len(lens))
            ln = lens[sel]
            offs = np.repeat(starts[sel] - np.cumsum(ln) + ln, ln) + np.arange(ln.sum())
            rows = order[offs]
        sample = ctrl.iloc[rows].reset_index(drop=True)
        res = evaluate(sample, policy, schema=schema, estimators=tuple(estimators), ci_level=ci_level, seed=seed,
                       **ope_kwargs)
        m_c = float(y[rows].mean())
        for e in estimators:
            reps[e].append(res.get(e).estimate / m_c - 1.0)
    return {e: np.asarray(v) for e, v in reps.items()}
