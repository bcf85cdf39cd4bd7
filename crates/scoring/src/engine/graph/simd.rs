//! AVX-512 versions of [`TargetRange::accumulate`]'s loops, chosen at run
//! time. Every sum is taken in exactly the order of the portable loops
//! (products and additions in f64, never fused), so a machine with and one
//! without these instructions compute bit-identical PageRank vectors.
//!
//! This is the one module of Lift with `unsafe` code: vector loads, gathers
//! and scatters take raw pointers. What keeps them in bounds is stated at
//! each use.
#![allow(unsafe_code)]

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::{Contribution, TargetRange, Weight};

/// Whether this CPU has the instructions the vector loops use.
pub(super) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    return is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx2");
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Runs `r.accumulate(y, ws, out)` with vector instructions when this CPU has
/// them; returns false (having done nothing) when it does not.
pub(super) fn accumulate<T: Contribution + Wide, W: WideWeight>(
    r: &TargetRange,
    y: &[T],
    ws: &[W],
    out: &mut [f64],
) -> bool {
    #[cfg(target_arch = "x86_64")]
    if super::vector_loops_enabled() && available() {
        // SAFETY: the CPU has both features, checked just above.
        unsafe { x86::accumulate(r, y, ws, out) };
        return true;
    }
    let _ = (r, y, ws, out);
    false
}

/// A contribution type that can be gathered eight at a time as f64.
pub(super) trait Wide: Copy {
    /// `[base[idx[k]] as f64; 8]`.
    ///
    /// # Safety
    /// The CPU has AVX-512F and AVX2; every `base + idx[k]` is in bounds.
    #[cfg(target_arch = "x86_64")]
    unsafe fn gather(base: *const Self, idx: __m256i) -> __m512d;
}

/// An edge weight type that can be loaded eight at a time as f64.
pub(super) trait WideWeight: Weight {
    /// `[p[k] as f64; 8]`.
    ///
    /// # Safety
    /// The CPU has AVX-512F and AVX2; `p..p + 8` is in bounds.
    #[cfg(target_arch = "x86_64")]
    unsafe fn load(p: *const Self) -> __m512d;
}

impl Wide for f32 {
    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx512f,avx2")]
    unsafe fn gather(base: *const f32, idx: __m256i) -> __m512d {
        // SAFETY: forwarded from the caller.
        _mm512_cvtps_pd(unsafe { _mm256_i32gather_ps::<4>(base, idx) })
    }
}

impl Wide for f64 {
    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx512f,avx2")]
    unsafe fn gather(base: *const f64, idx: __m256i) -> __m512d {
        // SAFETY: forwarded from the caller.
        unsafe { _mm512_i32gather_pd::<8>(idx, base) }
    }
}

impl WideWeight for u16 {
    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx512f,avx2")]
    unsafe fn load(p: *const u16) -> __m512d {
        // SAFETY: forwarded from the caller (8 × 2 bytes = one 128-bit load).
        _mm512_cvtepi32_pd(_mm256_cvtepu16_epi32(unsafe { _mm_loadu_si128(p.cast()) }))
    }
}

impl WideWeight for f32 {
    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx512f,avx2")]
    unsafe fn load(p: *const f32) -> __m512d {
        // SAFETY: forwarded from the caller.
        _mm512_cvtps_pd(unsafe { _mm256_loadu_ps(p) })
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::super::Contribution;
    use super::super::{FIXED, LANES, TargetRange, block_sums, row_tail};
    use super::{Wide, WideWeight};

    /// Eight u16 offsets widened to the i32 indices gathers take.
    ///
    /// # Safety
    /// AVX2; `p..p + 8` is in bounds.
    #[inline]
    #[target_feature(enable = "avx512f,avx2")]
    unsafe fn indices(p: *const u16) -> __m256i {
        // SAFETY: forwarded from the caller.
        _mm256_cvtepu16_epi32(unsafe { _mm_loadu_si128(p.cast()) })
    }

    /// # Safety
    /// The CPU has AVX-512F and AVX2.
    #[target_feature(enable = "avx512f,avx2")]
    pub(super) unsafe fn accumulate<T: Contribution + Wide, W: WideWeight>(
        r: &TargetRange,
        y: &[T],
        ws: &[W],
        out: &mut [f64],
    ) {
        // Every target offset is below `r.len` (TargetRange::new stores
        // `t − start` for `t` in `start..end`, and `len = end − start`), so
        // with this check every scatter into `out` is in bounds.
        assert!(out.len() >= r.len && ws.len() == r.sources.len());
        r.for_each_run(y, ws, |ys, len, targets, srcs, ws| {
            // Sources are u16 offsets into a segment of exactly 2^16
            // contributions, so every gather from `yp` is in bounds.
            let yp = ys.as_ptr();
            if len <= FIXED {
                let blocks = targets.chunks_exact(LANES);
                let tail = blocks.remainder();
                let (sb, wb) = (srcs.chunks_exact(LANES * len), ws.chunks_exact(LANES * len));
                let (st, wt) = (sb.remainder(), wb.remainder());
                for ((t, s), w) in blocks.zip(sb).zip(wb) {
                    let mut acc = _mm512_setzero_pd();
                    for j in 0..len {
                        // SAFETY: `s` and `w` hold `LANES · len` elements.
                        let (idx, wj) =
                            unsafe { (indices(s.as_ptr().add(j * LANES)), W::load(w.as_ptr().add(j * LANES))) };
                        // SAFETY: see `yp`.
                        acc = _mm512_add_pd(acc, _mm512_mul_pd(unsafe { T::gather(yp, idx) }, wj));
                    }
                    // SAFETY: `t` holds LANES targets, distinct (one sub-row
                    // per target and segment) and below `out.len()` (above),
                    // so the scatter writes each lane once, in bounds.
                    unsafe {
                        let tidx = indices(t.as_ptr());
                        let op = out.as_mut_ptr();
                        let sum = _mm512_add_pd(_mm512_i32gather_pd::<8>(tidx, op), acc);
                        _mm512_i32scatter_pd::<8>(op, tidx, sum);
                    }
                }
                block_sums(ys, out, tail, st, wt);
            } else {
                for ((t, s), w) in targets.iter().zip(srcs.chunks_exact(len)).zip(ws.chunks_exact(len)) {
                    let mut acc = _mm512_setzero_pd();
                    let (mut sc, mut wc) = (s.chunks_exact(LANES), w.chunks_exact(LANES));
                    for (s, w) in (&mut sc).zip(&mut wc) {
                        // SAFETY: `s` and `w` hold LANES elements; see `yp`.
                        let (idx, wj) = unsafe { (indices(s.as_ptr()), W::load(w.as_ptr())) };
                        acc = _mm512_add_pd(acc, _mm512_mul_pd(unsafe { T::gather(yp, idx) }, wj));
                    }
                    let mut lanes = [0.0f64; LANES];
                    // SAFETY: `lanes` holds exactly one vector.
                    unsafe { _mm512_storeu_pd(lanes.as_mut_ptr(), acc) };
                    out[usize::from(*t)] += row_tail(ys, &mut lanes, sc.remainder(), wc.remainder());
                }
            }
        });
    }
}
