"""splade_rs.Index: search equals brute force on random CSR input (seeded numpy), updates
commit atomically and reopen, bad input raises."""

import numpy as np
import pytest
import scipy.sparse as sp

import splade_rs


def random_csr(rng, rows, cols, density):
    m = sp.random(rows, cols, density=density, format="csr", dtype=np.float32, random_state=rng)
    m.data = (m.data * 3).astype(np.float32)
    return m


def brute_force(queries, docs, ids, k):
    """Dot products accumulated in float64, rounded to float32; best first, ties to the
    earlier document; only scores > 0."""
    scores = (queries.astype(np.float64) @ docs.astype(np.float64).T).toarray().astype(np.float32)
    out = []
    for row in scores:
        order = sorted(range(len(row)), key=lambda d: (-row[d], d))
        out.append([(ids[d], float(row[d])) for d in order[:k] if row[d] > 0])
    return out


def assert_same_hits(ours, expected):
    assert len(ours) == len(expected)
    for q, (a, b) in enumerate(zip(ours, expected)):
        assert [i for i, _ in a] == [i for i, _ in b], f"query {q}"
        np.testing.assert_allclose([s for _, s in a], [s for _, s in b], rtol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_search_equals_brute_force(tmp_path, seed):
    rng = np.random.default_rng(seed)
    docs = random_csr(rng, 700, 400, 0.03)
    queries = random_csr(rng, 40, 400, 0.05)
    ids = [f"d{i}" for i in range(docs.shape[0])]
    index = splade_rs.Index.build(tmp_path / "idx", docs, ids)
    assert len(index) == 700 and index.dim == 400
    for k in (1, 10, 50):
        assert_same_hits(index.search_hits(queries, k=k), brute_force(queries, docs, ids, k))
    # The array form, padded where a query has fewer hits.
    got_ids, got_scores = index.search(queries, k=10)
    assert got_ids.shape == (40, 10) and got_scores.dtype == np.float32
    expected = brute_force(queries, docs, ids, 10)
    for q, hits in enumerate(expected):
        assert list(got_ids[q, : len(hits)]) == [i for i, _ in hits]
        assert all(x is None for x in got_ids[q, len(hits):])
    # Reopened from disk: the same results; approximate search at alpha = beta = 1 is exact.
    again = splade_rs.Index.open(tmp_path / "idx")
    assert again.search_hits(queries, k=10) == index.search_hits(queries, k=10)
    assert again.search_hits(queries, k=10, approx=(1.0, 1.0)) == index.search_hits(queries, k=10)
    approx = again.search_hits(queries, k=10, approx=(0.5, 0.5), threads=2)
    assert len(approx) == 40


def test_add_delete_optimize(tmp_path):
    rng = np.random.default_rng(7)
    docs = random_csr(rng, 300, 200, 0.05)
    ids = [str(i) for i in range(300)]
    index = splade_rs.Index.build(tmp_path / "idx", docs[:200], ids[:200])
    assert index.add(docs[200:], ids[200:]) == 0
    assert index.add(docs[:5], ids[:5]) == 5  # replaced: now last
    assert index.delete(["7", "8", "nope"]) == ["nope"]
    live_ids = [i for i in ids[5:] if i not in ("7", "8")] + ids[:5]
    live = sp.vstack([docs[int(i)] for i in live_ids]).tocsr()
    queries = random_csr(rng, 20, 200, 0.1)
    expected = brute_force(queries, live, live_ids, 10)
    assert_same_hits(index.search_hits(queries, k=10), expected)
    info = index.info()
    assert info["documents"] == 298 and info["deleted"] == 7 and len(info["segments"]) == 3
    index.optimize()
    assert index.info()["deleted"] == 0 and len(index.info()["segments"]) == 1
    assert_same_hits(index.search_hits(queries, k=10), expected)
    assert_same_hits(splade_rs.Index.open(tmp_path / "idx").search_hits(queries, k=10), expected)
    # Read into memory: the same hits, and updates keep it working.
    in_memory = splade_rs.Index.open(tmp_path / "idx", in_memory=True)
    assert_same_hits(in_memory.search_hits(queries, k=10), expected)
    assert in_memory.delete(["9"]) == []
    live_ids.remove("9")
    live = sp.vstack([docs[int(i)] for i in live_ids]).tocsr()
    assert_same_hits(in_memory.search_hits(queries, k=10), brute_force(queries, live, live_ids, 10))
    with pytest.raises(ValueError, match="already in the index"):
        index.add(docs[:1], ["0"], replace=False)


def test_text_queries_go_through_an_encoder(tmp_path):
    from conftest import model_path

    model = splade_rs.SparseEncoder(model_path("bert-tied-v6"))
    corpus = ["cats sleep all day", "sparse retrieval with inverted indexes", "dogs chase cats"]
    index = splade_rs.Index.build(tmp_path / "idx", model.encode_document(corpus), ["a", "b", "c"])
    hits = index.search_hits(["sleeping cats"], k=3, encoder=model)
    q = model.encode_query(["sleeping cats"])
    assert hits == index.search_hits(q, k=3)
    with pytest.raises(ValueError, match="encoder"):
        index.search_hits(["text"], k=3)


def test_bad_input_raises(tmp_path):
    m = sp.csr_matrix(np.array([[0, 1.0, 0], [2.0, 0, 0]], dtype=np.float32))
    with pytest.raises(ValueError, match="2 ids for 1 vectors|1 ids for 2 vectors"):
        splade_rs.Index.build(tmp_path / "a", m, ["x"])
    neg = m.copy()
    neg.data[0] = -1.0
    with pytest.raises(ValueError, match="negative"):
        splade_rs.Index.build(tmp_path / "b", neg, ["x", "y"])
    with pytest.raises(ValueError, match="duplicate id"):
        splade_rs.Index.build(tmp_path / "c", m, ["x", "x"])
    with pytest.raises(ValueError, match="empty id"):
        splade_rs.Index.build(tmp_path / "d", m, ["x", ""])
    with pytest.raises(TypeError, match="id 1"):
        splade_rs.Index.build(tmp_path / "e", m, ["x", 1.5])
    with pytest.raises(FileNotFoundError, match="no index there"):
        splade_rs.Index.open(tmp_path / "missing")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("mine")
    with pytest.raises(OSError, match="not a splade index"):
        splade_rs.Index.build(tmp_path / "junk", m, ["x", "y"])
    assert (tmp_path / "junk" / "notes.txt").read_text() == "mine"
    index = splade_rs.Index.build(tmp_path / "ok", m, [1, 2])
    with pytest.raises(OSError, match="already holds"):
        splade_rs.Index.build(tmp_path / "ok", m, ["x", "y"])
    splade_rs.Index.build(tmp_path / "ok", m, ["x", "y"], overwrite=True)
    with pytest.raises(ValueError, match="dimension"):
        index.add(sp.csr_matrix((1, 9), dtype=np.float32), ["z"])
    with pytest.raises(ValueError, match="k must be"):
        index.search_hits(m, k=0)
    with pytest.raises(ValueError, match="alpha"):
        index.search_hits(m, k=1, approx=(0.0, 1.0))
    # A damaged file is an OSError naming it, never a crash.
    victim = tmp_path / "ok" / "forward.values"
    if not victim.exists():
        victim = next((tmp_path / "ok").rglob("forward.values"))
    data = bytearray(victim.read_bytes())
    data[-1] ^= 0xFF
    victim.write_bytes(bytes(data))
    with pytest.raises(OSError, match="forward.values"):
        splade_rs.Index.open(tmp_path / "ok")
