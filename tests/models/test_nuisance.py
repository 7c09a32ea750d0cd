"""PropensityModel / OutcomeModel: sklearn contract, pickling, weights, calibration, clipping, econml."""

import pickle
import warnings

import numpy as np
import pytest
from sklearn.base import clone, is_classifier, is_regressor
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from causalrec.errors import InputError
from causalrec.models import (
    OutcomeModel,
    PropensityModel,
    clip_propensity,
    expected_calibration_error,
)

FAST = dict(hidden_layer_sizes=(32,), max_epochs=30, device="cpu")


def confounded(n, rng, effect=2.0):
    W = rng.normal(size=(n, 4))
    e = 1 / (1 + np.exp(-(1.2 * W[:, 0] - 0.8 * W[:, 1])))
    t = (rng.random(n) < e).astype(int)
    y = effect * t + 1.5 * W[:, 0] + W[:, 2] + rng.normal(scale=0.5, size=n)
    return W, t, y, e


def log_loss(t, p):
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return float(-np.mean(t * np.log(p) + (1 - t) * np.log(1 - p)))


@pytest.mark.parametrize("cls", [PropensityModel, OutcomeModel])
def test_clone_fit_pickle_roundtrip(cls, rng):
    W, t, y, _ = confounded(400, rng)
    target = t if cls is PropensityModel else y
    model = cls(**FAST, random_state=3)
    with pytest.raises(NotFittedError):
        check_is_fitted(cls(**FAST))
    fitted = model.fit(W, target)
    check_is_fitted(fitted)
    assert fitted.n_features_in_ == 4
    c = clone(fitted)
    assert c.get_params() == model.get_params() and not hasattr(c, "net_")
    method = "predict_proba" if cls is PropensityModel else "predict"
    before = getattr(fitted, method)(W)
    again = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(getattr(again, method)(W), before)
    assert next(again.net_.parameters()).device.type == "cpu"
    # same seed, same data: identical fit (deterministic on CPU)
    np.testing.assert_array_equal(getattr(c.fit(W, target), method)(W), before)


def test_estimator_types_and_no_predict_proba_on_outcome():
    assert is_classifier(PropensityModel()) and is_regressor(OutcomeModel())
    assert not hasattr(OutcomeModel(), "predict_proba")
    assert not hasattr(OutcomeModel(loss="bce"), "predict_proba")


def test_hyperparameters_only_in_init():
    m = PropensityModel(hidden_layer_sizes=(7,), clip=0.05)
    assert m.get_params()["hidden_layer_sizes"] == (7,) and m.get_params()["clip"] == 0.05
    assert not [k for k in vars(m) if k.endswith("_")]


def test_sample_weight_honoured(rng):
    n = 1000
    X = rng.normal(size=(n, 3))
    y = np.where(np.arange(n) < n // 2, 0.0, 10.0)
    w = np.where(np.arange(n) < n // 2, 1.0, 9.0)
    plain = OutcomeModel(**FAST).fit(X, y).predict(X).mean()
    weighted = OutcomeModel(**FAST).fit(X, y, sample_weight=w).predict(X).mean()
    assert abs(plain - 5.0) < 1.0 and abs(weighted - 9.0) < 1.0


def test_outcome_bce_returns_probabilities(rng):
    X = rng.normal(size=(600, 3))
    y = (rng.random(600) < 1 / (1 + np.exp(-2 * X[:, 0]))).astype(float)
    p = OutcomeModel(**FAST, loss="bce").fit(X, y).predict(X)
    assert p.min() >= 0 and p.max() <= 1 and np.corrcoef(p, X[:, 0])[0, 1] > 0.8
    with pytest.raises(InputError, match="bce"):
        OutcomeModel(**FAST, loss="bce").fit(X, y * 3)


def test_outcome_multi_output(rng):
    X = rng.normal(size=(300, 3))
    Y = np.column_stack([X[:, 0], -X[:, 1]])
    assert OutcomeModel(**FAST).fit(X, Y).predict(X).shape == (300, 2)


def test_calibration_improves_overconfident_network(rng):
    # Few informative features among many noise features, a wide network trained to the
    # last epoch (tol=-inf keeps every epoch as "best"): a textbook over-confident model.
    def data(n):
        X = rng.normal(size=(n, 60))
        p = 1 / (1 + np.exp(-(0.8 * X[:, 0] - 0.5 * X[:, 1])))
        return X, (rng.random(n) < p).astype(int)

    X, t = data(1500)
    Xt, tt = data(4000)
    m = PropensityModel(hidden_layer_sizes=(256,), dropout=0.0, weight_decay=0.0, max_epochs=60,
                        tol=-np.inf, validation_fraction=0.3, clip=None, device="cpu").fit(X, t)
    raw = m.predict_proba_uncalibrated(Xt)[:, 1]
    cal = m.predict_proba(Xt)[:, 1]
    assert log_loss(tt, cal) < log_loss(tt, raw) - 0.05
    assert expected_calibration_error(tt, cal) < expected_calibration_error(tt, raw)
    assert m.calibration_ == "platt" and 0 < m.calibration_params_["a"] < 1


@pytest.mark.parametrize("calibration", ["temperature", "isotonic", None])
def test_other_calibrations_run(calibration, rng):
    W, t, _, _ = confounded(500, rng)
    p = PropensityModel(**FAST, calibration=calibration).fit(W, t).predict_proba(W)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)


def test_clip_respected_and_reported(rng):
    X = rng.normal(size=(800, 2))
    t = (X[:, 0] > 0).astype(int)  # perfectly separable: raw propensities hit 0 and 1
    m = PropensityModel(**FAST, clip=0.05).fit(X, t)
    p = m.predict_proba(X)
    assert p.min() >= 0.05 - 1e-12 and p.max() <= 0.95 + 1e-12
    assert m.clip_ == 0.05 and 0 < m.clipped_share_ <= 1
    c, share = clip_propensity(np.array([0.001, 0.5, 0.999]), 0.01)
    np.testing.assert_allclose(c, [0.01, 0.5, 0.99])
    assert share == pytest.approx(2 / 3)


def test_multiclass_propensity(rng):
    X = rng.normal(size=(900, 3))
    t = np.digitize(X[:, 0], [-0.5, 0.5])
    labels = np.array(["a", "b", "c"])[t]
    m = PropensityModel(**FAST).fit(X, labels)
    p = m.predict_proba(X)
    assert list(m.classes_) == ["a", "b", "c"] and p.shape == (900, 3)
    assert m.calibration_ == "temperature" and (m.predict(X) == labels).mean() > 0.8


def test_bad_input(rng):
    with pytest.raises(InputError, match="one class"):
        PropensityModel(**FAST).fit(rng.normal(size=(50, 2)), np.ones(50))
    with pytest.raises(InputError):
        OutcomeModel(**FAST).fit(np.array([[np.nan], [1.0]] * 20), np.ones(40))
    with pytest.raises(InputError, match="sample_weight"):
        OutcomeModel(**FAST).fit(rng.normal(size=(40, 2)), np.ones(40), sample_weight=-np.ones(40))
    m = OutcomeModel(**FAST).fit(rng.normal(size=(40, 2)), rng.normal(size=40))
    with pytest.raises(InputError):
        m.predict(rng.normal(size=(3, 5)))


def test_device_resolution():
    import torch

    from causalrec.features import resolve_device

    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(InputError):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="cuda"):
            resolve_device("cuda")


def test_econml_linear_dml_accepts_models(rng):
    from econml.dml import LinearDML

    W, t, y, _ = confounded(3000, rng, effect=2.0)
    naive = y[t == 1].mean() - y[t == 0].mean()
    est = LinearDML(model_y=OutcomeModel(**FAST), model_t=PropensityModel(**FAST),
                    discrete_treatment=True, cv=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(y, t, X=None, W=W)
    ate = float(est.ate())
    lo, hi = (float(v) for v in est.ate_interval(alpha=0.05))
    assert abs(naive - 2.0) > 1.0  # the confounding is real
    assert abs(ate - 2.0) < 0.15 and lo < 2.0 < hi


def test_many_class_clip_is_capped(rng):
    X = rng.normal(size=(1200, 3))
    items = rng.integers(0, 80, size=1200)
    m = PropensityModel(**FAST, clip=0.01).fit(X, items)
    p = m.predict_proba(X)
    assert m.clip_ == pytest.approx(0.5 / 80) and p.shape == (1200, 80)
    assert p.min() >= m.clip_ * (1 - 1e-12)  # every entry at or above the floor after the projection
    np.testing.assert_allclose(p.sum(axis=1), 1.0)


def test_linear_candidates_predict_a_row_whatever_its_block():
    """The Spark engine predicts per (Arrow batch, fold) block, in process per fold: a row's
    prediction must not depend on the block. In float32 it did (OpenBLAS's sgemv treats the last
    ``m mod 4`` rows of a block with another kernel, ~1e-7); the candidates work in float64."""
    from causalrec.models.linear import logistic_propensity, ridge_outcome

    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 5)).astype(np.float32)  # causalrec's designs are float32
    t = (rng.random(600) < 0.5).astype(int)
    y = X[:, 0] + rng.normal(size=600)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # LogisticRegressionCV's announced changes
        e_model = pickle.loads(pickle.dumps(logistic_propensity(0).fit(X, t)))  # as broadcast to executors
        mu_model = pickle.loads(pickle.dumps(ridge_outcome().fit(X, y)))
    e, mu = e_model.predict_proba(X)[:, 1], mu_model.predict(X)
    assert mu.dtype == np.float64
    for m in (1, 2, 3, 5, 7, 13, 333):
        for s in (0, 7, 101):
            np.testing.assert_allclose(mu_model.predict(X[s:s + m]), mu[s:s + m], rtol=1e-13, atol=0)
            np.testing.assert_allclose(e_model.predict_proba(X[s:s + m])[:, 1], e[s:s + m], rtol=1e-13, atol=0)


@pytest.mark.parametrize("cls", [PropensityModel, OutcomeModel])
def test_cpu_predictions_do_not_depend_on_the_batch(cls, rng):
    # Spark scores a model in Arrow batches of any size and must reproduce the in-process
    # numbers to 1e-9: a row's prediction may not depend on which rows share its batch.
    X = rng.normal(size=(1499, 5))
    y = (rng.random(1499) < 1 / (1 + np.exp(-X[:, 0]))).astype(int)
    m = cls(**FAST).fit(X, y)
    score = (lambda Z: m.predict_proba(Z)[:, 1]) if cls is PropensityModel else m.predict
    whole = score(X)
    pieces = np.concatenate([score(X[s:s + b]) for s, b in ((0, 1), (1, 3), (4, 17), (21, 333), (354, 1145))])
    assert np.max(np.abs(pieces - whole) / np.maximum(np.abs(whole), 1e-12)) < 1e-12
