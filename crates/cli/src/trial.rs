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
    /// Split a trial into a Slurm job array: screen the population, write the sbatch script into --out and submit it.
    Submit(SubmitArgs),
    /// Run one task of a split trial (what each Slurm array task runs).
    Shard(ShardArgs),
    /// Merge the task files of a split trial and write the report, as `trial run` does.
    Collect(CollectArgs),
}

#[derive(clap::Args)]
struct SubmitArgs {
    /// The trial specification (TOML).
    spec: PathBuf,
    /// Submit to Slurm (sbatch job array); the only scheduler supported.
    #[arg(long)]
    slurm: bool,
    /// Array tasks (one result file each).
    #[arg(long, default_value_t = 8)]
    shards: u64,
    /// Slurm partition (default: the cluster's default partition).
    #[arg(long)]
    partition: Option<String>,
    /// Output folder, shared by the tasks (on a cluster: a shared file system).
    #[arg(long)]
    out: PathBuf,
    /// CPUs per array task (its worker threads).
    #[arg(long, default_value_t = 1)]
    cpus_per_task: u32,
    /// Time limit per task (sbatch --time, e.g. 01:00:00).
    #[arg(long)]
    time: Option<String>,
    /// Population size instead of the spec's.
    #[arg(long)]
    patients: Option<u64>,
    /// Threads for screening the population before submitting (default: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Write the script but do not call sbatch.
    #[arg(long)]
    dry_run: bool,
}

#[derive(clap::Args)]
struct ShardArgs {
    /// The trial specification (TOML).
    spec: PathBuf,
    /// This task, in 0..of.
    #[arg(long)]
    index: u64,
    /// Number of tasks.
    #[arg(long)]
    of: u64,
    /// Output folder shared by every task.
    #[arg(long)]
    out: PathBuf,
    /// Worker threads (default: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Population size instead of the spec's (must match the other tasks).
    #[arg(long)]
    patients: Option<u64>,
}

#[derive(clap::Args)]
struct CollectArgs {
    /// The folder of a split trial (holds job.json, population.json, shards/).
    dir: PathBuf,
    /// Also write trajectories.parquet (as `[output] trajectories = true`).
    #[arg(long)]
    trajectories: bool,
    /// Worker threads (default: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
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
    /// Also write trajectories.parquet (as `[output] trajectories = true`).
    #[arg(long)]
    trajectories: bool,
}

pub fn run(a: TrialArgs) -> Result<()> {
    match a.command {
        TrialCommand::Run(r) => run_trial(r),
        TrialCommand::Submit(s) => submit(s),
        TrialCommand::Shard(s) => shard(s),
        TrialCommand::Collect(c) => collect(c),
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
    let mut plan = load(&a.spec)?;
    plan.spec.output.trajectories |= a.trajectories;
    let opts = vht_trial::store::RunOptions {
        out: a.out.clone(),
        threads: a.threads,
        shard_size: a.shard_size,
        size: a.patients,
        ..Default::default()
    };
    let progress = progress_line();
    let outcome =
        vht_trial::store::run(&plan, &opts, &progress).with_context(|| format!("trial {}", a.spec.display()))?;
    eprintln!();
    report_outcome(&plan, &outcome);
    if outcome.shards_skipped > 0 {
        eprintln!("resumed: {} of {} shards were already finished", outcome.shards_skipped, outcome.shards);
    }
    eprintln!("wrote {} (report.md, summary.json, patients.parquet, plots)", a.out.display());
    eprintln!(
        "wall time {:.1} s, peak resident memory {}",
        t0.elapsed().as_secs_f64(),
        peak_rss().map_or("unknown".into(), |mb| format!("{mb:.0} MB"))
    );
    Ok(())
}

/// The process's peak resident set (Linux: VmHWM in /proc/self/status), in MB.
fn peak_rss() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn load(spec: &std::path::Path) -> Result<vht_trial::plan::Plan> {
    let t0 = Instant::now();
    let spec = vht_trial::spec::Spec::from_file(spec)?;
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
    Ok(plan)
}

fn report_outcome(plan: &vht_trial::plan::Plan, outcome: &vht_trial::store::Outcome) {
    let s = &outcome.screening.stats;
    eprintln!("population: {} candidates tried, {} accepted", s.tried, s.accepted);
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
}

/// The progress line on stderr, redrawn at most every 200 ms; the phase's
/// start time gives the rate and the estimate of the time left.
fn progress_line() -> impl Fn(Progress) + Sync {
    let state: Mutex<(Instant, Option<(Phase, Instant)>)> = Mutex::new((Instant::now() - Duration::from_secs(1), None));
    // Redrawn in place on a terminal; into a log file, a line every 10 s.
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let every = Duration::from_millis(if tty { 200 } else { 10_000 });
    let (start, end) = if tty { ("\r", "      ") } else { ("", "\n") };
    move |p: Progress| {
        let Ok(mut s) = state.lock() else { return };
        let now = Instant::now();
        let since = match s.1 {
            Some((phase, t)) if phase == p.phase => t,
            _ => {
                s.1 = Some((p.phase, now));
                now
            }
        };
        if now.duration_since(s.0) < every && p.done < p.total {
            return;
        }
        s.0 = now;
        let elapsed = now.duration_since(since).as_secs_f64().max(1e-9);
        let rate = p.done as f64 / elapsed;
        // The first moments of a phase give no rate worth showing.
        if elapsed < 0.05 {
            eprint!(
                "{start}{}: {}/{}{end}",
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
        eprint!("{start}{what}: {}/{} ({:.0}/s, {} left){end}", p.done, p.total, rate, eta);
    }
}

/// Quotes a word for a POSIX shell.
fn sh(word: &str) -> String {
    if !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "/._-=:,+@".contains(c)) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// The sbatch job-array script: task `$SLURM_ARRAY_TASK_ID` runs `vht trial shard`.
fn sbatch_script(
    vht: &std::path::Path,
    spec: &std::path::Path,
    out: &std::path::Path,
    name: &str,
    a: &SubmitArgs,
) -> String {
    let mut s = String::from("#!/bin/bash\n");
    s += &format!("#SBATCH --job-name={}\n", sh(&format!("vht-trial-{name}")));
    s += &format!("#SBATCH --array=0-{}\n", a.shards - 1);
    s += &format!("#SBATCH --cpus-per-task={}\n", a.cpus_per_task);
    s += &format!("#SBATCH --output={}\n", sh(&out.join("slurm").join("task-%a.out").display().to_string()));
    if let Some(p) = &a.partition {
        s += &format!("#SBATCH --partition={}\n", sh(p));
    }
    if let Some(t) = &a.time {
        s += &format!("#SBATCH --time={}\n", sh(t));
    }
    s += "# Written by `vht trial submit`; each array task writes shards/task-I-of-N.parquet\n";
    s += &format!("# and `vht trial collect {}` merges them.\n", sh(&out.display().to_string()));
    s += "set -eu\n";
    let mut cmd = vec![
        sh(&vht.display().to_string()),
        "trial".into(),
        "shard".into(),
        sh(&spec.display().to_string()),
        "--index".into(),
        "\"$SLURM_ARRAY_TASK_ID\"".into(),
        "--of".into(),
        a.shards.to_string(),
        "--out".into(),
        sh(&out.display().to_string()),
        "--threads".into(),
        "\"${SLURM_CPUS_PER_TASK:-1}\"".into(),
    ];
    if let Some(n) = a.patients {
        cmd.extend(["--patients".into(), n.to_string()]);
    }
    s += &format!("exec {}\n", cmd.join(" "));
    s
}

fn submit(a: SubmitArgs) -> Result<()> {
    if !a.slurm {
        anyhow::bail!("vht trial submit needs --slurm (the only scheduler supported; `vht trial run` runs locally)");
    }
    if a.shards == 0 {
        anyhow::bail!("--shards must be at least 1");
    }
    let plan = load(&a.spec)?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("cannot create {}", a.out.display()))?;
    let out = std::path::absolute(&a.out)?;
    let progress = progress_line();
    // The population is screened here, once; the tasks read it.
    let (job, screening) = vht_trial::store::prepare_tasks(&plan, &out, a.threads, a.patients, a.shards, &progress)
        .with_context(|| format!("trial {}", a.spec.display()))?;
    eprintln!();
    eprintln!(
        "population: {} patients ({} candidates tried), in {} tasks",
        screening.candidates.len(),
        screening.stats.tried,
        job.tasks
    );
    let vht = std::env::current_exe().context("cannot find the vht executable")?;
    let script = sbatch_script(&vht, &job.spec, &out, &plan.spec.name, &a);
    std::fs::create_dir_all(out.join("slurm"))?;
    let path = out.join("submit.sbatch");
    std::fs::write(&path, &script).with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!("wrote {}", path.display());
    if a.dry_run {
        return Ok(());
    }
    let output = std::process::Command::new("sbatch")
        .arg("--parsable")
        .arg(&path)
        .output()
        .context("cannot run sbatch (is Slurm installed? see scripts/slurm/single-node.sh)")?;
    if !output.status.success() {
        anyhow::bail!("sbatch failed ({}): {}", output.status, String::from_utf8_lossy(&output.stderr).trim());
    }
    // --parsable prints "jobid" or "jobid;cluster".
    let stdout = String::from_utf8_lossy(&output.stdout);
    let id = stdout.trim().split(';').next().unwrap_or("").to_string();
    std::fs::write(out.join("slurm").join("job-id"), format!("{id}\n"))?;
    eprintln!("submitted job array {id} ({} tasks); when it is done: vht trial collect {}", job.tasks, out.display());
    println!("{id}");
    Ok(())
}

fn shard(a: ShardArgs) -> Result<()> {
    let plan = load(&a.spec)?;
    let opts = vht_trial::store::ShardOptions {
        out: a.out.clone(),
        threads: a.threads,
        index: a.index,
        of: a.of,
        size: a.patients,
    };
    let progress = |_: Progress| {};
    let o = vht_trial::store::shard(&plan, &opts, &progress)
        .with_context(|| format!("trial {} task {} of {}", a.spec.display(), a.index, a.of))?;
    if o.simulated {
        let n = o.last - o.first;
        eprintln!(
            "task {} of {}: patients [{}, {}) in {:.1} s ({:.0} patients/s) -> {}",
            a.index,
            a.of,
            o.first,
            o.last,
            o.simulate_time.as_secs_f64(),
            n as f64 / o.simulate_time.as_secs_f64().max(1e-9),
            o.path.display()
        );
    } else {
        eprintln!("task {} of {}: {} already written, nothing to do", a.index, a.of, o.path.display());
    }
    Ok(())
}

fn collect(a: CollectArgs) -> Result<()> {
    let job = vht_trial::store::read_job(&a.dir)?;
    let mut plan = load(&job.spec)?;
    plan.spec.output.trajectories |= a.trajectories;
    let opts = vht_trial::store::CollectOptions { threads: a.threads, ..Default::default() };
    let outcome = vht_trial::store::collect(&plan, &a.dir, &opts)?;
    report_outcome(&plan, &outcome);
    eprintln!(
        "merged {} task files; wrote {} (report.md, summary.json, patients.parquet, plots)",
        outcome.shards,
        a.dir.display()
    );
    Ok(())
}
