//! `vht trial`: in silico trials (the work is in `vht-trial`; this is
//! arguments, the progress line and messages).

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Subcommand;
use vht_trial::run::{Phase, Progress};

#[derive(clap::Args)]
pub struct TrialArgs {
    #[command(subcommand)]
    command: TrialCommand,
}

#[derive(Subcommand)]
enum TrialCommand {
    /// Run (or resume) a trial: sample the population, simulate every arm, write results and a report.
    Run(RunArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// The trial specification (TOML; see examples/trials/README.md).
    spec: PathBuf,
    /// Output folder. If it holds an unfinished run of the same trial, finished shards are kept.
    #[arg(long)]
    out: PathBuf,
    /// Worker threads (default: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Population size instead of the spec's.
    #[arg(long)]
    patients: Option<u64>,
    /// Patients per result shard (the unit of resumption).
    #[arg(long, default_value_t = 1000)]
    shard_size: u64,
}

pub fn run(a: TrialArgs) -> Result<()> {
    match a.command {
        TrialCommand::Run(r) => run_trial(r),
    }
}

fn clock(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

fn run_trial(a: RunArgs) -> Result<()> {
    let t0 = Instant::now();
    let spec = vht_trial::spec::Spec::from_file(&a.spec)?;
    let plan = vht_trial::plan::Plan::new(spec)?;
    for d in &plan.diagnostics {
        eprintln!("warning: {d}");
    }
    eprintln!(
        "compiled {} arm(s) of {} in {:.2} s",
        plan.arms.len(),
        plan.spec.model.display(),
        t0.elapsed().as_secs_f64()
    );
    let opts = vht_trial::store::RunOptions {
        out: a.out.clone(),
        threads: a.threads,
        shard_size: a.shard_size,
        size: a.patients,
        ..Default::default()
    };
    // The progress line is redrawn at most every 200 ms; the phase's start
    // time gives the rate and the estimate of the time left.
    let state: Mutex<(Instant, Option<(Phase, Instant)>)> = Mutex::new((Instant::now() - Duration::from_secs(1), None));
    let progress = |p: Progress| {
        let Ok(mut s) = state.lock() else { return };
        let now = Instant::now();
        let since = match s.1 {
            Some((phase, t)) if phase == p.phase => t,
            _ => {
                s.1 = Some((p.phase, now));
                now
            }
        };
        if now.duration_since(s.0) < Duration::from_millis(200) && p.done < p.total {
            return;
        }
        s.0 = now;
        let elapsed = now.duration_since(since).as_secs_f64().max(1e-9);
        let rate = p.done as f64 / elapsed;
        // The first moments of a phase give no rate worth showing.
        if elapsed < 0.05 {
            eprint!(
                "\r{}: {}/{}      ",
                if p.phase == Phase::Screening { "plausible patients" } else { "patients simulated" },
                p.done,
                p.total
            );
            return;
        }
        let eta = if rate > 0.0 {
            clock(Duration::from_secs_f64((p.total - p.done.min(p.total)) as f64 / rate))
        } else {
            "?".into()
        };
        let what = match p.phase {
            Phase::Screening => "plausible patients",
            Phase::Simulating => "patients simulated",
        };
        eprint!("\r{what}: {}/{} ({:.0}/s, {} left)      ", p.done, p.total, rate, eta);
    };
    let outcome =
        vht_trial::store::run(&plan, &opts, &progress).with_context(|| format!("trial {}", a.spec.display()))?;
    eprintln!();
    let s = &outcome.screening.stats;
    eprintln!("population: {} candidates tried, {} accepted", s.tried, s.accepted);
    if outcome.shards_skipped > 0 {
        eprintln!("resumed: {} of {} shards were already finished", outcome.shards_skipped, outcome.shards);
    }
    if outcome.simulated > 0 {
        eprintln!(
            "simulated {} patients x {} arms in {:.1} s ({:.0} patients/s)",
            outcome.simulated,
            plan.arms.len(),
            outcome.simulate_time.as_secs_f64(),
            outcome.simulated as f64 / outcome.simulate_time.as_secs_f64().max(1e-9)
        );
    }
    for arm in &outcome.summary.arms {
        if arm.failed > 0 {
            eprintln!("arm {}: {} of {} patients failed (reasons in report.md)", arm.name, arm.failed, arm.patients);
        }
    }
    eprintln!("wrote {} (report.md, summary.json, patients.parquet, plots)", a.out.display());
    Ok(())
}
