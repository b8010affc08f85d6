"""splade_rs.SparseEncoder's contract beyond parity: bad input raises (never crashes the
interpreter), the GIL is released while encoding, torch sparse tensors on request."""

import threading
import time

import numpy as np
import pytest
import scipy.sparse as sp

import splade_rs
from conftest import FIXTURES, model_path

MODEL = model_path("bert-tied-v6")


@pytest.fixture(scope="module")
def model():
    return splade_rs.SparseEncoder(MODEL)


def test_bad_input_raises_clear_errors(model, tmp_path):
    with pytest.raises(OSError) as e:
        splade_rs.SparseEncoder(str(tmp_path / "missing-model"))
    assert "missing-model" in str(e.value)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    with pytest.raises((OSError, ValueError)) as e:
        splade_rs.SparseEncoder(str(tmp_path / "broken"))
    assert "broken" in str(e.value)
    with pytest.raises(ValueError, match="batch_size"):
        model.encode(["a"], batch_size=0)
    with pytest.raises(TypeError, match="text 1"):
        model.encode(["a", 3])
    with pytest.raises(ValueError, match="prompt"):
        model.encode(["a"], prompt_name="no-such-prompt")
    with pytest.raises(ValueError, match="device"):
        splade_rs.SparseEncoder(MODEL, device="tpu")
    with pytest.raises(ValueError, match="unknown similarity"):
        model.similarity_fn_name = "jaccard"
    with pytest.raises(TypeError, match="unexpected keyword"):
        model.encode(["a"], batchsize=4)
    e = model.encode(["a b", "c"])
    with pytest.raises(ValueError, match="columns"):
        model.similarity(e, sp.csr_matrix((1, 5), dtype=np.float32))
    with pytest.raises(ValueError, match="as many rows"):
        model.similarity_pairwise(e, e[:1])
    bad = e.copy()
    bad.data[0] = np.nan
    with pytest.raises(ValueError, match="row 0"):
        model.similarity(bad, e)
    with pytest.raises(ValueError, match="one vector on each side"):
        model.intersection(e, e)


def test_empty_inputs_and_texts(model):
    assert model.encode([]).shape == (0, 30522)
    e = model.encode(["", " "])
    assert e.shape == (2, 30522)


def test_the_gil_is_released_while_encoding(model):
    texts = ["sparse retrieval with learned term weights " * 4] * 3000
    done = threading.Event()
    result = {}

    def work():
        result["m"] = model.encode(texts, batch_size=64)
        done.set()

    t = threading.Thread(target=work)
    ticks = 0
    start = time.perf_counter()
    t.start()
    while not done.is_set():
        ticks += 1
        time.sleep(0.001)
    t.join()
    elapsed = time.perf_counter() - start
    assert result["m"].shape[0] == len(texts)
    # With the GIL held for the whole call, this thread could not tick while it ran.
    assert elapsed > 0.05 and ticks >= 10, (elapsed, ticks)


def test_torch_sparse_tensors_when_asked():
    """With torch: sentence-transformers' shapes and dtype. Without: a clear ImportError."""
    try:
        import torch
    except ImportError:
        with pytest.raises(ImportError, match="needs torch"):
            splade_rs.SparseEncoder(MODEL).encode(["a"], convert_to_sparse_tensor=True)
        return
    m = splade_rs.SparseEncoder(MODEL)
    one = m.encode("a query", convert_to_sparse_tensor=True)
    many = m.encode(["a query", "b"], convert_to_sparse_tensor=True)
    assert one.is_sparse and one.shape == (30522,) and one.dtype == torch.float32
    assert many.is_sparse and many.shape == (2, 30522)
    np.testing.assert_allclose(many.to_dense()[0].numpy(), one.to_dense().numpy())
    # Tensors are accepted back.
    assert m.similarity(many, many).shape == (2, 2)


def test_quantize_int8_keyword():
    texts = ["what causes rain", "Rain forms when water vapour condenses into droplets."]
    f32 = splade_rs.SparseEncoder(model_path("bert-tied-v6")).encode(texts)
    int8 = splade_rs.SparseEncoder(model_path("bert-tied-v6"), quantize="int8").encode(texts)
    assert int8.shape == f32.shape
    # Close to f32 (most active entries shared), but not the f32 vectors themselves.
    for r in range(len(texts)):
        a, b = set(f32[r].indices), set(int8[r].indices)
        assert len(a & b) / len(a | b) > 0.8
    assert (abs(int8 - f32)).max() > 0
    with pytest.raises(ValueError, match="int4"):
        splade_rs.SparseEncoder(model_path("bert-tied-v6"), quantize="int4")
