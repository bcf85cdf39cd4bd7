//! The pod and ring detectors: groups tied by quick reciprocal engagement of
//! each other's posts (see the module documentation of `authenticity`).

use std::collections::{HashMap, HashSet};

use lift_domain::Micros;

use super::{Flag, FlagKind, MAX_ACCOUNTS, MAX_OFFSETS};
use crate::engine::params::ModelParams;
use crate::engine::state::{NONE, Node, State};

pub(super) fn pods_and_rings(
    state: &State,
    p: &ModelParams,
    in_window: &impl Fn(Micros) -> bool,
    flags: &mut Vec<Flag>,
) {
    let quick = (p.pod_quick_secs * 1e6) as Micros;
    // Per (engager, author): quick engagements of the author's posts, and all of them.
    let mut pairs: HashMap<(Node, Node), (u32, u32)> = HashMap::new();
    for e in &state.engagements {
        if e.post == NONE || !in_window(e.at) {
            continue;
        }
        let Some(post) = state.posts.get(e.post as usize) else { continue };
        if post.author == NONE || post.author == e.actor {
            continue;
        }
        let dt = e.at - post.at;
        let slot = pairs.entry((e.actor, post.author)).or_default();
        slot.1 += 1;
        if (0..=quick).contains(&dt) {
            slot.0 += 1;
        }
    }
    // A tie: quick engagement both ways, enough of it, and most of the pair's engagement of
    // each other's posts quick (friends answer each other too, but over hours, not on cue).
    let each = p.pod_min_quick.max(1);
    let mut adj: HashMap<Node, Vec<Node>> = HashMap::new();
    for (&(a, b), &(qa, na)) in &pairs {
        let (qb, nb) = pairs.get(&(b, a)).copied().unwrap_or((0, 0));
        if a < b
            && qa >= each
            && qb >= each
            && qa + qb >= p.pod_min_quick_pair
            && f64::from(qa + qb) >= p.pod_min_quick_share * f64::from(na + nb)
        {
            adj.entry(a).or_default().push(b);
            adj.entry(b).or_default().push(a);
        }
    }
    if adj.is_empty() {
        return;
    }
    for v in adj.values_mut() {
        v.sort_unstable();
    }
    let min_size = p.pod_min_size.max(3) as usize;
    let mut groups: Vec<(FlagKind, Vec<Node>)> = Vec::new();
    for comp in components(&adj, None) {
        if comp.len() == 2 {
            groups.push((FlagKind::ReciprocityRing, comp));
            continue;
        }
        // Peel to the k-core so a dense pod inside a loose cluster is still found.
        for core in components(&adj, Some(&k_core(&adj, &comp, min_size - 1))) {
            if core.len() < min_size {
                continue;
            }
            // Pods that share a few members form one sparse component: split it into its
            // dense communities, each judged on its own.
            if density(&adj, &core) >= p.pod_min_density {
                groups.push((FlagKind::EngagementPod, core));
                continue;
            }
            groups.extend(split_overlapping(&adj, &core, min_size).into_iter().map(|g| (FlagKind::EngagementPod, g)));
        }
    }
    if groups.is_empty() {
        return;
    }
    // Concentration: the share of each member's received engagement that comes from its group.
    let mut group_of: HashMap<Node, usize> = HashMap::new();
    for (gi, (_, members)) in groups.iter().enumerate() {
        for &m in members {
            group_of.insert(m, gi);
        }
    }
    // It is measured over the group's active period (first to last engagement inside the
    // group): a pod run for two weeks by accounts with a long real history is still a pod.
    let mut evidence: Vec<(Vec<u64>, Micros, Micros)> = vec![(Vec::new(), Micros::MAX, Micros::MIN); groups.len()];
    for e in &state.engagements {
        if !in_window(e.at) {
            continue;
        }
        let t = state.target_of(e);
        let Some(&gt) = group_of.get(&t) else { continue };
        if group_of.get(&e.actor) == Some(&gt) {
            let ev = &mut evidence[gt];
            if ev.0.len() < MAX_OFFSETS {
                ev.0.push(e.offset);
            }
            ev.1 = ev.1.min(e.at);
            ev.2 = ev.2.max(e.at);
        }
    }
    let mut received: HashMap<Node, (u32, u32)> = HashMap::new();
    for e in &state.engagements {
        let t = state.target_of(e);
        let Some(&gt) = group_of.get(&t) else { continue };
        if !in_window(e.at) || e.at < evidence[gt].1 || e.at > evidence[gt].2 {
            continue;
        }
        let slot = received.entry(t).or_default();
        slot.1 += 1;
        // From the group, or from a partner of a reciprocal quick tie left outside its core.
        if group_of.get(&e.actor) == Some(&gt) || adj.get(&t).is_some_and(|n| n.binary_search(&e.actor).is_ok()) {
            slot.0 += 1;
        }
    }
    for (gi, (kind, members)) in groups.into_iter().enumerate() {
        let s = members.len();
        let density = density(&adj, &members);
        let conc = members
            .iter()
            .map(|m| received.get(m).map_or(0.0, |(g, t)| f64::from(*g) / f64::from((*t).max(1))))
            .sum::<f64>()
            / s as f64;
        let (severity, ok) = match kind {
            FlagKind::EngagementPod => {
                (density * conc, density >= p.pod_min_density && conc >= p.pod_min_concentration)
            }
            _ => (0.8 * conc, conc >= p.pod_min_concentration),
        };
        if !ok {
            continue;
        }
        let (offsets, a, b) = std::mem::take(&mut evidence[gi]);
        let description = match kind {
            FlagKind::EngagementPod => format!(
                "{s} accounts engage each other's posts within {} s (tie density {density:.2}); {:.0} % of their received engagement comes from the group",
                p.pod_quick_secs,
                100.0 * conc
            ),
            _ => format!(
                "2 accounts repeatedly engage each other's posts within {} s; {:.0} % of their received engagement comes from each other",
                p.pod_quick_secs,
                100.0 * conc
            ),
        };
        flags.push(Flag {
            kind,
            severity,
            description,
            accounts: members.iter().copied().take(MAX_ACCOUNTS).collect(),
            subjects: members,
            event_offsets: offsets,
            window_start: a,
            window_end: b,
        });
    }
}

/// The members of `group` left after repeatedly removing those with fewer than `k` ties inside.
fn k_core(adj: &HashMap<Node, Vec<Node>>, group: &[Node], k: usize) -> HashSet<Node> {
    let mut alive: HashSet<Node> = group.iter().copied().collect();
    loop {
        let drop: Vec<Node> =
            alive.iter().copied().filter(|v| adj[v].iter().filter(|u| alive.contains(u)).count() < k).collect();
        if drop.is_empty() {
            return alive;
        }
        for v in drop {
            alive.remove(&v);
        }
    }
}

/// Share of the possible ties inside `members` (sorted) that exist.
fn density(adj: &HashMap<Node, Vec<Node>>, members: &[Node]) -> f64 {
    let s = members.len();
    if s < 2 {
        return 0.0;
    }
    let ties: usize =
        members.iter().map(|m| adj[m].iter().filter(|u| members.binary_search(u).is_ok()).count()).sum::<usize>() / 2;
    ties as f64 / (s * (s - 1) / 2) as f64
}

/// Splits `members` (sorted) where pods sharing a few members meet: keeps only ties whose
/// two ends share most of their ties inside (closed neighbourhoods, Jaccard above ½), so a
/// member of two pods stays with the one it shares more with, and returns the dense
/// groups left (k-cores of the components, at least `min_size` members each).
fn split_overlapping(adj: &HashMap<Node, Vec<Node>>, members: &[Node], min_size: usize) -> Vec<Vec<Node>> {
    let inside = |v: Node| -> Vec<Node> {
        let mut n: Vec<Node> = adj[&v].iter().copied().filter(|u| members.binary_search(u).is_ok()).collect();
        n.push(v);
        n.sort_unstable();
        n
    };
    let hoods: HashMap<Node, Vec<Node>> = members.iter().map(|&v| (v, inside(v))).collect();
    let mut kept: HashMap<Node, Vec<Node>> = HashMap::new();
    for &v in members {
        for &u in &hoods[&v] {
            if u == v {
                continue;
            }
            let (a, b) = (&hoods[&v], &hoods[&u]);
            let common = a.iter().filter(|x| b.binary_search(x).is_ok()).count();
            if 2 * common > a.len() + b.len() - common {
                kept.entry(v).or_default().push(u);
            }
        }
    }
    let mut out = Vec::new();
    for comp in components(&kept, None) {
        let alive = k_core(&kept, &comp, min_size - 1);
        out.extend(components(&kept, Some(&alive)).into_iter().filter(|g| g.len() >= min_size));
    }
    out
}

/// Connected components (sorted members, sorted by first member) of `adj`, restricted to `only`.
fn components(adj: &HashMap<Node, Vec<Node>>, only: Option<&HashSet<Node>>) -> Vec<Vec<Node>> {
    let mut keys: Vec<Node> = adj.keys().copied().filter(|k| only.is_none_or(|o| o.contains(k))).collect();
    keys.sort_unstable();
    let mut seen: HashSet<Node> = HashSet::new();
    let mut out = Vec::new();
    for k in keys {
        if !seen.insert(k) {
            continue;
        }
        let mut comp = vec![k];
        let mut i = 0;
        while i < comp.len() {
            for &u in &adj[&comp[i]] {
                if only.is_none_or(|o| o.contains(&u)) && seen.insert(u) {
                    comp.push(u);
                }
            }
            i += 1;
        }
        comp.sort_unstable();
        out.push(comp);
    }
    out
}
