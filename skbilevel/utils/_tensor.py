"""Moving data between numpy / scipy.sparse and torch, and resolving devices and dtypes."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from ..engine import quiet_sparse_beta

_DTYPES = {"float64": torch.float64, "float32": torch.float32}


def resolve_dtype(dtype) -> torch.dtype:
    """Map ``"float64"``, ``"float32"``, numpy or torch float dtypes to a torch dtype."""
    if isinstance(dtype, torch.dtype) and dtype in _DTYPES.values():
        return dtype
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = None
    if name not in _DTYPES:
        raise ValueError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
    return _DTYPES[name]


def resolve_device(device) -> torch.device:
    """Return a torch device, with a clear error when CUDA is asked for but absent."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device must be a torch device string such as 'cpu' or 'cuda', "
                         f"got {device!r}") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was requested but CUDA is not available; "
                         "use device='cpu'")
    return dev


def to_tensor(X, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Convert a numpy array or scipy.sparse matrix to a dense or CSR tensor.

    The tensor may share memory with ``X``; a read-only ``X`` is copied (see ``_shareable``).
    """
    if sp.issparse(X):
        X = sp.csr_matrix(X)
        if not X.has_sorted_indices:  # sorted on a copy: the caller's matrix is left as is
            X = X.sorted_indices()
        # Indices come from a validated scipy CSR matrix: torch's invariant check is redundant.
        with quiet_sparse_beta():
            return torch.sparse_csr_tensor(
                torch.as_tensor(_shareable(X.indptr, np.int64), dtype=torch.int64),
                torch.as_tensor(_shareable(X.indices, np.int64), dtype=torch.int64),
                torch.as_tensor(_shareable(X.data, _NUMPY[dtype])), size=X.shape, dtype=dtype,
                check_invariants=False).to(device)
    return torch.as_tensor(_shareable(np.ascontiguousarray(X), _NUMPY[dtype]), dtype=dtype,
                           device=device)


_NUMPY = {torch.float64: np.float64, torch.float32: np.float32}


def _shareable(a: np.ndarray, dtype) -> np.ndarray:
    """``a``, or a writable C-contiguous copy of it in ``dtype`` when it is read-only.

    torch shares the memory of the arrays it is given and has no read-only tensors: on a
    read-only array (a user's frozen array, joblib's memory-mapped data in a parallel
    search) it warns that writing to the tensor would be undefined. Nothing here writes to
    its inputs, but the warning is torch's internals talking to the user: one copy, made
    straight in the tensor's dtype, silences it at the cost of the data's size.
    """
    return a if a.flags.writeable else np.array(a, dtype=dtype, order="C")


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """Detach a tensor to a float64 numpy array on the host."""
    return t.detach().cpu().double().numpy()
