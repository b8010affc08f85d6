"""splade-rs for Python: SPLADE learned sparse retrieval with a Rust core.

- :class:`SparseEncoder` mirrors sentence-transformers' ``SparseEncoder`` (``encode``,
  ``encode_query``, ``encode_document``, ``similarity``, ``decode``, ...) and returns
  ``scipy.sparse.csr_matrix`` batches (or torch sparse COO tensors on request).
- :class:`Index` is splade-rs's exact sparse inverted index (build, open, add, delete,
  optimize, search).
- :func:`evaluate_ir` and :func:`evaluate_binary` return sentence-transformers' evaluator
  dictionaries (same keys and definitions).
- :func:`train` fine-tunes a model as ``splade train`` does (same options, same output
  folder), with a progress callback.

Model and index work runs in Rust with the GIL released, so Python threads keep running.
Errors are ``ValueError`` for bad input and ``OSError`` for files, with the Rust message.
"""

from ._native import DEFAULT_MODEL
from .encoder import SparseEncoder
from .evaluation import evaluate_binary, evaluate_ir
from .index import Index
from .training import train

__all__ = ["DEFAULT_MODEL", "SparseEncoder", "Index", "evaluate_ir", "evaluate_binary", "train"]
