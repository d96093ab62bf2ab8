"""LinearDesign's products with a few columns at once (folds, classes, Krylov blocks)."""

import numpy as np
import pytest
import torch

from skbilevel.engine.inner import LinearDesign


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("k", [1, 2, 5])
@pytest.mark.parametrize("offset", [False, True])
def test_products_with_several_columns_equal_numpy(dtype, k, offset):
    rng = np.random.default_rng(k)
    X = rng.standard_normal((500, 300))  # 150,000 entries: the few-column path
    mu = rng.standard_normal(300) if offset else np.zeros(300)
    design = LinearDesign(torch.as_tensor(X, dtype=dtype),
                          torch.as_tensor(mu, dtype=dtype) if offset else None)
    V, U = rng.standard_normal((300, k)), rng.standard_normal((500, k))
    tol = dict(rtol=1e-10, atol=1e-10) if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-3)
    Xc = X - mu
    np.testing.assert_allclose(design.matvec(torch.as_tensor(V, dtype=dtype)).numpy(), Xc @ V,
                               **tol)
    np.testing.assert_allclose(design.rmatvec(torch.as_tensor(U, dtype=dtype)).numpy(),
                               Xc.T @ U, **tol)


def test_products_keep_autograd():
    rng = np.random.default_rng(0)
    X = torch.as_tensor(rng.standard_normal((500, 300)))
    design = LinearDesign(X)
    U = torch.as_tensor(rng.standard_normal((500, 3)), dtype=torch.float64).requires_grad_()
    V = torch.as_tensor(rng.standard_normal((300, 3)), dtype=torch.float64).requires_grad_()
    (design.rmatvec(U) ** 2).sum().backward()
    (design.matvec(V) ** 2).sum().backward()
    torch.testing.assert_close(U.grad, 2 * X @ (X.T @ U.detach()))
    torch.testing.assert_close(V.grad, 2 * X.T @ (X @ V.detach()))


@pytest.mark.parametrize("k", [1, 5])
def test_low_precision_products_run_in_float32_and_return_float64(k):
    rng = np.random.default_rng(k)
    X = rng.standard_normal((500, 300))
    design = LinearDesign(torch.as_tensor(X))
    V, U = torch.as_tensor(rng.standard_normal((300, k))), \
        torch.as_tensor(rng.standard_normal((500, k)))
    X32 = X.astype(np.float32)
    with design.low_precision():
        with design.low_precision():  # nested blocks restore the outer one's setting
            pass
        assert design.in_low_precision
        forward, backward = design.matvec(V), design.rmatvec(U)
    assert not design.in_low_precision
    assert forward.dtype == backward.dtype == torch.float64
    # float32 products: within float32's rounding of the exact ones, and not them.
    for low, exact, low_ref in ((forward, X @ V.numpy(), X32 @ V.numpy().astype(np.float32)),
                                (backward, X.T @ U.numpy(),
                                 X32.T @ U.numpy().astype(np.float32))):
        np.testing.assert_allclose(low.numpy(), low_ref, rtol=1e-5, atol=1e-4)
        scale = np.abs(exact).max()
        assert 0 < np.abs(low.numpy() - exact).max() < 1e-5 * scale
    # Outside the block the products are exact again (the float32 copy is kept).
    np.testing.assert_allclose(design.matvec(V).numpy(), X @ V.numpy(), rtol=1e-10, atol=1e-10)
    assert design._X32 is not None and design._X32.dtype == torch.float32


def test_low_precision_leaves_float32_and_sparse_designs_as_they_are():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 50))
    X[X < 1] = 0
    V = rng.standard_normal((50, 2))
    for tensor, v in ((torch.as_tensor(X, dtype=torch.float32), V.astype(np.float32)),
                      (torch.as_tensor(X).to_sparse_csr(), V)):
        design = LinearDesign(tensor)
        exact = design.matvec(torch.as_tensor(v))
        with design.low_precision():
            torch.testing.assert_close(design.matvec(torch.as_tensor(v)), exact,
                                       rtol=0, atol=0)
        assert design._X32 is None
