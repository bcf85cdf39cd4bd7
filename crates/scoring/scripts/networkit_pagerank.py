"""networkit's PageRank on the edges written by examples/pagerank_bench.rs.

Usage: python3 networkit_pagerank.py EDGES.bin NODES TOLERANCE
Loads the graph, prints "ready", then runs PageRank once per "run" line read
from standard input, printing a table row in the Rust example's format.
"""
import sys
import time

import networkit as nk
import numpy as np

path, n, tol = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
rec = np.dtype([("s", "<u4"), ("d", "<u4"), ("w", "<f4")])
e = np.fromfile(path, dtype=rec)
t = time.perf_counter()
g = nk.Graph(n, weighted=True, directed=True)
g.addEdges((e["w"].astype(np.float64), (e["s"].astype(np.int64), e["d"].astype(np.int64))))
prepare = (time.perf_counter() - t) * 1e3
threads = nk.getMaxNumberOfThreads()
print("ready", flush=True)
for line in sys.stdin:
    if line.strip() != "run":
        continue
    # Same conventions as lift: dangling rank redistributed, L1 convergence.
    pr = nk.centrality.PageRank(g, damp=0.85, tol=tol, distributeSinks=nk.centrality.SinkHandling.DistributeSinks)
    pr.norm = nk.centrality.Norm.L1_NORM
    pr.maxIterations = 1000
    t, c = time.perf_counter(), time.process_time()
    pr.run()
    total = (time.perf_counter() - t) * 1e3
    cpu = (time.process_time() - c) * 1e3
    it = pr.numberOfIterations()
    row = f"{total / max(it, 1):.2f} | {total:.1f} | {prepare:.1f} | {cpu / max(it, 1):.2f}"
    print(f"| networkit {nk.__version__} | {threads} | {n} | {len(e)} | {it} | {row} |", flush=True)
