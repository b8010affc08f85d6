"""Sparse matrices across the Rust boundary: scipy CSR <-> the byte buffers of the native
module (``indptr`` int64, ``indices`` int32 ascending within each row, ``data`` float32)."""

from __future__ import annotations

from typing import Any, Tuple

import numpy as np
import scipy.sparse as sp

Buffers = Tuple[bytes, bytes, bytes, int]


def from_native(indptr: bytearray, indices: bytearray, data: bytearray, rows: int, cols: int) -> sp.csr_matrix:
    """A ``csr_matrix`` (float32) over the native buffers (writable numpy views, no copy)."""
    return sp.csr_matrix(
        (
            np.frombuffer(data, dtype="<f4"),
            np.frombuffer(indices, dtype="<i4"),
            np.frombuffer(indptr, dtype="<i8"),
        ),
        shape=(rows, cols),
        copy=False,
    )


def to_csr(x: Any) -> sp.csr_matrix:
    """Any 2-D (or 1-D, as one row) scipy sparse matrix or array, numpy array or torch tensor
    as a float32 CSR matrix with sorted, summed indices."""
    if hasattr(x, "is_sparse") and hasattr(x, "to_dense"):  # torch
        x = x.to_sparse_coo().coalesce()
        idx = x.indices().cpu().numpy()
        val = x.values().cpu().numpy()
        if x.dim() == 1:
            m = sp.csr_matrix((val, (np.zeros_like(idx[0]), idx[0])), shape=(1, x.shape[0]))
        elif x.dim() == 2:
            m = sp.csr_matrix((val, (idx[0], idx[1])), shape=tuple(x.shape))
        else:
            raise ValueError(f"expected a 1-D or 2-D tensor, got {x.dim()} dimensions")
    elif sp.issparse(x):
        m = sp.csr_matrix(x)
    else:
        a = np.asarray(x)
        if a.ndim == 1:
            a = a[None, :]
        if a.ndim != 2:
            raise ValueError(f"expected a 1-D or 2-D array, got {a.ndim} dimensions")
        m = sp.csr_matrix(a)
    if m.dtype != np.float32:
        m = m.astype(np.float32)
    m.sum_duplicates()
    m.sort_indices()
    return m


def to_native(x: Any) -> Buffers:
    """The native buffers of ``to_csr(x)``."""
    m = to_csr(x)
    return (
        np.ascontiguousarray(m.indptr, dtype="<i8").tobytes(),
        np.ascontiguousarray(m.indices, dtype="<i4").tobytes(),
        np.ascontiguousarray(m.data, dtype="<f4").tobytes(),
        m.shape[1],
    )
