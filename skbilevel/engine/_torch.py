"""Small torch helpers shared by the engine's layers."""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
import warnings

import torch


@contextlib.contextmanager
def quiet_sparse_beta():
    """Silence torch's "sparse CSR support is in beta" notice, which users cannot act on."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        yield


_RUNTIME = []  # [(omp_get_max_threads, omp_set_num_threads, MKL setter or None) or None]


def _thread_runtime():
    """The setters of torch's own OpenMP runtime and MKL, or None where they are not found.

    ``torch.set_num_threads`` cannot scope a limit: besides the calling thread's OpenMP and
    MKL counts it stores a process-wide default, which every thread that starts using torch
    later (another fit's thread, a joblib worker) adopts. ``omp_set_num_threads`` and
    ``MKL_Set_Num_Threads_Local`` change only the calling thread's counts. They are looked
    up through ``libtorch_cpu``'s handle, which resolves ``omp_*`` in its own dependencies,
    so the runtime is the one torch is linked to, not another OpenMP loaded by numpy or
    scikit-learn. Not found (a build without OpenMP, a platform where the handle does not
    search dependencies): None, and limits change nothing.
    """
    if not _RUNTIME:
        _RUNTIME.append(_find_runtime())
    return _RUNTIME[0]


def _find_runtime():
    lib_dir = os.path.join(os.path.dirname(torch.__file__), "lib")
    for path in sorted(glob.glob(os.path.join(lib_dir, "*torch_cpu.*"))):
        try:
            lib = ctypes.CDLL(path)
            omp_get, omp_set = lib.omp_get_max_threads, lib.omp_set_num_threads
        except (OSError, AttributeError):
            continue
        omp_get.argtypes, omp_get.restype = [], ctypes.c_int
        omp_set.argtypes, omp_set.restype = [ctypes.c_int], None
        mkl_set = getattr(lib, "MKL_Set_Num_Threads_Local", None)  # MKL builds only
        if mkl_set is not None:
            mkl_set.argtypes, mkl_set.restype = [ctypes.c_int], ctypes.c_int
        return omp_get, omp_set, mkl_set
    return None


@contextlib.contextmanager
def limit_torch_threads(n_threads):
    """Run the block with at most ``n_threads`` torch CPU threads, in the calling thread only.

    Other threads, those started inside the block included, and the process-wide default
    of :func:`torch.set_num_threads` are left alone; the calling thread's counts are
    restored on exit, exceptions included. Nests. ``None``, a limit at or above the current
    count, or a torch whose OpenMP runtime is not found: nothing changes.
    """
    # Reading the count first also runs torch's per-thread initialisation, which would
    # otherwise overwrite the limit at the thread's first torch operation.
    before = torch.get_num_threads()
    runtime = _thread_runtime()
    if n_threads is None or n_threads >= before or runtime is None:
        yield
        return
    omp_get, omp_set, mkl_set = runtime
    saved = omp_get(), None if mkl_set is None else mkl_set(int(n_threads))
    omp_set(int(n_threads))

    def restore():
        omp_set(saved[0])
        if mkl_set is not None:
            mkl_set(saved[1])  # the previous thread-local count, 0 when there was none

    if torch.get_num_threads() != n_threads:  # not torch's runtime after all: never again
        restore()
        _RUNTIME[0] = None
        yield
        return
    try:
        yield
    finally:
        restore()
