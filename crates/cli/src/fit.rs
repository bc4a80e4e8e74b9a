//! `vht fit`: PEtab parameter-estimation problems.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};

#[derive(clap::Args)]
pub struct FitArgs {
    /// The PEtab problem (yaml).
    problem: PathBuf,
    /// Evaluate the objective at the nominal parameters (with --set changes)
    /// and print each condition's contribution; the last line is the objective.
    #[arg(long)]
    evaluate: bool,
    #[arg(long, default_value_t = 1e-8)]
    rtol: f64,
    #[arg(long, default_value_t = 1e-12)]
    atol: f64,
    /// Parameter-table values to use instead of the nominal ones (linear scale),
    /// e.g. `--set k1=0.5,sigma=2`.
    #[arg(long, value_delimiter = ',', value_name = "ID=VALUE")]
    set: Vec<String>,
    /// Also write the simulated measurements here, as a PEtab simulation table
    /// (the measurement table's keys with a `simulation` column, plus `sigma` and `nllh`).
    #[arg(long, value_name = "FILE.tsv")]
    simulations: Option<PathBuf>,
}

pub fn run(a: FitArgs) -> Result<()> {
    if !a.evaluate {
        bail!("nothing to do: `vht fit` evaluates the objective with --evaluate (estimation comes later)");
    }
    if !(a.rtol > 0.0 && a.atol > 0.0) {
        bail!("--rtol and --atol must be positive");
    }
    let t0 = Instant::now();
    let problem = vht_fit::read(&a.problem)?;
    let mut values = problem.nominal();
    for s in &a.set {
        let Some((id, v)) = s.split_once('=') else {
            bail!("--set {s}: expected ID=VALUE");
        };
        let i = problem
            .parameter_index(id.trim())
            .ok_or_else(|| vht_fit::FitError::NoSuchParameter { id: id.trim().to_string() })?;
        values[i] = v.trim().parse().with_context(|| format!("--set {s}: '{}' is not a number", v.trim()))?;
    }
    let settings = vht_fit::Settings { rtol: a.rtol, atol: a.atol, ..Default::default() };
    let objective = vht_fit::Objective::new(problem, settings)?;
    for d in &objective.diagnostics {
        eprintln!("warning: {d}");
    }
    let t_load = t0.elapsed();
    let t1 = Instant::now();
    let value = objective.evaluate(&values)?;
    let t_eval = t1.elapsed();

    if let Some(path) = &a.simulations {
        let file = std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?;
        let mut w = std::io::BufWriter::new(file);
        writeln!(w, "observableId\tpreequilibrationConditionId\tsimulationConditionId\ttime\tsimulation\tsigma\tnllh")?;
        for (m, v) in objective.problem.measurements.iter().zip(&value.measurements) {
            writeln!(
                w,
                "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                m.observable,
                m.preequilibration.as_deref().unwrap_or(""),
                m.simulation,
                m.time,
                v.simulation,
                v.sigma,
                v.nllh
            )?;
        }
        w.flush()?;
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "preequilibration\tsimulation\tmeasurements\tnllh")?;
    for e in &value.experiments {
        writeln!(
            out,
            "{}\t{}\t{}\t{}",
            e.preequilibration.as_deref().unwrap_or(""),
            e.simulation,
            e.measurements,
            e.nllh
        )?;
    }
    writeln!(out, "negative log-likelihood\t{}", value.likelihood)?;
    writeln!(out, "negative log-prior\t{}", value.prior)?;
    eprintln!("load+compile {:.1} ms, evaluate {:.1} ms", t_load.as_secs_f64() * 1e3, t_eval.as_secs_f64() * 1e3);
    writeln!(out, "{}", value.total())?;
    Ok(())
}
