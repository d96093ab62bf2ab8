"""The bundled demo: ``python -m skbilevel demo``."""

import numpy as np
import pytest

from skbilevel import __main__ as cli
from skbilevel._demo import load_demo_data, ridge_cv_mse, run_demo

METHODS = ["GridSearchCV(Ridge), 50 alphas", "RidgeCV(cv=5), 50 alphas",
           "RidgeCV() (efficient LOO)", "BilevelRidgeCV", "BilevelRidgeCV(alpha_per_feature)"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    path = tmp_path_factory.mktemp("demo") / "demo.png"
    rows = run_demo(plot_path=path)
    return rows, path


def test_run_demo_rows(demo):
    rows, _ = demo
    assert [r["method"] for r in rows] == METHODS
    by_name = {r["method"]: r for r in rows}
    for r in rows:
        assert set(r) == {"method", "n_hyper", "cv_mse", "test_mse", "time"}
        assert np.isfinite(r["cv_mse"]) and r["cv_mse"] > 0
        assert np.isfinite(r["test_mse"]) and r["test_mse"] > 0
        assert r["time"] >= 0
    X_train, _, _, _ = load_demo_data()
    assert by_name["BilevelRidgeCV"]["n_hyper"] == 1
    assert by_name["BilevelRidgeCV(alpha_per_feature)"]["n_hyper"] == X_train.shape[1]
    # hypergradients find the CV optimum that the 50-point grid can only bracket
    assert by_name["BilevelRidgeCV"]["cv_mse"] \
        <= by_name["GridSearchCV(Ridge), 50 alphas"]["cv_mse"] * (1 + 1e-6)
    # both grid searches over the same folds and grid agree
    np.testing.assert_allclose(by_name["RidgeCV(cv=5), 50 alphas"]["cv_mse"],
                               by_name["GridSearchCV(Ridge), 50 alphas"]["cv_mse"], rtol=1e-8)


def test_run_demo_writes_plot(demo):
    pytest.importorskip("matplotlib")
    _, path = demo
    assert path.exists()
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 1000


def test_ridge_cv_mse_matches_reference(ridge_ref):
    X_train, _, y_train, _ = load_demo_data()
    splits = [(np.arange(100, len(y_train)), np.arange(100)),
              (np.arange(100), np.arange(100, len(y_train)))]
    for alpha in (0.1, 10.0, np.linspace(1, 5, X_train.shape[1])):
        np.testing.assert_allclose(ridge_cv_mse(X_train, y_train, alpha, splits),
                                   ridge_ref.cv_value(X_train, y_train, None, alpha, splits),
                                   rtol=1e-10)


def test_cli_demo_without_plot(capsys, tmp_path, monkeypatch):
    """The command line end to end (on the plain 10-feature diabetes data, to keep it
    quick: the full demo already ran once above)."""
    from sklearn.datasets import load_diabetes
    from sklearn.model_selection import train_test_split

    import skbilevel._demo as demo_module
    import skbilevel._demo_sparse as demo_sparse_module

    def small_data(random_state=0):
        X, y = load_diabetes(return_X_y=True)
        return train_test_split(X, y, test_size=0.25, random_state=random_state)

    calls = []
    real_run_demo = demo_module.run_demo

    def spy(**kwargs):
        calls.append(kwargs)
        return real_run_demo(**kwargs)

    monkeypatch.setattr(demo_module, "load_demo_data", small_data)
    monkeypatch.setattr(demo_module, "run_demo", spy)
    monkeypatch.chdir(tmp_path)  # a stray default plot path would land here
    sparse_calls = []
    monkeypatch.setattr(demo_sparse_module, "run_sparse_demo",
                        lambda **kwargs: sparse_calls.append(kwargs))
    assert cli.main(["demo", "--plot", "", "--part", "ridge"]) == 0
    assert calls == [{"plot_path": ""}] and sparse_calls == []
    out = capsys.readouterr().out
    assert "n_features=10" in out
    for name in METHODS:
        assert name in out
    assert "trajectory plot written" not in out
    assert list(tmp_path.iterdir()) == []


def test_cli_demo_parts(monkeypatch):
    """``--part`` picks the halves; the default runs both, ridge first."""
    import skbilevel._demo as demo_module
    import skbilevel._demo_sparse as demo_sparse_module

    calls = []
    monkeypatch.setattr(demo_module, "run_demo", lambda **kw: calls.append("ridge"))
    monkeypatch.setattr(demo_sparse_module, "run_sparse_demo",
                        lambda **kw: calls.append("sparse"))
    assert cli.main(["demo"]) == 0
    assert cli.main(["demo", "--part", "sparse"]) == 0
    assert calls == ["ridge", "sparse", "sparse"]
    with pytest.raises(SystemExit):
        cli.main(["demo", "--part", "lasso"])


def test_cli_requires_a_command(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main([])
    assert exc.value.code == 2
