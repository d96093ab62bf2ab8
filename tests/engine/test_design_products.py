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
