"""The slate estimators equal Open Bandit Pipeline's on obp's own synthetic slate data, to 1e-8.

obp's source comes from the obp 0.5.7 sdist (see ``obp_peer.py``; never copied). causalrec
gets what a user has: the log (request, slot, item, click, the logging probability given
the items above = ratio of obp's cascade pscores, and obp's marginal pscore) and the
evaluation policy as scores (obp's logits) with ``--target-kind plackett-luce``, from
which causalrec derives the conditional and marginal probabilities itself (obp enumerates
every slate). For the factorizable case (slots filled independently) the target is given
as a table of per-slot probabilities. Cascade-DR uses obp's own fitted ``q_hat`` as a
fixed outcome model, so the comparison is of the estimator, not of the regression.

obp's SNIIPS/SNRIPS normalise each slot separately (a sum of L ratios); causalrec's
normalise over all rows (one ratio, so they keep the (c, a, b) form): they are not
compared here. SNSIPS is the same in both (a list's slots share one weight).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from causalrec.data import LogSchema
from causalrec.ope import evaluate

_spec = importlib.util.spec_from_file_location("obp_peer", Path(__file__).with_name("obp_peer.py"))
obp_peer = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(obp_peer)


@pytest.fixture(scope="module", params=[False, True], ids=["plackett-luce", "factorizable"])
def obp(request):
    ref, why = obp_peer.reference(n_rounds=400, n_actions=8, len_list=3, factorizable=request.param)
    if ref is None:
        pytest.skip(f"Open Bandit Pipeline reference unavailable: {why}")
    return request.param, ref


def test_slate_estimators_equal_open_bandit_pipeline(obp):
    factorizable, ref = obp
    n_actions, ell = 8, 3
    sid = np.asarray(ref["slate_id"])
    n = sid.size // ell
    pc = np.asarray(ref["pscore_cascade"]).reshape(n, ell)
    cond = pc / np.concatenate([np.ones((n, 1)), pc[:, :-1]], axis=1)
    logs = pd.DataFrame({"request_id": sid, "position": ref["position"], "item_id": ref["action"],
                         "click": ref["reward"], "propensity": cond.ravel(), "pmarg": ref["pscore_item_position"]})
    logit = np.asarray(ref["logit"])
    q_hat = np.asarray(ref["q_hat"]).reshape(n, ell, n_actions)

    def q_fixed(frame: pd.DataFrame) -> np.ndarray:  # obp's Q-hat, looked up for any (request, slot, item)
        return q_hat[frame["request_id"].to_numpy(), frame["position"].to_numpy(), frame["item_id"].to_numpy()]

    kw = dict(schema=LogSchema(outcome="click"),
              estimators=list(ref["values"]), propensity_marginal="pmarg", value_per="list", outcome_model=q_fixed)
    if factorizable:  # each slot independently from softmax(logit): conditional = marginal
        p = np.exp(logit - logit.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        table = pd.DataFrame({"request_id": np.repeat(np.arange(n), ell * n_actions),
                              "position": np.tile(np.repeat(np.arange(ell), n_actions), n),
                              "item_id": np.tile(np.arange(n_actions), n * ell),
                              "prob": np.repeat(p, ell, axis=0).ravel()})
        table["prob_marginal"] = table["prob"]
        res = evaluate(logs, table, **kw)
    else:
        scores = pd.DataFrame({"request_id": np.repeat(np.arange(n), n_actions),
                               "item_id": np.tile(np.arange(n_actions), n), "score": logit.ravel()})
        res = evaluate(logs, scores, target_kind="plackett-luce", **kw)
        assert res.diagnostics["target_marginal_method"] == "exact"
    for e in res.estimates:
        want = ref["values"][e.estimator]
        assert e.estimate == pytest.approx(want, rel=1e-8, abs=1e-12), (e.estimator, e.estimate, want)
    # per impression is the same divided by the list length
    per_imp = evaluate(logs, scores if not factorizable else table, **{**kw, "value_per": "impression"},
                       **({} if factorizable else {"target_kind": "plackett-luce"}))
    for e in per_imp.estimates:
        assert e.estimate == pytest.approx(ref["values"][e.estimator] / ell, rel=1e-8)


def test_loading_obp_leaves_no_torch_stub_behind(obp):
    """obp's torch stub must not outlive the import: later code (figures, the text embedder) would get it."""
    import sys

    from causalrec.report.figures import new_figure

    src, _ = obp_peer.obp_source()
    before = sys.modules.get("torch")
    obp_peer.load(src)
    assert sys.modules.get("torch") is before
    fig, ax = new_figure(3.0, 2.0)
    ax.plot([0.0, 1.0], [1.0, 0.0])  # recursed in matplotlib's unit lookup while the stub was left installed
    fig.clf()
