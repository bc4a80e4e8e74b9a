//! What a gradient costs, by forward sensitivities (with the Gauss-Newton
//! Hessian) and by adjoint sensitivities (gradient only), against a plain
//! evaluation, at the nominal parameters of each problem; and how far the
//! two gradients differ. Prints a markdown table (`bench/fit/gradients`):
//!
//! `cargo run --release -p vht-fit --example gradients -- [--repeats N] [--rtol R] [--show] PROBLEM.yaml...`
//!
//! `--show` also prints both gradients entry by entry (standard error).
//! Times are the median of the repeats (after one warm-up call that compiles
//! the sensitivity systems), on one thread per condition as in a fit.

use vht_fit::{Gradient, Objective, Settings};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut repeats = 5usize;
    let mut rtol = Settings::default().rtol;
    let mut show = false;
    let mut paths = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--repeats" => repeats = args.next().ok_or("--repeats N")?.parse()?,
            "--rtol" => rtol = args.next().ok_or("--rtol R")?.parse()?,
            "--show" => show = true,
            _ => paths.push(a),
        }
    }
    if paths.is_empty() || repeats == 0 {
        return Err("usage: gradients [--repeats N] [--rtol R] [--show] PROBLEM.yaml...".into());
    }
    println!("| problem | estimated | states | objective (ms) | forward (ms) | adjoint (ms) | forward / adjoint | worst difference |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for path in paths {
        let problem = vht_fit::read(std::path::Path::new(&path))?;
        let name =
            std::path::Path::new(&path).file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let forward = Objective::new(problem.clone(), Settings { rtol, ..Settings::default() })?;
        let adjoint = Objective::new(problem, Settings { rtol, gradient: Gradient::Adjoint, ..Settings::default() })?;
        let x = forward.scaled_nominal();
        let time = |f: &dyn Fn() -> Result<(), vht_fit::FitError>| -> Result<f64, vht_fit::FitError> {
            let mut t = Vec::with_capacity(repeats);
            for _ in 0..repeats {
                let start = std::time::Instant::now();
                f()?;
                t.push(start.elapsed().as_secs_f64() * 1e3);
            }
            Ok(median(t))
        };
        let states = forward.model().states().len();
        let (_, g_fwd, _) = forward.evaluate_with_gradient(&x)?;
        let plain = time(&|| forward.evaluate_scaled(&x).map(|_| ()))?;
        let fwd = time(&|| forward.evaluate_with_gradient(&x).map(|_| ()))?;
        let row = match adjoint.adjoint_supported() {
            Err(e) => format!("– | – | {e} |"),
            Ok(()) => {
                let (_, g_adj, _) = adjoint.evaluate_with_gradient(&x)?;
                let adj = time(&|| adjoint.evaluate_with_gradient(&x).map(|_| ()))?;
                if show {
                    for (k, (a, b)) in g_fwd.iter().zip(&g_adj).enumerate() {
                        eprintln!("{name} {k}: forward {a:.9e} adjoint {b:.9e}");
                    }
                }
                let worst = g_fwd.iter().zip(&g_adj).map(|(a, b)| (a - b).abs() / a.abs().max(1.0)).fold(0.0, f64::max);
                format!("{adj:.2} | {:.2} | {worst:.1e} |", fwd / adj)
            }
        };
        println!("| {name} | {} | {states} | {plain:.2} | {fwd:.2} | {row}", x.len());
    }
    Ok(())
}
