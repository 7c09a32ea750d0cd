"""Hyper-parameter selection for OPE by SLOPE (Su, Srinath & Krishnamurthy 2020; Tucker & Lee 2021).

Candidates ``theta_1, ..., theta_m`` of one estimator are ordered from the least biased and
most variable to the most biased and least variable (no clip -> small clip; Switch-DR
``tau = inf -> 1``; DRos ``lambda`` large -> small; MIPS many clusters -> few). With the
candidates' estimates ``V_j`` and standard errors ``s_j`` (cluster-robust where the
evaluation is), SLOPE keeps the intervals ``I_j = [V_j - c s_j, V_j + c s_j]`` and picks

    j_hat = max { j : I_1 ∩ ... ∩ I_j is not empty },

i.e. it moves to a lower-variance candidate as long as that one still agrees with all the
less biased ones (Lepski's principle). ``c = 2`` by default (``slope_width``), the
constant of Su et al.'s bound for intervals of about 95% (a choice, not a tuned value).
The reported interval of the chosen candidate does not account for the selection.

For the MIPS cluster count, evaluated in memory, the rule compares *paired* differences instead
(:func:`paired_slope_index`): candidate ``j`` is kept while ``|V_j - V_i| <= c se(V_j - V_i)`` for
every less biased ``i``, the standard error of the difference from the candidates' influence
values on the same rows (cluster-robust). Streamed runs and the clip / tau / lambda grids use
the interval rule above; ``diagnostics["selection"][name]["rule"]`` says which was used.

The candidates are plain estimator instances evaluated in the same pass as everything
else (one per grid value: their ``(c, a, b)`` terms are sums like any other), so selection
works in memory, in blocks and streamed alike; :func:`apply` then keeps the chosen one per
estimator and stores every candidate's estimate under ``diagnostics["selection"]``.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from causalrec.errors import InputError
from causalrec.inference import cluster_se_from_sums

SLOPE_WIDTH = 2.0
CLIP_GRID = (None, 1e4, 3e3, 1e3, 300.0, 100.0, 30.0, 10.0, 3.0)
TAU_GRID = (float("inf"), 1e4, 3e3, 1e3, 300.0, 100.0, 30.0, 10.0, 3.0, 1.0)
LAMBDA_GRID = (1e8, 1e6, 1e5, 1e4, 1e3, 100.0, 10.0, 1.0)
#: estimator attribute tuned by each option, and the estimators that have it
PARAMS = {"clip": ("clip", ("ips", "snips", "dr", "sndr")), "switch_tau": ("tau", ("switch_dr",)),
          "dros_lambda": ("lam", ("dros",)), "clusters": ("clusters", ("mips", "snmips", "offcem"))}
PUBLIC = {"clip": "clip", "tau": "tau", "lam": "lambda", "clusters": "clusters"}


def slope_index(estimates, ses, width: float = SLOPE_WIDTH) -> int:
    """Index of the SLOPE choice among candidates ordered from least to most biased."""
    lo, hi = -np.inf, np.inf
    chosen = None
    for j, (v, s) in enumerate(zip(estimates, ses, strict=True)):
        if not (np.isfinite(v) and np.isfinite(s)):
            if chosen is None:
                continue  # an undefined least-biased candidate (e.g. no weight mass) says nothing
            break
        lo, hi = max(lo, v - width * s), min(hi, v + width * s)
        if lo > hi:
            break
        chosen = j
    return 0 if chosen is None else chosen


def paired_slope_index(estimates, psi, sizes, n: int, width: float = SLOPE_WIDTH) -> int:
    """SLOPE with paired differences: the largest ``j`` such that every less biased candidate
    ``i < j`` agrees with it, ``|V_j - V_i| <= width * se(V_j - V_i)``.

    ``psi[j]`` holds candidate ``j``'s influence values summed per cluster (``sizes`` rows each,
    ``n`` rows in all; one row per cluster without clustering), so
    ``se(V_j - V_i)^2 = G / (G - 1) * sum_g (D_g - n_g mean(D))^2 / n^2`` with ``D = psi_j - psi_i``
    (cluster-robust, :func:`causalrec.inference.cluster_se`'s formula on the difference). Why:
    the candidates are computed on the same rows, so their errors are strongly correlated and
    the difference of two of them is known far better than either; the interval rule of
    :func:`slope_index` compares it with ``width * (s_i + s_j)`` and accepts biased candidates whose
    bias is several times the difference's standard error (it chose K = 14 for 20 true topics
    where the paired rule keeps K >= 16 on the catalogue simulator).
    """
    sizes = np.asarray(sizes, dtype=float)
    accepted: list[int] = []
    for j, v in enumerate(estimates):
        if not np.isfinite(v):
            if not accepted:
                continue
            break
        ok = True
        for i in accepted:
            se = cluster_se_from_sums(psi[j] - psi[i], sizes, n)
            se = 0.0 if not np.isfinite(se) else se  # one cluster: only exact agreement counts
            if abs(v - estimates[i]) > width * se + 1e-12 * max(1.0, abs(v)):
                ok = False
                break
        if not ok:
            break
        accepted.append(j)
    return accepted[-1] if accepted else 0


def grids(select: dict[str, bool], clusters: list[int] | None) -> dict[str, list]:
    out = {}
    if select.get("clip"):
        out["clip"] = list(CLIP_GRID)
    if select.get("switch_tau"):
        out["switch_tau"] = list(TAU_GRID)
    if select.get("dros_lambda"):
        out["dros_lambda"] = list(LAMBDA_GRID)
    if clusters is not None and len(clusters) > 1:
        out["clusters"] = list(clusters)
    return out


def expand(ests, grid: dict[str, list]):
    """``(estimators with candidates, groups)``; a group is ``(position, attribute, values, indices, name)``
    with ``name`` the requested estimator's name in the run (what the kept candidate is called)."""
    from causalrec.ope.estimators import run_names

    names = run_names(ests)
    out, groups = [], []
    for i, e in enumerate(ests):
        hit = next(((opt, attr) for opt, (attr, names) in PARAMS.items() if opt in grid and e.name in names), None)
        if hit is None:
            out.append(e)
            groups.append((i, None, None, [len(out) - 1], names[i]))
            continue
        opt, attr = hit
        idx = []
        for v in grid[opt]:
            # candidates are told apart by their parameters; an alias would make them one name
            cand = replace(e, alias=None, **{attr: v})
            # cluster counts are compared by paired differences (paired_slope_index) where the
            # evaluation keeps the influence values; clip/tau/lambda keep the interval rule
            cand.paired_selection = opt == "clusters"
            out.append(cand)
            idx.append(len(out) - 1)
        groups.append((i, attr, list(grid[opt]), idx, names[i]))
    return out, groups


def apply(result, groups, width: float = SLOPE_WIDTH):
    """Keep one estimate per requested estimator (SLOPE's choice for expanded ones)."""
    ests = result.estimates
    paired = result.__dict__.pop("_paired_influence", None)
    kept, sel = [], {}
    for _, attr, values, idx, name in groups:
        if attr is None:
            kept.append(ests[idx[0]])
            continue
        cand = [ests[j] for j in idx]
        rule = "intervals"
        if paired is not None and all(j in paired["psi"] for j in idx):
            j = paired_slope_index([c.estimate for c in cand], [paired["psi"][i] for i in idx], paired["sizes"],
                                   paired["n"], width)
            rule = "paired differences"
        else:
            j = slope_index([c.estimate for c in cand], [c.se for c in cand], width)
        chosen = cand[j]
        chosen.extra["selected_by"] = "slope"
        # candidates carry distinct run labels ("ips(clip=30)"); the kept estimate takes the requested name
        chosen.estimator = name
        sel[name] = {
            "parameter": PUBLIC[attr], "chosen": _val(values[j]), "method": "slope", "rule": rule, "width_se": width,
            "order": "least biased first", "candidates": [
                {"value": _val(v), "estimate": c.estimate, "se": c.se, "ci_low": c.ci_low, "ci_high": c.ci_high}
                for v, c in zip(values, cand, strict=True)],
        }
        kept.append(chosen)
    result.estimates = kept
    if sel:
        result.diagnostics["selection"] = sel
        result.config["selection"] = {k: {"parameter": v["parameter"], "chosen": v["chosen"],
                                          "candidates": [c["value"] for c in v["candidates"]]} for k, v in sel.items()}
    # warnings about undefined candidates that were not chosen are noise
    chosen_names = {e.estimator for e in kept}
    result.warnings = [w for w in result.warnings if not (w.startswith("estimator '") and "undefined" in w
                                                          and w.split("'")[1] in sel and w.split("'")[1] in chosen_names
                                                          and np.isfinite(next(e.estimate for e in kept
                                                                               if e.estimator == w.split("'")[1])))]
    return result


def _val(v):
    if v is None:
        return None
    if isinstance(v, float) and not np.isfinite(v):
        return "inf"
    return v


def parse_choice(value, name: str):
    """``(number or None, select?)`` from an option that also accepts ``"slope"``."""
    if isinstance(value, str):
        if value.strip().lower() == "slope":
            return None, True
        try:
            return float(value), False
        except ValueError:
            raise InputError(f"{name} must be a number or 'slope', got {value!r}", column=name,
                             fix=f"e.g. --{name.replace('_', '-')} 100 or --{name.replace('_', '-')} slope") from None
    return value, False


__all__ = ["slope_index", "paired_slope_index", "expand", "apply", "grids", "parse_choice", "SLOPE_WIDTH"]
