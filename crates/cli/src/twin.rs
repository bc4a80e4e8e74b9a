//! `vht twin`: personalised twins from FHIR data, and their predictions.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Subcommand;

#[derive(clap::Args)]
pub struct TwinArgs {
    #[command(subcommand)]
    command: TwinCommand,
}

#[derive(Subcommand)]
enum TwinCommand {
    /// Import a patient's FHIR data, fit the model (multistart), and write the twin folder.
    Create(CreateArgs),
    /// Predicted trajectories with 95% bands under interventions.
    Predict(PredictArgs),
    /// Held-back measurements against a prediction's bands: the coverage.
    Check(CheckArgs),
}

#[derive(clap::Args)]
struct CreateArgs {
    /// The SBML model (default: the map's).
    #[arg(long)]
    model: Option<PathBuf>,
    /// The patient's FHIR R4 Bundle or NDJSON.
    #[arg(long)]
    patient: PathBuf,
    #[arg(long)]
    map: PathBuf,
    /// The twin folder to write.
    #[arg(long)]
    out: PathBuf,
    #[arg(long)]
    key_file: Option<PathBuf>,
    #[arg(long, default_value_t = 20)]
    starts: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value_t = 200)]
    max_iterations: usize,
    /// Posterior for the bands: MCMC draws (stored in twin.json) or only the Laplace approximation.
    #[arg(long, default_value = "mcmc", value_parser = ["mcmc", "laplace"])]
    posterior: String,
    /// MCMC steps per chain (2 chains; the first fifth is burn-in).
    #[arg(long, default_value_t = 1500)]
    mcmc_steps: usize,
}

#[derive(clap::Args)]
struct PredictArgs {
    /// The twin folder.
    twin: PathBuf,
    /// e.g. `oral-glucose=60 g@300` (a medication code of the map), `bolus:I_p=100@60`, `set:V_mX=0.06@0`; repeatable.
    #[arg(long)]
    intervention: Vec<String>,
    /// End time (model time units).
    #[arg(long)]
    end: f64,
    #[arg(long, default_value_t = 5.0)]
    step: f64,
    /// Draws from the Laplace approximation.
    #[arg(long, default_value_t = 200)]
    samples: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write the CSV here instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(clap::Args)]
struct CheckArgs {
    twin: PathBuf,
    /// The prediction CSV of `vht twin predict`.
    #[arg(long)]
    prediction: PathBuf,
    /// The bundle the twin was made from (the time origin).
    #[arg(long)]
    patient: PathBuf,
    /// Held-back data (bundle or NDJSON) of the same patient.
    #[arg(long)]
    heldback: PathBuf,
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// Fail unless at least this fraction is inside the bands.
    #[arg(long)]
    min_coverage: Option<f64>,
}

pub fn run(a: TwinArgs) -> Result<()> {
    match a.command {
        TwinCommand::Create(a) => create(a),
        TwinCommand::Predict(a) => predict(a),
        TwinCommand::Check(a) => check(a),
    }
}

fn create(a: CreateArgs) -> Result<()> {
    let key = vht_fhir::key(a.key_file.as_deref())?;
    let opts = vht_twin::CreateOptions {
        starts: a.starts,
        seed: a.seed,
        max_iterations: a.max_iterations,
        threads: None,
        progress: true,
        posterior: (a.posterior == "mcmc").then(|| vht_twin::McmcOptions {
            steps: a.mcmc_steps,
            burn_in: a.mcmc_steps / 5,
            seed: a.seed,
            ..Default::default()
        }),
    };
    let twin = vht_twin::create(&a.patient, &a.map, a.model.as_deref(), &key, &a.out, &opts)?;
    for w in &twin.provenance.warnings {
        eprintln!("warning: {w}");
    }
    let f = &twin.fit;
    println!(
        "twin of patient {}: {} measurements; {} starts (seed {}), {} converged, {} failed, {} at the best; objective {:.4}; {:.1} s",
        twin.pseudonym, twin.provenance.measurements, f.starts, f.seed, f.converged, f.failed, f.at_best, f.objective, f.seconds
    );
    for p in &twin.parameters {
        println!("  {} = {:.6} (Laplace 95% {:.6} to {:.6})", p.id, p.value, p.ci95[0], p.ci95[1]);
    }
    if let Some(post) = &twin.posterior {
        println!(
            "posterior: {} chains x {} steps from {} optima, acceptance {:.2}, {} draws kept",
            post.chains,
            post.steps,
            post.modes,
            post.acceptance,
            post.draws.len()
        );
        // The worst parameter's convergence diagnostics: an R-hat well above 1
        // means the chains disagree, and bands from them may be too narrow.
        let rhat = post.rhat.iter().copied().fold(f64::NAN, f64::max);
        let ess = post.ess.iter().copied().fold(f64::NAN, f64::min);
        if !post.rhat.is_empty() {
            println!("  worst split R-hat {rhat:.3}, smallest effective sample size {ess:.0}");
            if rhat > 1.1 {
                eprintln!("warning: split R-hat {rhat:.2} > 1.1: the chains have not converged; run more --mcmc-steps");
            }
        }
    }
    println!("-> {}", a.out.join("twin.json").display());
    Ok(())
}

fn predict(a: PredictArgs) -> Result<()> {
    let interventions =
        a.intervention.iter().map(|s| vht_twin::parse_intervention(s)).collect::<Result<Vec<_>, _>>()?;
    let opts = vht_twin::PredictOptions { end: a.end, step: a.step, samples: a.samples, seed: a.seed, level: 0.95 };
    let p = vht_twin::predict(&a.twin, &interventions, &opts)?;
    if p.failed > 0 {
        eprintln!("warning: {} of {} draws failed to simulate and are left out of the bands", p.failed, p.samples);
    }
    let csv = vht_twin::prediction_csv(&p);
    match &a.out {
        Some(path) => std::fs::write(path, csv).with_context(|| format!("cannot write {}", path.display()))?,
        None => print!("{csv}"),
    }
    Ok(())
}

fn check(a: CheckArgs) -> Result<()> {
    let key = vht_fhir::key(a.key_file.as_deref())?;
    let p = vht_twin::read_prediction_csv(&a.prediction)?;
    let c = vht_twin::check(&a.twin, &a.patient, &a.heldback, &key, &p)?;
    println!("observable,time,measured,lower,upper,inside");
    for r in &c.rows {
        println!("{},{},{:.3},{:.3},{:.3},{}", r.observable, r.time, r.value, r.lower, r.upper, r.inside);
    }
    let frac = if c.total == 0 { 0.0 } else { c.inside as f64 / c.total as f64 };
    println!(
        "coverage: {} of {} held-back measurements inside the 95% bands ({:.0}%)",
        c.inside,
        c.total,
        100.0 * frac
    );
    if let Some(min) = a.min_coverage {
        if c.total == 0 || frac < min {
            bail!("coverage {frac:.3} is below --min-coverage {min}");
        }
    }
    Ok(())
}
