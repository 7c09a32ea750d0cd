"""Per-list scans of :class:`causalrec.ope.lists.Lists` against numpy's accumulate, list by list."""

from __future__ import annotations

import numpy as np
import pytest

from causalrec.ope.lists import COLUMN_SCAN_MAX, Lists


def _reference(x: np.ndarray, lengths: np.ndarray, op: str) -> np.ndarray:
    out, lo = [], 0
    for ell in lengths:
        seg = x[lo:lo + ell]
        lo += ell
        if op == "cumprod":
            out.append(np.cumprod(seg))
        elif op == "cumsum":
            out.append(np.cumsum(seg))
        elif op == "exclusive":
            out.append(np.r_[0.0, np.cumsum(seg[:-1])] if ell else seg)
        else:
            out.append(np.cumsum(seg[::-1])[::-1])
    return np.concatenate(out) if out else np.zeros(0)


@pytest.mark.parametrize("lengths", [
    np.full(500, 10),  # one length: scanned slot by slot
    np.full(3, 10),  # fewer lists than slots: numpy's scan
    np.full(200, COLUMN_SCAN_MAX + 1),  # long lists: numpy's scan
    np.full(40, 1),
    np.array([3, 1, 4, 4, 2, 10, 10, 7]),  # ragged
])
@pytest.mark.parametrize("op", ["cumprod", "cumsum", "exclusive", "revcumsum"])
def test_scans_equal_numpy_accumulate_exactly(lengths, op):
    """The slot-by-slot scan performs numpy's additions and multiplications in numpy's order:
    the same numbers bit for bit (not only to rounding)."""
    rng = np.random.default_rng(int(lengths.sum()))
    x = rng.lognormal(0.0, 1.0, int(lengths.sum()))
    lists = Lists(lengths)
    got = {"cumprod": lambda: lists.cumprod(x), "cumsum": lambda: lists.cumsum(x),
           "exclusive": lambda: lists.cumsum(x, exclusive=True), "revcumsum": lambda: lists.revcumsum(x)}[op]()
    np.testing.assert_array_equal(got, _reference(x, lengths, op))


@pytest.mark.parametrize("lengths", [np.full(300, 10), np.full(300, 2), np.full(3, 10), np.full(100, 17),
                                     np.array([3, 1, 4, 4, 2, 10, 10, 7])])
@pytest.mark.parametrize("big", [False, True])
def test_any_above_flags_exactly_the_repeats(lengths, big):
    """Slot-pair comparisons (short lists of one length), the sort path (others) and a loop agree,
    for values that fit two bytes and values that do not."""
    rng = np.random.default_rng(int(lengths.sum()) + big)
    x = rng.integers(0, 25, int(lengths.sum())) + (2**40 if big else 0)  # small range: many repeats
    lists = Lists(lengths)
    want, lo = [], 0
    for ell in lengths:
        seg = x[lo:lo + ell].tolist()
        lo += ell
        want += [seg[k] in seg[:k] for k in range(ell)]
    got = lists.any_above(x)
    assert got.dtype == bool and got.any()
    np.testing.assert_array_equal(got, np.array(want))
