"""``Index``: splade-rs's exact sparse inverted index (a directory on disk)."""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _csr
from ._native import NativeIndex

PathLike = Union[str, "os.PathLike[str]"]
Hits = List[List[Tuple[str, float]]]


def _ids(ids: Sequence[Any]) -> List[str]:
    out = []
    for i, x in enumerate(ids):
        if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
            x = str(int(x))
        if not isinstance(x, str):
            raise TypeError(f"id {i} is a {type(x).__name__}, not a str or an int")
        out.append(x)
    return out


class Index:
    """An index directory: exact top-k search identical to a brute-force dot product (ties
    to the earlier document), documents added, replaced and deleted without a rebuild, every
    change an atomic commit. Build one with :meth:`build`, open one with :meth:`open` (the
    ``splade index`` commands read and write the same directories).

    Raises ``OSError`` for files (a missing, damaged or locked index; a folder that is not
    an index) and ``ValueError`` for bad vectors or arguments.
    """

    def __init__(self, native: NativeIndex) -> None:
        self._native = native

    @classmethod
    def build(
        cls,
        path: PathLike,
        vectors: Any,
        ids: Sequence[Any],
        *,
        overwrite: bool = False,
        block_size: Optional[int] = None,
    ) -> "Index":
        """Writes a new index at ``path`` (missing or an empty directory; an existing index
        only with ``overwrite``) from the rows of ``vectors`` (a scipy sparse matrix, numpy
        array or torch tensor; weights finite and ``>= 0``) with external ``ids``, in this
        order. The write is atomic."""
        return cls(
            NativeIndex.build(os.fspath(path), _ids(ids), _csr.to_native(vectors), overwrite, block_size)
        )

    @classmethod
    def open(cls, path: PathLike, *, in_memory: bool = False) -> "Index":
        """Opens the index at ``path``, verifying its checksums and structure. With
        ``in_memory`` the files are read into this process's memory (on transparent huge
        pages where the system allows) instead of memory-mapped: faster searches on a large
        index, for the time to read it; updates reopen it the same way."""
        return cls(NativeIndex.open(os.fspath(path), in_memory))

    def add(self, vectors: Any, ids: Sequence[Any], *, replace: bool = True) -> int:
        """Adds documents in one atomic commit; an id already in the index is replaced (or,
        with ``replace=False``, an error and nothing is added). Returns how many replaced."""
        return self._native.add(_ids(ids), _csr.to_native(vectors), replace)

    def delete(self, ids: Sequence[Any]) -> List[str]:
        """Deletes documents by id in one atomic commit; returns the ids not in the index."""
        return self._native.delete(_ids(ids))

    def optimize(self) -> None:
        """Merges all segments into one, dropping deleted documents."""
        self._native.optimize()

    def _query_matrix(self, queries: Any, encoder: Any) -> Any:
        if isinstance(queries, str) or (
            isinstance(queries, (list, tuple)) and queries and isinstance(queries[0], str)
        ):
            if encoder is None:
                raise ValueError("text queries need encoder=SparseEncoder(...)")
            return encoder.encode_query(queries)
        return queries

    def search_hits(
        self,
        queries: Any,
        k: int = 10,
        approx: Optional[Tuple[float, float]] = None,
        encoder: Any = None,
        threads: Optional[int] = None,
    ) -> Hits:
        """The top ``k`` ``(id, score)`` hits of each query, best first (only scores > 0).

        ``queries``: a sparse matrix / array of query vectors, or texts with ``encoder``
        (encoded with ``encode_query``). ``approx=(alpha, beta)`` runs the approximate
        search (both in (0, 1]); exact otherwise. Queries run in parallel on ``threads``.
        """
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        alpha, beta = approx if approx is not None else (None, None)
        m = self._query_matrix(queries, encoder)
        return self._native.search(_csr.to_native(m), k, alpha, beta, threads)

    def search(
        self,
        queries: Any,
        k: int = 10,
        approx: Optional[Tuple[float, float]] = None,
        encoder: Any = None,
        threads: Optional[int] = None,
    ) -> Tuple[np.ndarray, np.ndarray]:
        """As :meth:`search_hits`, as two arrays of shape ``(queries, k)``: ids (dtype
        object, ``None`` where a query has fewer than ``k`` hits) and float32 scores
        (``nan`` there)."""
        hits = self.search_hits(queries, k, approx, encoder, threads)
        ids = np.full((len(hits), k), None, dtype=object)
        scores = np.full((len(hits), k), np.nan, dtype=np.float32)
        for q, row in enumerate(hits):
            for r, (i, s) in enumerate(row):
                ids[q, r] = i
                scores[q, r] = s
        return ids, scores

    def info(self) -> Dict[str, Any]:
        """Documents, deleted documents, stored entries, dimension and segments."""
        docs, deleted, nnz, dim, segments = self._native.info()
        return {
            "path": os.fspath(self._native.path),
            "documents": docs,
            "deleted": deleted,
            "nnz": nnz,
            "dim": dim,
            "segments": [
                {"id": i, "documents": live, "deleted": d, "block_size": b}
                for i, live, d, b in segments
            ],
        }

    @property
    def dim(self) -> int:
        """The vector dimension."""
        return self._native.dim

    @property
    def path(self) -> str:
        """The index directory."""
        return os.fspath(self._native.path)

    def __len__(self) -> int:
        return len(self._native)

    def __repr__(self) -> str:
        return f"Index({self.path!r}, documents={len(self)}, dim={self.dim})"
