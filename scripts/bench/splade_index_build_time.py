"""splade-index's build time on a vector file, timed as compare_indexes.py times it: the
vocabulary x documents CSC (scipy CSR to CSC, sort_indices, float32 / int32) from vectors
already in memory, nothing written. Three conversions in one process.

    /work/venv-search/bin/python scripts/bench/splade_index_build_time.py /tmp/flat1m/docs.bin
"""
import os
import sys
import time

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare_indexes import DIM, load_vectors  # noqa: E402


def main():
    _, dind, didx, dval = load_vectors(sys.argv[1])
    n = len(dind) - 1
    for _ in range(3):
        t = time.perf_counter()
        csc = sp.csr_matrix((dval, didx, dind), shape=(n, DIM)).tocsc()
        csc.sort_indices()
        arrays = (csc.data.astype(np.float32), csc.indices.astype(np.int32), csc.indptr.astype(np.int32))
        print(f"CSR -> CSC: {time.perf_counter() - t:.2f} s (load average {os.getloadavg()[0]:.2f})", flush=True)
        del csc, arrays


if __name__ == "__main__":
    main()
