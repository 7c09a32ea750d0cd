"""A small uplift result with every analysis section, built with scikit-learn
nuisance models (no torch, no text model) so report tests stay fast."""

import numpy as np
import pandas as pd
import pytest

INJECT = '<img src="https://evil.example/x.png" onerror="alert(1)"><script>alert(2)</script>'


def synthetic_uplift_result(n: int = 1500, seed: int = 0, refute: bool = True):
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.model_selection import cross_val_predict

    from causalrec.uplift.analysis import analyze
    from causalrec.uplift.ate import aipw, ipw, naive
    from causalrec.uplift.result import UpliftResult

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6)).astype(np.float32)
    e = 1 / (1 + np.exp(-X[:, 0]))
    t = (rng.random(n) < e).astype(int)
    item = rng.integers(0, 4, n)
    y = X[:, 0] + (0.3 + 0.3 * X[:, 1] + 0.1 * item) * t + rng.normal(size=n)
    titles = np.array([f"item {k}" for k in range(2)] + ["$5 gift card $x^2$", INJECT], dtype=object)
    data = pd.DataFrame({"item_id": titles[item], "treatment": t, "outcome": y,
                         "segment": rng.choice(["young", "old"], n)})
    eh = np.clip(cross_val_predict(LogisticRegression(), X, t, cv=3, method="predict_proba")[:, 1], 0.01, 0.99)
    m = Ridge().fit(np.column_stack([X, t]), y)
    mu0 = m.predict(np.column_stack([X, np.zeros(n)]))
    mu1 = m.predict(np.column_stack([X, np.ones(n)]))
    res = UpliftResult(
        command="uplift", n_rows=n, estimates=naive(t, y) + ipw(t, y, eh) + aipw(t, y, eh, mu0, mu1),
        diagnostics={"n_treated": int(t.sum()), "n_control": int(n - t.sum())},
        warnings=[f"test warning {INJECT}"],
        config={"clip": 0.01, "ci_level": 0.95, "n_folds": 3,
                "schema": {"treatment": "treatment", "outcome": "outcome", "item_id": "item_id"}},
        nuisance={"e_hat": eh, "e_raw": eh, "mu0": mu0, "mu1": mu1, "X": X, "t": t, "y": y,
                  "feature_names": ["u0", "u1", "u2", "i0", "i1", "age"]},
        data=data, estimand="ATE over all logged rows")
    res.analysis = analyze(res, segments="segment", cate_models=(Ridge(), LogisticRegression()),
                           refute=refute, num_simulations=2, n_boot=50, min_group_size=20)
    return res


@pytest.fixture(scope="session")
def uplift_result():
    return synthetic_uplift_result()


@pytest.fixture(scope="session")
def uplift_html(uplift_result, tmp_path_factory):
    from causalrec.report.uplift import build_uplift_report

    path = tmp_path_factory.mktemp("report") / "uplift.html"
    build_uplift_report(uplift_result).write(path)
    return path
