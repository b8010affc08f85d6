"""``SparseEncoder``: sentence-transformers' SparseEncoder API over splade-rs's Rust encoder."""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import scipy.sparse as sp

from . import _csr
from ._native import DEFAULT_MODEL, NativeEncoder, intersection as _intersection
from ._native import similarity as _similarity

Texts = Union[str, Sequence[str]]
_SIMILARITIES = ("dot", "cosine", "euclidean", "manhattan")


def _texts(sentences: Texts) -> Tuple[List[str], bool]:
    """The texts as a list, and whether a single string was given."""
    if isinstance(sentences, str):
        return [sentences], True
    texts = list(sentences)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"text {i} is a {type(t).__name__}, not a str")
    return texts, False


class SparseEncoder:
    """A SPLADE model, loaded and run by splade-rs, with sentence-transformers' names.

    Args:
        model_name_or_path: a model folder (sentence-transformers SparseEncoder layouts or a
            plain ``*ForMaskedLM`` folder), a Hugging Face Hub id, or ``"splade-tiny"`` (the
            default model, fetched once as the ``splade`` command does).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (a GPU needs a build with
            the ``cuda`` feature).
        max_active_dims: keep only this many of the largest weights of every vector (an
            ``encode`` argument overrides it).
        threads: worker threads for the Rust kernels. Sets ``RAYON_NUM_THREADS`` before the
            first model of the process loads (the pool is created once per process).
        quantize: ``None`` or ``"none"`` (f32, parity with sentence-transformers) or ``"int8"``:
            int8 weights per output channel with dynamic per-token activations for the
            transformer's linear layers (CPU; faster, with the quality cost measured in
            BENCHMARKS.md). sentence-transformers' nearest equivalent is ``backend="onnx"``
            with a ``model_qint8_*.onnx`` file from ``export_dynamic_quantized_onnx_model``.

    Raises:
        OSError: the model folder or a file in it cannot be read or fetched.
        ValueError: the folder holds something splade-rs cannot run.
    """

    def __init__(
        self,
        model_name_or_path: str = DEFAULT_MODEL,
        device: str = "cpu",
        max_active_dims: Optional[int] = None,
        threads: Optional[int] = None,
        quantize: Optional[str] = None,
    ) -> None:
        if threads is not None:
            if threads < 1:
                raise ValueError(f"threads must be at least 1, got {threads}")
            os.environ["RAYON_NUM_THREADS"] = str(threads)
        self._native = NativeEncoder(str(model_name_or_path), device, quantize)
        # As sentence-transformers: the model's saved default (a CSR model: its k) unless given.
        self.max_active_dims = (
            max_active_dims if max_active_dims is not None else self._native.default_max_active_dims
        )
        self._similarity_fn_name: str = self._native.similarity_fn_name

    # ---- encoding -----------------------------------------------------------------------

    def _encode(
        self,
        kind: str,
        sentences: Texts,
        prompt_name: Optional[str],
        prompt: Optional[str],
        batch_size: int,
        show_progress_bar: Optional[bool],
        convert_to_sparse_tensor: bool,
        max_active_dims: Optional[int],
    ) -> Any:
        texts, single = _texts(sentences)
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        k = max_active_dims if max_active_dims is not None else self.max_active_dims
        parts = self._native.encode(
            texts, kind, batch_size, prompt_name, prompt, k, bool(show_progress_bar)
        )
        matrix = _csr.from_native(*parts)
        if convert_to_sparse_tensor:
            return _to_torch(matrix, single)
        return matrix

    def encode(
        self,
        sentences: Texts,
        prompt_name: Optional[str] = None,
        prompt: Optional[str] = None,
        batch_size: int = 32,
        show_progress_bar: Optional[bool] = None,
        convert_to_sparse_tensor: bool = False,
        max_active_dims: Optional[int] = None,
        **unused: Any,
    ) -> Any:
        """Encodes texts without a default prompt (``prompt_name`` or ``prompt`` add one).

        Returns a ``scipy.sparse.csr_matrix`` of shape ``(len(sentences), vocab)``
        (float32, one row per text, in input order; a single string gives one row), or with
        ``convert_to_sparse_tensor=True`` a torch sparse COO tensor shaped as
        sentence-transformers returns it (``(vocab,)`` for a single string). Texts longer
        than ``max_seq_length`` tokens are truncated.
        """
        _reject(unused)
        return self._encode(
            "plain", sentences, prompt_name, prompt, batch_size, show_progress_bar,
            convert_to_sparse_tensor, max_active_dims,
        )

    def encode_query(
        self,
        sentences: Texts,
        prompt_name: Optional[str] = None,
        prompt: Optional[str] = None,
        batch_size: int = 32,
        show_progress_bar: Optional[bool] = None,
        convert_to_sparse_tensor: bool = False,
        max_active_dims: Optional[int] = None,
        **unused: Any,
    ) -> Any:
        """Encodes queries: the model's ``query`` prompt unless another is given (see
        :meth:`encode` for the result)."""
        _reject(unused)
        return self._encode(
            "query", sentences, prompt_name, prompt, batch_size, show_progress_bar,
            convert_to_sparse_tensor, max_active_dims,
        )

    def encode_document(
        self,
        sentences: Texts,
        prompt_name: Optional[str] = None,
        prompt: Optional[str] = None,
        batch_size: int = 32,
        show_progress_bar: Optional[bool] = None,
        convert_to_sparse_tensor: bool = False,
        max_active_dims: Optional[int] = None,
        **unused: Any,
    ) -> Any:
        """Encodes documents: the model's ``document`` (or ``passage``, ``corpus``) prompt
        unless another is given (see :meth:`encode` for the result)."""
        _reject(unused)
        return self._encode(
            "document", sentences, prompt_name, prompt, batch_size, show_progress_bar,
            convert_to_sparse_tensor, max_active_dims,
        )

    # ---- scoring and inspection ----------------------------------------------------------

    @property
    def similarity_fn_name(self) -> str:
        """The similarity function (``dot``, ``cosine``, ``euclidean``, ``manhattan``)."""
        return self._similarity_fn_name

    @similarity_fn_name.setter
    def similarity_fn_name(self, name: str) -> None:
        if name not in _SIMILARITIES:
            raise ValueError(f"unknown similarity function {name!r} (one of {_SIMILARITIES})")
        self._similarity_fn_name = name

    def similarity(self, embeddings1: Any, embeddings2: Any) -> np.ndarray:
        """Every row of ``embeddings1`` against every row of ``embeddings2`` with the
        model's similarity function (distances negated, as sentence-transformers does):
        a float32 array of shape ``(n1, n2)``."""
        a, b = _csr.to_csr(embeddings1), _csr.to_csr(embeddings2)
        raw = _similarity(_buffers(a), _buffers(b), self._similarity_fn_name, False)
        return np.frombuffer(raw, dtype="<f4").reshape(a.shape[0], b.shape[0]).copy()

    def similarity_pairwise(self, embeddings1: Any, embeddings2: Any) -> np.ndarray:
        """Row ``i`` of ``embeddings1`` against row ``i`` of ``embeddings2``: float32,
        shape ``(n,)``."""
        a, b = _csr.to_csr(embeddings1), _csr.to_csr(embeddings2)
        raw = _similarity(_buffers(a), _buffers(b), self._similarity_fn_name, True)
        return np.frombuffer(raw, dtype="<f4").copy()

    def decode(self, embeddings: Any, top_k: Optional[int] = None) -> Any:
        """The heaviest ``(token, weight)`` pairs of a vector, heaviest first (all when
        ``top_k`` is None): a list for one vector (a 1-D input or a one-row matrix from a
        single string), a list of lists for a matrix of several rows."""
        one_dim = getattr(embeddings, "ndim", 2) == 1 or (
            hasattr(embeddings, "dim") and callable(embeddings.dim) and embeddings.dim() == 1
        )
        m = _csr.to_csr(embeddings)
        rows = self._native.decode(*_buffers(m), top_k)
        return rows[0] if one_dim else rows

    @staticmethod
    def intersection(embeddings1: Any, embeddings2: Any) -> sp.csr_matrix:
        """The element-wise product of two vectors (one row each): which terms match and
        how much each adds to their dot product, as a one-row ``csr_matrix``."""
        a, b = _csr.to_csr(embeddings1), _csr.to_csr(embeddings2)
        if a.shape[0] != 1 or b.shape[0] != 1:
            raise ValueError(
                f"intersection takes one vector on each side, got {a.shape[0]} and {b.shape[0]} rows"
            )
        indices, values = _intersection(_buffers(a), _buffers(b))
        return sp.csr_matrix(
            (np.asarray(values, dtype=np.float32), np.asarray(indices, dtype=np.int32),
             np.array([0, len(indices)], dtype=np.int64)),
            shape=(1, a.shape[1]),
        )

    @staticmethod
    def sparsity(embeddings: Any) -> Dict[str, float]:
        """``{"active_dims": mean non-zero dimensions per row, "sparsity_ratio": 1 -
        active_dims / vocab}``."""
        m = _csr.to_csr(embeddings)
        m.eliminate_zeros()
        rows, cols = m.shape
        active = float(m.nnz) / rows if rows else 0.0
        return {"active_dims": active, "sparsity_ratio": 1.0 - active / cols if cols else 1.0}

    @property
    def max_seq_length(self) -> int:
        """Tokens per text (special tokens included); longer texts are truncated."""
        return self._native.max_seq_length

    def get_sentence_embedding_dimension(self) -> int:
        """The vectors' dimension: the vocabulary size (a CSR model: its ``hidden_dim``
        latents)."""
        return self._native.dim

    def get_embedding_dimension(self) -> int:
        """sentence-transformers 6's name of :meth:`get_sentence_embedding_dimension`."""
        return self._native.dim

    @property
    def is_csr(self) -> bool:
        """Whether this is a CSR model (``Transformer`` + ``Pooling`` + ``SparseAutoEncoder``):
        its dimensions are autoencoder latents, which :meth:`decode` names ``dimension N``."""
        return self._native.is_csr

    @property
    def prompts(self) -> Dict[str, str]:
        """The model's named prompts; ``query`` and ``document`` are always present (empty
        when the model has none), as in sentence-transformers."""
        prompts = {"query": "", "document": ""}
        prompts.update(dict(self._native.prompts))
        return prompts

    def __repr__(self) -> str:
        return (
            f"SparseEncoder({self._native.folder!r}, max_seq_length={self.max_seq_length}, "
            f"similarity_fn_name={self._similarity_fn_name!r})"
        )


def _buffers(m: sp.csr_matrix) -> _csr.Buffers:
    return _csr.to_native(m)


def _reject(unused: Dict[str, Any]) -> None:
    """sentence-transformers' arguments that do not apply here are errors, not ignored."""
    allowed = {"convert_to_tensor", "device", "normalize_embeddings", "save_to_cpu"}
    bad = sorted(set(unused) - allowed)
    if bad:
        raise TypeError(f"unexpected keyword arguments: {', '.join(bad)}")
    if unused.get("normalize_embeddings"):
        raise ValueError("normalize_embeddings=True is not supported for sparse embeddings")


def _to_torch(matrix: sp.csr_matrix, single: bool) -> Any:
    try:
        import torch
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "convert_to_sparse_tensor=True needs torch (pip install torch)"
        ) from e
    coo = matrix.tocoo()
    if single:
        idx = torch.from_numpy(np.asarray(coo.col, dtype=np.int64))[None, :]
        return torch.sparse_coo_tensor(idx, torch.from_numpy(coo.data), (matrix.shape[1],)).coalesce()
    idx = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
    return torch.sparse_coo_tensor(idx, torch.from_numpy(coo.data), matrix.shape).coalesce()
