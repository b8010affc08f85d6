"""splade_rs.SparseEncoder against sentence-transformers 6.2 (the committed fixtures hold
its outputs): identical active sets above 1e-6, values within 1e-4 * max(1, |v|), on every
fixture model and splade-tiny; the result types sentence-transformers users expect."""

import numpy as np
import pytest
import scipy.sparse as sp

import splade_rs
from conftest import MODELS, load_expected, model_path


def tol(v):
    return 1e-4 * max(1.0, abs(v))


def assert_row_matches(ours, expected, what):
    """``ours``: a one-row CSR; ``expected``: ``{"indices", "values"}``."""
    a = dict(zip(ours.indices.tolist(), ours.data.tolist()))
    b = dict(zip(expected["indices"], expected["values"]))
    for k in set(a) | set(b):
        x, y = a.get(k, 0.0), b.get(k, 0.0)
        if x <= 1e-6 and y <= 1e-6:
            continue
        if (x > 1e-6) != (y > 1e-6):
            assert max(x, y) < 1e-4, f"{what}: index {k} active on one side only: {x} vs {y}"
        assert abs(x - y) <= tol(y), f"{what}: index {k}: ours {x}, reference {y}"


def assert_batch_matches(ours, expected, labels, what):
    assert isinstance(ours, sp.csr_matrix) and ours.dtype == np.float32
    assert ours.shape[0] == len(expected), what
    for r, exp in enumerate(expected):
        assert_row_matches(ours[r], exp, f"{what}, text #{labels[r]}")


@pytest.fixture(scope="module", params=["splade-tiny"] + MODELS)
def case(request, texts):
    name = request.param
    return name, splade_rs.SparseEncoder(model_path(name)), load_expected(name), texts


def test_configuration(case):
    name, model, e, _ = case
    assert model.max_seq_length == e["max_seq_length"], name
    assert model.similarity_fn_name == e["similarity_fn_name"], name
    assert model.prompts == (e["prompts"] or {}), name
    assert model.get_sentence_embedding_dimension() == 30522


def test_encode_routes_and_max_active_dims(case):
    name, model, e, texts = case
    ids = e["text_ids"]
    batch = model.encode([texts[i] for i in ids])
    assert batch.shape == (len(ids), model.get_sentence_embedding_dimension())
    assert_batch_matches(batch, e["encode"], ids, f"{name} encode")
    if "prompt_text_ids" in e:  # the fixtures of models with prompts, and splade-tiny
        pids = e["prompt_text_ids"]
        sub = [texts[i] for i in pids]
        assert_batch_matches(
            model.encode_query(sub), e["encode_query"], pids, f"{name} encode_query"
        )
        assert_batch_matches(
            model.encode_document(sub), e["encode_document"], pids, f"{name} encode_document"
        )
    mad = e["max_active_dims"]
    sub = [texts[i] for i in mad["text_ids"]]
    for k in (1, 8, 32):
        ours = model.encode(sub, max_active_dims=k)
        assert_batch_matches(ours, mad[str(k)], mad["text_ids"], f"{name} max_active_dims={k}")
    # Batch size does not change the vectors; a single string gives one row.
    small = model.encode([texts[i] for i in ids[:6]], batch_size=1)
    assert abs(small - batch[:6]).max() <= 1e-5
    one = model.encode(texts[ids[0]])
    assert one.shape == (1, batch.shape[1]) and abs(one - batch[0]).max() <= 1e-5


def test_similarity_decode_sparsity_intersection(case):
    name, model, e, texts = case
    ids = e["text_ids"]
    batch = model.encode([texts[i] for i in ids])
    pos = {t: r for r, t in enumerate(ids)}
    sims = e["similarity"]
    q = batch[[pos[i] for i in sims["query_ids"]]]
    d = batch[[pos[i] for i in sims["doc_ids"]]]
    original = model.similarity_fn_name
    for f in ("dot", "cosine", "euclidean", "manhattan"):
        model.similarity_fn_name = f
        m = model.similarity(q, d)
        assert m.dtype == np.float32 and m.shape == (q.shape[0], d.shape[0])
        np.testing.assert_allclose(m, np.array(sims[f]["matrix"]), rtol=1e-4, atol=1e-4, err_msg=f)
        np.testing.assert_allclose(
            model.similarity_pairwise(q, d), sims[f]["pairwise"], rtol=1e-4, atol=1e-4, err_msg=f
        )
        zero = sp.csr_matrix((1, q.shape[1]), dtype=np.float32)
        np.testing.assert_allclose(
            model.similarity(zero, d).ravel(), sims[f]["zero_matrix"], rtol=1e-4, atol=1e-4
        )
    model.similarity_fn_name = original
    dec = e["decode"]
    for i, exp in zip(dec["text_ids"], dec["tokens"]):
        ours = model.decode(batch[pos[i]].toarray()[0], top_k=dec["top_k"])
        assert len(ours) == len(exp)
        for (t, w), (et, ew) in zip(ours, exp):
            assert abs(w - ew) <= tol(ew), f"{name} decode #{i}"
            assert t == et or any(x == t and abs(xw - ew) <= 1e-5 for x, xw in exp)
    all_rows = model.decode(batch[[pos[i] for i in e["decode_all"]["text_ids"]]])
    for ours, exp in zip(all_rows, e["decode_all"]["tokens"]):
        assert len(ours) == len(exp)
    s = model.sparsity(batch)
    assert abs(s["active_dims"] - e["sparsity"]["active_dims"]) <= 0.01 * max(1.0, e["sparsity"]["active_dims"])
    assert abs(s["sparsity_ratio"] - e["sparsity"]["sparsity_ratio"]) < 1e-4
    for item in e["intersection"]:
        a, b = item["text_ids"]
        assert_row_matches(model.intersection(batch[pos[a]], batch[pos[b]]), item, f"{name} intersection")
