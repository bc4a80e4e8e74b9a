//! The cost of a gradient against a plain evaluation at the nominal point,
//! by forward sensitivities (with the Gauss-Newton Hessian) and by adjoint
//! sensitivities (gradient only), and how far the two gradients differ:
//! `cargo run --release -p vht-fit --example cost -- PROBLEM.yaml [REPEATS [RTOL]]`
//! (`COST_SHOW=1` also prints both gradients entry by entry).

use vht_fit::{Gradient, Objective, Settings};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else { return Err("usage: cost PROBLEM.yaml [REPEATS]".into()) };
    let repeats: usize = args.get(2).map_or(Ok(20), |s| s.parse())?;
    let rtol: f64 = args.get(3).map_or(Ok(Settings::default().rtol), |s| s.parse())?;
    let problem = vht_fit::read(std::path::Path::new(path))?;
    let forward = Objective::new(problem.clone(), Settings { rtol, ..Settings::default() })?;
    let adjoint = Objective::new(problem, Settings { rtol, gradient: Gradient::Adjoint, ..Settings::default() })?;
    let x = forward.scaled_nominal();
    let time = |f: &dyn Fn() -> Result<(), vht_fit::FitError>| -> Result<f64, vht_fit::FitError> {
        let t = std::time::Instant::now();
        for _ in 0..repeats {
            f()?;
        }
        Ok(t.elapsed().as_secs_f64() / repeats as f64)
    };
    let t = std::time::Instant::now();
    let (_, g_fwd, _) = forward.evaluate_with_gradient(&x)?;
    let build = t.elapsed().as_secs_f64();
    let plain = time(&|| forward.evaluate_scaled(&x).map(|_| ()))?;
    let fwd = time(&|| forward.evaluate_with_gradient(&x).map(|_| ()))?;
    print!(
        "{} parameters: build + first gradient {:.3} s, objective {:.2} ms, forward {:.2} ms ({:.1}x)",
        x.len(),
        build,
        plain * 1e3,
        fwd * 1e3,
        fwd / plain
    );
    match adjoint.adjoint_supported() {
        Err(e) => println!(", adjoint: {e}"),
        Ok(()) => {
            let (_, g_adj, _) = adjoint.evaluate_with_gradient(&x)?;
            let adj = time(&|| adjoint.evaluate_with_gradient(&x).map(|_| ()))?;
            let worst = g_fwd.iter().zip(&g_adj).map(|(a, b)| (a - b).abs() / a.abs().max(1.0)).fold(0.0, f64::max);
            if std::env::var_os("COST_SHOW").is_some() {
                for (k, (a, b)) in g_fwd.iter().zip(&g_adj).enumerate() {
                    eprintln!("{k}: forward {a:.9e} adjoint {b:.9e}");
                }
            }
            println!(
                ", adjoint {:.2} ms ({:.1}x, {:.1}x faster than forward), worst difference {worst:.1e}",
                adj * 1e3,
                adj / plain,
                fwd / adj
            );
        }
    }
    Ok(())
}
