"""The join's pair ordering: the no-sort fast path (pairs already in order, as Arrow's
single-threaded join gives them) and the sort it falls back to must agree."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from pipespec.runtime.ops import transform

NL, NR = 6, 4
# (left row, right row) pairs in the required order; None: no row on that side
PAIRS = [(0, 1), (0, 3), (1, None), (2, 0), (2, 2), (3, 1), (4, None), (5, 0), (None, None)]


def _order(pairs, right_first=False):
    li = pa.chunked_array([pa.array([p[0] for p in pairs], pa.int64())])
    ri = pa.chunked_array([pa.array([p[1] for p in pairs], pa.int64())])
    order, lrows, rrows = transform._pair_order(li, ri, NL, NR, right_first)
    idx = np.arange(len(pairs)) if order is None else np.asarray(order)
    taken = [pairs[i] for i in idx]
    left = list(range(len(pairs))) if lrows is None else lrows.to_pylist()
    right = list(range(len(pairs))) if rrows is None else rrows.to_pylist()
    return taken, left, right


@pytest.mark.parametrize("seed", range(5))
def test_shuffled_pairs_are_sorted_like_ordered_ones(seed):
    pairs = PAIRS[:-1]  # full pairs only: one null per side at most
    shuffled = [pairs[i] for i in np.random.default_rng(seed).permutation(len(pairs))]
    assert _order(shuffled) == _order(pairs)
    assert _order(shuffled)[0] == pairs


def test_right_first_orders_by_the_right_row_then_the_left():
    pairs = [(0, 1), (2, 0), (1, 0), (3, None)]
    taken, _, _ = _order(pairs, right_first=True)
    assert taken == [(1, 0), (2, 0), (0, 1), (3, None)]


def test_pairs_in_order_need_no_reordering():
    pairs = [(0, 2), (1, 0), (2, 1), (3, 3), (4, 0), (5, 1)]
    li = pa.chunked_array([pa.array([p[0] for p in pairs], pa.int64())])
    ri = pa.chunked_array([pa.array([p[1] for p in pairs], pa.int64())])
    order, lrows, rrows = transform._pair_order(li, ri, NL, NR, False)
    assert order is None and lrows is None and rrows.to_pylist() == [2, 0, 1, 3, 0, 1]


@pytest.mark.parametrize("idx, n, identity", [
    ([0, 1, 2], 3, True), ([], 0, True), ([0, 2, 1], 3, False), ([0, 0, 2], 3, False),
    ([0, 1], 3, False), ([0, 1, 3], 3, False), ([1, 2, 3], 3, False),
])
def test_identity_check(idx, n, identity):
    assert transform._is_identity(np.array(idx, dtype=np.int64), n) is identity
