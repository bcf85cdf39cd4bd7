//! Inline SVG charts drawn here, in Rust: a line chart with interval band and
//! numbered change marks, a histogram, horizontal bars, an interval on a number
//! line, and an x→y map. Every chart carries a title and a text description
//! (`role="img"`), labels its values in text, and tells series apart by shape and
//! dash pattern rather than by colour, so it reads in greyscale and in print.

use maud::{Markup, html};

const W: f64 = 640.0;
const H: f64 = 260.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 40.0;

/// Hatching used for interval bands (readable without colour).
fn defs() -> Markup {
    html! {
        defs {
            pattern #hatch width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)" {
                line x1="0" y1="0" x2="0" y2="6" stroke="#777" stroke-width="1.5" {}
            }
        }
    }
}

fn f(v: f64) -> String {
    format!("{v:.1}")
}

/// One point of a history: an x label, the value, and its interval if any.
#[derive(Debug, Clone)]
pub struct Point {
    pub label: String,
    pub value: f64,
    pub interval: Option<(f64, f64)>,
}

/// A 0–100 line chart of `points` (oldest first) with a hatched interval band and a
/// numbered dashed mark before each point listed in `marks` (indices into `points`).
pub fn history(title: &str, points: &[Point], marks: &[(usize, String)]) -> Markup {
    let n = points.len();
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let x = |i: usize| LEFT + if n <= 1 { pw / 2.0 } else { pw * i as f64 / (n - 1) as f64 };
    let y = |v: f64| TOP + ph * (1.0 - v.clamp(0.0, 100.0) / 100.0);
    let line: Vec<String> = points.iter().enumerate().map(|(i, p)| format!("{},{}", f(x(i)), f(y(p.value)))).collect();
    let band: Vec<String> = {
        let upper =
            points.iter().enumerate().filter_map(|(i, p)| p.interval.map(|(_, u)| format!("{},{}", f(x(i)), f(y(u)))));
        let lower: Vec<String> = points
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.interval.map(|(l, _)| format!("{},{}", f(x(i)), f(y(l)))))
            .collect();
        upper.chain(lower.into_iter().rev()).collect()
    };
    let desc = format!(
        "{n} scoring runs; first {}, last {}; {} change(s) marked",
        points.first().map_or("none".into(), |p| format!("{:.1}", p.value)),
        points.last().map_or("none".into(), |p| format!("{:.1}", p.value)),
        marks.len()
    );
    let every = (n / 8).max(1);
    html! {
        figure {
            svg width=(W) height=(H) viewBox={"0 0 " (W) " " (H)} role="img" aria-label={(title) ": " (desc)} {
                title { (title) } desc { (desc) }
                (defs())
                @for v in [0.0, 25.0, 50.0, 75.0, 100.0] {
                    line x1=(LEFT) x2=(W - RIGHT) y1=(f(y(v))) y2=(f(y(v))) stroke="#ccc" {}
                    text x=(LEFT - 6.0) y=(f(y(v) + 4.0)) text-anchor="end" { (v) }
                }
                @if points.iter().filter(|p| p.interval.is_some()).count() >= 2 {
                    polygon points=(band.join(" ")) fill="url(#hatch)" stroke="#777" stroke-width="0.5" {}
                }
                polyline points=(line.join(" ")) fill="none" stroke="#000" stroke-width="2" {}
                @for (i, p) in points.iter().enumerate() {
                    circle cx=(f(x(i))) cy=(f(y(p.value))) r="3.5" fill="#fff" stroke="#000" stroke-width="1.5" {}
                    @if i % every == 0 || i + 1 == n {
                        text x=(f(x(i))) y=(H - BOTTOM + 16.0) text-anchor="middle" { (p.label) }
                    }
                }
                @for (i, label) in marks {
                    @let mx = if *i == 0 { x(0) } else { (x(*i - 1) + x(*i)) / 2.0 };
                    line x1=(f(mx)) x2=(f(mx)) y1=(TOP) y2=(H - BOTTOM) stroke="#000" stroke-dasharray="4 3" {}
                    rect x=(f(mx - 9.0)) y=(TOP) width="18" height="16" fill="#fff" stroke="#000" {}
                    text x=(f(mx)) y=(TOP + 12.0) text-anchor="middle" { (label) }
                }
                text x=(LEFT) y=(H - 6.0) { "scoring run (oldest left); hatched band: 90 % interval; dashed lines: changes explained below" }
            }
        }
    }
}

/// A 0–100 histogram of a distribution given as (quantile 0–1, value) points:
/// each 10-point bin's share of accounts, read off the piecewise-linear CDF.
pub fn histogram(title: &str, quantiles: &[(f64, f64)], accounts: u64) -> Markup {
    let shares = bin_shares(quantiles, 10);
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let top = shares.iter().copied().fold(0.0f64, f64::max).max(1e-9);
    let bw = pw / shares.len() as f64;
    let desc: Vec<String> =
        shares.iter().enumerate().map(|(i, s)| format!("{}–{}: {:.0} %", i * 10, i * 10 + 10, s * 100.0)).collect();
    html! {
        figure {
            svg width=(W) height=(H) viewBox={"0 0 " (W) " " (H)} role="img" aria-label={(title) "; " (desc.join(", "))} {
                title { (title) } desc { (accounts) " accounts; " (desc.join(", ")) }
                (defs())
                @for (i, s) in shares.iter().enumerate() {
                    @let h = ph * s / top;
                    rect x=(f(LEFT + bw * i as f64 + 2.0)) y=(f(TOP + ph - h)) width=(f(bw - 4.0)) height=(f(h)) fill="url(#hatch)" stroke="#000" {}
                    text x=(f(LEFT + bw * (i as f64 + 0.5))) y=(f(TOP + ph - h - 4.0)) text-anchor="middle" { (format!("{:.0}%", s * 100.0)) }
                    text x=(f(LEFT + bw * i as f64)) y=(H - BOTTOM + 16.0) text-anchor="middle" { (i * 10) }
                }
                text x=(W - RIGHT) y=(H - BOTTOM + 16.0) text-anchor="end" { "100" }
                line x1=(LEFT) x2=(W - RIGHT) y1=(TOP + ph) y2=(TOP + ph) stroke="#000" {}
                text x=(LEFT) y=(H - 6.0) { "value (0–100); bar label: share of accounts in that range" }
            }
        }
    }
}

/// The share of accounts in each of `bins` equal value ranges over 0–100, from a
/// piecewise-linear CDF through the (quantile, value) points.
pub fn bin_shares(quantiles: &[(f64, f64)], bins: usize) -> Vec<f64> {
    let mut pts: Vec<(f64, f64)> = quantiles.iter().copied().filter(|(q, v)| q.is_finite() && v.is_finite()).collect();
    if pts.is_empty() {
        return vec![0.0; bins];
    }
    pts.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.total_cmp(&b.0)));
    // CDF at value v: the largest quantile whose value is ≤ v, interpolated.
    let cdf = |v: f64| -> f64 {
        let Some(first) = pts.first() else { return 0.0 };
        if v < first.1 {
            return 0.0;
        }
        let mut best = 0.0f64;
        for w in pts.windows(2) {
            let ((q0, v0), (q1, v1)) = (w[0], w[1]);
            if v >= v1 {
                best = best.max(q1);
            } else if v >= v0 && v1 > v0 {
                best = best.max(q0 + (q1 - q0) * (v - v0) / (v1 - v0));
            } else if v >= v0 {
                best = best.max(q0);
            }
        }
        best.max(if pts.len() == 1 { 1.0 } else { first.0 })
    };
    let mut out = Vec::with_capacity(bins);
    let mut prev = 0.0;
    for i in 0..bins {
        let hi = if i + 1 == bins { f64::INFINITY } else { 100.0 * (i + 1) as f64 / bins as f64 };
        let c = if hi.is_infinite() { 1.0 } else { cdf(hi - 1e-9) };
        out.push((c - prev).max(0.0));
        prev = c.max(prev);
    }
    out
}

/// Horizontal bars, one per (label, count), widest = `max`; counts printed beside.
pub fn bars(title: &str, rows: &[(String, u64)], max: u64) -> Markup {
    let row_h = 28.0;
    let label_w = 260.0;
    let h = TOP + row_h * rows.len() as f64 + 8.0;
    let pw = W - label_w - 80.0;
    let desc: Vec<String> = rows.iter().map(|(l, c)| format!("{l}: {c}")).collect();
    html! {
        figure {
            svg width=(W) height=(f(h)) viewBox={"0 0 " (W) " " (f(h))} role="img" aria-label={(title) "; " (desc.join(", "))} {
                title { (title) } desc { (desc.join("; ")) }
                (defs())
                @for (i, (label, count)) in rows.iter().enumerate() {
                    @let y = TOP + row_h * i as f64;
                    @let w = if max == 0 { 0.0 } else { pw * *count as f64 / max as f64 };
                    text x=(label_w - 8.0) y=(f(y + 17.0)) text-anchor="end" { (label) }
                    rect x=(label_w) y=(f(y + 4.0)) width=(f(w.max(1.0))) height="18" fill="url(#hatch)" stroke="#000" {}
                    text x=(f(label_w + w + 6.0)) y=(f(y + 17.0)) { (count) }
                }
            }
        }
    }
}

/// An estimate with its interval on a number line through zero.
pub fn interval(title: &str, estimate: f64, lower: f64, upper: f64, unit: &str) -> Markup {
    let h = 110.0;
    let lo = lower.min(0.0).min(estimate);
    let hi = upper.max(0.0).max(estimate);
    let pad = ((hi - lo) * 0.15).max(0.05);
    let (lo, hi) = (lo - pad, hi + pad);
    let pw = W - LEFT - RIGHT;
    let x = |v: f64| LEFT + pw * (v - lo) / (hi - lo);
    let mid = 50.0;
    let desc = format!("estimate {estimate:.3} {unit}, interval {lower:.3} to {upper:.3}; zero marked");
    html! {
        figure {
            svg width=(W) height=(h) viewBox={"0 0 " (W) " " (h)} role="img" aria-label={(title) ": " (desc)} {
                title { (title) } desc { (desc) }
                line x1=(LEFT) x2=(W - RIGHT) y1=(mid + 25.0) y2=(mid + 25.0) stroke="#000" {}
                line x1=(f(x(0.0))) x2=(f(x(0.0))) y1="12" y2=(mid + 30.0) stroke="#000" stroke-dasharray="3 3" {}
                text x=(f(x(0.0))) y=(mid + 44.0) text-anchor="middle" { "0 (no effect)" }
                line x1=(f(x(lower))) x2=(f(x(upper))) y1=(mid) y2=(mid) stroke="#000" stroke-width="3" {}
                line x1=(f(x(lower))) x2=(f(x(lower))) y1=(mid - 8.0) y2=(mid + 8.0) stroke="#000" stroke-width="2" {}
                line x1=(f(x(upper))) x2=(f(x(upper))) y1=(mid - 8.0) y2=(mid + 8.0) stroke="#000" stroke-width="2" {}
                rect x=(f(x(estimate) - 5.0)) y=(mid - 5.0) width="10" height="10" fill="#fff" stroke="#000" stroke-width="2" {}
                text x=(f(x(lower))) y=(mid - 12.0) text-anchor="middle" { (format!("{lower:.3}")) }
                text x=(f(x(upper))) y=(mid - 12.0) text-anchor="middle" { (format!("{upper:.3}")) }
                text x=(f(x(estimate))) y=(mid + 20.0) text-anchor="middle" { (format!("{estimate:.3}")) }
            }
        }
    }
}

/// Pairs (x, y) on 0–100 axes joined by a line, with the diagonal y = x dashed
/// for reference (e.g. a recalibration's old value → new value).
pub fn xy_map(title: &str, pairs: &[(f64, f64)], x_name: &str, y_name: &str) -> Markup {
    let pw = H - TOP - BOTTOM;
    let (w, h) = (LEFT + pw + 200.0, H);
    let sx = |v: f64| LEFT + pw * v.clamp(0.0, 100.0) / 100.0;
    let sy = |v: f64| TOP + pw * (1.0 - v.clamp(0.0, 100.0) / 100.0);
    let line: Vec<String> = pairs.iter().map(|(a, b)| format!("{},{}", f(sx(*a)), f(sy(*b)))).collect();
    let desc: Vec<String> = pairs.iter().map(|(a, b)| format!("{a:.1}→{b:.1}")).collect();
    html! {
        figure {
            svg width=(f(w)) height=(h) viewBox={"0 0 " (f(w)) " " (h)} role="img" aria-label={(title) ": " (desc.join(", "))} {
                title { (title) } desc { (desc.join(", ")) }
                rect x=(LEFT) y=(TOP) width=(f(pw)) height=(f(pw)) fill="none" stroke="#000" {}
                line x1=(f(sx(0.0))) y1=(f(sy(0.0))) x2=(f(sx(100.0))) y2=(f(sy(100.0))) stroke="#777" stroke-dasharray="4 3" {}
                polyline points=(line.join(" ")) fill="none" stroke="#000" stroke-width="2" {}
                @for (a, b) in pairs {
                    rect x=(f(sx(*a) - 3.0)) y=(f(sy(*b) - 3.0)) width="6" height="6" fill="#fff" stroke="#000" {}
                }
                @for v in [0.0, 50.0, 100.0] {
                    text x=(f(sx(v))) y=(f(TOP + pw + 14.0)) text-anchor="middle" { (v) }
                    text x=(LEFT - 6.0) y=(f(sy(v) + 4.0)) text-anchor="end" { (v) }
                }
                text x=(f(LEFT + pw / 2.0)) y=(h - 6.0) text-anchor="middle" { (x_name) }
                text x=(f(LEFT + pw + 10.0)) y=(f(TOP + 12.0)) { (y_name) " (up)" }
                text x=(f(LEFT + pw + 10.0)) y=(f(TOP + 28.0)) { "dashed: unchanged" }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins the histogram's reading of quantiles: shares sum to one, a uniform
    /// distribution gives equal bins, and a point mass at 100 lands in the top bin.
    #[test]
    fn bins_follow_the_quantiles() {
        let uniform: Vec<(f64, f64)> = (0..=10).map(|i| (i as f64 / 10.0, i as f64 * 10.0)).collect();
        let s = bin_shares(&uniform, 10);
        assert!((s.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{s:?}");
        assert!(s.iter().all(|x| (x - 0.1).abs() < 1e-6), "{s:?}");
        let tied: Vec<(f64, f64)> = vec![(0.0, 40.0), (0.1, 100.0), (0.5, 100.0), (1.0, 100.0)];
        let s = bin_shares(&tied, 10);
        assert!((s.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{s:?}");
        assert!(s[9] > 0.89, "{s:?}");
        assert!(bin_shares(&[], 10).iter().all(|x| *x == 0.0), "no data is not a distribution");
    }

    /// Pins that charts carry their title and a text description for people who
    /// cannot see them.
    #[test]
    fn charts_describe_themselves() {
        let p = |v: f64| Point { label: "r".into(), value: v, interval: Some((v - 5.0, v + 5.0)) };
        let svg = history("Activity", &[p(10.0), p(20.0)], &[(1, "1".into())]).into_string();
        assert!(svg.contains("<title>Activity</title>") && svg.contains("1 change(s) marked"), "{svg}");
        let svg = interval("Lift", 0.5, -0.1, 1.2, "conversions").into_string();
        assert!(svg.contains("-0.100") && svg.contains("1.200"), "{svg}");
    }
}
