//! A multistart fit of a PEtab problem through the library only (what
//! `vht fit PROBLEM` does, without its output files):
//! `cargo run --release -p vht-fit --example multistart -- PROBLEM.yaml [STARTS] [fides|lbfgsb] [SEED]`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else {
        return Err("usage: multistart PROBLEM.yaml [STARTS] [fides|lbfgsb] [SEED]".into());
    };
    let starts = args.get(2).map_or(Ok(20), |s| s.parse())?;
    let optimizer = match args.get(3).map(String::as_str) {
        Some("lbfgsb") => vht_fit::Optimizer::Lbfgsb,
        _ => vht_fit::Optimizer::TrustRegion,
    };
    let seed = args.get(4).map_or(Ok(0), |s| s.parse())?;
    let problem = vht_fit::read(std::path::Path::new(path))?;
    let objective = vht_fit::Objective::new(problem, vht_fit::Settings::default())?;
    let t = std::time::Instant::now();
    objective.evaluate_with_gradient(&objective.scaled_nominal())?;
    println!("sensitivity system + first gradient: {:.3} s", t.elapsed().as_secs_f64());
    let options = vht_fit::FitOptions { starts, optimizer, seed, progress: true, ..Default::default() };
    let r = vht_fit::fit(&objective, &options)?;
    for s in &r.starts {
        println!(
            "start {:3}  fval {:14.6}  iterations {:4}  evaluations {:5}  {:7.2} s  {:?}",
            s.index, s.fval, s.iterations, s.evaluations, s.seconds, s.status
        );
    }
    println!("best {:?}, wall {:.2} s", r.best.map(|b| b.fval), r.seconds);
    Ok(())
}
