"""``text_interaction="outer"``: every u_j v_l as a column (a full bilinear term for linear heads)."""

import numpy as np
import pandas as pd
import pytest

from causalrec.errors import InputError
from causalrec.features import design_matrix
from causalrec.uplift import estimate


def test_outer_interaction_columns_are_all_pairwise_products():
    rng = np.random.default_rng(0)
    u, v = rng.random((5, 3)), rng.random((5, 3))
    X, names = design_matrix(user_emb=u, item_emb=v, return_names=True, interaction="outer")
    assert X.shape == (5, 3 + 3 + 9)
    np.testing.assert_allclose(X[:, 6:], np.einsum("nj,nl->njl", u, v).reshape(5, 9), rtol=1e-6)
    assert names[6:] == [f"ui{j}" for j in range(9)]
    Xp = design_matrix(user_emb=u, item_emb=v)
    np.testing.assert_allclose(Xp[:, 6:], u * v, rtol=1e-6)


def test_outer_interaction_refuses_wide_vectors_and_unknown_names():
    rng = np.random.default_rng(0)
    with pytest.raises(InputError, match="outer interaction"):
        design_matrix(user_emb=rng.random((2, 65)), item_emb=rng.random((2, 65)), interaction="outer")
    df = pd.DataFrame({"t": [0, 1, 0, 1], "y": [0.0, 1.0, 0.0, 1.0], "x": [1.0, 2.0, 3.0, 4.0]})
    with pytest.raises(InputError, match="unknown text interaction"):
        estimate(df, treatment="t", outcome="y", covariates=["x"], text_interaction="full")
