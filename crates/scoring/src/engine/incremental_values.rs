//! The two halves of a run that touch per-account data: recomputing dirty
//! accounts' statistics from their own event lists, and mapping statistics to
//! values and percentiles for the population.

use lift_domain::{Dimension, Micros};
use rayon::prelude::*;

use super::*;

impl IncrementalScores {
    /// Recomputes the statistics of the dirty accounts from their own event lists.
    pub(super) fn recompute(
        &mut self,
        state: &State,
        p: &ModelParams,
        dirty: &[Node],
        window_start: Micros,
        now: Micros,
    ) {
        let in_window = |at: Micros| at > window_start && at <= now;
        let hl = p.half_life_micros();
        let base = self.base;
        let factor = |at: Micros| if hl > 0.0 { 2f64.powf((at - base) as f64 / hl) } else { 1.0 };
        let n = state.len();
        // Engager sets first: two-hop reach reads those of accounts that are not dirty themselves.
        let sets: Vec<(Node, Vec<Node>)> = dirty
            .par_iter()
            .filter(|&&u| self.dirty[u as usize] & REACH != 0)
            .map(|&u| {
                let mut out: Vec<Node> = self.by_target[u as usize]
                    .iter()
                    .map(|&k| &state.engagements[k as usize])
                    .filter(|e| kind_weight(p, e.kind) > 0.0 && in_window(e.at))
                    .map(|e| e.actor)
                    .collect();
                out.sort_unstable();
                out.dedup();
                (u, out)
            })
            .collect();
        for (u, set) in sets {
            self.engagers[u as usize] = set;
        }
        let this = &*self;
        type Out = (Node, Option<(ActivityStats, [f32; 3])>, Option<ReachStats>, Option<OutcomeCounts>);
        let results: Vec<Out> = dirty
            .par_iter()
            .map_init(
                || (vec![NONE; n], Vec::<Node>::new()),
                |(stamp, scratch), &u| {
                    let bits = this.dirty[u as usize];
                    let ui = u as usize;
                    let act = (bits & ACT != 0).then(|| {
                        let mut s = ActivityStats::default();
                        let mut c = [0f32; 3];
                        for &pi in &this.posts_by_author[ui] {
                            let post = &state.posts[pi as usize];
                            if in_window(post.at) {
                                s.posts += factor(post.at);
                                c[0] += 1.0;
                            }
                        }
                        for &k in &this.by_actor[ui] {
                            let e = &state.engagements[k as usize];
                            if in_window(e.at) {
                                s.own += kind_weight(p, e.kind) * factor(e.at);
                                c[1] += 1.0;
                            }
                        }
                        for &k in &this.by_target[ui] {
                            let e = &state.engagements[k as usize];
                            if in_window(e.at) {
                                s.responses += kind_weight(p, e.kind) * factor(e.at) * this.weights[e.actor as usize];
                                c[2] += 1.0;
                            }
                        }
                        (s, c)
                    });
                    let reach = (bits & REACH != 0).then(|| {
                        let own = &this.engagers[ui];
                        let weighted: f64 = own.iter().map(|&x| this.weights[x as usize]).sum();
                        scratch.clear();
                        for &k in &this.by_target[ui] {
                            let e = &state.engagements[k as usize];
                            if is_repost(e.kind) && in_window(e.at) {
                                scratch.push(e.actor);
                            }
                        }
                        scratch.sort_unstable();
                        scratch.dedup();
                        let mut count = 0u32;
                        stamp[ui] = u;
                        for &x in scratch.iter() {
                            for &y in this.engagers[x as usize].iter().chain(&this.followers[x as usize]) {
                                if stamp[y as usize] != u {
                                    stamp[y as usize] = u;
                                    count += 1;
                                }
                            }
                        }
                        ReachStats { distinct_engagers: own.len() as u32, weighted_engagers: weighted, two_hop: count }
                    });
                    let action = (bits & ACTION != 0).then(|| {
                        let mut c = OutcomeCounts::default();
                        for &k in &this.outcomes_by_owner[ui] {
                            let o = &state.outcomes[k as usize];
                            if !in_window(o.at) {
                                continue;
                            }
                            match o.kind {
                                OutcomeKind::Click => c.clicks += 1,
                                OutcomeKind::Session { bounced } => {
                                    c.sessions += 1.0;
                                    if !bounced {
                                        c.engaged += 1;
                                        c.non_bounced += 1.0;
                                    }
                                }
                                OutcomeKind::Conversion => {
                                    c.conv += 1;
                                    c.conversions += 1.0;
                                    c.value_minor += o.value_minor as f32;
                                }
                                OutcomeKind::CodeConversion => {
                                    c.code_conversions += 1.0;
                                    c.value_minor += o.value_minor as f32;
                                }
                            }
                        }
                        c
                    });
                    (u, act, reach, action)
                },
            )
            .collect();
        for (u, act, reach, action) in results {
            let (ui, r) = (u as usize, &mut self.raw[u as usize]);
            if let Some((s, c)) = act {
                self.activity[ui] = s;
                (r.posts, r.engagements_given, r.responses) = (c[0], c[1], c[2]);
            }
            if let Some(s) = reach {
                self.reach[ui] = s;
            }
            if let Some(c) = action {
                self.counts[ui] = c;
                r.clicks = c.clicks as f32;
                r.sessions = c.sessions;
                r.non_bounced = c.non_bounced;
                r.conversions = c.conversions;
                r.code_conversions = c.code_conversions;
                r.conversion_value_minor = c.value_minor;
            }
        }
    }

    /// Maps statistics to values and percentiles for the whole population.
    /// Returns the milliseconds spent on action estimates.
    pub(super) fn form_values(&mut self, state: &State, p: &ModelParams, auth: &Authenticity, hl: f64) -> f64 {
        let n = state.len();
        let g = if hl > 0.0 { 2f64.powf((self.base - self.now) as f64 / hl) } else { 1.0 };
        let mut flags = vec![0f32; n];
        for f in &auth.flags {
            for &s in &f.subjects {
                if let Some(x) = flags.get_mut(s as usize) {
                    *x += 1.0;
                }
            }
        }
        // Accounts new since the previous run count as moved.
        let mut moved: Vec<bool> = (0..n).map(|u| u >= self.last.accounts).collect();
        let [activity, reach, _, _, authenticity] = &mut self.values;
        for u in 0..n {
            let before = (activity[u].to_bits(), reach[u].to_bits(), authenticity[u].to_bits());
            let (a, w, r) = (self.activity[u], self.weights[u], &mut self.raw[u]);
            let (posts, own, responses) = (a.posts * g, a.own * g, a.responses * g);
            let rate = responses / (posts + p.activity_post_prior);
            let a_raw = (1.0 + rate).ln() + p.activity_own_weight * (1.0 + w * (posts + own)).ln();
            r.responses_per_post = rate as f32;
            activity[u] = quantize(saturate(a_raw, p.activity_scale));
            let s = self.reach[u];
            let observed = self.followers[u].len() as f64;
            let fol = (self.reported[u] as f64).max(observed);
            r.reported_followers = self.reported[u] as f32;
            r.observed_followers = observed as f32;
            r.distinct_engagers = s.distinct_engagers as f32;
            r.weighted_engagers = s.weighted_engagers as f32;
            r.two_hop_reach = s.two_hop as f32;
            let r_raw = p.reach_followers_weight * fol.ln_1p()
                + p.reach_engagers_weight * s.weighted_engagers.ln_1p()
                + p.reach_two_hop_weight * f64::from(s.two_hop).ln_1p();
            reach[u] = quantize(saturate(r_raw, p.reach_scale));
            authenticity[u] = auth.values.get(u).copied().unwrap_or(100.0);
            r.authenticity_weight = w as f32;
            r.suspicious_share = auth.suspicious_share.get(u).copied().unwrap_or(0.0);
            r.flags = flags[u];
            // Estimates below set these for accounts with evidence only.
            r.conversion_rate = 0.0;
            r.conversion_lower = 0.0;
            r.conversion_upper = 0.0;
            r.engaged_rate = 0.0;
            r.engaged_lower = 0.0;
            r.engaged_upper = 0.0;
            r.non_bounce_rate = 0.0;
            r.non_bounce_lower = 0.0;
            r.non_bounce_upper = 0.0;
            moved[u] |= before != (activity[u].to_bits(), reach[u].to_bits(), authenticity[u].to_bits());
        }
        let action_started = std::time::Instant::now();
        let clicks: Vec<u64> = self.counts.iter().map(|c| c.clicks).collect();
        let conv: Vec<u64> = self.counts.iter().map(|c| c.conv).collect();
        let engaged: Vec<u64> = self.counts.iter().map(|c| c.engaged).collect();
        let any_sessions = self.counts.iter().any(|c| c.sessions > 0.0);
        let out = action_from_counts(p, &clicks, &conv, &engaged, any_sessions, &mut self.raw);
        let old_action = &self.values[Dimension::Action.index()];
        self.changed = (0..n)
            .filter(|&u| moved[u] || old_action.get(u).map(|v| v.to_bits()) != Some(out.values[u].to_bits()))
            .map(|u| u as Node)
            .collect();
        self.values[Dimension::Action.index()] = out.values;
        self.action = out.estimates;
        self.action_prior = out.prior;
        let action_ms = action_started.elapsed().as_secs_f64() * 1e3;
        // Percentiles by counting on the value grid (sorting only if a value were off it).
        let mut pct: [Vec<f64>; 5] = Default::default();
        for d in [Dimension::Activity, Dimension::Reach, Dimension::Authenticity] {
            let v = &self.values[d.index()];
            pct[d.index()] = grid_percentiles(v, None, None).unwrap_or_else(|| percentiles(v));
        }
        pct[Dimension::Action.index()] = action_percentiles(&self.values[Dimension::Action.index()], &self.action);
        self.percentiles = pct;
        action_ms
    }
}
