"""Train: fit the model's estimator on the training rows of its table.

With `split` those are the rows the shared split function does not hold out
(Evaluate scores exactly the others); with `cv` every row.
"""

from __future__ import annotations

from threadpoolctl import threadpool_limits

from . import _modeling as M
from .base import Context, Output


def run(ctx: Context) -> Output:
    with threadpool_limits(M.threads(ctx.node)):
        return _train(ctx)


def _train(ctx: Context) -> Output:
    node = ctx.node
    table = ctx.load("table")
    y = M.labels(table, node.target, node.task)
    X = M.matrix(table, node.features)
    M.check_learnable(X, y, node, M.all_rows(ctx.graph, node, len(y)))
    fit_rows, _ = M.split(y, node.evaluation)
    if len(fit_rows) < len(y):
        M.check_learnable(X[fit_rows], y[fit_rows], node, M.split_rows(node.evaluation, len(fit_rows)),
                          whole=(X, y))
        X, y = X[fit_rows], y[fit_rows]
    model = M.fit(M.estimator(node), X, y, node.name)
    ctx.log(f"fitted {node.estimator} on {len(y):,} rows x {X.shape[1]} features")
    return Output(model, rows=len(y))
