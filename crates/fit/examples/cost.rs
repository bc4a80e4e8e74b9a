//! The cost of a gradient against a plain evaluation at the nominal point:
//! `cargo run --release -p vht-fit --example cost -- PROBLEM.yaml [REPEATS]`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else { return Err("usage: cost PROBLEM.yaml [REPEATS]".into()) };
    let repeats: usize = args.get(2).map_or(Ok(20), |s| s.parse())?;
    let problem = vht_fit::read(std::path::Path::new(path))?;
    let objective = vht_fit::Objective::new(problem, vht_fit::Settings::default())?;
    let x = objective.scaled_nominal();
    let t = std::time::Instant::now();
    objective.evaluate_with_gradient(&x)?;
    let build = t.elapsed().as_secs_f64();
    let t = std::time::Instant::now();
    for _ in 0..repeats {
        objective.evaluate_scaled(&x)?;
    }
    let plain = t.elapsed().as_secs_f64() / repeats as f64;
    let t = std::time::Instant::now();
    for _ in 0..repeats {
        objective.evaluate_with_gradient(&x)?;
    }
    let grad = t.elapsed().as_secs_f64() / repeats as f64;
    println!(
        "{} parameters: build + first gradient {:.3} s, objective {:.2} ms, with gradient and Hessian {:.2} ms ({:.1}x)",
        x.len(),
        build,
        plain * 1e3,
        grad * 1e3,
        grad / plain
    );
    Ok(())
}
