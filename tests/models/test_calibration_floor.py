"""K > 2-class probability flooring keeps every entry at or above the floor (issue 14)."""

import numpy as np
import pytest

from causalrec.models.calibration import clip_propensity


@pytest.mark.parametrize("k,clip", [(3, 0.1), (20, 0.02), (80, 0.5 / 80)])
def test_floor_holds_after_renormalising(k, clip):
    rng = np.random.default_rng(k)
    p = rng.dirichlet(np.full(k, 0.2), size=500)
    q, share = clip_propensity(p, clip)
    assert q.min() >= clip * (1 - 1e-9)
    np.testing.assert_allclose(q.sum(axis=1), 1.0, atol=1e-12)
    # floor-then-renormalise (the old rule) breaks the floor on the same input
    old = np.maximum(p, clip)
    assert (old / old.sum(axis=1, keepdims=True)).min() < clip
    # entries that needed no floor keep their ratios (one common scale per row)
    kept = q > clip * (1 + 1e-9)
    ratio = np.where(kept, q / p, np.nan)
    spread = np.nanmax(ratio, axis=1) - np.nanmin(ratio, axis=1)
    assert np.nanmax(spread) < 1e-9
    assert share == pytest.approx(float((~kept).mean()))


def test_hand_computed_row():
    # 0.02 and 0.08 floored at 0.1; the other two share 0.8 in proportion 0.3 : 0.6
    q, share = clip_propensity(np.array([[0.02, 0.08, 0.3, 0.6]]), 0.1)
    np.testing.assert_allclose(q, [[0.1, 0.1, 0.8 / 3, 1.6 / 3]])
    assert share == 0.25 * 2


def test_rows_already_above_the_floor_are_unchanged():
    p = np.array([[0.2, 0.3, 0.5], [1 / 3, 1 / 3, 1 / 3]])
    q, share = clip_propensity(p, 0.1)
    np.testing.assert_allclose(q, p)
    assert share == 0.0
