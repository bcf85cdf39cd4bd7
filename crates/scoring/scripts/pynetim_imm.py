"""pynetim's IMM (C++) on the influence edges written by examples/seeds_bench.rs.

Usage: python3 pynetim_imm.py EDGES.bin NODES K EPSILON SEED
EDGES.bin holds little-endian (u32 from, u32 to, f32 p) records. Prints one
JSON object: the seeds, the time of IMMAlgorithm.run alone, the graph build
time, and the RR-set count pynetim reports in its verbose log.
"""
import json
import os
import re
import sys
import tempfile
import time

import numpy as np
import pynetim
from pynetim.algorithms import IMMAlgorithm
from pynetim.graph import IMGraph

path, n, k, eps, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
rec = np.dtype([("s", "<u4"), ("d", "<u4"), ("w", "<f4")])
e = np.fromfile(path, dtype=rec)
edges = list(zip(e["s"].tolist(), e["d"].tolist()))
weights = e["w"].astype(np.float64).tolist()
if n > 0 and (len(e) == 0 or max(int(e["s"].max()), int(e["d"].max())) < n - 1):
    sys.exit(f"node {n - 1} has no edge: pynetim would see fewer than {n} nodes")

t = time.perf_counter()
# Ids are already 0..n-1; renumbering would reorder them.
g = IMGraph(edges, weights, directed=True, renumber=False)
load = time.perf_counter() - t
if g.num_nodes != n:
    sys.exit(f"pynetim built {g.num_nodes} nodes, expected {n}")

algo = IMMAlgorithm(g, "IC", epsilon=eps, l=1, random_seed=seed, verbose=True)
# The C++ log goes to file descriptor 2; keep it to read the RR-set count.
log = tempfile.TemporaryFile(mode="w+")
saved = os.dup(2)
os.dup2(log.fileno(), 2)
try:
    t = time.perf_counter()
    seeds = algo.run(k)
    seconds = time.perf_counter() - t
finally:
    sys.stderr.flush()
    os.dup2(saved, 2)
    os.close(saved)
log.seek(0)
text = log.read()
counts = re.findall(r"RR\D*?(\d+)\s*$", text, flags=re.M)
rr_sets = int(counts[-1]) if counts else None
print(
    json.dumps(
        {
            "version": pynetim.__version__,
            "nodes": g.num_nodes,
            "edges": g.num_edges,
            "seeds": sorted(int(s) for s in seeds),
            "seconds": seconds,
            "load_seconds": load,
            "rr_sets": rr_sets,
        }
    )
)
