"""One torch thread while fitting small designs, in the fitting thread only.

The limit must never be process-wide: the main thread, a concurrent thread and threads
started later keep their torch thread count during and after a fit, and joblib workers of
``n_jobs`` share the fitting thread's count instead of each taking the full one.
"""

import threading

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import skbilevel.engine._torch as engine_torch
from skbilevel import BilevelLassoCV, BilevelRidgeCV
from skbilevel.engine import limit_torch_threads
from skbilevel.engine.hypergrad import ImplicitDifferentiation
from skbilevel.utils._threads import SMALL_DESIGN, design_entries, single_threaded_if_small
from tests.contract.zoo import ZOO, parametrize, problem


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


class Recorder:
    """A stand-in estimator whose fit records the thread count it ran with."""

    def __init__(self, inner=None, barrier=None):
        self.seen, self.inner, self.barrier = [], inner, barrier

    @single_threaded_if_small
    def fit(self, X, fail=False):
        self.seen.append(torch.get_num_threads())
        if self.barrier is not None:
            self.barrier.wait(timeout=10)
            self.barrier.wait(timeout=10)  # the others look while this fit is inside
        if self.inner is not None:
            self.inner.fit(X)
        if fail:
            raise RuntimeError("boom")
        return self


def in_new_thread(func):
    out = []
    worker = threading.Thread(target=lambda: out.append(func()))
    worker.start()
    worker.join(timeout=60)
    return out[0]


def test_design_entries():
    assert design_entries(np.zeros((30, 4))) == 120
    assert design_entries(sp.random(100, 50, density=0.1, format="csr", random_state=0)) == 500
    assert design_entries([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]) == 6
    assert design_entries([[1.0, 2.0], [3.0]]) == 0  # ragged: left to fit's validation


def test_limit_is_local_to_the_calling_thread(two_threads):
    with limit_torch_threads(1):
        assert torch.get_num_threads() == 1
        # A thread started inside the block takes the process-wide count, untouched.
        assert in_new_thread(torch.get_num_threads) == 2
        with limit_torch_threads(1):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 1
        with limit_torch_threads(4):  # never raises the count
            assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2


def test_limit_in_a_fresh_thread(two_threads):
    # A thread's first torch call initialises its count from the process-wide default:
    # the limit must come after that initialisation, not be overwritten by it.
    def fresh():
        with limit_torch_threads(1):
            inside = torch.get_num_threads()
            torch.ones(3).sum()
            return inside, torch.get_num_threads()

    assert in_new_thread(fresh) == (1, 1)
    assert torch.get_num_threads() == 2


def test_without_torch_s_openmp_runtime_nothing_changes(two_threads, monkeypatch):
    monkeypatch.setattr(engine_torch, "_RUNTIME", [None])  # as where it is not found
    with limit_torch_threads(1):
        assert torch.get_num_threads() == 2
    assert Recorder().fit(np.zeros((10, 2))).seen == [2]


def test_small_design_runs_single_threaded_and_restores(two_threads):
    rec = Recorder().fit(np.zeros((100, 10)))
    assert rec.seen == [1]
    assert torch.get_num_threads() == 2


def test_large_design_keeps_the_threads(two_threads):
    big = np.broadcast_to(0.0, (SMALL_DESIGN, 1))  # no memory behind it
    assert Recorder().fit(big).seen == [2]
    assert torch.get_num_threads() == 2


def test_restored_after_an_exception(two_threads):
    with pytest.raises(RuntimeError, match="boom"):
        Recorder().fit(np.zeros((10, 2)), fail=True)
    assert torch.get_num_threads() == 2


def test_nested_fits_restore_once(two_threads):
    inner = Recorder()
    outer = Recorder(inner=inner).fit(np.zeros((10, 2)))
    assert outer.seen == [1] and inner.seen == [1]
    assert torch.get_num_threads() == 2


def test_a_fit_leaves_other_threads_alone(two_threads):
    # While a fit in one thread is inside (between the two barrier waits), the main thread,
    # a concurrent thread and a thread started then all keep two threads.
    barrier = threading.Barrier(2)
    rec = Recorder(barrier=barrier)
    fitting = threading.Thread(target=rec.fit, args=(np.zeros((10, 2)),))
    fitting.start()
    barrier.wait(timeout=10)
    during = [torch.get_num_threads(), in_new_thread(torch.get_num_threads)]
    barrier.wait(timeout=10)
    fitting.join(timeout=20)
    assert rec.seen == [1]
    assert during == [2, 2]
    assert torch.get_num_threads() == 2
    assert in_new_thread(torch.get_num_threads) == 2


@parametrize(ZOO)
def test_estimator_fit_changes_no_other_thread(entry, two_threads):
    """Every estimator: a small fit in a worker thread leaves the main thread, and threads
    started during the fit (which read the process-wide default), at 2 threads."""
    X, y = problem(entry)
    done, seen = threading.Event(), []

    def fit():
        try:
            entry().fit(X, y)
        finally:
            done.set()

    fitting = threading.Thread(target=fit)
    fitting.start()
    while not done.wait(0.002):
        seen.append((torch.get_num_threads(), in_new_thread(torch.get_num_threads)))
    fitting.join(timeout=60)
    assert seen and set(seen) == {(2, 2)}
    assert torch.get_num_threads() == 2
    assert in_new_thread(torch.get_num_threads) == 2


def test_estimator_tunes_small_data_on_one_thread(two_threads, monkeypatch):
    seen = []
    real = ImplicitDifferentiation.compute

    def spy(self, *args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(self, *args, **kwargs)

    monkeypatch.setattr(ImplicitDifferentiation, "compute", spy)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 5))
    BilevelRidgeCV(cv=3).fit(X, X[:, 0] + 0.1 * rng.standard_normal(60))
    assert seen and set(seen) == {1}
    assert torch.get_num_threads() == 2


@pytest.mark.parametrize("n_rows", [60, SMALL_DESIGN // 4])
def test_n_jobs_workers_share_the_fitting_threads(n_rows, two_threads, monkeypatch):
    """joblib's threads for n_jobs=2 divide the fitting thread's count between them: one
    each on a small design (the fit's one thread) and on a large one (two threads / two
    workers), never the process-wide two each."""
    seen = []
    real = ImplicitDifferentiation.compute

    def spy(self, *args, **kwargs):
        seen.append((threading.get_ident(), torch.get_num_threads()))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(ImplicitDifferentiation, "compute", spy)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n_rows, 4))
    BilevelRidgeCV(cv=2, n_jobs=2).fit(X, X[:, 0] + 0.1 * rng.standard_normal(n_rows))
    workers = {ident for ident, _ in seen} - {threading.get_ident()}
    assert workers  # the folds did run in joblib's threads
    assert {count for _, count in seen} == {1}
    assert torch.get_num_threads() == 2


def test_lasso_restores_after_a_failed_fit(two_threads):
    with pytest.raises(ValueError):
        BilevelLassoCV(cv=3).fit(np.zeros((10, 2)), np.zeros(9))
    assert torch.get_num_threads() == 2
