"""``verbose`` is progress: a header before any evaluation, one line per evaluation as it
is made (the screening grid's included) with the elapsed time, the CV criterion and the
hyperparameters in the user's units, then a final line."""

from __future__ import annotations

import re

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.exceptions import ConvergenceWarning

from .zoo import CV_ZOO, ZOO, parametrize, problem

EVAL = re.compile(r"^\[(\w+)\] eval +(\d+) +(grid|optimize)  t=([\d.]+)s  cv=(\S+)"
                  r"(?:  holdout=\S+)?  (.*?)(?:  \|grad\|=.*)?$")
USER_NAMES = ("alpha", "l1_ratio", "C")  # the hyperparameters as history_ names them
PER_FEATURE = {"BilevelRidgeCV": "alpha_per_feature", "BilevelLassoCV": "alpha_per_feature",
               "BilevelLogisticRegressionCV": "C_per_feature"}


def _params(text):
    """``"alpha=0.5, l1_ratio=0.9"`` -> {name: value}; a min/median/max triple as a tuple."""
    out = {}
    for part in text.split(", "):
        name, value = part.split("=")
        if name.endswith(" min/median/max"):
            out[name.split()[0]] = tuple(float(v) for v in value.split("/"))
        else:
            out[name] = float(value)
    return out


def _fit(entry, capsys, **params):
    X, y = problem(entry)
    est = entry(**params).fit(X, y)
    return est, capsys.readouterr().out.splitlines()


def _check_evaluations(est, lines):
    """Every history_ entry has its line, in order, with the same values."""
    name = type(est).__name__
    assert all(line.startswith(f"[{name}] ") for line in lines)
    evals = [EVAL.match(line) for line in lines]
    first = next(i for i, m in enumerate(evals) if m)
    evals = [m for m in evals if m]
    history = est.history_
    n = len(history["objective"])
    assert len(evals) == n  # one line per evaluation, the grid's included
    assert [int(m[2]) for m in evals] == list(range(1, n + 1))
    assert [m[3] for m in evals] == list(history["phase"])
    times = [float(m[4]) for m in evals]
    assert times == sorted(times)  # seconds since fit began, across stages
    assert_allclose([float(m[5]) for m in evals], history["objective"], rtol=1e-5)
    names = [key for key in USER_NAMES if key in history]
    for k, m in enumerate(evals):
        printed = _params(m[6])
        assert list(printed) == names
        for key, value in printed.items():
            row = np.ravel(history[key][k])
            expected = (row.min(), np.median(row), row.max()) if isinstance(value, tuple) \
                else row[0]
            # A shared stage of a per-feature fit prints one value: history_ broadcasts it.
            assert isinstance(value, tuple) or np.ptp(row) == 0
            assert_allclose(value, expected, rtol=1e-3)
    return lines[:first], lines[first + n:], times


@parametrize()
def test_verbose_0_prints_nothing(entry, capsys):
    _fit(entry, capsys, verbose=0)
    assert capsys.readouterr().out == ""


@parametrize(CV_ZOO)
def test_verbose_1_header_then_one_line_per_evaluation(entry, capsys):
    est, lines = _fit(entry, capsys, verbose=1)
    before, after, times = _check_evaluations(est, lines)
    # The header (data, folds, hyperparameters) and the grid's range come first.
    assert re.search(r"fit on 90 samples x 6 features: \d+ CV folds, \d+ hyperparameters? "
                     r"\(", before[0])
    assert "grid" in before[-1] and " in [" in before[-1]
    # The final line: the chosen values, the total time, n_iter_.
    assert len(after) == 1 and "done in" in after[0]
    total = float(re.search(r"done in ([\d.]+)s", after[0])[1])
    assert total >= times[-1]
    chosen = _params(after[0].split(": ", 1)[1].split(", cv=")[0])
    for key, value in chosen.items():
        assert_allclose(value, getattr(est, key + "_"), rtol=1e-3)
    assert f"cv={est.best_cv_error_:.6g}" in after[0]
    assert f"best_score_={est.best_score_:.6g}" in after[0]
    assert f"n_iter={est.n_iter_}" in after[0]
    assert "|grad|=" not in "".join(lines)


@parametrize(CV_ZOO)
def test_verbose_2_adds_the_hypergradient_and_iterations(entry, capsys):
    est, lines = _fit(entry, capsys, verbose=2)
    _check_evaluations(est, lines)
    evals = [line for line in lines if EVAL.match(line)]
    assert all("|grad|=" in line and "inner=" in line for line in evals)


def test_logistic_tuner_prints_C_not_its_log_penalty(capsys):
    # theta is -log C: the line must show C, 1 / exp(theta), not exp(theta).
    entry = next(e for e in ZOO if e.name == "BilevelLogisticRegressionCV")
    est, lines = _fit(entry, capsys, verbose=1)
    printed = [_params(m[6])["C"] for m in map(EVAL.match, lines) if m]
    assert_allclose(printed, np.exp(-est.history_["theta"][:, 0]), rtol=1e-3)
    assert "alpha" not in "".join(lines)


def test_elastic_net_prints_l1_ratio_not_its_odds(capsys):
    entry = next(e for e in ZOO if e.name == "BilevelElasticNetCV")
    est, lines = _fit(entry, capsys, verbose=1)
    printed = [_params(m[6])["l1_ratio"] for m in map(EVAL.match, lines) if m]
    assert_allclose(printed, 1 / (1 + np.exp(-est.history_["theta"][:, 1])), rtol=1e-3)
    assert max(printed) < 1
    grid = next(line for line in lines if "screening grid" in line)
    assert "l1_ratio in [0.1, 0.99]" in grid


@pytest.mark.parametrize("name", sorted(PER_FEATURE))
def test_per_feature_lines_summarise_the_penalties(name, capsys):
    entry = next(e for e in ZOO if e.name == name)
    est, lines = _fit(entry, capsys, verbose=1, **{PER_FEATURE[name]: True})
    _check_evaluations(est, lines)
    assert any("min/median/max=" in line for line in lines if EVAL.match(line))
    assert any("per-feature starting points" in line for line in lines)


def test_hdm_reports_with_elapsed_time(capsys):
    entry = next(e for e in ZOO if e.name == "HDMLogisticRegression")
    X, y = problem(entry)
    with pytest.warns(ConvergenceWarning):  # tol=0: runs its budget, a line per 100
        est = entry(verbose=1, tol=0.0, max_iter=250).fit(X, y)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("[HDMLogisticRegression] fit on 90 samples x 6 features")
    evals = [re.match(r".* eval +(\d+)  t=([\d.]+)s  f=(\S+)", line) for line in lines[1:-1]]
    assert all(evals)
    ks = [int(m[1]) for m in evals]
    # Quick feedback, then a steady cadence: 1, 2, 5, 10, 20, 50 and every 100th. The
    # default start samples the smoothness with 3 gradient evaluations (2-4) before the
    # first step, so the first line comes at evaluation 5.
    assert ks == [5, 10, 20, 50, 100, 200]
    times = [float(m[2]) for m in evals]
    assert times == sorted(times)
    # history_ records the evaluations of the iterations, not the 3 smoothness samples.
    assert_allclose([float(m[3]) for m in evals],
                    est.history_["objective"][np.array(ks) - 1 - 3], rtol=1e-7)
    assert "done in" in lines[-1] and f"n_iter={est.n_iter_[0]}" in lines[-1]
    with pytest.warns(ConvergenceWarning):  # the power iteration's start: from evaluation 1
        entry(verbose=1, tol=0.0, max_iter=250, smoothness="power").fit(X, y)
    power = capsys.readouterr().out.splitlines()[1:-1]
    assert [int(re.match(r".* eval +(\d+)", line)[1]) for line in power] == \
        [1, 2, 5, 10, 20, 50, 100, 200]
    with pytest.warns(ConvergenceWarning):
        entry(verbose=2, tol=0.0, max_iter=30).fit(X, y)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 + 30 - 3  # every evaluation but the 3 smoothness samples


class _Recording:
    """A scikit-learn callback (the FitCallback protocol) that records its hooks."""

    def __init__(self):
        self.calls = []

    def setup(self, estimator, context):
        self.calls.append(("setup", None))

    def teardown(self, estimator, context):
        self.calls.append(("teardown", None))

    def on_fit_task_begin(self, estimator, context, *, X=None, fitted_estimator=None):
        self.calls.append(("begin", context.task_name, X is not None))

    def on_fit_task_end(self, estimator, context, *, X=None, fitted_estimator=None):
        self.calls.append(("end", context.task_name, fitted_estimator))


@parametrize()
def test_sklearn_callbacks_see_the_fit_and_every_evaluation(entry):
    pytest.importorskip("sklearn.callback")  # scikit-learn >= 1.9
    X, y = problem(entry)
    callback = _Recording()
    est = entry().set_callbacks(callback).fit(X, y)
    calls = callback.calls
    assert calls[0] == ("setup", None) and calls[-1] == ("teardown", None)
    assert calls[1] == ("begin", "fit", True)  # the root task, on the training data
    assert calls[-2][:2] == ("end", "fit")
    fitted = calls[-2][2]  # a copy of the fitted estimator, ready to predict
    np.testing.assert_array_equal(fitted.predict(X), est.predict(X))
    subtasks = calls[2:-2]
    n = len(est.history_["objective"])  # per evaluation; for HDM, per iteration
    assert len(subtasks) == 2 * n
    assert all(c[0] == ("begin", "end")[i % 2] for i, c in enumerate(subtasks))
    if entry.cv:
        phases = [c[1] for c in subtasks[::2]]
        assert phases == [f"{p} evaluation" for p in est.history_["phase"]]


def test_progress_bar_runs_on_every_estimator():
    pytest.importorskip("sklearn.callback")
    pytest.importorskip("rich")  # ProgressBar renders with rich
    from sklearn.callback import ProgressBar

    for entry in ZOO:
        X, y = problem(entry)
        entry().set_callbacks(ProgressBar()).fit(X, y)
