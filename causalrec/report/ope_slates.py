"""Ranked-list parts of the ``causalrec ope`` report (renders an :class:`causalrec.ope.OPEResult`; no statistics)."""

from __future__ import annotations

ASSUMPTIONS = {
    "sips": "sips / snsips: none on how slots interact (the whole list is one action); needs the target's lists "
            "to have positive logging probability (its variance grows fast with the list length).",
    "iips": "iips / sniips: each slot's reward depends only on its own item and slot (item-position model).",
    "rips": "rips / snrips / cascade_dr: a slot's reward depends only on the items at and above it (cascade "
            "model: users scan top down).",
    "pi": "pi / snpi: the list's reward is a sum of per-slot terms (additive) and the logging policy fills slots "
          "independently; otherwise the PseudoInverse closed form is biased (a warning says when the log shows it).",
}
FAMILY = {"sips": "sips", "snsips": "sips", "iips": "iips", "sniips": "iips", "rips": "rips", "snrips": "rips",
          "cascade_dr": "rips", "pi": "pi", "snpi": "pi"}


def question(result) -> str:
    per = "list (sum over its slots)" if result.config.get("value_per") == "list" else "impression (slot)"
    return ("If the target ranking policy had built the lists instead of the logging policy, what would the "
            f"mean outcome per {per} have been? Each logged slot is reweighted by a ratio of the two policies' "
            "probabilities of the items at and above it (rips, cascade_dr), of the whole list (sips), or of the "
            "item at that slot (iips, pi); cascade_dr adds a model of the reward to go.")


def assumptions(result) -> list[str]:
    fams = []
    for e in result.estimates:
        f = FAMILY.get(e.estimator)
        if f and ASSUMPTIONS[f] not in fams:
            fams.append(ASSUMPTIONS[f])
    return ["Correct propensities: the propensity column is the logging policy's probability of each item given "
            "the items above it (and propensity_marginal its marginal at that slot).", *fams]


def data_rows(result) -> dict:
    d, c = result.diagnostics, result.config
    rows = {
        "value per": c.get("value_per"),
        "logging policy's mean outcome per list": d.get("logged_mean_outcome_per_list"),
        "target kind": (result.target_policy or {}).get("kind"),
        "target marginals": d.get("target_marginal_method"),
        "Monte Carlo draws": c.get("mc_samples"),
        "largest relative Monte Carlo SE of a marginal weight": d.get("target_marginal_mc_max_rel_se"),
    }
    for fam in ("list", "marginal", "pi"):
        w = d.get(f"slate_weight_{fam}")
        if w:
            rows[f"{fam} weights: mean / max / ESS share"] = f"{w['mean']:.4g} / {w['max']:.4g} / {w['ess_ratio']:.3g}"
    return {k: v for k, v in rows.items() if v is not None}
