//! `vht fit`: PEtab parameter-estimation problems.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct FitArgs {
    #[command(subcommand)]
    command: Option<crate::fit_profile::FitCommand>,
    /// The PEtab problem (yaml).
    #[arg(required = true)]
    problem: Option<PathBuf>,
    /// Evaluate the objective at the nominal parameters (with --set changes)
    /// and print each condition's contribution; the last line is the objective.
    #[arg(long)]
    evaluate: bool,
    #[command(flatten)]
    integration: Integration,
    #[command(flatten)]
    multistart: Multistart,
    /// Parameter-table values to use instead of the nominal ones (linear scale),
    /// e.g. `--set k1=0.5,sigma=2`.
    #[arg(long, value_delimiter = ',', value_name = "ID=VALUE")]
    set: Vec<String>,
    /// Also write the simulated measurements here, as a PEtab simulation table
    /// (the measurement table's keys with a `simulation` column, plus `sigma` and `nllh`).
    #[arg(long, value_name = "FILE.tsv")]
    simulations: Option<PathBuf>,
    /// Output folder (default: fit-<problem file stem>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// After fitting, profile these parameters (ids, comma-separated) and
    /// write their profiles, confidence intervals and plots.
    #[arg(long, value_delimiter = ',', value_name = "ID,ID")]
    profile: Vec<String>,
    /// After fitting, draw this many parameter vectors from the Laplace
    /// approximation at the best fit and write 95% prediction bands of every
    /// measured observable at its measurement times (bands.tsv).
    #[arg(long, default_value_t = 0)]
    bands: usize,
}

/// Integration settings, shared by `vht fit` and `vht fit profile`.
#[derive(clap::Args)]
pub(crate) struct Integration {
    #[arg(long, default_value_t = 1e-8)]
    pub(crate) rtol: f64,
    #[arg(long, default_value_t = 1e-12)]
    pub(crate) atol: f64,
    /// Integrator step limit of each simulation while fitting (AMICI's
    /// default): parameters where a simulation needs more are treated as
    /// failed points (the step is rejected), not waited for.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) max_steps: usize,
}

impl Integration {
    pub(crate) fn check(&self) -> Result<()> {
        if !(self.rtol > 0.0 && self.atol > 0.0) {
            bail!("--rtol and --atol must be positive");
        }
        Ok(())
    }
}

/// Multistart settings, shared by `vht fit` and `vht fit profile` (which
/// uses them with `--from best`).
#[derive(clap::Args)]
pub(crate) struct Multistart {
    /// Number of multistart local optimisations (Latin hypercube in the scaled bounds);
    /// 0 means one local optimisation from the nominal values.
    #[arg(long, default_value_t = 20)]
    pub(crate) starts: usize,
    /// Local optimiser: fides (trust region on the Gauss-Newton Hessian) or lbfgsb.
    #[arg(long, default_value = "fides", value_parser = ["fides", "lbfgsb"])]
    pub(crate) optimizer: String,
    /// Gradients by forward sensitivities (with the Gauss-Newton Hessian
    /// fides needs) or by adjoint sensitivities (gradient only, with
    /// lbfgsb; faster for many parameters: 2.9x on Bachmann_MSB2011's 113,
    /// 2.1x on Lucarelli_CellSystems2018's 84, slower below ~40). auto:
    /// with lbfgsb, both are timed at the nominal point and the adjoint is
    /// used if it is faster and agrees with the forward gradient (to 1e-3).
    #[arg(long, default_value = "auto", value_parser = ["auto", "forward", "adjoint"])]
    pub(crate) gradient: String,
    /// Seed of the starting points (and of the prediction-band draws).
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Iteration limit of each local optimisation.
    #[arg(long, default_value_t = 1000)]
    pub(crate) max_iterations: usize,
    /// How often a start point that cannot be simulated is redrawn (seeded,
    /// uniform in the bounds; the failed point stays in the results); 0
    /// keeps failed starts failed.
    #[arg(long, default_value_t = vht_fit::REDRAWS)]
    pub(crate) redraws: usize,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub(crate) threads: Option<usize>,
    /// No progress line on standard error.
    #[arg(long)]
    pub(crate) quiet: bool,
}

impl EstimateArgs {
    pub(crate) fn new(
        i: &Integration,
        m: &Multistart,
        out: Option<PathBuf>,
        profile: Vec<String>,
        bands: usize,
    ) -> EstimateArgs {
        EstimateArgs {
            rtol: i.rtol,
            atol: i.atol,
            starts: m.starts,
            lbfgsb: m.optimizer == "lbfgsb",
            gradient: m.gradient.clone(),
            seed: m.seed,
            max_iterations: m.max_iterations,
            redraws: m.redraws,
            threads: m.threads,
            out,
            profile,
            progress: !m.quiet,
            max_steps: i.max_steps,
            bands,
        }
    }
}

pub fn run(a: FitArgs) -> Result<()> {
    let problem = match (a.command, &a.problem) {
        (Some(crate::fit_profile::FitCommand::Profile(p)), _) => return crate::fit_profile::run(p),
        (None, Some(problem)) => problem.clone(),
        (None, None) => bail!("a PEtab problem (yaml) is required"),
    };
    a.integration.check()?;
    if !a.evaluate {
        let e = EstimateArgs::new(&a.integration, &a.multistart, a.out.clone(), a.profile.clone(), a.bands);
        return estimate(&problem, &e);
    }
    let t0 = Instant::now();
    let problem = vht_fit::read(&problem)?;
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
    let settings = vht_fit::Settings { rtol: a.integration.rtol, atol: a.integration.atol, ..Default::default() };
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

/// What `vht fit` without --evaluate does (and `vht fit profile --from best`).
pub(crate) struct EstimateArgs {
    pub(crate) rtol: f64,
    pub(crate) atol: f64,
    pub(crate) starts: usize,
    pub(crate) lbfgsb: bool,
    /// `forward`, `adjoint` (needs `lbfgsb`) or `auto`.
    pub(crate) gradient: String,
    pub(crate) seed: u64,
    pub(crate) max_iterations: usize,
    pub(crate) redraws: usize,
    pub(crate) threads: Option<usize>,
    pub(crate) out: Option<PathBuf>,
    pub(crate) profile: Vec<String>,
    pub(crate) progress: bool,
    pub(crate) max_steps: usize,
    pub(crate) bands: usize,
}

/// The positions in `ids` (the estimated parameters) of the parameters a
/// flag names; an error names the flag and the unknown id.
pub(crate) fn positions(ids: &[String], wanted: &[String], flag: &str) -> Result<Vec<usize>> {
    wanted
        .iter()
        .map(|id| match ids.iter().position(|x| x == id.trim()) {
            Some(k) => Ok(k),
            None => bail!("{flag} {id}: not an estimated parameter (estimated: {})", ids.join(", ")),
        })
        .collect()
}

/// Multistart estimation, then (optionally) profiles; writes the results to the output folder.
pub(crate) fn estimate(path: &Path, a: &EstimateArgs) -> Result<()> {
    let t0 = Instant::now();
    let problem = vht_fit::read(path)?;
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "problem".into());
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from(format!("fit-{stem}")));
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    if a.gradient == "adjoint" && !a.lbfgsb {
        bail!("--gradient adjoint gives no Gauss-Newton Hessian for the fides trust region: use it with --optimizer lbfgsb");
    }
    let gradient = if a.gradient == "adjoint" { vht_fit::Gradient::Adjoint } else { vht_fit::Gradient::Forward };
    let settings =
        vht_fit::Settings { rtol: a.rtol, atol: a.atol, max_steps: a.max_steps, gradient, ..Default::default() };
    let mut objective = vht_fit::Objective::new(problem, settings)?;
    for d in &objective.diagnostics {
        eprintln!("warning: {d}");
    }
    let estimated = objective.estimated();
    let ids: Vec<String> = estimated.iter().map(|&i| objective.problem.parameters[i].id.clone()).collect();
    let profiled = positions(&ids, &a.profile, "--profile")?;
    // Compile the sensitivity system once, before the threads need it.
    let x_nominal = objective.scaled_nominal();
    let t_grad = Instant::now();
    if let Err(e) = objective.evaluate_with_gradient(&x_nominal) {
        // A failure at the nominal point is not fatal (starts are elsewhere),
        // but a model without gradients is.
        if matches!(e, vht_fit::FitError::Sensitivities { .. } | vht_fit::FitError::Adjoint { .. }) {
            return Err(e.into());
        }
    }
    let t_grad = t_grad.elapsed().as_secs_f64();
    let chosen = if a.gradient == "auto" && a.lbfgsb {
        let (gradient, why) = choose_gradient(&mut objective, &x_nominal);
        eprintln!("gradient: {} ({why})", if gradient == vht_fit::Gradient::Adjoint { "adjoint" } else { "forward" });
        gradient
    } else {
        objective.settings.gradient
    };
    objective.settings.gradient = chosen;
    let options = vht_fit::FitOptions {
        starts: a.starts,
        optimizer: if a.lbfgsb { vht_fit::Optimizer::Lbfgsb } else { vht_fit::Optimizer::TrustRegion },
        seed: a.seed,
        max_iterations: a.max_iterations,
        threads: a.threads,
        progress: a.progress,
        redraws: a.redraws,
    };
    let result = if a.starts == 0 {
        vht_fit::fit_from(&objective, &options, vec![x_nominal.clone()])?
    } else {
        vht_fit::fit(&objective, &options)?
    };
    let Some(best) = result.best.clone() else {
        write_starts(&out, &ids, &result)?;
        bail!("every start failed (see {})", out.join("starts.tsv").display());
    };
    write_starts(&out, &ids, &result)?;
    write_parameters(&out.join("parameters.tsv"), &objective, &best.x)?;
    std::fs::write(out.join("waterfall.svg"), waterfall_svg(&stem, &result))
        .with_context(|| format!("cannot write {}", out.join("waterfall.svg").display()))?;
    // Profiles and bands use the Gauss-Newton Hessian: forward sensitivities.
    objective.settings.gradient = vht_fit::Gradient::Forward;
    let summary = summary(&stem, a, chosen, &result, t_grad, t0.elapsed().as_secs_f64());
    std::fs::write(out.join("summary.json"), &summary.json)?;
    std::fs::write(out.join("summary.md"), &summary.markdown)?;

    if !profiled.is_empty() {
        let opts = vht_fit::ProfileOptions { parameters: profiled, ..Default::default() };
        let t = Instant::now();
        let profiles = vht_fit::profile(&objective, &best.x, best.fval, &opts)?;
        write_profiles(&out, &objective, &profiles)?;
        eprintln!("profiles: {:.1} s", t.elapsed().as_secs_f64());
    }
    if a.bands > 0 {
        let (_, _, hessian) = objective.evaluate_with_gradient(&best.x)?;
        let options = vht_fit::BandOptions { samples: a.bands, seed: a.seed, ..Default::default() };
        let bands = vht_fit::prediction_bands(&objective, &best.x, &hessian, None, &options)?;
        let mut t = String::from(
            "preequilibrationConditionId\tsimulationConditionId\tobservableId\ttime\tbest\tmedian\tlower\tupper\n",
        );
        for b in &bands.bands {
            for i in 0..b.times.len() {
                t += &format!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
                    b.preequilibration.as_deref().unwrap_or(""),
                    b.simulation,
                    b.observable,
                    b.times[i],
                    b.best[i],
                    b.median[i],
                    b.lower[i],
                    b.upper[i]
                );
            }
        }
        std::fs::write(out.join("bands.tsv"), t)?;
        eprintln!("bands: {} draws, {} failed to simulate", bands.samples, bands.failed);
    }
    print!("{}", summary.markdown);
    println!("results in {}", out.display());
    println!("{}", best.fval);
    Ok(())
}

fn write_starts(out: &Path, ids: &[String], r: &vht_fit::FitResult) -> Result<()> {
    let path = out.join("starts.tsv");
    let file = std::fs::File::create(&path).with_context(|| format!("cannot write {}", path.display()))?;
    let mut w = std::io::BufWriter::new(file);
    write!(w, "start\tstatus\treplaces\tfval\titerations\tevaluations\tseconds")?;
    for id in ids {
        write!(w, "\t{id}")?;
    }
    for id in ids {
        write!(w, "\tstart_{id}")?;
    }
    writeln!(w)?;
    for s in &r.starts {
        let replaces = s.replaces.map_or_else(String::new, |k| k.to_string());
        write!(
            w,
            "{}\t{}\t{replaces}\t{}\t{}\t{}\t{:.3}",
            s.index,
            status(s),
            s.fval,
            s.iterations,
            s.evaluations,
            s.seconds
        )?;
        for v in s.x.iter().chain(&s.x0) {
            write!(w, "\t{v}")?;
        }
        writeln!(w)?;
    }
    w.flush()?;
    // The same as JSON, for programs.
    let mut j = String::from("[\n");
    for (n, s) in r.starts.iter().enumerate() {
        let nums = |v: &[f64]| v.iter().map(|x| json_num(*x)).collect::<Vec<_>>().join(", ");
        j += &format!(
            "  {{\"start\": {}, \"status\": \"{}\", \"replaces\": {}, \"fval\": {}, \"iterations\": {}, \"evaluations\": {}, \"seconds\": {:.3}, \"x\": [{}], \"x0\": [{}]}}{}\n",
            s.index,
            status(s).replace('"', "'"),
            s.replaces.map_or_else(|| "null".to_string(), |k| k.to_string()),
            json_num(s.fval),
            s.iterations,
            s.evaluations,
            s.seconds,
            nums(&s.x),
            nums(&s.x0),
            if n + 1 < r.starts.len() { "," } else { "" }
        );
    }
    j += "]\n";
    std::fs::write(out.join("starts.json"), j)?;
    Ok(())
}

fn json_num(x: f64) -> String {
    if x.is_finite() {
        format!("{x}")
    } else {
        "null".into()
    }
}

fn status(s: &vht_fit::StartResult) -> String {
    match &s.status {
        vht_fit::StartStatus::Converged => "converged".into(),
        vht_fit::StartStatus::MaxIterations => "max_iterations".into(),
        vht_fit::StartStatus::Failed(why) => format!("failed: {}", why.replace(['\t', '\n'], " ")),
    }
}

/// The parameter table with the estimates as nominal values (linear scale).
pub(crate) fn write_parameters(path: &Path, objective: &vht_fit::Objective, x: &[f64]) -> Result<()> {
    let values = objective.values_from_scaled(x)?;
    let file = std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?;
    let mut w = std::io::BufWriter::new(file);
    writeln!(w, "parameterId\tparameterScale\tlowerBound\tupperBound\tnominalValue\testimate")?;
    for (p, v) in objective.problem.parameters.iter().zip(values) {
        let scale = match p.scale {
            vht_fit::Scale::Lin => "lin",
            vht_fit::Scale::Log => "log",
            vht_fit::Scale::Log10 => "log10",
        };
        let bound = |b: f64| if b.is_nan() { String::new() } else { format!("{b}") };
        writeln!(
            w,
            "{}\t{}\t{}\t{}\t{}\t{}",
            p.id,
            scale,
            bound(p.lower),
            bound(p.upper),
            v,
            if p.estimate { 1 } else { 0 }
        )?;
    }
    w.flush()?;
    Ok(())
}

struct Summary {
    json: String,
    markdown: String,
}

/// For `--gradient auto` with L-BFGS: the adjoint where it can be built, is
/// faster than forward sensitivities at `x` (best of three) and agrees with
/// them (|adjoint - forward| <= 1e-3 max(|forward|, 1) for every entry; at
/// fitting tolerances a larger difference means the adjoint is losing
/// accuracy, as on Fujita_SciSignal2010's fast binding). Leaves the
/// objective's setting as it found it; gives the choice and why.
fn choose_gradient(objective: &mut vht_fit::Objective, x: &[f64]) -> (vht_fit::Gradient, String) {
    use vht_fit::Gradient;
    let timed = |o: &vht_fit::Objective| -> Option<(f64, Vec<f64>)> {
        let mut best = f64::INFINITY;
        let mut g = Vec::new();
        for _ in 0..3 {
            let t = Instant::now();
            g = o.evaluate_with_gradient(x).ok()?.1;
            best = best.min(t.elapsed().as_secs_f64());
        }
        Some((best, g))
    };
    let before = objective.settings.gradient;
    objective.settings.gradient = Gradient::Forward;
    let forward = timed(objective);
    objective.settings.gradient = Gradient::Adjoint;
    let adjoint = objective.adjoint_supported().map(|()| timed(objective));
    objective.settings.gradient = before;
    match (forward, adjoint) {
        (_, Err(e)) => (Gradient::Forward, format!("no adjoint: {e}")),
        (None, _) | (_, Ok(None)) => (Gradient::Forward, "the nominal point does not simulate: no comparison".into()),
        (Some((tf, gf)), Ok(Some((ta, ga)))) => {
            let worst = gf.iter().zip(&ga).map(|(f, a)| (a - f).abs() / f.abs().max(1.0)).fold(0.0, f64::max);
            let speed = format!("adjoint {:.1} ms, forward {:.1} ms at the nominal point", ta * 1e3, tf * 1e3);
            if worst > 1e-3 {
                (Gradient::Forward, format!("{speed}, but they differ by {worst:.1e}"))
            } else if ta < tf {
                (Gradient::Adjoint, format!("{speed}, agreeing to {worst:.1e}"))
            } else {
                (Gradient::Forward, speed)
            }
        }
    }
}

fn summary(
    name: &str,
    a: &EstimateArgs,
    chosen: vht_fit::Gradient,
    r: &vht_fit::FitResult,
    t_grad: f64,
    total: f64,
) -> Summary {
    let best = r.best.as_ref().map_or(f64::NAN, |b| b.fval);
    let count = |f: &dyn Fn(&vht_fit::StartResult) -> bool| r.starts.iter().filter(|s| f(s)).count();
    let converged = count(&|s| s.status == vht_fit::StartStatus::Converged);
    let max_it = count(&|s| s.status == vht_fit::StartStatus::MaxIterations);
    // Failed points are start points that could not be simulated; each is
    // redrawn (`StartResult::replaces`), so a start fails only when none
    // of its draws ran.
    let failed = count(&|s| matches!(s.status, vht_fit::StartStatus::Failed(_)));
    let requested = a.starts.max(1);
    let never_ran = requested.saturating_sub(r.starts.len() - failed);
    let near = count(&|s| s.fval <= best + 0.1);
    let mut its: Vec<usize> = r.starts.iter().map(|s| s.iterations).collect();
    its.sort();
    let median_it = its.get(its.len() / 2).copied().unwrap_or(0);
    let evals: usize = r.starts.iter().map(|s| s.evaluations).sum();
    let optimizer = if a.lbfgsb { "lbfgsb" } else { "fides" };
    let gradient = if chosen == vht_fit::Gradient::Adjoint { "adjoint" } else { "forward" };
    let threads = a.threads.map_or_else(|| "all".to_string(), |t| t.to_string());
    let json = format!(
        "{{\n  \"problem\": \"{name}\",\n  \"optimizer\": \"{optimizer}\",\n  \"gradient\": \"{gradient}\",\n  \"starts\": {requested},\n  \"points\": {},\n  \"seed\": {},\n  \"threads\": \"{threads}\",\n  \"best\": {},\n  \"within_0.1_of_best\": {near},\n  \"converged\": {converged},\n  \"max_iterations\": {max_it},\n  \"failed\": {failed},\n  \"failed_starts\": {never_ran},\n  \"median_iterations\": {median_it},\n  \"evaluations\": {evals},\n  \"multistart_seconds\": {:.3},\n  \"first_gradient_seconds\": {t_grad:.3},\n  \"total_seconds\": {total:.3},\n  \"fvals\": [{}]\n}}\n",
        r.starts.len(),
        a.seed,
        json_num(best),
        r.seconds,
        r.starts.iter().map(|s| json_num(s.fval)).collect::<Vec<_>>().join(", ")
    );
    let markdown = format!(
        "# Fit of {name}\n\n| | |\n|---|---|\n| optimizer | {optimizer} ({gradient} sensitivities) |\n| starts | {requested} (seed {}, threads {threads}); {} points tried, {failed} could not be simulated and were redrawn |\n| best objective | {best:.6} |\n| starts within 0.1 of the best | {near} |\n| converged / max. iterations / starts that never ran | {converged} / {max_it} / {never_ran} |\n| median iterations | {median_it} |\n| objective evaluations | {evals} |\n| multistart wall time | {:.2} s |\n| compiling the sensitivity system + first gradient | {t_grad:.2} s |\n| total | {total:.2} s |\n",
        a.seed,
        r.starts.len(),
        r.seconds
    );
    Summary { json, markdown }
}

/// The waterfall plot: objective values of the starts, sorted, relative to the best (log scale).
fn waterfall_svg(name: &str, r: &vht_fit::FitResult) -> String {
    let best = r.best.as_ref().map_or(0.0, |b| b.fval);
    let vals: Vec<f64> = r.starts.iter().filter(|s| s.fval.is_finite()).map(|s| s.fval - best + 1.0).collect();
    let pts: Vec<(f64, f64)> = vals.iter().enumerate().map(|(i, v)| ((i + 1) as f64, v.log10())).collect();
    let ymax = pts.iter().map(|p| p.1).fold(1.0, f64::max).ceil();
    let mut svg = Plot::new(&format!("Waterfall: {name}"), "start (sorted)", "objective − best + 1 (log10)")
        .x_range(0.0, (pts.len() + 1) as f64)
        .y_range(0.0, ymax)
        .svg();
    svg.line(&pts, "#1f77b4", true);
    svg.finish()
}

pub(crate) fn write_profiles(out: &Path, objective: &vht_fit::Objective, profiles: &[vht_fit::Profile]) -> Result<()> {
    let mut table = String::from("parameterId\tscale\testimate_scaled\tlower_scaled\tupper_scaled\tlower\tupper\n");
    let estimated = objective.estimated();
    for p in profiles {
        let param = &objective.problem.parameters[estimated[p.index]];
        let center = p.points.iter().find(|q| q.fval == p.optimum).map_or(f64::NAN, |q| q.value);
        let opt = |v: Option<f64>| v.map_or("open".to_string(), |v| format!("{v}"));
        let lin = |v: Option<f64>| v.map_or("open".to_string(), |v| format!("{}", param.scale.unapply(v)));
        table += &format!(
            "{}\t{:?}\t{}\t{}\t{}\t{}\t{}\n",
            p.id,
            param.scale,
            center,
            opt(p.lower),
            opt(p.upper),
            lin(p.lower),
            lin(p.upper)
        );
        let mut t = String::from("value_scaled\tfval\tdelta\n");
        for q in &p.points {
            t += &format!("{}\t{}\t{}\n", q.value, q.fval, q.fval - p.optimum);
        }
        std::fs::write(out.join(format!("profile_{}.tsv", p.id)), t)?;
        let pts: Vec<(f64, f64)> = p.points.iter().map(|q| (q.value, q.fval - p.optimum)).collect();
        let (x0, x1) = pts.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), q| (a.min(q.0), b.max(q.0)));
        let ymax = pts.iter().map(|q| q.1).fold(vht_fit::CI95 * 2.0, f64::max);
        let pad = ((x1 - x0) * 0.05).max(1e-6);
        let mut svg =
            Plot::new(&format!("Profile of {}", p.id), &format!("{} ({:?} scale)", p.id, param.scale), "Δ objective")
                .x_range(x0 - pad, x1 + pad)
                .y_range(pts.iter().map(|q| q.1).fold(0.0, f64::min), ymax)
                .svg();
        svg.line(&[(x0 - pad, vht_fit::CI95), (x1 + pad, vht_fit::CI95)], "#d62728", false);
        svg.line(&pts, "#1f77b4", true);
        std::fs::write(out.join(format!("profile_{}.svg", p.id)), svg.finish())?;
    }
    std::fs::write(out.join("profiles.tsv"), table)?;
    Ok(())
}

/// A minimal line plot written as SVG by hand (no plotting dependency).
struct Plot {
    title: String,
    xlabel: String,
    ylabel: String,
    x: (f64, f64),
    y: (f64, f64),
}

struct Svg {
    text: String,
    x: (f64, f64),
    y: (f64, f64),
}

const W: f64 = 640.0;
const H: f64 = 400.0;
const L: f64 = 70.0;
const R: f64 = 20.0;
const T: f64 = 40.0;
const B: f64 = 50.0;

impl Plot {
    fn new(title: &str, xlabel: &str, ylabel: &str) -> Plot {
        Plot { title: title.into(), xlabel: xlabel.into(), ylabel: ylabel.into(), x: (0.0, 1.0), y: (0.0, 1.0) }
    }
    fn x_range(mut self, a: f64, b: f64) -> Plot {
        self.x = if b > a { (a, b) } else { (a - 0.5, a + 0.5) };
        self
    }
    fn y_range(mut self, a: f64, b: f64) -> Plot {
        self.y = if b > a { (a, b) } else { (a - 0.5, a + 0.5) };
        self
    }
    fn svg(self) -> Svg {
        let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
        let mut text = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"{W}\" height=\"{H}\" fill=\"white\"/>\n<text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">{}</text>\n<rect x=\"{L}\" y=\"{T}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"black\"/>\n<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n<text transform=\"translate(18,{}) rotate(-90)\" text-anchor=\"middle\">{}</text>\n",
            W / 2.0,
            esc(&self.title),
            W - L - R,
            H - T - B,
            L + (W - L - R) / 2.0,
            H - 12.0,
            esc(&self.xlabel),
            T + (H - T - B) / 2.0,
            esc(&self.ylabel)
        );
        let s = Svg { text: String::new(), x: self.x, y: self.y };
        for i in 0..=4 {
            let f = i as f64 / 4.0;
            let xv = self.x.0 + f * (self.x.1 - self.x.0);
            let yv = self.y.0 + f * (self.y.1 - self.y.0);
            let (px, _) = s.map(xv, self.y.0);
            let (_, py) = s.map(self.x.0, yv);
            text += &format!(
                "<text x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n",
                H - B + 16.0,
                tick(xv),
                L - 6.0,
                py + 4.0,
                tick(yv)
            );
        }
        Svg { text, ..s }
    }
}

fn tick(v: f64) -> String {
    if v != 0.0 && (v.abs() >= 1e4 || v.abs() < 1e-2) {
        format!("{v:.1e}")
    } else {
        format!("{:.3}", v).trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

impl Svg {
    fn map(&self, x: f64, y: f64) -> (f64, f64) {
        let px = L + (x - self.x.0) / (self.x.1 - self.x.0) * (W - L - R);
        let py = H - B - (y - self.y.0) / (self.y.1 - self.y.0) * (H - T - B);
        (px, py)
    }
    fn line(&mut self, pts: &[(f64, f64)], color: &str, markers: bool) {
        let path: Vec<String> = pts
            .iter()
            .filter(|p| p.0.is_finite() && p.1.is_finite())
            .map(|&(x, y)| {
                let (px, py) = self.map(x, y);
                format!("{px:.1},{py:.1}")
            })
            .collect();
        self.text += &format!(
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\"/>\n",
            path.join(" ")
        );
        if markers {
            for p in &path {
                let (x, y) = p.split_once(',').unwrap_or(("0", "0"));
                self.text += &format!("<circle cx=\"{x}\" cy=\"{y}\" r=\"2.5\" fill=\"{color}\"/>\n");
            }
        }
    }
    fn finish(mut self) -> String {
        self.text += "</svg>\n";
        self.text
    }
}
