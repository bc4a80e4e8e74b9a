//! `vht`: the OpenVHT command line.

mod fhir;
mod fit;
mod fit_profile;
mod parquet_out;
mod serve;
mod trial;
mod twin;

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use vht_ir::{Expr, Model, Role, SymbolKind};
use vht_sim::{Column, Simulator, TimeCourse, Trajectory};

#[derive(Parser)]
#[command(name = "vht", version, about = "OpenVHT: simulate, personalise and trial virtual human twins")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Simulate a time course of an SBML model.
    Simulate(SimulateArgs),
    /// Run SBML Test Suite semantic cases and judge them by the suite's rule.
    Conformance(ConformanceArgs),
    /// PEtab parameter estimation: multistart fits, profiles, or the objective (--evaluate).
    Fit(fit::FitArgs),
    /// In silico trials: virtual populations, treatment arms, endpoints.
    Trial(trial::TrialArgs),
    /// Clinical data in: FHIR R4 to a PEtab problem; the synthetic patient.
    Fhir(fhir::FhirArgs),
    /// Personalised twins: fit to a patient's FHIR data, predict with bands.
    Twin(twin::TwinArgs),
    /// The platform: HTTP API, web UI, catalogue, job workers (see crates/server/README.md).
    Serve(serve::ServeArgs),
    /// A job worker on the platform's shared database (no HTTP).
    Worker(serve::WorkerArgs),
}

#[derive(clap::Args)]
struct SimulateArgs {
    /// The SBML file.
    model: PathBuf,
    #[arg(long, default_value_t = 0.0)]
    start: f64,
    #[arg(long, default_value_t = 100.0)]
    end: f64,
    /// Output rows, including start and end.
    #[arg(long, default_value_t = 101)]
    points: usize,
    /// Comma-separated ids to report (default: every species, then every non-constant parameter and compartment).
    #[arg(long, value_delimiter = ',')]
    select: Vec<String>,
    /// Parameter values to use instead of the model's, e.g. `--set k1=0.5,V=2`.
    #[arg(long, value_delimiter = ',', value_name = "ID=VALUE")]
    set: Vec<String>,
    /// Report species as amounts.
    #[arg(long, conflicts_with = "concentrations")]
    amounts: bool,
    /// Report species as concentrations.
    #[arg(long)]
    concentrations: bool,
    #[arg(long, default_value_t = 1e-6)]
    rtol: f64,
    #[arg(long, default_value_t = 1e-12)]
    atol: f64,
    /// Write the table here (.csv, .tsv or .parquet) instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print the integrator's work counters to standard error.
    #[arg(long)]
    stats: bool,
    /// Linear solver of the integrator: auto (dense up to 40 states), dense or sparse.
    #[arg(long, default_value = "auto", value_parser = ["auto", "dense", "sparse"])]
    linear: String,
    /// Compile with the interpreter instead of the JIT.
    #[arg(long)]
    interpret: bool,
}

#[derive(clap::Args)]
struct ConformanceArgs {
    /// The folder of semantic cases (NNNNN/ subfolders).
    #[arg(long)]
    suite: PathBuf,
    /// A range of case numbers, e.g. 1-1821.
    #[arg(long)]
    cases: Option<String>,
    #[arg(long, default_value_t = std::thread::available_parallelism().map_or(1, |n| n.get()))]
    jobs: usize,
    /// Write the summary as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Wall-clock limit per case, in seconds.
    #[arg(long, default_value_t = 20.0)]
    timeout: f64,
    /// Print only failing cases, not one line per case.
    #[arg(long)]
    quiet: bool,
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Simulate(a) => simulate(a),
        Command::Conformance(a) => conformance(a),
        Command::Fit(a) => fit::run(a),
        Command::Trial(a) => trial::run(a),
        Command::Fhir(a) => fhir::run(a),
        Command::Twin(a) => twin::run(a),
        Command::Serve(a) => serve::serve(a),
        Command::Worker(a) => serve::worker(a),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn simulate(a: SimulateArgs) -> Result<()> {
    if a.points < 2 {
        bail!("--points must be at least 2 (got {})", a.points);
    }
    if !(a.end > a.start) {
        bail!("--end ({}) must be after --start ({})", a.end, a.start);
    }
    if !(a.rtol > 0.0 && a.atol > 0.0) {
        bail!("--rtol and --atol must be positive");
    }
    let t_load = Instant::now();
    let (model, diagnostics) = vht_lower::load(&a.model)?;
    for d in &diagnostics {
        eprintln!("warning: {d}");
    }
    let columns = select_columns(&model, &a)?;
    let overrides = parse_overrides(&model, &a)?;
    let backend = if a.interpret { vht_codegen::Backend::Interpreter } else { vht_codegen::Backend::Jit };
    let sim =
        Simulator::new(model, &vht_codegen::Options { backend }).with_context(|| format!("{}", a.model.display()))?;
    let outputs = sim.outputs(&columns)?;
    let load_time = t_load.elapsed();
    let tc = TimeCourse {
        start: a.start,
        end: a.end,
        points: a.points,
        rtol: a.rtol,
        atol: a.atol,
        linear_solver: match a.linear.as_str() {
            "dense" => vht_sim::LinearSolver::Dense,
            "sparse" => vht_sim::LinearSolver::Sparse,
            _ => vht_sim::LinearSolver::Auto,
        },
        ..TimeCourse::default()
    };
    let t_sim = Instant::now();
    let traj = vht_sim::simulate(&sim, &tc, &outputs, &overrides).with_context(|| format!("{}", a.model.display()))?;
    let sim_time = t_sim.elapsed();
    match &a.out {
        Some(path) => {
            let sep = match path.extension().and_then(|e| e.to_str()) {
                Some("csv") => ',',
                Some("tsv") | Some("txt") => '\t',
                Some("parquet") => {
                    parquet_out::write(path, &traj)?;
                    return print_stats(a.stats, load_time, sim_time, &traj);
                }
                other => bail!(
                    "--out {}: unknown format {:?} (use .csv, .tsv or .parquet)",
                    path.display(),
                    other.unwrap_or("")
                ),
            };
            let file = std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?;
            write_table(&mut std::io::BufWriter::new(file), &traj, sep)?;
        }
        None => write_table(&mut std::io::stdout().lock(), &traj, ',')?,
    }
    print_stats(a.stats, load_time, sim_time, &traj)
}

fn print_stats(
    show: bool,
    load_time: std::time::Duration,
    sim_time: std::time::Duration,
    traj: &Trajectory,
) -> Result<()> {
    if show {
        let s = traj.stats;
        eprintln!(
            "load+compile {:.3} ms, simulate {:.3} ms; steps {}, rhs {}, jacobian {}, jacobian-vector {}, LU {}, error-test failures {}, newton failures {}",
            load_time.as_secs_f64() * 1e3,
            sim_time.as_secs_f64() * 1e3,
            s.steps,
            s.rhs_evals,
            s.jac_evals,
            s.jac_mul_evals,
            s.lu_factorisations,
            s.error_test_failures,
            s.newton_failures
        );
    }
    Ok(())
}

/// The columns to report: the selection, or every species then every
/// non-constant parameter and compartment.
fn select_columns(model: &Model, a: &SimulateArgs) -> Result<Vec<Column>> {
    let species_expr = |s| match model.species_view(s) {
        Some(v) if a.amounts => v.amount.clone(),
        Some(v) if a.concentrations => v.concentration.clone(),
        _ => Expr::Sym(s),
    };
    if !a.select.is_empty() {
        return a
            .select
            .iter()
            .map(|id| match model.lookup(id) {
                Some(s) => Ok(Column { name: id.clone(), expr: species_expr(s) }),
                None => bail!(
                    "{}: --select names '{id}', which is not in the model{}",
                    a.model.display(),
                    suggest(model, id)
                ),
            })
            .collect();
    }
    let event_targets: Vec<_> = model.events.iter().flat_map(|e| e.assignments.iter().map(|x| x.target)).collect();
    let mut cols: Vec<Column> = model
        .species
        .iter()
        .map(|v| Column { name: model.name(v.sym).to_string(), expr: species_expr(v.sym) })
        .collect();
    for (i, sym) in model.symbols.iter().enumerate() {
        let s = vht_ir::Sym(i as u32);
        let varies = !matches!(sym.kind, SymbolKind::Parameter) || event_targets.contains(&s);
        if matches!(sym.role, Role::Parameter | Role::Compartment) && varies {
            cols.push(Column { name: sym.name.clone(), expr: Expr::Sym(s) });
        }
    }
    Ok(cols)
}

/// `--set id=value` pairs, checked against the model's parameters.
fn parse_overrides(model: &Model, a: &SimulateArgs) -> Result<Vec<(vht_ir::Sym, f64)>> {
    let file = a.model.display();
    a.set
        .iter()
        .map(|pair| {
            let Some((id, value)) = pair.split_once('=') else {
                bail!("--set '{pair}': expected ID=VALUE");
            };
            let (id, value) = (id.trim(), value.trim());
            let value: f64 =
                value.parse().map_err(|_| anyhow::anyhow!("--set {id}={value}: '{value}' is not a number"))?;
            let Some(sym) = model.lookup(id) else {
                bail!("{file}: --set names '{id}', which is not in the model{}", suggest(model, id));
            };
            if !matches!(model.symbol(sym).kind, SymbolKind::Parameter) {
                bail!(
                    "{file}: --set '{id}': only constant parameters can be set (rules or reactions determine '{id}')"
                );
            }
            Ok((sym, value))
        })
        .collect()
}

/// " (did you mean 'x'?)" for the closest id, if any is close.
fn suggest(model: &Model, id: &str) -> String {
    let best =
        model.symbols.iter().filter(|s| !s.name.contains('.')).map(|s| (edit_distance(&s.name, id), &s.name)).min();
    match best {
        Some((d, name)) if d <= 2.max(id.len() / 3) => format!(" (did you mean '{name}'?)"),
        _ => String::new(),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, &cb) in b.iter().enumerate() {
            cur.push((prev[j] + usize::from(ca != cb)).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

fn write_table(w: &mut impl Write, traj: &Trajectory, sep: char) -> Result<()> {
    write!(w, "time")?;
    for n in &traj.names {
        write!(w, "{sep}{n}")?;
    }
    writeln!(w)?;
    for (i, t) in traj.times.iter().enumerate() {
        write!(w, "{t}")?;
        for v in traj.row(i) {
            write!(w, "{sep}{v}")?;
        }
        writeln!(w)?;
    }
    w.flush()?;
    Ok(())
}

fn conformance(a: ConformanceArgs) -> Result<()> {
    let range = match &a.cases {
        None => None,
        Some(r) => {
            let (lo, hi) = r.split_once('-').unwrap_or((r, r));
            let parse =
                |s: &str| s.trim().parse::<u32>().with_context(|| format!("--cases {r}: '{s}' is not a case number"));
            Some((parse(lo)?, parse(hi)?))
        }
    };
    let cases = vht_conformance::discover(&a.suite, range)
        .with_context(|| format!("cannot read the suite folder {}", a.suite.display()))?;
    if cases.is_empty() {
        bail!("no cases found in {} (expected NNNNN/ folders)", a.suite.display());
    }
    let opts = vht_conformance::RunOptions { timeout: std::time::Duration::from_secs_f64(a.timeout) };
    let started = Instant::now();
    let quiet = a.quiet;
    let outcomes = vht_conformance::run_all(&cases, &opts, a.jobs, |case, outcome| {
        if !quiet || !matches!(outcome, vht_conformance::Outcome::Pass | vht_conformance::Outcome::Skipped(_)) {
            println!("{} {} {}", case.id, outcome.label(), outcome.detail());
        }
    });
    let results: Vec<_> = cases.into_iter().zip(outcomes).collect();
    println!("\n{}", vht_conformance::tag_table(&results));
    let count = |l: &str| results.iter().filter(|(_, o)| o.label() == l).count();
    println!(
        "{} passed, {} failed, {} errors, {} timeouts, {} skipped, of {} cases in {:.1} s",
        count("pass"),
        count("fail"),
        count("error"),
        count("timeout"),
        count("skipped"),
        results.len(),
        started.elapsed().as_secs_f64()
    );
    if let Some(path) = &a.json {
        std::fs::write(path, vht_conformance::summary_json(&results))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}
