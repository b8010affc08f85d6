"""Loads a points file written by `splade export qdrant --out` into Qdrant's own engine
(qdrant-edge-py, an embedded shard) and searches it with query vectors.

usage: qdrant_edge_search.py POINTS.jsonl QUERIES.jsonl VECTOR_NAME K SHARD_DIR OUT.jsonl

QUERIES.jsonl holds {"id", "indices", "values"} per line (`splade encode --query`). OUT.jsonl
gets one line per query: {"id": QID, "hits": [[DOC_ID, SCORE], ...]} best first, DOC_ID from
the point's `doc_id` payload. Used by the Rust tests (tests/support/engine_servers.rs finds
the Python).
"""

import json
import sys

from qdrant_edge import (
    EdgeConfig,
    EdgeShard,
    EdgeSparseVectorParams,
    Point,
    Query,
    QueryRequest,
    SparseVector,
    UpdateOperation,
)


def main():
    points_path, queries_path, name, k, shard_dir, out_path = sys.argv[1:7]
    k = int(k)
    shard = EdgeShard.create(shard_dir, EdgeConfig(sparse_vectors={name: EdgeSparseVectorParams()}))
    batch = []
    loaded = 0

    def flush_batch():
        nonlocal batch, loaded
        if batch:
            shard.update(UpdateOperation.upsert_points(batch))
            loaded += len(batch)
            batch = []

    with open(points_path, encoding="utf-8") as f:
        for line in f:
            p = json.loads(line)
            v = p["vector"][name]
            batch.append(Point(p["id"], {name: SparseVector(v["indices"], v["values"])}, p["payload"]))
            if len(batch) == 1000:
                flush_batch()
    flush_batch()
    shard.flush()
    count = shard.info().points_count
    with open(queries_path, encoding="utf-8") as f, open(out_path, "w", encoding="utf-8") as out:
        for line in f:
            if not line.strip():
                continue
            q = json.loads(line)
            hits = shard.query(
                QueryRequest(
                    limit=k,
                    query=Query.Nearest(SparseVector(q["indices"], q["values"]), using=name),
                    with_payload=True,
                )
            )
            out.write(json.dumps({"id": str(q["id"]), "hits": [[h.payload["doc_id"], h.score] for h in hits]}) + "\n")
    print(json.dumps({"loaded": loaded, "points_count": count}))
    shard.close()


if __name__ == "__main__":
    main()
