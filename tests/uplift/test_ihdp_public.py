"""IHDP surface B through the public uplift path: no absurd estimates (issue 14, section 3).

The fast tests pin the root cause (float32 standardisation of a column that is constant on
one arm's training rows) and run one draw through ``causalrec.uplift.estimate`` with the
defaults a user gets; the slow one runs the 50-draw study's summary.
"""

import numpy as np
import pandas as pd
import pytest

from causalrec.models import OutcomeModel
from causalrec.uplift import estimate

econml_dgps = pytest.importorskip("econml.data.dgps")


def ihdp(seed):
    Y, T, X, te = econml_dgps.ihdp_surface_B(random_state=seed)
    df = pd.DataFrame(X, columns=[f"x{j + 1}" for j in range(X.shape[1])])
    df["T"], df["Y"] = T.astype(int), Y
    return df, te


def test_constant_training_column_does_not_explode_held_out_predictions():
    # column 1 is constant on the training rows (float32, like the design matrix) and takes
    # another value on the held-out rows: the old float32 sd (~1e-7) turned that into 1e7 inputs
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3)).astype(np.float32)
    X[:, 1] = np.float32(-0.3745)
    y = X[:, 0] * 2.0 + rng.normal(size=400)
    m = OutcomeModel(device="cpu", random_state=0, max_epochs=30).fit(X, y)
    X_new = X[:50].copy()
    X_new[:, 1] = np.float32(2.67)
    # a column the model never saw vary carries no information: same predictions either way
    np.testing.assert_allclose(m.predict(X_new), m.predict(X[:50]), rtol=0, atol=1e-9)
    assert np.isinf(m.x_scale_[1])


def test_outcome_model_bounds_predictions_to_training_range():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 2))
    y = np.exp(X[:, 0])  # exponential surface: extrapolates wildly when unbounded
    m = OutcomeModel(device="cpu", random_state=0, max_epochs=30).fit(X, y)
    far = np.array([[8.0, 0.0], [-8.0, 0.0]])
    p = m.predict(far)
    assert (p >= y.min()).all() and (p <= y.max()).all()
    assert OutcomeModel(device="cpu", random_state=0, max_epochs=30, bound=False).fit(X, y).predict(far).max() \
        > y.max()


def test_one_ihdp_draw_through_the_public_path_is_sane():
    df, te = ihdp(2026)  # a seed analyses/ihdp.py does not use
    cov = [c for c in df.columns if c.startswith("x")]
    r = estimate(df, treatment="T", outcome="Y", covariates=cov, methods=["aipw", "dml"], n_folds=3)
    span = df["Y"].max() - df["Y"].min()
    sate = te.mean()
    for m in ("aipw", "dml"):
        e = r.get(m, "ate")
        assert abs(e.estimate) <= span, (m, e)
        assert abs(e.estimate - sate) < 1.0, (m, e.estimate, sate)
        assert 0 < e.se < 2.0
    nu = r.nuisance
    for k in ("mu0", "mu1"):
        assert nu[k].min() >= df["Y"].min() and nu[k].max() <= df["Y"].max()


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="targets not all met yet; measured on 50 draws (reports/ihdp.md): AIPW mean "
                   "abs error 0.095 and coverage 92% (met), DML 0.082 and coverage 98% (above the 90-97% band). "
                   "DML's SE is kept: IHDP reuses one treatment vector in every draw, and with the treatment "
                   "drawn anew per draw (reports/ihdp.md, 70 draws) DML's SE is as calibrated as AIPW's")
def test_ihdp_study_50_draws(tmp_path):
    """The study of reports/ihdp.md: targets from issue 14 (mean |error| <= 0.10, coverage 90-97%)."""
    mod = _study()
    mod.main(["--seeds", "50", "--runs", str(tmp_path / "runs.jsonl"), "--out", str(tmp_path / "ihdp.md")])
    table = mod.summarise(mod.load_runs(tmp_path / "runs.jsonl"))
    assert (table["estimates outside the effect range"] == 0).all()
    for m in ("aipw", "dml"):
        assert table.loc[m, "mean abs ATE error"] <= 0.10, table
        assert 0.90 <= table.loc[m, "95% CI coverage"] <= 0.97, table


def _study():
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("ihdp_study", Path(__file__).parents[2] / "analyses" / "ihdp.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_resampled_assignment_keeps_the_draw_and_redraws_the_treatment():
    # --assignment resampled: same surfaces, noise and individual effects; only T (and so Y) redrawn
    mod = _study()
    fixed, te_fixed = mod.ihdp_table(7)
    res, te_res = mod.ihdp_table(7, "resampled")
    np.testing.assert_array_equal(te_res, te_fixed)
    np.testing.assert_array_equal(res.filter(like="x").to_numpy(), fixed.filter(like="x").to_numpy())
    changed = (res["T"] != fixed["T"]).to_numpy()
    assert 0.05 < changed.mean() < 0.6
    # where T is unchanged, Y is unchanged (same noise); where it flips, Y moves by the individual effect
    np.testing.assert_allclose(res["Y"][~changed], fixed["Y"][~changed])
    sign = np.where(res["T"][changed] == 1, 1.0, -1.0)
    np.testing.assert_allclose((res["Y"][changed] - fixed["Y"][changed]).to_numpy(), sign * te_fixed[changed],
                               atol=1e-9)
    again, _ = mod.ihdp_table(7, "resampled")
    assert again.equals(res)  # seeded
