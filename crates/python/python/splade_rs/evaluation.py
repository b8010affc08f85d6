"""sentence-transformers' sparse evaluators: the same flat dictionaries as
``SparseInformationRetrievalEvaluator`` and ``SparseBinaryClassificationEvaluator``
(same keys, same order, same definitions), computed by splade-rs."""

from __future__ import annotations

from typing import Dict, Iterable, Mapping, Optional, Sequence, Tuple

from ._native import evaluate_binary as _evaluate_binary
from ._native import evaluate_ir as _evaluate_ir
from .encoder import SparseEncoder


def evaluate_ir(
    model: SparseEncoder,
    corpus: Mapping[str, str],
    queries: Mapping[str, str],
    relevant_docs: Mapping[str, Iterable[str]],
    name: str = "",
    batch_size: int = 32,
    max_active_dims: Optional[int] = None,
) -> Dict[str, float]:
    """Retrieval metrics as ``SparseInformationRetrievalEvaluator(queries, corpus,
    relevant_docs, name=name)(model)`` returns them: accuracy@k, precision@k, recall@k,
    NDCG@10, MRR@10, MAP@100 with the model's similarity function, query and corpus
    sparsity and avg_flops. ``corpus`` and ``queries`` map ids to texts (in their order);
    queries without a relevant document are left out, as the reference does."""
    rel = {str(q): [str(d) for d in docs] for q, docs in relevant_docs.items()}
    out = _evaluate_ir(
        model._native,
        [(str(k), v) for k, v in corpus.items()],
        [(str(k), v) for k, v in queries.items()],
        rel,
        name,
        batch_size,
        max_active_dims if max_active_dims is not None else model.max_active_dims,
    )
    return dict(out)


_SIMILARITY_FNS = ("cosine", "dot", "euclidean", "manhattan")
_BINARY_METRICS = ("accuracy", "accuracy_threshold", "f1", "f1_threshold", "precision", "recall", "ap", "mcc")


def evaluate_binary(
    model: SparseEncoder,
    pairs: Sequence[Tuple[str, str, int]],
    name: str = "",
    batch_size: int = 32,
    max_active_dims: Optional[int] = None,
    similarity_fn_names: Optional[Sequence[str]] = None,
) -> Dict[str, float]:
    """Pair-classification metrics as ``SparseBinaryClassificationEvaluator(sentences1,
    sentences2, labels, name=name, similarity_fn_names=similarity_fn_names)(model)`` returns
    them: accuracy, F1, precision, recall, AP and MCC with their thresholds for each similarity
    function (by default the model's own, as the reference does; any of ``cosine``, ``dot``,
    ``euclidean``, ``manhattan``), the ``max_`` of each metric when there are several, and the
    sparsity, from ``(sentence1, sentence2, label)`` triples with labels 0 or 1."""
    s1, s2, labels = [], [], []
    for i, p in enumerate(pairs):
        if len(p) != 3:
            raise ValueError(f"pair {i} has {len(p)} fields, not (sentence1, sentence2, label)")
        s1.append(p[0])
        s2.append(p[1])
        labels.append(int(p[2]))
    names = list(similarity_fn_names) if similarity_fn_names else [model.similarity_fn_name]
    for fn in names:
        if fn not in _SIMILARITY_FNS:
            raise ValueError(f"similarity_fn_names: unknown function {fn!r} (one of {', '.join(_SIMILARITY_FNS)})")
    out = dict(_evaluate_binary(
        model._native, s1, s2, labels, "", batch_size,
        max_active_dims if max_active_dims is not None else model.max_active_dims,
    ))
    metrics: Dict[str, float] = {}
    for fn in names:
        for m in _BINARY_METRICS:
            metrics[f"{fn}_{m}"] = out[f"{fn}_{m}"]
    if len(names) > 1:
        for m in _BINARY_METRICS:
            metrics[f"max_{m}"] = max(out[f"{fn}_{m}"] for fn in names)
    for key in ("active_dims", "sparsity_ratio"):
        metrics[key] = out[key]
    prefix = f"{name}_" if name else ""
    return {prefix + k: v for k, v in metrics.items()}
