//! Small SVG charts for the validation report: line charts on a unit square
//! (ROC curves, calibration) and horizontal bars with intervals (back-test).
//! Series differ by dash pattern and a text label as well as by colour, so a
//! chart reads in greyscale and in print.

use std::fmt::Write;

const W: f64 = 560.0;
const H: f64 = 420.0;
const LEFT: f64 = 64.0;
const TOP: f64 = 40.0;
const PLOT: f64 = 300.0;
const STYLES: [(&str, &str); 5] =
    [("#1b4f72", ""), ("#b03a2e", "8 4"), ("#1e8449", "2 3"), ("#7d3c98", "10 3 2 3"), ("#6e2c00", "4 4")];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn header(out: &mut String, title: &str, w: f64, h: f64) {
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" font-family="sans-serif" font-size="12" role="img" aria-label="{t}"><title>{t}</title><rect width="{w}" height="{h}" fill="white"/><text x="{x}" y="22" font-size="14" font-weight="bold">{t}</text>"#,
        t = esc(title),
        x = LEFT
    );
}

/// One series of a line chart, points in data units (0–1 on both axes).
#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    /// Draw a marker at every point (calibration) rather than a step line (ROC).
    pub markers: bool,
}

/// A chart on the unit square with a dotted diagonal (chance for ROC, perfect
/// calibration for coverage).
pub fn unit_chart(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> String {
    let mut out = String::new();
    header(&mut out, title, W, H);
    let px = |x: f64| LEFT + x.clamp(0.0, 1.0) * PLOT;
    let py = |y: f64| TOP + (1.0 - y.clamp(0.0, 1.0)) * PLOT;
    for i in 0..=5 {
        let v = f64::from(i) / 5.0;
        let _ = write!(
            out,
            r##"<line x1="{x0}" y1="{y}" x2="{x1}" y2="{y}" stroke="#ddd"/><text x="{tx}" y="{ty}" text-anchor="end">{v:.1}</text><line x1="{x}" y1="{y0}" x2="{x}" y2="{y1}" stroke="#ddd"/><text x="{x}" y="{by}" text-anchor="middle">{v:.1}</text>"##,
            x0 = px(0.0),
            x1 = px(1.0),
            y = py(v),
            tx = px(0.0) - 6.0,
            ty = py(v) + 4.0,
            x = px(v),
            y0 = py(0.0),
            y1 = py(1.0),
            by = py(0.0) + 16.0,
        );
    }
    let _ = write!(
        out,
        r##"<rect x="{x}" y="{y}" width="{PLOT}" height="{PLOT}" fill="none" stroke="#333"/><line x1="{x}" y1="{b}" x2="{r}" y2="{y}" stroke="#999" stroke-dasharray="1 3"/><text x="{cx}" y="{ly}" text-anchor="middle">{xl}</text><text transform="translate(16 {cy}) rotate(-90)" text-anchor="middle">{yl}</text>"##,
        x = px(0.0),
        y = py(1.0),
        b = py(0.0),
        r = px(1.0),
        cx = px(0.5),
        ly = py(0.0) + 34.0,
        cy = py(0.5),
        xl = esc(x_label),
        yl = esc(y_label),
    );
    // Legend entries stack down the right of the plot, each as tall as its wrapped label.
    let mut legend_y = TOP + 14.0;
    for (k, s) in series.iter().enumerate() {
        let (colour, dash) = STYLES[k % STYLES.len()];
        let mut d = String::new();
        for (i, &(x, y)) in s.points.iter().enumerate() {
            let _ = write!(d, "{}{:.1} {:.1}", if i == 0 { "M" } else { " L" }, px(x), py(y));
        }
        let _ =
            write!(out, r#"<path d="{d}" fill="none" stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}"/>"#);
        if s.markers {
            for &(x, y) in &s.points {
                let _ = write!(out, r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{colour}"/>"#, px(x), py(y));
            }
        }
        // Legend to the right of the plot: a line sample in the series' dash, and its label.
        let label = wrap(&s.label, 22);
        let ly = legend_y;
        legend_y += 14.0 * label.len().max(1) as f64 + 8.0;
        let lx = px(1.0) + 12.0;
        let _ = write!(
            out,
            r#"<line x1="{lx}" y1="{ly}" x2="{lx2}" y2="{ly}" stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}"/>"#,
            lx2 = lx + 28.0
        );
        for (i, line) in label.iter().enumerate() {
            let _ = write!(
                out,
                r#"<text x="{x}" y="{y}">{t}</text>"#,
                x = lx + 34.0,
                y = ly + 4.0 + 14.0 * i as f64,
                t = esc(line)
            );
        }
    }
    out.push_str("</svg>\n");
    out
}

/// Horizontal bars (mean) with an interval line (low–high), one per row.
pub fn bars(title: &str, unit: &str, rows: &[(String, f64, f64, f64)]) -> String {
    let bar_h = 26.0;
    let h = TOP + 30.0 + bar_h * 1.6 * rows.len() as f64 + 40.0;
    let mut out = String::new();
    header(&mut out, title, W + 80.0, h);
    let label_w = 190.0;
    // Room right of the longest interval for its "mean [low, high]" text.
    let width = W + 80.0 - label_w - 170.0;
    let max = rows.iter().map(|r| r.3.max(r.1)).filter(|v| v.is_finite()).fold(0.0f64, f64::max).max(1e-9);
    let px = |v: f64| label_w + (v / max).clamp(0.0, 1.0) * width;
    for (i, (label, mean, lo, hi)) in rows.iter().enumerate() {
        let y = TOP + 20.0 + bar_h * 1.6 * i as f64;
        let (colour, _) = STYLES[i % STYLES.len()];
        let _ = write!(
            out,
            r##"<text x="{tx}" y="{ty}" text-anchor="end">{l}</text><rect x="{x0}" y="{y}" width="{bw:.1}" height="{bar_h}" fill="{colour}" fill-opacity="0.35" stroke="{colour}"/><line x1="{a:.1}" y1="{my}" x2="{b:.1}" y2="{my}" stroke="#000" stroke-width="2"/><line x1="{a:.1}" y1="{y0}" x2="{a:.1}" y2="{y1}" stroke="#000"/><line x1="{b:.1}" y1="{y0}" x2="{b:.1}" y2="{y1}" stroke="#000"/><text x="{vx:.1}" y="{ty}">{mean:.2} [{lo:.2}, {hi:.2}]</text>"##,
            tx = label_w - 8.0,
            ty = y + bar_h / 2.0 + 4.0,
            l = esc(label),
            x0 = px(0.0),
            bw = px(*mean) - px(0.0),
            a = px(*lo),
            b = px(*hi),
            my = y + bar_h / 2.0,
            y0 = y + 6.0,
            y1 = y + bar_h - 6.0,
            vx = px(*hi) + 6.0,
        );
    }
    let _ = write!(out, r#"<text x="{x}" y="{y}">{u}</text>"#, x = label_w, y = h - 14.0, u = esc(unit));
    out.push_str("</svg>\n");
    out
}

fn wrap(s: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in s.split_whitespace() {
        match lines.last_mut() {
            Some(l) if l.chars().count() + 1 + word.chars().count() <= width => {
                l.push(' ');
                l.push_str(word);
            }
            _ => lines.push(word.to_owned()),
        }
    }
    lines
}
