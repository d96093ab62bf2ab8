"""The contract's estimator table is complete and each entry fits its small problem."""

import numpy as np

from .zoo import ZOO, parametrize, problem, test_zoo_lists_every_public_estimator  # noqa: F401


@parametrize()
def test_entry_fits_its_problem(entry):
    X, y = problem(entry)
    model = entry().fit(X, y)
    assert np.isfinite(model.coef_).all()
    assert model.score(X, y) > (0.7 if entry.classifier else 0.5)
