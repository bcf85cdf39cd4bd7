//! Compressed sparse row graphs: the engagement, follower and influence
//! graphs scoring builds, and the input PageRank's in-edge layout is made from.

use rayon::prelude::*;

/// Rows of `(neighbour, weight)` in compressed sparse row form.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Csr {
    /// `offsets[v]..offsets[v + 1]` indexes row `v`; length `n + 1`.
    pub offsets: Vec<u64>,
    pub targets: Vec<u32>,
    pub weights: Vec<f32>,
}

impl Csr {
    /// Builds rows from `(src, dst, weight)` edges over `n` nodes, summing the
    /// weights of parallel edges and sorting each row by neighbour. Edges with
    /// an endpoint ≥ `n`, a self-loop, or a non-positive weight are skipped.
    pub fn from_edges(n: usize, edges: &[(u32, u32, f32)]) -> Self {
        let mut counts = vec![0u64; n + 1];
        for &(s, d, w) in edges {
            if keep(n, s, d, w) {
                counts[s as usize + 1] += 1;
            }
        }
        for i in 0..n {
            counts[i + 1] += counts[i];
        }
        let m = counts[n] as usize;
        let mut fill = counts.clone();
        let mut tmp: Vec<(u32, f32)> = vec![(0, 0.0); m];
        for &(s, d, w) in edges {
            if keep(n, s, d, w) {
                let at = &mut fill[s as usize];
                tmp[*at as usize] = (d, w);
                *at += 1;
            }
        }
        // Sort and merge each row; rows are independent, so do them in parallel.
        let rows: Vec<Vec<(u32, f32)>> = (0..n)
            .into_par_iter()
            .map(|v| {
                let row = &tmp[counts[v] as usize..counts[v + 1] as usize];
                let mut row = row.to_vec();
                row.sort_unstable_by_key(|e| e.0);
                let mut merged: Vec<(u32, f32)> = Vec::with_capacity(row.len());
                for (d, w) in row {
                    match merged.last_mut() {
                        Some(last) if last.0 == d => last.1 += w,
                        _ => merged.push((d, w)),
                    }
                }
                merged
            })
            .collect();
        drop(tmp);
        let total: usize = rows.iter().map(Vec::len).sum();
        let mut csr = Csr {
            offsets: Vec::with_capacity(n + 1),
            targets: Vec::with_capacity(total),
            weights: Vec::with_capacity(total),
        };
        csr.offsets.push(0);
        for row in rows {
            for (d, w) in row {
                csr.targets.push(d);
                csr.weights.push(w);
            }
            csr.offsets.push(csr.targets.len() as u64);
        }
        csr
    }

    pub fn nodes(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    pub fn edges(&self) -> usize {
        self.targets.len()
    }

    pub fn row(&self, v: usize) -> (&[u32], &[f32]) {
        let (a, b) = (self.offsets[v] as usize, self.offsets[v + 1] as usize);
        (&self.targets[a..b], &self.weights[a..b])
    }

    pub fn degree(&self, v: usize) -> usize {
        (self.offsets[v + 1] - self.offsets[v]) as usize
    }

    /// Sum of each row's weights.
    pub fn row_sums(&self) -> Vec<f64> {
        (0..self.nodes()).map(|v| self.row(v).1.iter().map(|w| f64::from(*w)).sum()).collect()
    }

    /// The reversed graph (rows become columns), rows sorted by neighbour.
    pub fn transpose(&self) -> Csr {
        let n = self.nodes();
        let mut counts = vec![0u64; n + 1];
        for &d in &self.targets {
            counts[d as usize + 1] += 1;
        }
        for i in 0..n {
            counts[i + 1] += counts[i];
        }
        let m = self.targets.len();
        let mut fill = counts.clone();
        let mut targets = vec![0u32; m];
        let mut weights = vec![0f32; m];
        // Visiting sources in increasing order leaves every transposed row sorted.
        for s in 0..n {
            let (ts, ws) = self.row(s);
            for (&d, &w) in ts.iter().zip(ws) {
                let at = &mut fill[d as usize];
                targets[*at as usize] = s as u32;
                weights[*at as usize] = w;
                *at += 1;
            }
        }
        Csr { offsets: counts, targets, weights }
    }

    /// Bytes held, for the per-edge memory budget.
    pub fn bytes(&self) -> usize {
        self.offsets.len() * 8 + self.targets.len() * 4 + self.weights.len() * 4
    }
}

fn keep(n: usize, s: u32, d: u32, w: f32) -> bool {
    (s as usize) < n && (d as usize) < n && s != d && w > 0.0 && w.is_finite()
}
