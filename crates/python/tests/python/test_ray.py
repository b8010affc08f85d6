"""Encoding a corpus on a Ray cluster: a local cluster started with ``ray start --head`` on
127.0.0.1, ``ray.data`` ``map_batches`` with ``splade_rs.SparseEncoder`` in actors; the
vectors equal single-process encoding (the documented path for corpora larger than one
machine; SCALE.md)."""

import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest

import splade_rs
from conftest import model_path

import ray  # a missing Ray fails the test (CI installs it from requirements-test.txt)

MODEL = model_path("bert-tied-v6")
CORPUS = pathlib.Path(__file__).resolve().parents[4] / ".." / "shared" / "data" / "scifact" / "corpus.jsonl"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ray_cli():
    exe = shutil.which("ray", path=os.path.dirname(sys.executable))
    assert exe, f"the ray command is not installed beside {sys.executable} (pip install 'ray[data]')"
    return exe


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head node on 127.0.0.1 (4 logical CPUs), stopped afterwards."""
    port = free_port()
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    tmp = tmp_path_factory.mktemp("ray")
    start = subprocess.run(
        [ray_cli(), "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
         "--num-cpus", "4", "--include-dashboard", "false", "--disable-usage-stats",
         "--temp-dir", str(tmp)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert start.returncode == 0, f"ray start failed:\n{start.stdout}\n{start.stderr}"
    try:
        ray.init(address=f"127.0.0.1:{port}", log_to_driver=False)
        yield
    finally:
        ray.shutdown()
        subprocess.run([ray_cli(), "stop", "--force"], capture_output=True, env=env, timeout=120)


def test_ray_data_map_batches_equals_single_process(cluster):
    # Defined here so that Ray pickles the class by value (workers cannot import tests).
    class Encode:
        """A Ray actor: loads the model once, encodes batches of documents."""

        def __init__(self, model):
            self.model = splade_rs.SparseEncoder(model, threads=1)

        def __call__(self, batch):
            m = self.model.encode_document(list(batch["text"]))
            return {
                "id": batch["id"],
                "vector": [
                    json.dumps({"indices": m.indices[s:e].tolist(), "values": m.data[s:e].tolist()})
                    for s, e in zip(m.indptr[:-1], m.indptr[1:])
                ],
            }

    assert CORPUS.exists(), f"{CORPUS}: the SciFact corpus of ../shared/data is missing"
    rows = [json.loads(line) for line in CORPUS.read_text().splitlines()[:240]]
    docs = [{"id": r["_id"], "text": (r["title"] + " " + r["text"]).strip()} for r in rows]
    ds = ray.data.from_items(docs).repartition(4)
    out = ds.map_batches(
        Encode, fn_constructor_args=(MODEL,), batch_size=32, concurrency=2, num_cpus=1
    ).take_all()
    got = {r["id"]: json.loads(r["vector"]) for r in out}
    assert sorted(got) == sorted(d["id"] for d in docs)
    single = splade_rs.SparseEncoder(MODEL).encode_document([d["text"] for d in docs])
    # Other batches than the single run's: equal up to float summation order.
    for r, d in enumerate(docs):
        s, e = single.indptr[r], single.indptr[r + 1]
        ours = dict(zip(got[d["id"]]["indices"], got[d["id"]]["values"]))
        ref = dict(zip(single.indices[s:e].tolist(), single.data[s:e].tolist()))
        for k in set(ours) | set(ref):
            assert abs(ours.get(k, 0.0) - ref.get(k, 0.0)) <= 1e-5, (d["id"], k)
        assert len(ours) == len(ref) or abs(len(ours) - len(ref)) <= 1, d["id"]
