"""CSR models (Transformer + Pooling + SparseAutoEncoder) in ``splade_rs.SparseEncoder``: the
committed fixture csr-bert (scripts/parity/generate_csr_fixtures.py) encodes to the vectors
sentence-transformers 6.2 gave (plain, with the query prompt, and with max_active_dims below
and above k), the same as sentence-transformers in this process, and its dimensions decode
as latent ids."""

import numpy as np
import pytest
import scipy.sparse as sp

import splade_rs
from conftest import FIXTURES, load_expected

MODEL = str(FIXTURES / "models" / "csr-bert")


@pytest.fixture(scope="module")
def expected():
    return load_expected("csr-bert")


@pytest.fixture(scope="module")
def model():
    return splade_rs.SparseEncoder(MODEL)


def variant(expected, name):
    return next(v for v in expected["variants"] if v["name"] == name)


def rows_match(ours, reference, what):
    assert isinstance(ours, sp.csr_matrix) and ours.shape == (len(reference), 128), what
    for r, exp in enumerate(reference):
        row = ours[r]
        assert row.indices.tolist() == exp["indices"], f"{what}: text {r}"
        np.testing.assert_allclose(row.data, exp["values"], rtol=1e-4, atol=1e-4, err_msg=what)


def test_configuration(model, expected):
    assert model.is_csr
    assert model.get_sentence_embedding_dimension() == expected["dimension"] == 128
    assert model.max_active_dims == expected["max_active_dims"] == 8
    assert model.similarity_fn_name == "dot"


@pytest.mark.parametrize(
    "name,kwargs",
    [
        ("mean", {}),
        ("query_prompt", {"prompt_name": "query"}),
        ("max_active_dims_3", {"max_active_dims": 3}),
        ("max_active_dims_12", {"max_active_dims": 12}),
    ],
)
def test_vectors_match_sentence_transformers(model, expected, texts, name, kwargs):
    sub = [texts[i] for i in expected["text_ids"]]
    rows_match(model.encode(sub, **kwargs), variant(expected, name)["vectors"], name)


def test_same_as_sentence_transformers_in_process(model, texts):
    from sentence_transformers import SparseEncoder

    reference = SparseEncoder(MODEL, device="cpu")
    sub = texts[:12]
    theirs = reference.encode_query(sub, convert_to_tensor=True).to_dense().numpy()
    ours = model.encode_query(sub).toarray()
    assert (theirs != 0).tolist() == (ours != 0).tolist()
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)


def test_decode_names_latent_dimensions(model):
    emb = model.encode(["what causes rain"])
    decoded = model.decode(emb, top_k=3)[0]  # a matrix of one row: one list per row
    assert len(decoded) == 3
    row = emb[0]
    weights = dict(zip(row.indices.tolist(), row.data.tolist()))
    for name, weight in decoded:
        assert name.startswith("dimension ")
        assert weights[int(name.split(" ")[1])] == pytest.approx(weight)
