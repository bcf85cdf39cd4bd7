"""Reference PageRank values for lift-scoring's unit tests (engine/graph.rs).

Run: python3 crates/scoring/scripts/pagerank_reference.py
Needs networkx (pip install networkx). Paste the printed vectors into the test.
"""
import networkx as nx

EDGES = [
    (0, 1, 1.0), (0, 2, 2.0), (1, 2, 1.0), (2, 0, 1.0), (2, 3, 0.5), (3, 4, 1.0),
    (4, 0, 1.0), (4, 3, 3.0), (4, 5, 1.0), (1, 2, 1.5), (3, 5, 0.25),
]

g = nx.DiGraph()
g.add_nodes_from(range(6))
for s, d, w in EDGES:
    if g.has_edge(s, d):
        g[s][d]["weight"] += w
    else:
        g.add_edge(s, d, weight=w)

print(nx.__version__)
pr = nx.pagerank(g, alpha=0.85, tol=1e-14, max_iter=10_000, weight="weight")
print([repr(pr[i]) for i in range(6)])
p = {0: 1.0, 1: 0.0, 2: 0.0, 3: 0.0, 4: 0.0, 5: 1.0}
pr = nx.pagerank(g, alpha=0.85, tol=1e-14, max_iter=10_000, weight="weight", personalization=p)
print([repr(pr[i]) for i in range(6)])
