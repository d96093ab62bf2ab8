"""No leaks of internals (issue 13, item 7): torch's warnings about read-only input, and
warnings that point into the package instead of at the user's line."""

from __future__ import annotations

import pathlib
import re
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import cross_val_score

import skbilevel

from .zoo import parametrize, problem


def _read_only(a):
    a = a.copy()
    if sp.issparse(a):
        for part in (a.data, a.indices, a.indptr):
            part.setflags(write=False)
    else:
        a.setflags(write=False)
    return a


@pytest.fixture
def torch_refuses_read_only(monkeypatch):
    """torch warns once per process about a read-only array, so the warning alone cannot
    tell a second offence: make handing torch one an error in every test."""
    for name in ("as_tensor", "from_numpy"):
        original = getattr(torch, name)

        def guarded(data, *args, _original=original, _name=name, **kwargs):
            if isinstance(data, np.ndarray) and not data.flags.writeable:
                raise AssertionError(f"torch.{_name} got a read-only array {data.shape}")
            return _original(data, *args, **kwargs)

        monkeypatch.setattr(torch, name, guarded)


@parametrize()
@pytest.mark.parametrize("container", ["dense", "csr"])
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.filterwarnings("error:The given NumPy array is not writable")
def test_read_only_input_reaches_torch_writable(entry, container, torch_refuses_read_only):
    X, y = problem(entry)
    X = sp.csr_matrix(X) if container == "csr" else X
    weight = np.linspace(0.5, 1.5, len(y))
    X_ro, y_ro, weight_ro = _read_only(X), _read_only(y), _read_only(weight)
    fitted = entry().fit(X_ro, y_ro, sample_weight=weight_ro)
    reference = entry().fit(X.copy(), y.copy(), sample_weight=weight.copy())
    # Same model, and the user's arrays are left read-only and unchanged.
    np.testing.assert_allclose(fitted.coef_, reference.coef_, rtol=1e-10, atol=1e-12)
    assert not weight_ro.flags.writeable
    np.testing.assert_array_equal(weight_ro, weight)
    assert fitted.score(X_ro, y_ro) == pytest.approx(reference.score(X, y), rel=1e-10)


def _convergence_warnings(record):
    found = [w for w in record if issubclass(w.category, ConvergenceWarning)]
    assert found, "max_iter=1 should not converge"
    return found


@parametrize()
def test_convergence_warning_points_at_the_callers_line(entry):
    X, y = problem(entry)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        entry(max_iter=1).fit(X, y)
    for w in _convergence_warnings(record):
        assert w.filename == __file__, \
            f"{entry.name}: warning attributed to {w.filename}:{w.lineno}: {w.message}"


@parametrize()
def test_warning_from_a_cv_tool_points_at_the_callers_line(entry):
    """scikit-learn fitting on the user's behalf: the user's call of the tool."""
    X, y = problem(entry)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        cross_val_score(entry(max_iter=1), X, y, cv=2)
    assert {w.filename for w in _convergence_warnings(record)} == {__file__}


def test_the_package_warns_only_through_its_helper():
    """A plain ``warnings.warn`` with a fixed stacklevel points into the package when it
    is reached through the fit wrappers: every warning goes through ``utils._warnings``."""
    root = pathlib.Path(skbilevel.__file__).parent
    helper = root / "utils" / "_warnings.py"
    direct = [f"{path.relative_to(root)}:{number}"
              for path in sorted(root.rglob("*.py")) if path != helper
              for number, line in enumerate(path.read_text().splitlines(), 1)
              if re.search(r"\bwarnings\.warn\(", line)]
    assert direct == []
