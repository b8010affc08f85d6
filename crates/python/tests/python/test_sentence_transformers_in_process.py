"""splade_rs next to sentence-transformers 6.2 in the same interpreter: the same model
folders loaded by both, the same texts, compared live (not through fixtures).

- Vectors: identical active sets above 1e-6 and values within 1e-4 * max(1, |v|) for
  encode on every held text of the parity fixtures, encode_query and encode_document (and
  max_active_dims) on the first 60, for splade-tiny and every fixture model.
- Evaluators: SparseInformationRetrievalEvaluator on a SciFact subset read from
  ../shared/data and SparseBinaryClassificationEvaluator on Quora test pairs give the same
  dictionaries as splade_rs.evaluate_ir / evaluate_binary (same keys in the same order).

crates/python/tests/pytest.rs installs sentence-transformers and torch into the test
environment and fails when any test here is skipped; run by hand without them, these tests are
skipped with the reason printed."""

import csv
import json
import pathlib

import numpy as np
import pytest

import splade_rs
from conftest import MODELS, model_path
from test_encoder_parity import assert_row_matches
from test_evaluation import compare

st = pytest.importorskip(
    "sentence_transformers",
    reason="sentence-transformers is not installed (crates/python/requirements-test.txt has it)",
)
torch = pytest.importorskip("torch", reason="torch is not installed")
torch.set_num_threads(2)

DATA = pathlib.Path(__file__).resolve().parents[4] / ".." / "shared" / "data"


def as_rows(reference):
    """sentence-transformers' output (a torch sparse or dense 2-D tensor) as
    ``{"indices", "values"}`` rows."""
    dense = reference.to_dense().numpy() if reference.is_sparse else reference.numpy()
    rows = []
    for r in dense:
        nz = np.flatnonzero(r)
        rows.append({"indices": nz.tolist(), "values": r[nz].tolist()})
    return rows


@pytest.fixture(scope="module", params=["splade-tiny"] + MODELS)
def pair(request):
    ours = splade_rs.SparseEncoder(model_path(request.param))
    # The folder splade_rs resolved (for splade-tiny: its cache) loads in sentence-transformers.
    reference = st.SparseEncoder(ours._native.folder, device="cpu")
    return request.param, ours, reference


def test_version_is_the_reference_one():
    assert st.__version__.startswith("6.2"), st.__version__


@pytest.mark.parametrize("method", ["encode", "encode_query", "encode_document"])
def test_same_vectors_as_sentence_transformers(pair, texts, method):
    name, ours, reference = pair
    if method != "encode":
        texts = texts[:60]  # the routes differ only by prompts; the whole set runs through encode
    a = getattr(ours, method)(texts, batch_size=16)
    b = as_rows(getattr(reference, method)(texts, batch_size=16, convert_to_sparse_tensor=True))
    assert a.shape == (len(texts), reference.get_embedding_dimension())
    for r in range(len(texts)):
        assert_row_matches(a[r], b[r], f"{name} {method} text #{r}")


def test_same_vectors_with_max_active_dims(pair, texts):
    name, ours, reference = pair
    sub = texts[:40]
    for k in (4, 32):
        a = ours.encode_document(sub, max_active_dims=k)
        b = as_rows(reference.encode_document(sub, max_active_dims=k, convert_to_sparse_tensor=True))
        for r in range(len(sub)):
            assert a[r].nnz <= k
            assert_row_matches(a[r], b[r], f"{name} max_active_dims={k} text #{r}")


def test_same_similarity_and_decode(pair, texts):
    name, ours, reference = pair
    q, d = texts[:5], texts[5:12]
    ours_scores = ours.similarity(ours.encode_query(q), ours.encode_document(d))
    ref_scores = reference.similarity(reference.encode_query(q), reference.encode_document(d)).numpy()
    np.testing.assert_allclose(ours_scores, ref_scores, rtol=1e-4, atol=1e-4)
    ours_top = ours.decode(ours.encode_query(q), top_k=5)
    ref_top = reference.decode(reference.encode_query(q), top_k=5)
    for a, b in zip(ours_top, ref_top):
        assert [t for t, _ in a] == [t for t, _ in b] or np.allclose(
            sorted(w for _, w in a), sorted(w for _, w in b), rtol=1e-4
        ), f"{name}: {a} vs {b}"


@pytest.fixture(scope="module")
def tiny_pair():
    ours = splade_rs.SparseEncoder("splade-tiny")
    return ours, st.SparseEncoder(ours._native.folder, device="cpu")


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def test_same_ir_dictionary_on_scifact(tiny_pair):
    from sentence_transformers.sparse_encoder.evaluation import SparseInformationRetrievalEvaluator

    ours, reference = tiny_pair
    root = DATA / "scifact"
    assert root.exists(), f"{root}: SciFact of ../shared/data is missing"
    relevant = {}
    with open(root / "qrels" / "test.tsv", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if int(row["score"]) > 0:
                relevant.setdefault(row["query-id"], set()).add(row["corpus-id"])
    queries = {q["_id"]: q["text"] for q in read_jsonl(root / "queries.jsonl") if q["_id"] in relevant}
    queries = dict(list(queries.items())[:40])
    wanted = set().union(*(relevant[q] for q in queries))
    corpus = {}
    for doc in read_jsonl(root / "corpus.jsonl"):
        if doc["_id"] in wanted or len(corpus) < 200:
            corpus[doc["_id"]] = (doc.get("title", "") + " " + doc["text"]).strip()
    relevant = {q: relevant[q] for q in queries}
    evaluator = SparseInformationRetrievalEvaluator(queries, corpus, relevant, name="scifact", write_csv=False)
    expected = {k: float(v) for k, v in evaluator(reference).items()}
    got = splade_rs.evaluate_ir(ours, corpus, queries, relevant, name="scifact")
    compare(got, expected)


def test_same_binary_dictionary_on_quora(tiny_pair):
    from sentence_transformers.sparse_encoder.evaluation import SparseBinaryClassificationEvaluator

    ours, reference = tiny_pair
    pairs = []
    with open(DATA / "quora-pairs" / "test" / "pairs.tsv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            pairs.append((row["sentence1"], row["sentence2"], int(row["label"])))
            if len(pairs) == 300:
                break
    evaluator = SparseBinaryClassificationEvaluator(
        [p[0] for p in pairs], [p[1] for p in pairs], [p[2] for p in pairs], name="quora", write_csv=False
    )
    expected = {k: float(v) for k, v in evaluator(reference).items()}
    compare(splade_rs.evaluate_binary(ours, pairs, name="quora"), expected)
