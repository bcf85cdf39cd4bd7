//! Engine-level tests: dimension invariants, determinism across restarts,
//! gaming detection, and calibration of the action interval.

use lift_domain::Dimension;
use lift_domain::event::EngagementKind;
use proptest::prelude::*;
use rand::{Rng, SeedableRng};

use super::stats::{GRID, quantize, saturate};
use super::testutil::*;
use super::*;

fn state_of(entries: &[lift_domain::LedgerEntry]) -> State {
    let mut s = State::new();
    for e in entries {
        s.apply(e);
    }
    s
}

fn node(s: &State, id: &str) -> Node {
    s.node(&acc(id)).unwrap()
}

/// Checks every invariant a snapshot promises about its values and percentiles.
fn check_invariants(s: &Snapshot) {
    for d in Dimension::ALL {
        let v = &s.values[d.index()];
        let p = &s.percentiles[d.index()];
        assert_eq!(v.len(), s.n);
        assert_eq!(p.len(), s.n);
        for i in 0..s.n {
            assert!((0.0..=100.0).contains(&v[i]), "{d} value {}", v[i]);
            assert_eq!(v[i] * GRID, (v[i] * GRID).round(), "{d} value off the grid");
            assert!((0.0..=100.0).contains(&p[i]), "{d} percentile {}", p[i]);
        }
        let o = &s.order[d.index()];
        for w in o.windows(2) {
            let (a, b) = (w[0] as usize, w[1] as usize);
            assert!(v[a] > v[b] || (v[a] == v[b] && a < b), "{d} order");
            // Percentiles follow values: strictly lower value, strictly lower percentile; ties equal.
            // Action is ranked among accounts with sufficient evidence only, so there it is monotone.
            if d == Dimension::Action {
                assert!(p[a] >= p[b], "{d} percentile order");
            } else if v[a] > v[b] {
                assert!(p[a] > p[b]);
            } else if v[a] == 0.0 {
                assert_eq!((p[a], p[b]), (0.0, 0.0), "nothing observed is at 0");
            } else {
                assert_eq!(p[a], p[b]);
            }
        }
        if d != Dimension::Action
            && let Some(&first) = o.first()
            && v[first as usize] > 0.0
        {
            assert_eq!(p[first as usize], 100.0);
        }
    }
    for (i, a) in s.action.iter().enumerate() {
        let v = s.values[Dimension::Action.index()][i];
        assert!(a.lower <= v && v <= a.upper, "action {} not in [{}, {}]", v, a.lower, a.upper);
        if !a.observed {
            // "No evidence" is a state, not the prior shown as a score.
            assert!(!a.sufficient && v == 0.0 && a.upper == 0.0, "action without evidence shows {v}");
            assert_eq!(s.percentiles[Dimension::Action.index()][i], 0.0);
        }
    }
    let total: f64 = s.pagerank.iter().sum();
    if s.n > 0 {
        assert!((total - 1.0).abs() < 1e-9);
    }
}

/// Pins that activity rewards responses per post: 100 reposts from 10 posts beat 100 from 1,000.
#[test]
fn activity_uses_responses_per_post() {
    let mut es = Vec::new();
    let mut off = 0;
    let mut next = || {
        off += 1;
        off
    };
    let t = T0 / SEC;
    for i in 0..10 {
        es.push(post(next(), "few", &format!("f{i}"), &[], t + i));
    }
    for i in 0..1000 {
        es.push(post(next(), "many", &format!("m{i}"), &[], t + i));
    }
    for i in 0..100 {
        es.push(engage(
            next(),
            EngagementKind::Repost,
            &format!("x{i}"),
            "few",
            Some(&format!("f{}", i % 10)),
            t + 2000,
        ));
        es.push(engage(next(), EngagementKind::Repost, &format!("y{i}"), "many", Some(&format!("m{i}")), t + 2000));
    }
    let s = state_of(&es);
    let snap = compute(&s, &ModelParams::default());
    check_invariants(&snap);
    let a = snap.value(Dimension::Activity, node(&s, "few")).unwrap();
    let b = snap.value(Dimension::Activity, node(&s, "many")).unwrap();
    assert!(a > b, "few posts {a} vs many posts {b}");
    // Both have 100 distinct engagers: reach is equal.
    assert_eq!(snap.value(Dimension::Reach, node(&s, "few")), snap.value(Dimension::Reach, node(&s, "many")));
}

/// Pins the invariants on a random stream with every event kind.
#[test]
fn invariants_hold_on_random_stream() {
    let es = random_stream(7, 60, 3000);
    let s = state_of(&es);
    let snap = compute(&s, &ModelParams::default());
    check_invariants(&snap);
    assert_eq!(snap.as_of.offset, 3000);
    assert!(!snap.topics.is_empty());
    for t in &snap.topics {
        for (k, _) in TOPIC_DIMS.iter().enumerate() {
            assert_eq!(t.values[k].len(), t.members.len());
            assert!(t.values[k].iter().all(|v| (0.0..=100.0).contains(v)));
        }
    }
}

use super::compute::TOPIC_DIMENSIONS as TOPIC_DIMS;

/// Pins restart determinism: replaying a prefix then the rest equals one uninterrupted run,
/// and a warm-started recompute after the rest equals a cold one on the value grid.
#[test]
fn restart_yields_identical_scores() {
    let es = random_stream(11, 80, 4000);
    let params = ModelParams::default();
    let full = state_of(&es);
    let uninterrupted = compute(&full, &params);

    // Crash after the first half: the restarted process replays it, then continues.
    let (first, rest) = es.split_at(2000);
    let mut before_crash = state_of(first);
    let snap_half = compute(&before_crash, &params);
    let mut restarted = state_of(first);
    assert_eq!(restarted, before_crash);
    for e in es.iter().take(2100) {
        // Redelivered events (at or below the applied offset) are ignored.
        restarted.apply(e);
    }
    for e in rest {
        restarted.apply(e);
        before_crash.apply(e);
    }
    assert_eq!(restarted, full);
    let again = compute(&restarted, &params);
    assert_eq!(again.values, uninterrupted.values);
    assert_eq!(again.percentiles, uninterrupted.percentiles);
    assert_eq!(again.flags, uninterrupted.flags);

    let warm = compute_with(
        &before_crash,
        &params,
        AsOf::of(&before_crash),
        ComputeOptions { warm_start: Some(&snap_half.pagerank), authenticity: None },
    );
    assert_eq!(warm.values, uninterrupted.values);
}

/// Pins that the value depends on the ledger prefix only (not on compute order or threads).
#[test]
fn compute_is_deterministic_across_thread_counts() {
    let es = random_stream(3, 120, 3000);
    let s = state_of(&es);
    let p = ModelParams::default();
    let a = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap().install(|| compute(&s, &p));
    let b = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap().install(|| compute(&s, &p));
    assert_eq!(a.values, b.values);
    assert_eq!(a.pagerank, b.pagerank);
}

/// Builds a background network plus a 5-account pod that likes each other's posts within a minute.
fn with_pod(seed: u64) -> (Vec<lift_domain::LedgerEntry>, Vec<String>) {
    let mut es = random_stream(seed, 100, 3000);
    let mut off = es.len() as u64;
    let base = T0 / SEC + 3000 * 600;
    let pod: Vec<String> = (0..5).map(|i| format!("pod{i}")).collect();
    for round in 0..6 {
        for (i, author) in pod.iter().enumerate() {
            let at = base + round * 3600 + i as i64 * 120;
            off += 1;
            let pid = format!("pp{round}-{i}");
            es.push(post(off, author, &pid, &["rust"], at));
            for other in pod.iter().filter(|o| *o != author) {
                off += 1;
                es.push(like(off, other, author, &pid, at + 30));
            }
        }
    }
    (es, pod)
}

/// Pins pod detection: the pod is flagged with its members and events as evidence, their
/// authenticity drops, and their network scores fall against a run that trusts them.
#[test]
fn engagement_pod_is_flagged_and_down_weighted() {
    let (es, pod) = with_pod(5);
    let s = state_of(&es);
    let p = ModelParams::default();
    let snap = compute(&s, &p);
    check_invariants(&snap);
    let members: Vec<Node> = {
        let mut m: Vec<Node> = pod.iter().map(|a| node(&s, a)).collect();
        m.sort_unstable();
        m
    };
    let flag = snap.flags.iter().find(|f| f.kind == FlagKind::EngagementPod).expect("pod flagged");
    assert_eq!(flag.subjects, members);
    assert!(!flag.event_offsets.is_empty());
    assert!(flag.event_offsets.iter().all(|o| *o > 3000), "evidence is the pod's own events");
    assert!(flag.window_start <= flag.window_end);
    let trusting = compute_with(
        &s,
        &p,
        AsOf::of(&s),
        ComputeOptions { warm_start: None, authenticity: Some(&vec![100.0; s.len()]) },
    );
    for &m in &members {
        assert!(snap.value(Dimension::Authenticity, m).unwrap() < 50.0);
        assert!(snap.flags_of(m).any(|f| f.kind == FlagKind::EngagementPod));
        let (got, trusted) =
            (snap.value(Dimension::Network, m).unwrap(), trusting.value(Dimension::Network, m).unwrap());
        assert!(got < trusted, "network {got} should fall below {trusted}");
    }
    // Background accounts are not flagged as pods.
    assert_eq!(snap.flags.iter().filter(|f| f.kind == FlagKind::EngagementPod).count(), 1);
}

/// Pins follow churn detection on the follower and its evidence.
#[test]
fn follow_churn_is_flagged() {
    let mut es = Vec::new();
    let t = T0 / SEC;
    let mut off = 0;
    for i in 0..20 {
        off += 1;
        es.push(follow(off, "churner", &format!("v{i}"), false, t + i * 60));
        off += 1;
        es.push(follow(off, "churner", &format!("v{i}"), true, t + 86_400 + i * 60));
    }
    off += 1;
    es.push(follow(off, "steady", "v1", false, t));
    let s = state_of(&es);
    let snap = compute(&s, &ModelParams::default());
    let f = snap.flags.iter().find(|f| f.kind == FlagKind::FollowChurn).expect("churn flagged");
    assert_eq!(f.subjects, vec![node(&s, "churner")]);
    assert_eq!(f.event_offsets.len(), 20);
    assert!(snap.value(Dimension::Authenticity, node(&s, "churner")).unwrap() < 10.0);
    assert_eq!(snap.value(Dimension::Authenticity, node(&s, "steady")), Some(100.0));
}

/// Pins that bursts count new accounts only: 120 established accounts engaging a
/// viral post in one day raise no burst, while 20 days-old accounts following
/// an account within hours do.
#[test]
fn viral_posts_do_not_burst_but_bought_followers_do() {
    let mut es = Vec::new();
    let t = T0 / SEC;
    let mut off = 0;
    // 120 established accounts, active two months before.
    for i in 0..120 {
        off += 1;
        es.push(engage(off, EngagementKind::Mention, &format!("fan{i}"), &format!("fan{}", (i + 1) % 120), None, t));
    }
    let day = t + 60 * 86_400;
    off += 1;
    es.push(post(off, "star", "hit", &[], day));
    for i in 0..120 {
        off += 1;
        es.push(like(off, &format!("fan{i}"), "star", "hit", day + 60 + i * 300));
    }
    for i in 0..20 {
        off += 1;
        es.push(account(off, &format!("bot{i}"), 0, Some((day - 2 * 86_400) * SEC), day));
        off += 1;
        es.push(follow(off, &format!("bot{i}"), "buyer", false, day + i * 600));
    }
    let s = state_of(&es);
    let snap = compute(&s, &ModelParams::default());
    assert_eq!(snap.flags_of(node(&s, "star")).count(), 0, "a viral post is not gaming");
    assert!(snap.flags_of(node(&s, "buyer")).any(|f| f.kind == FlagKind::FollowerBurst));
}

/// Pins follower-burst and young-engager detection.
#[test]
fn bursts_and_young_engagers_are_flagged() {
    let mut es = Vec::new();
    let t = T0 / SEC;
    let mut off = 0;
    // A slow baseline over 60 days, then 200 new followers (all days-old accounts) in one day.
    for d in 0..60 {
        off += 1;
        es.push(follow(off, &format!("old{d}"), "target", false, t + d * 86_400));
    }
    for i in 0..200 {
        off += 1;
        es.push(account(off, &format!("bot{i}"), 0, Some((t + 59 * 86_400) * SEC), t + 60 * 86_400));
        off += 1;
        es.push(follow(off, &format!("bot{i}"), "target", false, t + 60 * 86_400 + i));
        off += 1;
        es.push(post(off, "target", &format!("tp{i}"), &[], t + 60 * 86_400 + i));
        off += 1;
        es.push(like(off, &format!("bot{i}"), "target", &format!("tp{i}"), t + 60 * 86_400 + 3600 + i));
    }
    let s = state_of(&es);
    let snap = compute(&s, &ModelParams::default());
    let target = node(&s, "target");
    let kinds: Vec<FlagKind> = snap.flags_of(target).map(|f| f.kind).collect();
    assert!(kinds.contains(&FlagKind::FollowerBurst), "{kinds:?}");
    assert!(kinds.contains(&FlagKind::YoungEngagers), "{kinds:?}");
    let burst = snap.flags_of(target).find(|f| f.kind == FlagKind::FollowerBurst).unwrap();
    assert_eq!(burst.event_offsets.len(), 100, "evidence truncated to 100 offsets");
    assert!(snap.value(Dimension::Authenticity, target).unwrap() < 100.0);
}

/// Pins the action estimate: insufficient evidence below the click threshold, and a
/// 90 % interval that covers the true rate about 90 % of the time on simulated data.
#[test]
fn action_intervals_are_calibrated() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
    let p = ModelParams::default();
    let mut es = Vec::new();
    let mut off = 0u64;
    let t = T0 / SEC;
    let mut truth = Vec::new();
    for a in 0..400 {
        // True rates from Beta(2, 48) (mean 4 %), via the ratio of gammas approximated by order stats.
        let theta: f64 = {
            let x: f64 = (0..2).map(|_| -rng.random::<f64>().ln()).sum();
            let y: f64 = (0..48).map(|_| -rng.random::<f64>().ln()).sum();
            x / (x + y)
        };
        let clicks = rng.random_range(30..300);
        let owner = format!("c{a}");
        truth.push((owner.clone(), theta));
        for k in 0..clicks {
            off += 1;
            es.push(click(off, &owner, &format!("v{a}-{k}"), t + k));
            if rng.random_bool(theta) {
                off += 1;
                es.push(conversion(off, &owner, &format!("v{a}-{k}"), 1000, t + k + 10));
            }
        }
    }
    off += 1;
    es.push(click(off, "thin", "v", t));
    let s = state_of(&es);
    let snap = compute(&s, &p);
    check_invariants(&snap);
    let mut covered = 0;
    for (owner, theta) in &truth {
        let n = node(&s, owner) as usize;
        let est = snap.action[n];
        assert!(est.sufficient);
        if est.conversion.lower <= *theta && *theta <= est.conversion.upper {
            covered += 1;
        }
        // Without session tracking the value is the conversion part alone.
        let v = quantize(saturate(est.conversion.mean, p.action_rate_scale));
        assert_eq!(snap.values[Dimension::Action.index()][n], v);
    }
    let coverage = f64::from(covered) / truth.len() as f64;
    assert!((0.84..=0.96).contains(&coverage), "coverage {coverage}");
    // The population prior was fitted, not the fallback.
    let prior_mean = snap.action_prior.0 / (snap.action_prior.0 + snap.action_prior.1);
    assert!((prior_mean - 0.04).abs() < 0.01, "prior mean {prior_mean}");
    let thin = node(&s, "thin") as usize;
    assert!(!snap.action[thin].sufficient);
    assert!(snap.action[thin].upper - snap.action[thin].lower > 5.0);
}

/// Pins "no evidence" as a state: an account with no attributed outcome shows
/// action 0 with no interval and percentile 0, never the population prior; an
/// account with a few clicks is insufficient and ranks after every account with
/// sufficient evidence, however lucky its clicks.
#[test]
fn no_evidence_is_a_state_and_thin_evidence_ranks_last() {
    let t = T0 / SEC;
    let mut es = Vec::new();
    let mut off = 0u64;
    // Ten proven creators converting 2 % of 100 clicks each, one lucky creator at 3 of 3.
    for a in 0..10 {
        for k in 0..100 {
            off += 1;
            es.push(click(off, &format!("p{a}"), &format!("v{a}-{k}"), t + k));
            if k % 50 == 0 {
                off += 1;
                es.push(conversion(off, &format!("p{a}"), &format!("v{a}-{k}"), 500, t + k + 1));
            }
        }
    }
    for k in 0..3 {
        off += 1;
        es.push(click(off, "lucky", &format!("l{k}"), t + k));
        off += 1;
        es.push(conversion(off, "lucky", &format!("l{k}"), 500, t + k + 1));
    }
    off += 1;
    es.push(post(off, "silent", "s1", &[], t));
    let s = state_of(&es);
    let snap = compute(&s, &ModelParams::default());
    check_invariants(&snap);
    let silent = node(&s, "silent") as usize;
    let a = snap.action[silent];
    assert!(!a.observed && !a.sufficient);
    assert_eq!((snap.values[Dimension::Action.index()][silent], a.lower, a.upper), (0.0, 0.0, 0.0));
    assert_eq!(snap.percentiles[Dimension::Action.index()][silent], 0.0);
    let lucky = node(&s, "lucky");
    assert!(snap.action[lucky as usize].observed && !snap.action[lucky as usize].sufficient);
    let pos = |n: Node| snap.action_rank.iter().position(|&x| x == n).unwrap();
    for a in 0..10 {
        assert!(pos(node(&s, &format!("p{a}"))) < pos(lucky), "a proven creator ranks ahead of 3 lucky clicks");
    }
    assert_eq!(pos(silent as Node), snap.n - 1, "no evidence ranks last");
}

/// Pins that engaged (non-bounce) sessions enter action with their own interval:
/// two creators with the same clicks and conversions differ in action by their
/// engaged sessions, and each engaged-rate interval covers its observed rate.
#[test]
fn engaged_sessions_enter_action() {
    let t = T0 / SEC;
    let mut es = Vec::new();
    let mut off = 0u64;
    // Five creators at each engagement level, so the population prior is fitted.
    for a in 0..10 {
        let engaged_every = if a < 5 { 5 } else { 2 }; // 20 % vs 50 % engaged sessions
        for k in 0..80 {
            let (owner, visitor) = (format!("c{a}"), format!("v{a}-{k}"));
            off += 1;
            es.push(click(off, &owner, &visitor, t + k));
            off += 1;
            es.push(session(off, &owner, &visitor, k % engaged_every != 0, t + k + 1));
            if k % 40 == 0 {
                off += 1;
                es.push(conversion(off, &owner, &visitor, 500, t + k + 2));
            }
        }
    }
    let s = state_of(&es);
    let p = ModelParams::default();
    let snap = compute(&s, &p);
    check_invariants(&snap);
    let (low, high) = (node(&s, "c0") as usize, node(&s, "c9") as usize);
    let (a, b) = (snap.action[low], snap.action[high]);
    assert_eq!(a.conversion, b.conversion, "same clicks and conversions");
    assert!(a.engaged.upper < b.engaged.lower, "{:?} vs {:?}", a.engaged, b.engaged);
    assert!(a.engaged.lower <= 0.2 && 0.2 <= a.engaged.upper, "{:?}", a.engaged);
    assert!(b.engaged.lower <= 0.5 && 0.5 <= b.engaged.upper, "{:?}", b.engaged);
    let v = &snap.values[Dimension::Action.index()];
    assert!(v[high] > v[low], "engaged sessions raise action: {} vs {}", v[high], v[low]);
    let raw = snap.raw[high].for_dimension(Dimension::Action);
    assert!(raw.iter().any(|(k, x)| *k == "engaged_rate_lower" && *x > 0.0), "{raw:?}");
}

/// Pins that new engagement raises the engaged account's activity, reach and network.
#[test]
fn engagement_moves_the_target_up() {
    let es = random_stream(9, 50, 1500);
    let mut s = state_of(&es);
    let p = ModelParams::default();
    let before = compute(&s, &p);
    let star = node(&s, "u3");
    let mut off = s.offset;
    let t = s.max_time / SEC;
    for i in 0..30 {
        off += 1;
        s.apply(&post(off, "u3", &format!("star{i}"), &[], t + 1));
        for k in 0..4 {
            off += 1;
            let fan = format!("fan{}", (i + k) % 40);
            s.apply(&engage(off, EngagementKind::Repost, &fan, "u3", Some(&format!("star{i}")), t + 2));
        }
    }
    let after = compute(&s, &p);
    for d in [Dimension::Activity, Dimension::Reach, Dimension::Network] {
        assert!(after.value(d, star) > before.value(d, star), "{d}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Pins the invariants over random event streams and model seeds.
    #[test]
    fn invariants_over_random_streams(seed in 0u64..10_000, accounts in 2usize..40, events in 1usize..600) {
        let s = state_of(&random_stream(seed, accounts, events));
        check_invariants(&compute(&s, &ModelParams::default()));
    }
}
