"""One torch thread while fitting small designs, the caller's count restored afterwards."""

import threading

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import skbilevel._proximal_cv as proximal_cv
from skbilevel import BilevelLassoCV
from skbilevel.utils._threads import SMALL_DESIGN, design_entries, single_threaded_if_small


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
        if self.inner is not None:
            self.inner.fit(X)
        if fail:
            raise RuntimeError("boom")
        return self


def test_design_entries():
    assert design_entries(np.zeros((30, 4))) == 120
    assert design_entries(sp.random(100, 50, density=0.1, format="csr", random_state=0)) == 500
    assert design_entries([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]) == 6
    assert design_entries([[1.0, 2.0], [3.0]]) == 0  # ragged: left to fit's validation


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


def test_concurrent_fits_leave_the_count_restored(two_threads):
    # Both fits are inside at once (the barrier); whichever leaves last restores 2, not the
    # 1 that the second one would have saved without the shared depth count.
    barrier = threading.Barrier(2)
    recs = [Recorder(barrier=barrier) for _ in range(2)]
    workers = [threading.Thread(target=r.fit, args=(np.zeros((10, 2)),)) for r in recs]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=20)
    assert [r.seen for r in recs] == [[1], [1]]
    assert torch.get_num_threads() == 2


def test_estimator_tunes_small_data_on_one_thread(two_threads, monkeypatch):
    seen = []
    real = proximal_cv.minimize_hyperparams

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(proximal_cv, "minimize_hyperparams", spy)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 5))
    BilevelLassoCV(cv=3).fit(X, X[:, 0] + 0.1 * rng.standard_normal(60))
    assert seen == [1]
    assert torch.get_num_threads() == 2
