"""A sentence-transformers script, unchanged but for its import line.

    python dropin_sentence_transformers.py [MODEL]

runs with sentence-transformers as written. Replace the import with

    from splade_rs import SparseEncoder

and the same script runs on splade-rs and prints the same numbers
(crates/python/tests/python/test_dropin_example.py runs both and compares them). MODEL is a
SparseEncoder folder or Hugging Face Hub id (default: naver/splade-cocondenser-ensembledistil).
"""

import sys

from sentence_transformers import SparseEncoder

MODEL = sys.argv[1] if len(sys.argv) > 1 else "naver/splade-cocondenser-ensembledistil"

model = SparseEncoder(MODEL)

queries = [
    "How do I start investing in the share market?",
    "What causes the northern lights?",
]
documents = [
    "The aurora borealis appears when charged particles from the sun hit the upper atmosphere.",
    "Beginners can open a brokerage account and buy index funds to invest in stocks.",
    "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen.",
]

query_embeddings = model.encode_query(queries)
document_embeddings = model.encode_document(documents)
print("shapes:", tuple(query_embeddings.shape), tuple(document_embeddings.shape))

similarities = model.similarity(query_embeddings, document_embeddings)
for query, row in zip(queries, similarities.tolist()):
    print(f"{query!r}:", " ".join(f"{score:.4f}" for score in row))

for query, tokens in zip(queries, model.decode(query_embeddings, top_k=5)):
    print(f"{query!r} expands to:", ", ".join(f"{token} {weight:.4f}" for token, weight in tokens))

stats = model.sparsity(document_embeddings)
print(f"documents: {stats['active_dims']:.2f} active dimensions, sparsity {stats['sparsity_ratio']:.4f}")
