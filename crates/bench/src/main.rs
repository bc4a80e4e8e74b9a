//! `vht-bench`: measures OpenVHT on one model, in one process: load+compile,
//! one time course (median of a few), and one-thread cohort throughput.
//! Prints JSON; `bench/run` compares it with libroadrunner and COPASI.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use vht_bench::{kinetic_parameters, median, member_factors, species_columns, Json};
use vht_ir::{Model, Sym, SymbolKind};
use vht_sim::{Simulator, Stats, TimeCourse, Trajectory};

#[derive(Parser)]
#[command(
    name = "vht-bench",
    version,
    about = "Time OpenVHT on one SBML model: load+compile, one time course, a cohort"
)]
struct Args {
    /// The SBML file.
    model: PathBuf,
    #[arg(long, default_value_t = 1000.0)]
    end: f64,
    /// Output rows, including 0 and the end.
    #[arg(long, default_value_t = 1001)]
    points: usize,
    /// Cohort members to simulate (0: none).
    #[arg(long, default_value_t = 0)]
    cohort: usize,
    /// Standard deviation of the log of each kinetic parameter's factor.
    #[arg(long, default_value_t = 0.1)]
    sigma: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Parameter values to use instead of the model's (e.g. a stimulus), `--set k1=0.5,V=2`.
    #[arg(long, value_delimiter = ',', value_name = "ID=VALUE")]
    set: Vec<String>,
    #[arg(long, default_value_t = 1e-6)]
    rtol: f64,
    #[arg(long, default_value_t = 1e-12)]
    atol: f64,
    /// Timed repetitions of the single time course (the median is reported).
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Stop the cohort after this many seconds and report the rate of the runs done.
    #[arg(long)]
    budget: Option<f64>,
    /// Give up a single run after this many seconds (counted as a failure). Off by default: the
    /// engine then reads the clock at every step, which costs about 3% on small models, and the
    /// reference tools have no such limit.
    #[arg(long)]
    run_timeout: Option<f64>,
    /// Write the single time course here (CSV: time, then one column per species).
    #[arg(long)]
    trajectory: Option<PathBuf>,
    /// Write the cohort's kinetic parameter values here (CSV: member, then one column per parameter id),
    /// for the other tools to simulate the same members.
    #[arg(long)]
    factors_out: Option<PathBuf>,
    /// Write cohort member 0's time course here (CSV), to check that every tool simulates the same member.
    #[arg(long)]
    member_trajectory: Option<PathBuf>,
    /// How many members to write to `--factors-out` (default: the whole cohort).
    #[arg(long)]
    factors_count: Option<usize>,
    /// Also run the cohort on this many threads (the parallel cohort runner), as many members as
    /// the one-thread cohort did times the threads (so about as long); 0 or 1: off.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Print the report as JSON (the only format; accepted for the documented command line).
    #[arg(long)]
    json: bool,
}

fn main() {
    let args = Args::parse();
    match run(&args) {
        Ok(report) => println!("{report}"),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}

fn run(a: &Args) -> Result<Json> {
    if a.points < 2 {
        bail!("--points must be at least 2 (got {})", a.points);
    }
    if a.end.is_nan() || a.end <= 0.0 {
        bail!("--end must be positive (got {})", a.end);
    }
    if !(a.rtol > 0.0 && a.atol > 0.0) {
        bail!("--rtol and --atol must be positive");
    }
    // Load+compile: from reading the file to a ready simulator and outputs.
    let t_load = Instant::now();
    let (model, _diagnostics) = vht_lower::load(&a.model).with_context(|| format!("{}", a.model.display()))?;
    let load_s = t_load.elapsed().as_secs_f64();
    let columns = species_columns(&model);
    let overrides = parse_overrides(&model, a)?;
    let kinetic = kinetic_parameters(&model, &overrides);
    let kinetic_names: Vec<String> = kinetic.iter().map(|&(s, _)| model.name(s).to_string()).collect();
    let n_species = model.species.len();
    let t_compile = Instant::now();
    let sim =
        Simulator::new(model, &vht_codegen::Options::default()).with_context(|| format!("{}", a.model.display()))?;
    let outputs = sim.outputs(&columns)?;
    let compile_s = t_compile.elapsed().as_secs_f64();
    let load_compile_s = t_load.elapsed().as_secs_f64();

    let tc =
        TimeCourse { start: 0.0, end: a.end, points: a.points, rtol: a.rtol, atol: a.atol, ..TimeCourse::default() };
    let timeout = a.run_timeout.map(Duration::from_secs_f64);
    let with_deadline = || TimeCourse { deadline: timeout.map(|d| Instant::now() + d), ..tc.clone() };

    // One time course, repeated: the first run also warms caches.
    let mut times = Vec::new();
    let mut cpu_times = Vec::new();
    let mut first: Option<Trajectory> = None;
    let mut single_error = None;
    for _ in 0..a.repeats.max(1) {
        let tc = with_deadline();
        let (t, c) = (Instant::now(), thread_cpu_s());
        let r = vht_sim::simulate(&sim, &tc, &outputs, &overrides);
        times.push(t.elapsed().as_secs_f64());
        cpu_times.push(thread_cpu_s() - c);
        match r {
            Ok(traj) => {
                first.get_or_insert(traj);
            }
            Err(e) => {
                single_error = Some(e.to_string());
                break;
            }
        }
    }
    if let (Some(path), Some(traj)) = (&a.trajectory, &first) {
        write_csv(path, traj)?;
    }

    // The cohort's parameter values, computed before timing (the other tools
    // read them from a file before timing too).
    let k = kinetic.len();
    let values: Vec<f64> = (0..a.cohort as u64)
        .flat_map(|m| member_factors(a.seed, m, k, a.sigma).into_iter().zip(&kinetic).map(|(f, &(_, base))| base * f))
        .collect();
    if let Some(path) = &a.factors_out {
        let count = a.factors_count.unwrap_or(a.cohort).min(a.cohort);
        write_factors(path, &kinetic_names, &values[..count * k], count)?;
    }
    // Overrides of a member: its kinetic values (updated in place, no
    // allocation per member), then the rest of the stimulus.
    let fixed: Vec<(Sym, f64)> =
        overrides.iter().copied().filter(|(s, _)| !kinetic.iter().any(|(ks, _)| ks == s)).collect();
    let mut member: Vec<(Sym, f64)> = kinetic.iter().copied().chain(fixed).collect();
    let mut done = 0usize;
    let mut failures = 0usize;
    let mut first_error = None;
    let mut total = Stats::default();
    let budget = a.budget.map(Duration::from_secs_f64);
    let t_cohort = Instant::now();
    let cpu_cohort = thread_cpu_s();
    for m in 0..a.cohort {
        set_member(&mut member[..k], &values, m);
        match vht_sim::simulate(&sim, &with_deadline(), &outputs, &member) {
            Ok(traj) => total += traj.stats,
            Err(e) => {
                failures += 1;
                first_error.get_or_insert_with(|| format!("member {m}: {e}"));
            }
        }
        done += 1;
        if budget.is_some_and(|b| t_cohort.elapsed() > b) {
            break;
        }
    }
    let cohort_s = t_cohort.elapsed().as_secs_f64();
    let cohort_cpu_s = thread_cpu_s() - cpu_cohort;
    if let (Some(path), true) = (&a.member_trajectory, a.cohort > 0) {
        set_member(&mut member[..k], &values, 0);
        if let Ok(traj) = vht_sim::simulate(&sim, &with_deadline(), &outputs, &member) {
            write_csv(path, &traj)?;
        }
    }

    let parallel = if a.threads > 1 && done > 0 {
        parallel_cohort(&sim, &tc, &outputs, &member, &values, k, (done * a.threads).min(a.cohort), a.threads)?
    } else {
        Json::Null
    };

    let stats = first.as_ref().map_or(Json::Null, |t| stats_json(&t.stats, 1));
    let breakdown = if first.is_some() { breakdown(&sim, &outputs, &tc, &overrides, a.repeats) } else { Json::Null };
    Ok(Json::obj([
        ("tool", Json::Str("vht".into())),
        ("model", Json::Str(a.model.display().to_string())),
        ("n_species", Json::Num(n_species as f64)),
        ("n_states", Json::Num(sim.n_y() as f64)),
        ("columns", Json::Arr(outputs.names.iter().map(|n| Json::Str(n.clone())).collect())),
        ("kinetic", Json::Arr(kinetic_names.iter().map(|n| Json::Str(n.clone())).collect())),
        ("end", Json::Num(a.end)),
        ("points", Json::Num(a.points as f64)),
        ("rtol", Json::Num(a.rtol)),
        ("atol", Json::Num(a.atol)),
        ("load_s", Json::Num(load_s)),
        ("compile_s", Json::Num(compile_s)),
        ("load_compile_s", Json::Num(load_compile_s)),
        (
            "single",
            Json::obj([
                ("median_s", Json::Num(median(&times))),
                ("times_s", Json::Arr(times.iter().map(|&t| Json::Num(t)).collect())),
                ("median_cpu_s", Json::Num(median(&cpu_times))),
                ("error", single_error.map_or(Json::Null, Json::Str)),
                ("stats", stats),
                ("breakdown", breakdown),
            ]),
        ),
        (
            "cohort",
            Json::obj([
                ("requested", Json::Num(a.cohort as f64)),
                ("done", Json::Num(done as f64)),
                ("failures", Json::Num(failures as f64)),
                ("first_error", first_error.map_or(Json::Null, Json::Str)),
                ("seconds", Json::Num(cohort_s)),
                ("cpu_seconds", Json::Num(cohort_cpu_s)),
                ("sims_per_s", Json::Num(if cohort_s > 0.0 { done as f64 / cohort_s } else { f64::NAN })),
                ("mean_stats", stats_json(&total, (done - failures).max(1))),
                ("seed", Json::Num(a.seed as f64)),
                ("sigma", Json::Num(a.sigma)),
            ]),
        ),
        ("cohort_parallel", parallel),
    ]))
}

/// Member `m`'s kinetic values (row `m` of `values`, as wide as `kinetic`) into the
/// kinetic slots at the front of its overrides.
fn set_member(kinetic: &mut [(Sym, f64)], values: &[f64], m: usize) {
    let k = kinetic.len();
    for (slot, &v) in kinetic.iter_mut().zip(&values[m * k..(m + 1) * k]) {
        slot.1 = v;
    }
}

/// The same cohort members (the first `count`) through `vht_sim::simulate_cohort` on a pool
/// of `threads` threads. `tc` is the time course without a per-run deadline: a deadline is
/// an instant, fixed when a time course is made, so one cannot serve a whole pool.
#[allow(clippy::too_many_arguments)]
fn parallel_cohort(
    sim: &Simulator,
    tc: &TimeCourse,
    outputs: &vht_sim::Outputs,
    member: &[(Sym, f64)],
    values: &[f64],
    k: usize,
    count: usize,
    threads: usize,
) -> Result<Json> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build()?;
    let t = Instant::now();
    let summary = pool.install(|| {
        vht_sim::simulate_cohort(
            sim,
            tc,
            outputs,
            count,
            |m, buf| {
                buf.extend_from_slice(member);
                set_member(&mut buf[..k], values, m);
            },
            // Trajectories are dropped as they come: a cohort's memory stays flat.
            |_, r| drop(std::hint::black_box(r)),
        )
    });
    let seconds = t.elapsed().as_secs_f64();
    Ok(Json::obj([
        ("threads", Json::Num(threads as f64)),
        ("done", Json::Num(count as f64)),
        ("failures", Json::Num(summary.failures as f64)),
        ("seconds", Json::Num(seconds)),
        ("sims_per_s", Json::Num(if seconds > 0.0 { count as f64 / seconds } else { f64::NAN })),
    ]))
}

/// CPU time of the calling thread in seconds (`CLOCK_THREAD_CPUTIME_ID`), NaN if the clock
/// is unavailable. On a machine shared with other work, CPU time measures the tool, wall time
/// also its wait for a core; every tool in the benchmark reports both.
fn thread_cpu_s() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec through a valid pointer to a local.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc == 0 {
        ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
    } else {
        f64::NAN
    }
}

/// Where one time course spends its time, measured from outside the engine:
/// the cost of one right-hand-side and one Jacobian evaluation (the compiled
/// functions, timed in a loop at the initial parameters), the cost of a run
/// that barely integrates (initial values, solver set-up), and of the same
/// time course with 2 output rows instead of all (so the cost of the outputs).
/// With the work counters this splits a run into model evaluations, set-up,
/// outputs and the solver's own linear algebra and step control.
fn breakdown(
    sim: &Simulator,
    outputs: &vht_sim::Outputs,
    tc: &TimeCourse,
    overrides: &[(Sym, f64)],
    repeats: usize,
) -> Json {
    let code = &sim.code;
    let p: Vec<f64> = code
        .layout
        .p
        .iter()
        .map(|&s| match (overrides.iter().find(|(o, _)| *o == s), &sim.model.symbol(s).initial) {
            (Some(&(_, v)), _) => v,
            (None, vht_ir::Expr::Num(v)) => *v,
            _ => 1.0,
        })
        .collect();
    let y: Vec<f64> = code
        .layout
        .y
        .iter()
        .map(|&s| match &sim.model.symbol(s).initial {
            vht_ir::Expr::Num(v) if *v != 0.0 => *v,
            _ => 1.0,
        })
        .collect();
    let host = vht_codegen::NoDelays;
    let time_per_eval = |f: &vht_codegen::Function, n_out: usize| {
        let mut out = vec![0.0; n_out];
        let reps = 2000;
        let t = Instant::now();
        for i in 0..reps {
            f.eval(i as f64 * 1e-9, &y, &p, &mut out, &host);
        }
        std::hint::black_box(&out);
        t.elapsed().as_secs_f64() / reps as f64
    };
    let rhs_s = time_per_eval(&code.rhs, y.len());
    let jac_s = time_per_eval(&code.jac, code.jac_pattern.len());
    let timed = |tc: &TimeCourse| {
        let mut ts = Vec::new();
        for _ in 0..repeats.max(1) {
            let t = Instant::now();
            let ok = vht_sim::simulate(sim, tc, outputs, overrides).is_ok();
            ts.push(if ok { t.elapsed().as_secs_f64() } else { f64::NAN });
        }
        median(&ts)
    };
    // A run that ends inside the integrator's first step (~1e-11 of T on
    // stiff models with atol 1e-12): initial values, solver construction, one
    // step. At 1e-9 of T it also timed the first ~17 steps of the step-size ramp.
    let setup_s = timed(&TimeCourse { end: tc.start + (tc.end - tc.start) * 1e-15, points: 2, ..tc.clone() });
    let two_rows_s = timed(&TimeCourse { points: 2, ..tc.clone() });
    Json::obj([
        ("rhs_eval_s", Json::Num(rhs_s)),
        ("jac_eval_s", Json::Num(jac_s)),
        ("jac_nonzeros", Json::Num(code.jac_pattern.len() as f64)),
        ("setup_s", Json::Num(setup_s)),
        ("two_rows_s", Json::Num(two_rows_s)),
    ])
}

fn stats_json(s: &Stats, per: usize) -> Json {
    let per = per as f64;
    Json::obj([
        ("steps", Json::Num(s.steps as f64 / per)),
        ("rhs_evals", Json::Num(s.rhs_evals as f64 / per)),
        ("jac_mul_evals", Json::Num(s.jac_mul_evals as f64 / per)),
        ("jac_evals", Json::Num(s.jac_evals as f64 / per)),
        ("lu_factorisations", Json::Num(s.lu_factorisations as f64 / per)),
        ("error_test_failures", Json::Num(s.error_test_failures as f64 / per)),
        ("newton_failures", Json::Num(s.newton_failures as f64 / per)),
    ])
}

/// `--set id=value` pairs, checked against the model's parameters.
fn parse_overrides(model: &Model, a: &Args) -> Result<Vec<(Sym, f64)>> {
    let file = a.model.display();
    a.set
        .iter()
        .filter(|p| !p.trim().is_empty())
        .map(|pair| {
            let Some((id, value)) = pair.split_once('=') else {
                bail!("--set '{pair}': expected ID=VALUE");
            };
            let (id, value) = (id.trim(), value.trim());
            let value: f64 = value.parse().with_context(|| format!("--set {id}={value}: not a number"))?;
            let Some(sym) = model.lookup(id) else {
                bail!("{file}: --set names '{id}', which is not in the model");
            };
            if !matches!(model.symbol(sym).kind, SymbolKind::Parameter) {
                bail!("{file}: --set '{id}': only constant parameters can be set");
            }
            Ok((sym, value))
        })
        .collect()
}

fn write_csv(path: &PathBuf, traj: &Trajectory) -> Result<()> {
    let file = std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?;
    let mut w = std::io::BufWriter::new(file);
    write!(w, "time")?;
    for n in &traj.names {
        write!(w, ",{n}")?;
    }
    writeln!(w)?;
    for (i, t) in traj.times.iter().enumerate() {
        write!(w, "{t:?}")?;
        for v in traj.row(i) {
            write!(w, ",{v:?}")?;
        }
        writeln!(w)?;
    }
    w.flush().with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn write_factors(path: &PathBuf, names: &[String], values: &[f64], count: usize) -> Result<()> {
    let k = names.len();
    let file = std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?;
    let mut w = std::io::BufWriter::new(file);
    write!(w, "member")?;
    for n in names {
        write!(w, ",{n}")?;
    }
    writeln!(w)?;
    for m in 0..count {
        write!(w, "{m}")?;
        for v in &values[m * k..(m + 1) * k] {
            // Debug formatting round-trips an f64 exactly.
            write!(w, ",{v:?}")?;
        }
        writeln!(w)?;
    }
    w.flush().with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
