//! Tests of `engine::explain`: exact sums, and the erasure part.

use proptest::prelude::*;

use lift_domain::LedgerEntry;

use super::*;
use crate::engine::testutil::random_stream;

fn states(seed: u64, accounts: usize, n: usize, cut: usize) -> (State, State) {
    let es = random_stream(seed, accounts, n);
    let mut a = State::new();
    for e in &es[..cut.min(n)] {
        a.apply(e);
    }
    let mut b = a.clone();
    for e in &es[cut.min(n)..] {
        b.apply(e);
    }
    (a, b)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Pins exactness: contributions sum bit for bit to the change, for every
    /// dimension, with and without a model change.
    #[test]
    fn contributions_sum_exactly(seed in 0u64..5000, accounts in 2usize..30, n in 2usize..400, cut_share in 0.05f64..0.95, recal in any::<bool>(), who in 0usize..30) {
        let cut = ((n as f64) * cut_share) as usize;
        let (a, b) = states(seed, accounts, n, cut.max(1));
        let pf = ModelParams::default();
        let pt = if recal { ModelParams { half_life_days: 9.0, activity_scale: 3.0, ..ModelParams::default() } } else { pf.clone() };
        let from = Side { state: &a, params: &pf, as_of: AsOf::of(&a) };
        let to = Side { state: &b, params: &pt, as_of: AsOf::of(&b) };
        prop_assume!(!a.is_empty());
        let node = (who % a.len()) as Node;
        for d in Dimension::ALL {
            let e = explain(from, to, node, d).unwrap();
            let sum: f64 = e.contributions.iter().map(|c| c.delta).sum();
            prop_assert_eq!(sum, e.to_value - e.from_value);
            let pct: f64 = e.percentile_contributions.iter().map(|c| c.delta).sum();
            prop_assert_eq!(pct, e.to_percentile - e.from_percentile);
            // The endpoints are the runs' own percentiles, to the grid.
            let served_from = crate::engine::compute(&a, &pf).percentiles[d.index()][node as usize];
            let served_to = crate::engine::compute(&b, &pt).percentiles[d.index()][node as usize];
            prop_assert!((e.from_percentile - served_from).abs() <= 0.5 / 1024.0);
            prop_assert!((e.to_percentile - served_to).abs() <= 0.5 / 1024.0);
            // The endpoints are the values the runs themselves publish.
            let direct_from = crate::engine::compute(&a, &pf).values[d.index()][node as usize];
            let direct_to = crate::engine::compute(&b, &pt).values[d.index()][node as usize];
            prop_assert_eq!(e.from_value, direct_from);
            prop_assert_eq!(e.to_value, direct_to);
            if !recal {
                prop_assert_eq!(e.contributions[3].delta, 0.0);
            }
            if d == Dimension::Authenticity {
                prop_assert_eq!(e.contributions[0].delta, 0.0);
                prop_assert_eq!(e.contributions[1].delta, 0.0);
            }
        }
    }

    /// Pins exactness across removals: rebased on any recorded scores (on the
    /// grid or not), the parts still sum bit for bit to the recorded change, the
    /// erasure part comes first, and the other parts are untouched.
    #[test]
    fn across_removals_sums_exactly(seed in 0u64..5000, n in 20usize..300, who in 0usize..12, rf in 0.0f64..100.0, pf in 0.0f64..100.0, rt in 0.0f64..100.0, pt in 0.0f64..100.0, later in any::<bool>(), retention in any::<bool>()) {
        let (a, b) = states(seed, 12, n, n / 2);
        prop_assume!(!a.is_empty());
        let p = ModelParams::default();
        let from = Side { state: &a, params: &p, as_of: AsOf::of(&a) };
        let to = Side { state: &b, params: &p, as_of: AsOf::of(&b) };
        let node = (who % a.len()) as Node;
        let removals = [Removal { offset: n as u64 + 1, retention_before: retention.then_some(crate::engine::testutil::T0) }];
        for d in Dimension::ALL {
            let e = explain(from, to, node, d).unwrap();
            let to_rec = later.then_some(Recorded { value: rt, percentile: pt });
            let r = across_removals(e.clone(), Recorded { value: rf, percentile: pf }, to_rec, &removals);
            prop_assert_eq!(r.from_value, quantize(rf));
            prop_assert_eq!(r.from_percentile, quantize(pf));
            prop_assert_eq!(r.to_value, if later { quantize(rt) } else { e.to_value });
            prop_assert_eq!(r.to_percentile, if later { quantize(pt) } else { e.to_percentile });
            let sum: f64 = r.contributions.iter().map(|c| c.delta).sum();
            prop_assert_eq!(sum, r.to_value - r.from_value);
            let pct: f64 = r.percentile_contributions.iter().map(|c| c.delta).sum();
            prop_assert_eq!(pct, r.to_percentile - r.from_percentile);
            prop_assert_eq!(r.contributions[0].cause, Cause::Erasure);
            prop_assert_eq!(r.percentile_contributions[0].cause, PercentileCause::Erasure);
            prop_assert_eq!(&r.contributions[1..], &e.contributions[..]);
            prop_assert_eq!(&r.percentile_contributions[1..], &e.percentile_contributions[..]);
            prop_assert_eq!(&r.contributions[0].event_offsets, &vec![n as u64 + 1]);
        }
    }
}

/// Pins what the erasure part is, on a world where another account engaged
/// with the explained one and was then erased: the earlier run's recorded
/// value minus what its redacted prefix gives, the later run's value as
/// served after the erasure, and a description that names no one.
#[test]
fn an_erasure_is_its_own_part_and_names_no_one() {
    use crate::engine::compute;
    use crate::engine::testutil::{T0, account, follow, like, post};
    let t = T0 / 1_000_000;
    let mut before = random_stream(7, 8, 200);
    let o = before.len() as u64;
    let extra = [
        account(o + 1, "bob", 5_000, None, t + 100),
        post(o + 2, "u1", "pa", &["rust"], t + 200),
        post(o + 3, "u1", "pb", &["rust"], t + 300),
        follow(o + 4, "bob", "u1", false, t + 400),
        like(o + 5, "bob", "u1", "pa", t + 500),
        like(o + 6, "bob", "u1", "pb", t + 600),
    ];
    let off = o + 6;
    before.extend(extra);
    let later: Vec<LedgerEntry> = random_stream(8, 8, 260)[200..]
        .iter()
        .cloned()
        .enumerate()
        .map(|(k, mut e)| {
            e.offset = off + 2 + k as u64;
            e
        })
        .collect();
    let state_of = |es: &[LedgerEntry]| {
        let mut s = State::new();
        for e in es {
            s.apply(e);
        }
        s
    };
    // Every event of bob's here is one where bob acts (the world's others are u0…u7).
    let bob_id = crate::engine::testutil::acc("bob");
    let bob = |e: &LedgerEntry| e.event.primary_account() == Some(&bob_id);
    let p = ModelParams::default();
    // What the earlier run served, before the erasure.
    let served = state_of(&before);
    let served_snap = compute(&served, &p);
    let u1 = served.node(&crate::engine::testutil::acc("u1")).unwrap();
    // The ledger after the erasure: bob's events gone, a marker, then more events.
    let redacted: Vec<LedgerEntry> = before.iter().filter(|e| !bob(e)).cloned().collect();
    let a = state_of(&redacted);
    let mut b = a.clone();
    for e in &later {
        b.apply(e);
    }
    let as_of_from = AsOf { offset: served.offset, time: AsOf::of(&served).time };
    let from = Side { state: &a, params: &p, as_of: as_of_from };
    let to = Side { state: &b, params: &p, as_of: AsOf::of(&b) };
    let removals = [Removal { offset: off + 1, retention_before: None }];
    let mut moved = 0;
    for d in Dimension::ALL {
        let i = u1 as usize;
        let recorded =
            Recorded { value: served_snap.values[d.index()][i], percentile: served_snap.percentiles[d.index()][i] };
        let e = explain(from, to, u1, d).unwrap();
        let r = across_removals(e.clone(), recorded, None, &removals);
        assert_eq!(r.from_value, recorded.value, "{d:?}");
        assert_eq!(r.to_value, compute(&b, &p).values[d.index()][i], "{d:?}");
        let erasure = &r.contributions[0];
        assert_eq!(erasure.delta, e.from_value - recorded.value, "{d:?}");
        assert_eq!(r.contributions.iter().map(|c| c.delta).sum::<f64>(), r.to_value - r.from_value);
        assert_eq!(
            r.percentile_contributions.iter().map(|c| c.delta).sum::<f64>(),
            r.to_percentile - r.from_percentile
        );
        if erasure.delta != 0.0 {
            moved += 1;
        }
        for text in r
            .contributions
            .iter()
            .map(|c| &c.description)
            .chain(r.percentile_contributions.iter().map(|c| &c.description))
        {
            assert!(!text.contains("bob"), "{text}");
        }
        assert!(erasure.description.contains("another person was erased at their request"), "{}", erasure.description);
        assert_eq!(erasure.event_offsets, vec![off + 1]);
    }
    assert!(moved > 0, "bob's engagement moved some dimension of u1");
}

/// Pins that an account unknown in the from state has no explanation.
#[test]
fn unknown_account_has_no_explanation() {
    let (a, b) = states(1, 10, 100, 50);
    let p = ModelParams::default();
    let from = Side { state: &a, params: &p, as_of: AsOf::of(&a) };
    let to = Side { state: &b, params: &p, as_of: AsOf::of(&b) };
    assert!(explain(from, to, b.len() as Node + 5, Dimension::Reach).is_none());
}
