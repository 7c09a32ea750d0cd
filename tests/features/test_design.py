"""design_matrix and tabular encoding."""

import numpy as np
import pandas as pd
import pytest

from causalrec.errors import InputError
from causalrec.features import TabularEncoder, design_matrix, encode_tabular


def test_blocks_and_names(rng):
    u, v = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    c = rng.normal(size=(5, 2))
    X, names = design_matrix(u, v, c, return_names=True)
    assert X.shape == (5, 11) and X.dtype == np.float32
    np.testing.assert_allclose(X[:, 6:9], (u * v).astype(np.float32), rtol=1e-6)
    assert names[:3] == ["u0", "u1", "u2"] and names[6] == "ui0" and names[-1] == "c1"
    assert design_matrix(item_emb=v).shape == (5, 3)


def test_dataframe_covariates_encoded():
    df = pd.DataFrame({"age": [20.0, 30.0, np.nan, 50.0], "country": ["fr", "de", None, "fr"]})
    X, names = design_matrix(covariates=df, return_names=True)
    assert np.isfinite(X).all()
    assert abs(X[:, 0].mean()) < 1e-6  # standardised after mean imputation
    assert "cat__country_fr" in names and X[:, names.index("cat__country_fr")].sum() == 2


def test_encoder_reuses_fit_on_new_frame():
    train = pd.DataFrame({"x": [1.0, 2.0, 3.0], "c": ["a", "b", "a"]})
    test = pd.DataFrame({"x": [2.0], "c": ["zzz"]})  # unseen level
    enc = TabularEncoder().fit(train)
    out = enc.transform(test)
    assert out.shape == (1, enc.n_features_out_)
    assert out[0, 0] == 0.0
    M, names = encode_tabular(train)
    assert M.shape == (3, 3) and len(names) == 3


def test_errors(rng):
    with pytest.raises(InputError, match="same shape"):
        design_matrix(rng.normal(size=(4, 3)), rng.normal(size=(4, 2)))
    with pytest.raises(InputError, match="rows"):
        design_matrix(rng.normal(size=(4, 3)), covariates=rng.normal(size=(5, 2)))
    with pytest.raises(InputError):
        design_matrix()
    with pytest.raises(InputError, match="NaN"):
        design_matrix(covariates=np.array([[1.0], [np.nan]]))
    with pytest.raises(InputError, match="missing"):
        TabularEncoder(columns=["nope"]).fit(pd.DataFrame({"a": [1]}))
