"""Small torch helpers shared by the engine's layers."""

from __future__ import annotations

import contextlib
import warnings


@contextlib.contextmanager
def quiet_sparse_beta():
    """Silence torch's "sparse CSR support is in beta" notice, which users cannot act on."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        yield
