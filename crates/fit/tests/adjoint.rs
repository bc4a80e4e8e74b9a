//! Adjoint gradients against forward-sensitivity gradients (which
//! `tests/gradient.rs` checks against finite differences), for every PEtab
//! problem (checked-in test data, plus `$PETAB_DIR` or `../shared/petab`
//! when present) whose model has an adjoint system, at the nominal
//! parameters, both at rtol 1e-12, atol 1e-12 (as tests/gradient.rs). A model
//! with events the adjoint does not cover (times that move with the
//! parameters, assignments to parameters), or with piecewise switches that
//! move with the parameters, must be refused with that reason, not fail
//! otherwise; events at fixed times (doses) are covered.
//!
//! Agreement rule, as in `tests/gradient.rs`: `|g_adjoint - g_forward| <=
//! 1e-4 * max(|g_forward|, 1)` for every estimated parameter, and the same
//! objective value to 1e-6 relative (the forward-sensitivity run's states
//! share its error control with their tangents, so it differs from a plain
//! run by the solver's error, as `tests/gradient.rs` allows too). Problems whose model has no adjoint system (events)
//! must say so with the error, not fail otherwise.
//!
//! `tests/adjoint_expected_failures.txt` lists the problems that do not
//! agree yet, with the measured difference and the reason; it may only
//! shrink: an unlisted failure fails the run, and so does a listed problem
//! that now agrees.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use libtest_mimic::{Arguments, Failed, Trial};
use vht_fit::{FitError, Gradient, Objective, Settings};

fn main() {
    let args = Arguments::from_args();
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut problems: Vec<(String, PathBuf)> = Vec::new();
    let shared = std::env::var_os("PETAB_DIR").map(PathBuf::from).unwrap_or_else(|| here.join("../../../shared/petab"));
    for (label, root) in [("data", here.join("tests/data")), ("shared", shared)] {
        let Ok(entries) = std::fs::read_dir(&root) else { continue };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| root.join(n).join(format!("{n}.yaml")).exists())
            .collect();
        names.sort();
        for n in names {
            problems.push((format!("{label}/{n}"), root.join(&n).join(format!("{n}.yaml"))));
        }
    }
    let expected = expected_failures(&here.join("tests/adjoint_expected_failures.txt"));
    let trials: Vec<Trial> = problems
        .into_iter()
        .map(|(name, yaml)| {
            let stem = name.rsplit('/').next().unwrap_or("").to_string();
            let listed = expected.get(&stem).cloned();
            Trial::test(name, move || match (check(&yaml), listed) {
                (Ok(()), None) => Ok(()),
                (Ok(()), Some(reason)) => Err(format!(
                    "{stem} is listed in adjoint_expected_failures.txt ({reason}) but now agrees: remove it from the list"
                )
                .into()),
                (Err(e), Some(_)) => {
                    println!("expected failure: {}", e.message().unwrap_or_default());
                    Ok(())
                }
                (Err(e), None) => Err(e),
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}

fn check(yaml: &Path) -> Result<(), Failed> {
    let problem = vht_fit::read(yaml).map_err(|e| e.to_string())?;
    let settings = Settings { rtol: 1e-12, atol: 1e-12, ..Settings::default() };
    let forward = Objective::new(problem.clone(), settings.clone()).map_err(|e| e.to_string())?;
    let adjoint =
        Objective::new(problem, Settings { gradient: Gradient::Adjoint, ..settings }).map_err(|e| e.to_string())?;
    let has_events = !forward.model().events.is_empty();
    let has_switches = forward.model().symbols.iter().any(|s| {
        let mut found = false;
        let e = match &s.kind {
            vht_ir::SymbolKind::State { rate } => rate,
            vht_ir::SymbolKind::Assigned { expr } => expr,
            _ => return false,
        };
        e.walk(&mut |x| found |= matches!(x, vht_ir::Expr::Piecewise(..)));
        found
    });
    match adjoint.adjoint_supported() {
        Err(FitError::Adjoint { what, .. })
            if (has_events && what.contains("events")) || (has_switches && what.contains("switch")) =>
        {
            println!("no adjoint (as expected): {what}");
            return Ok(());
        }
        Err(e) => return Err(e.to_string().into()),
        Ok(()) => {}
    }
    let x = forward.scaled_nominal();
    let t = std::time::Instant::now();
    let (ff, gf, _) = forward.evaluate_with_gradient(&x).map_err(|e| e.to_string())?;
    let t_forward = t.elapsed().as_secs_f64();
    let t = std::time::Instant::now();
    let (fa, ga, ha) = adjoint.evaluate_with_gradient(&x).map_err(|e| e.to_string())?;
    let t_adjoint = t.elapsed().as_secs_f64();
    if (ff - fa).abs() > 1e-6 * ff.abs().max(1.0) {
        return Err(format!("objective {fa} with adjoint gradients, {ff} with forward").into());
    }
    if !ha.is_empty() {
        return Err("adjoint gradients came with a Hessian".into());
    }
    let names: Vec<String> = forward.estimated().iter().map(|&i| forward.problem.parameters[i].id.clone()).collect();
    let mut worst: f64 = 0.0;
    let mut bad = Vec::new();
    for k in 0..x.len() {
        let err = (ga[k] - gf[k]).abs() / gf[k].abs().max(1.0);
        worst = worst.max(err);
        if err > 1e-4 {
            bad.push(format!("{}: adjoint {:.9e}, forward {:.9e}", names[k], ga[k], gf[k]));
        }
    }
    println!(
        "{} parameters, worst difference {worst:.2e}; first gradient (with builds) forward {t_forward:.3} s, adjoint {t_adjoint:.3} s",
        x.len()
    );
    if bad.is_empty() {
        Ok(())
    } else {
        Err(bad.join("\n").into())
    }
}

fn expected_failures(path: &Path) -> HashMap<String, String> {
    let Ok(text) = std::fs::read_to_string(path) else { return HashMap::new() };
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(char::is_whitespace).map(|(a, b)| (a.to_string(), b.trim().to_string())))
        .collect()
}
