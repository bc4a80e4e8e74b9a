//! The human-readable report: Markdown tables and hand-written SVG plots
//! (an endpoint histogram per arm, spaghetti plots of a few patients).
//! SVG text is left to the viewer's default sans-serif font, so nothing
//! here needs fonts installed.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::analysis::Summary;
use crate::error::TrialError;
use crate::plan::Plan;
use crate::run::Table;
use crate::spec::Dist;

const COLOURS: [&str; 6] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"];
const W: f64 = 640.0;
const H: f64 = 400.0;
// Plot margins: left, right, top, bottom.
const L: f64 = 70.0;
const R: f64 = 20.0;
const T: f64 = 40.0;
const B: f64 = 50.0;

/// Trajectories of one arm: `(time, value)` points per patient.
pub type Lines = Vec<Vec<(f64, f64)>>;

/// A file name made of the safe characters of `s`.
fn slug(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn num(v: Option<f64>) -> String {
    match v {
        None => "–".into(),
        Some(0.0) => "0".into(),
        Some(x) if x.abs() >= 1e5 || x.abs() < 1e-3 => format!("{x:.3e}"),
        Some(x) => format!("{:.4}", x).trim_end_matches('0').trim_end_matches('.').to_string(),
    }
}

/// Round tick positions covering `[lo, hi]`.
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = (hi - lo).max(f64::MIN_POSITIVE);
    let raw = span / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|s| span / s <= 6.0).unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() * step;
    (0..).map(|k| first + k as f64 * step).take_while(|&v| v <= hi + step * 1e-9).take(12).collect()
}

struct Frame {
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
}

impl Frame {
    fn x(&self, v: f64) -> f64 {
        L + (v - self.x0) / (self.x1 - self.x0).max(f64::MIN_POSITIVE) * (W - L - R)
    }
    fn y(&self, v: f64) -> f64 {
        H - B - (v - self.y0) / (self.y1 - self.y0).max(f64::MIN_POSITIVE) * (H - T - B)
    }
    fn axes(&self, svg: &mut String, title: &str, xlabel: &str, ylabel: &str) {
        let _ = write!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>
<line x1="{L}" y1="{}" x2="{}" y2="{}" stroke="black"/>
<line x1="{L}" y1="{T}" x2="{L}" y2="{}" stroke="black"/>
<text x="{}" y="{}" text-anchor="middle">{}</text>
<text x="16" y="{}" text-anchor="middle" transform="rotate(-90 16 {})">{}</text>
"#,
            W / 2.0,
            esc(title),
            H - B,
            W - R,
            H - B,
            H - B,
            (L + W - R) / 2.0,
            H - 12.0,
            esc(xlabel),
            (T + H - B) / 2.0,
            (T + H - B) / 2.0,
            esc(ylabel)
        );
        for v in ticks(self.x0, self.x1) {
            let x = self.x(v);
            let _ = writeln!(
                svg,
                r#"<line x1="{x:.1}" y1="{}" x2="{x:.1}" y2="{}" stroke="black"/><text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"#,
                H - B,
                H - B + 5.0,
                H - B + 18.0,
                num(Some(v))
            );
        }
        for v in ticks(self.y0, self.y1) {
            let y = self.y(v);
            let _ = writeln!(
                svg,
                r#"<line x1="{}" y1="{y:.1}" x2="{L}" y2="{y:.1}" stroke="black"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
                L - 5.0,
                L - 8.0,
                y + 4.0,
                num(Some(v))
            );
        }
    }
}

fn legend(svg: &mut String, names: &[String]) {
    for (i, n) in names.iter().enumerate() {
        let y = T + 8.0 + 16.0 * i as f64;
        let _ = writeln!(
            svg,
            r#"<rect x="{}" y="{}" width="12" height="12" fill="{}" fill-opacity="0.5"/><text x="{}" y="{}">{}</text>"#,
            W - R - 150.0,
            y - 10.0,
            COLOURS[i % COLOURS.len()],
            W - R - 132.0,
            y,
            esc(n)
        );
    }
}

/// Histogram of one endpoint, one translucent series per arm on shared bins.
pub fn histogram(title: &str, xlabel: &str, series: &[(String, Vec<f64>)]) -> String {
    let all: Vec<f64> = series.iter().flat_map(|(_, v)| v.iter().copied()).filter(|v| v.is_finite()).collect();
    let mut svg = String::new();
    let (lo, hi) = all.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    if all.is_empty() {
        Frame { x0: 0.0, x1: 1.0, y0: 0.0, y1: 1.0 }.axes(&mut svg, title, xlabel, "patients");
        svg.push_str("<text x=\"320\" y=\"200\" text-anchor=\"middle\">no values</text>\n</svg>\n");
        return svg;
    }
    let (lo, hi) = if hi > lo { (lo, hi) } else { (lo - 0.5 * lo.abs().max(1.0), hi + 0.5 * hi.abs().max(1.0)) };
    let nbins = 30usize;
    let width = (hi - lo) / nbins as f64;
    let counts: Vec<Vec<u64>> = series
        .iter()
        .map(|(_, v)| {
            let mut c = vec![0u64; nbins];
            for &x in v.iter().filter(|x| x.is_finite()) {
                c[(((x - lo) / width) as usize).min(nbins - 1)] += 1;
            }
            c
        })
        .collect();
    let top = counts.iter().flatten().copied().max().unwrap_or(1).max(1) as f64;
    let f = Frame { x0: lo, x1: hi, y0: 0.0, y1: top * 1.05 };
    f.axes(&mut svg, title, xlabel, "patients");
    for (i, c) in counts.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        for (b, &n) in c.iter().enumerate() {
            if n == 0 {
                continue;
            }
            let (x0, x1) = (f.x(lo + b as f64 * width), f.x(lo + (b + 1) as f64 * width));
            let (y0, y1) = (f.y(n as f64), f.y(0.0));
            let _ = writeln!(
                svg,
                r#"<rect x="{x0:.1}" y="{y0:.1}" width="{:.1}" height="{:.1}" fill="{colour}" fill-opacity="0.45" stroke="{colour}" stroke-width="0.5"/>"#,
                x1 - x0,
                y1 - y0
            );
        }
    }
    legend(&mut svg, &series.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>());
    svg.push_str("</svg>\n");
    svg
}

/// Trajectories of a few patients.
pub fn spaghetti(title: &str, ylabel: &str, lines: &[Vec<(f64, f64)>], colour: &str) -> String {
    let pts = lines.iter().flatten().filter(|p| p.0.is_finite() && p.1.is_finite());
    let (x0, x1, y0, y1) = pts.fold((f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY), |a, p| {
        (a.0.min(p.0), a.1.max(p.0), a.2.min(p.1), a.3.max(p.1))
    });
    let mut svg = String::new();
    if x1.partial_cmp(&x0) != Some(std::cmp::Ordering::Greater) {
        Frame { x0: 0.0, x1: 1.0, y0: 0.0, y1: 1.0 }.axes(&mut svg, title, "time", ylabel);
        svg.push_str("</svg>\n");
        return svg;
    }
    let pad = if y1 > y0 { 0.05 * (y1 - y0) } else { 0.5 * y0.abs().max(1.0) };
    let f = Frame { x0, x1, y0: y0 - pad, y1: y1 + pad };
    f.axes(&mut svg, title, "time", ylabel);
    for line in lines {
        let mut d = String::new();
        for (k, &(x, y)) in line.iter().filter(|p| p.1.is_finite()).enumerate() {
            let _ = write!(d, "{}{:.1},{:.1} ", if k == 0 { "M" } else { "L" }, f.x(x), f.y(y));
        }
        let _ = writeln!(svg, r#"<path d="{d}" fill="none" stroke="{colour}" stroke-opacity="0.6" stroke-width="1"/>"#);
    }
    svg.push_str("</svg>\n");
    svg
}

/// Writes `report.md` and the plots into `dir`; returns the files written.
pub fn write(
    dir: &Path,
    plan: &Plan,
    table: &Table,
    summary: &Summary,
    trajectories: &[(String, Lines)],
) -> Result<Vec<PathBuf>, TrialError> {
    let spec = &plan.spec;
    let mut files = Vec::new();
    let mut put = |name: String, text: &str| -> Result<String, TrialError> {
        let path = dir.join(&name);
        std::fs::write(&path, text).map_err(|source| TrialError::Io { path: path.clone(), source })?;
        files.push(path);
        Ok(name)
    };
    let mut md = String::new();
    let p = &summary.population;
    let _ = writeln!(md, "# Trial report: {}\n", summary.trial);
    let _ = writeln!(
        md,
        "Model: `{}`. Simulated time {} to {}.\n",
        summary.model, spec.simulation.start, spec.simulation.end
    );
    let _ = writeln!(
        md,
        "Population: {} patients ({} sampler, seed {}); {} candidates tried, {} accepted, {} failed to simulate.\n",
        p.size, p.sampler, p.seed, p.candidates_tried, p.candidates_accepted, p.candidates_failed
    );
    if spec.assignment == crate::spec::Assignment::Randomised {
        let ratios: Vec<String> = spec.arms.iter().map(|a| format!("{} {}", a.name, a.ratio)).collect();
        let _ =
            writeln!(md, "Randomised: each patient gets one arm (permuted blocks, ratios {}).\n", ratios.join(" : "));
    }
    let qs: Vec<String> = spec.analysis.quantiles.iter().map(|q| format!("q{}", num(Some(q * 100.0)))).collect();
    if !summary.parameters.is_empty() {
        let _ = writeln!(md, "| parameter | distribution | mean | sd | {} |", qs.join(" | "));
        let _ = writeln!(md, "|---|---|---:|---:|{}", "---:|".repeat(qs.len()));
        for (e, p) in summary.parameters.iter().zip(&spec.population.parameters) {
            let dist = match p.dist {
                Dist::Normal { mean, sd } => format!("normal({mean}, {sd})"),
                Dist::LogNormal { median, sigma } => format!("lognormal(median {median}, sigma {sigma})"),
                Dist::Uniform { low, high } => format!("uniform({low}, {high})"),
                Dist::TruncNormal { mean, sd, low, high } => format!("normal({mean}, {sd}) in [{low}, {high}]"),
            };
            let q: Vec<String> = e.quantiles.iter().map(|x| num(Some(x.1))).collect();
            let _ = writeln!(md, "| {} | {dist} | {} | {} | {} |", e.name, num(e.mean), num(e.sd), q.join(" | "));
        }
        if let Some(c) = &spec.population.covariates {
            let from = format!("resampled rows of `{}` ({} rows)", c.file.display(), c.rows.len());
            for e in summary.parameters.iter().skip(spec.population.parameters.len()) {
                let q: Vec<String> = e.quantiles.iter().map(|x| num(Some(x.1))).collect();
                let _ = writeln!(md, "| {} | {from} | {} | {} | {} |", e.name, num(e.mean), num(e.sd), q.join(" | "));
            }
        }
        if spec.population.correlation.is_some() {
            let _ = writeln!(md, "\nCorrelated through a Gaussian copula (see the spec).");
        }
        md.push('\n');
    }
    if !p.rejected_by.is_empty() {
        let _ = writeln!(md, "| plausibility constraint | candidates rejected |\n|---|---:|");
        for (c, n) in &p.rejected_by {
            let _ = writeln!(md, "| {} | {n} |", c);
        }
        md.push('\n');
    }
    for arm in &summary.arms {
        let _ = writeln!(
            md,
            "## Arm `{}`\n\n{} patients, {} simulated, {} failed.\n",
            arm.name, arm.patients, arm.ok, arm.failed
        );
        for (reason, n) in &arm.failures {
            let _ = writeln!(md, "- {n} × {reason}");
        }
        if !arm.failures.is_empty() {
            md.push('\n');
        }
        let _ = writeln!(md, "| endpoint | n | mean | sd | {} |", qs.join(" | "));
        let _ = writeln!(md, "|---|---:|---:|---:|{}", "---:|".repeat(qs.len()));
        for e in &arm.endpoints {
            let q: Vec<String> = spec
                .analysis
                .quantiles
                .iter()
                .map(|q| num(e.quantiles.iter().find(|x| x.0 == *q).map(|x| x.1)))
                .collect();
            let _ = writeln!(md, "| {} | {} | {} | {} | {} |", e.name, e.n, num(e.mean), num(e.sd), q.join(" | "));
        }
        if !arm.responders.is_empty() {
            let _ = writeln!(md, "\n| responder definition | responders | n | rate |\n|---|---:|---:|---:|");
            for r in &arm.responders {
                let _ = writeln!(md, "| {} | {} | {} | {} |", r.definition, r.responders, r.n, num(r.rate));
            }
        }
        md.push('\n');
    }
    if !summary.comparisons.is_empty() {
        if summary.comparisons[0].paired {
            let _ = writeln!(md, "## Paired differences (arm − control, within patients)\n");
        } else {
            let _ = writeln!(
                md,
                "## Differences between arms (mean of arm − mean of control; randomised, unpaired)\n\n\
                 n is the arm's patients with a value; the control's are in summary.json.\n"
            );
        }
        let _ = writeln!(
            md,
            "| arm | control | endpoint | n | mean difference | sd | CI |\n|---|---|---|---:|---:|---:|---|"
        );
        for c in &summary.comparisons {
            for d in &c.endpoints {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} | {} | {}% [{}, {}] ({} bootstrap resamples) |",
                    c.arm,
                    c.control,
                    d.name,
                    d.n,
                    num(d.mean),
                    num(d.sd),
                    num(Some(d.confidence * 100.0)),
                    num(d.ci_low),
                    num(d.ci_high),
                    d.bootstrap
                );
            }
        }
        md.push('\n');
    }
    for sa in &summary.sensitivity {
        let _ = writeln!(
            md,
            "## Sensitivity of `{}` (Sobol indices, arm `{}`)\n\n{} base samples ({} design), {} simulations{}; \
             inputs independent, from the marginals (no correlation, no plausibility screen); \
             {}% bootstrap intervals ({} resamples).\n",
            sa.endpoint,
            sa.arm,
            sa.samples,
            sa.design,
            sa.simulations,
            if sa.dropped > 0 { format!(", {} rows dropped (failed or undefined)", sa.dropped) } else { String::new() },
            num(Some(sa.confidence * 100.0)),
            sa.bootstrap
        );
        let _ = writeln!(md, "| parameter | first order S | CI | total ST | CI |\n|---|---:|---|---:|---|");
        for x in &sa.indices {
            let _ = writeln!(
                md,
                "| {} | {} | [{}, {}] | {} | [{}, {}] |",
                x.parameter,
                num(Some(x.first)),
                num(Some(x.first_low)),
                num(Some(x.first_high)),
                num(Some(x.total)),
                num(Some(x.total_low)),
                num(Some(x.total_high))
            );
        }
        md.push('\n');
    }
    let _ = writeln!(md, "## Plots\n");
    for (e, ep) in spec.endpoints.iter().enumerate() {
        let series: Vec<(String, Vec<f64>)> = spec
            .arms
            .iter()
            .enumerate()
            .map(|(a, arm)| {
                let v =
                    (0..table.len()).filter(|&r| table.arm[r] as usize == a).map(|r| table.endpoints[e][r]).collect();
                (arm.name.clone(), v)
            })
            .collect();
        let name = put(format!("hist_{}.svg", slug(&ep.name)), &histogram(&ep.name, &ep.name, &series))?;
        let _ = writeln!(md, "![{}]({name})\n", esc(&ep.name));
    }
    let var = spec.endpoints.first().map_or("", |e| e.variable.as_str());
    for (a, (arm, lines)) in trajectories.iter().enumerate() {
        let title = format!("{var}: {} patients, arm {arm}", lines.len());
        let name =
            put(format!("spaghetti_{}.svg", slug(arm)), &spaghetti(&title, var, lines, COLOURS[a % COLOURS.len()]))?;
        let _ = writeln!(md, "![{}]({name})\n", esc(&title));
    }
    let _ = writeln!(md, "Results per patient and arm: `patients.parquet`; numbers above: `summary.json`.");
    put("report.md".into(), &md)?;
    Ok(files)
}
