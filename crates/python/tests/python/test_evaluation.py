"""splade_rs.evaluate_ir / evaluate_binary against sentence-transformers' evaluators: the
committed fixtures hold the dictionaries SparseInformationRetrievalEvaluator (SciFact subset)
and SparseBinaryClassificationEvaluator (Quora pairs) returned for splade-tiny. Same keys in
the same order; rank metrics, accuracies, AP and MCC within 1e-6; thresholds, sparsity and
FLOPS within 1e-5 relative (as crates/eval/tests/parity.rs)."""

import json

import pytest

import splade_rs
from conftest import REPO, resolve


def fixture(name):
    return resolve(json.loads((REPO / "fixtures" / "eval" / name).read_text()))


def tol(key, expected):
    if "threshold" in key or "active_dims" in key or "flops" in key:
        return 1e-5 * max(1.0, abs(expected))
    return 1e-6


def compare(ours, expected):
    assert list(ours) == list(expected), "keys or their order differ"
    for k, e in expected.items():
        assert abs(ours[k] - e) <= tol(k, e), f"{k}: ours {ours[k]}, reference {e}"


@pytest.fixture(scope="module")
def tiny():
    return splade_rs.SparseEncoder("splade-tiny")


def test_ir_dictionary_equals_sentence_transformers_on_scifact(tiny):
    f = fixture("ir_real.json")
    relevant = {}
    for q, d, score in f["qrels"]:
        if score > 0:
            relevant.setdefault(q, []).append(d)
    ours = splade_rs.evaluate_ir(
        tiny, dict(map(tuple, f["corpus"])), dict(map(tuple, f["queries"])), relevant, name=f["name"]
    )
    compare(ours, f["expected"])


def test_binary_dictionary_equals_sentence_transformers_on_quora(tiny):
    f = fixture("binary_real.json")
    ours = splade_rs.evaluate_binary(
        tiny, [tuple(p) for p in f["pairs"]], name=f["name"],
        similarity_fn_names=["cosine", "dot", "euclidean", "manhattan"],
    )
    compare(ours, f["expected"])


def test_bad_evaluation_input_raises(tiny):
    with pytest.raises(ValueError, match="labels must be 0 or 1"):
        splade_rs.evaluate_binary(tiny, [("a", "b", 2)])
    with pytest.raises(ValueError, match="fields"):
        splade_rs.evaluate_binary(tiny, [("a", "b")])
    with pytest.raises(ValueError, match="no sentence pairs"):
        splade_rs.evaluate_binary(tiny, [])
    with pytest.raises(ValueError, match="no query has a relevant document"):
        splade_rs.evaluate_ir(tiny, {"d": "text"}, {"q": "query"}, {})
