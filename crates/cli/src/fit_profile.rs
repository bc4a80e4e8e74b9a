//! `vht fit profile`: profile likelihoods of chosen parameters, around a
//! fit made here first (`--from best`), around the best parameters of an
//! earlier `vht fit --out DIR` (`--from DIR`), or around the problem's
//! nominal values (`--from nominal`: in the PEtab benchmark collection
//! these are the published best fit).
//!
//! `vht fit PROBLEM.yaml --profile a,b` stays: it is `--from best`. The
//! results use the same writers as `vht fit` (parameters.tsv, profiles.tsv,
//! profile_<id>.tsv and .svg); the output ends with profiles.tsv (each
//! parameter's estimate and 95% confidence interval, scaled and linear).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::fit::{estimate, write_parameters, write_profiles, EstimateArgs};

#[derive(clap::Subcommand)]
pub enum FitCommand {
    /// Profile likelihoods and 95% confidence intervals of chosen parameters.
    Profile(ProfileArgs),
}

#[derive(clap::Args)]
pub struct ProfileArgs {
    /// The PEtab problem (yaml).
    problem: PathBuf,
    /// The estimated parameters to profile (ids, comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "ID,ID", required = true)]
    params: Vec<String>,
    /// Where the profiles start: `best` (a multistart fit first, as
    /// `vht fit --profile`), `nominal` (the parameter table's nominal values),
    /// or the output folder of an earlier `vht fit --out DIR` (its
    /// parameters.tsv). Write `./best` for a folder named `best`.
    #[arg(long, default_value = "best", value_name = "best|nominal|DIR")]
    from: String,
    /// Output folder (default: profile-<problem file stem>).
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    integration: crate::fit::Integration,
    // With `--from best`: the multistart fit made first.
    #[command(flatten)]
    multistart: crate::fit::Multistart,
}

/// Where the profiles start.
enum Start {
    Best,
    Nominal,
    Fit(PathBuf),
}

impl Start {
    fn parse(s: &str) -> Start {
        match s {
            "best" => Start::Best,
            "nominal" => Start::Nominal,
            dir => Start::Fit(PathBuf::from(dir)),
        }
    }
}

pub fn run(a: ProfileArgs) -> Result<()> {
    a.integration.check()?;
    let t0 = Instant::now();
    let stem = a.problem.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "problem".into());
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from(format!("profile-{stem}")));
    let problem = vht_fit::read(&a.problem)?;
    let i = &a.integration;
    let settings = vht_fit::Settings { rtol: i.rtol, atol: i.atol, max_steps: i.max_steps, ..Default::default() };
    let objective = vht_fit::Objective::new(problem, settings)?;
    let estimated = objective.estimated();
    let ids: Vec<String> = estimated.iter().map(|&i| objective.problem.parameters[i].id.clone()).collect();
    let profiled = crate::fit::positions(&ids, &a.params, "--params")?;

    let x_hat = match Start::parse(&a.from) {
        Start::Best => {
            // The same run as `vht fit PROBLEM --profile ...`, which writes the
            // fit's results and the profiles into `out`.
            drop(objective);
            let profile = a.params.iter().map(|s| s.trim().to_string()).collect();
            estimate(&a.problem, &EstimateArgs::new(&a.integration, &a.multistart, Some(out.clone()), profile, 0))?;
            print_intervals(&out)?;
            return Ok(());
        }
        Start::Nominal => objective.scaled_nominal(),
        Start::Fit(dir) => read_fit(&dir.join("parameters.tsv"), &objective)?,
    };
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    for d in &objective.diagnostics {
        eprintln!("warning: {d}");
    }
    let f_hat = objective.evaluate_scaled(&x_hat).context("the objective at the starting point")?;
    let options = vht_fit::ProfileOptions { parameters: profiled, ..Default::default() };
    let t = Instant::now();
    let profiles = vht_fit::profile(&objective, &x_hat, f_hat, &options)?;
    for p in &profiles {
        // A profile is the re-optimised objective along one parameter; below
        // its start it shows the start was no optimum, and intervals taken
        // relative to it are too narrow.
        let low = p.points.iter().map(|q| q.fval).fold(f64::INFINITY, f64::min);
        if low < f_hat - 1e-3 * f_hat.abs().max(1.0) {
            eprintln!(
                "warning: the profile of {} reaches {low}, below the objective at the starting point ({f_hat}): that point is not an optimum; profile around a fit (--from best or --from DIR)",
                p.id
            );
        }
    }
    write_parameters(&out.join("parameters.tsv"), &objective, &x_hat)?;
    write_profiles(&out, &objective, &profiles)?;
    eprintln!("profiles: {:.1} s (total {:.1} s)", t.elapsed().as_secs_f64(), t0.elapsed().as_secs_f64());
    println!("objective at the start\t{f_hat}");
    println!("results in {}", out.display());
    print_intervals(&out)?;
    Ok(())
}

/// The scaled estimated parameters of a `parameters.tsv` written by
/// `vht fit --out DIR` (linear values in `nominalValue`), checked against
/// the problem: every estimated parameter present once, no unknown id,
/// values finite and within the bounds.
fn read_fit(path: &Path, objective: &vht_fit::Objective) -> Result<Vec<f64>> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!("cannot read {} (--from expects the output folder of `vht fit --out DIR`)", path.display())
    })?;
    let mut lines = text.lines().enumerate();
    let header: Vec<&str> = lines.next().map(|(_, l)| l.split('\t').collect()).unwrap_or_default();
    let col = |name: &str| {
        header.iter().position(|h| h.trim() == name).with_context(|| format!("{}:1: no column {name}", path.display()))
    };
    let (id_col, value_col) = (col("parameterId")?, col("nominalValue")?);
    let estimated = objective.estimated();
    let mut x: Vec<Option<f64>> = vec![None; estimated.len()];
    for (n, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let cells: Vec<&str> = line.split('\t').collect();
        let at = format!("{}:{}", path.display(), n + 1);
        let id = cells.get(id_col).map(|s| s.trim()).unwrap_or("");
        let Some(i) = objective.problem.parameter_index(id) else {
            bail!("{at}: parameter '{id}' is not in the problem's parameter table (a fit of another problem?)");
        };
        let Some(k) = estimated.iter().position(|&e| e == i) else { continue };
        let raw = cells.get(value_col).map(|s| s.trim()).unwrap_or("");
        let value: f64 =
            raw.parse().map_err(|_| anyhow::anyhow!("{at}: {id}: nominalValue '{raw}' is not a number"))?;
        let p = &objective.problem.parameters[i];
        if !value.is_finite() || value < p.lower || value > p.upper {
            bail!("{at}: {id} = {value} is outside its bounds [{}, {}]", p.lower, p.upper);
        }
        if x[k].replace(p.scale.apply(value)).is_some() {
            bail!("{at}: {id} appears twice");
        }
    }
    x.iter()
        .zip(&estimated)
        .map(|(v, &i)| {
            v.with_context(|| {
                format!("{}: no row for the estimated parameter {}", path.display(), objective.problem.parameters[i].id)
            })
        })
        .collect()
}

/// The confidence intervals from `profiles.tsv`, as written there.
fn print_intervals(out: &Path) -> Result<()> {
    let path = out.join("profiles.tsv");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    print!("{text}");
    Ok(())
}
