//! Forward-sensitivity gradients against central finite differences of the
//! objective, for every PEtab problem (checked-in test data, plus
//! `$PETAB_DIR` or `../shared/petab` when present), at the nominal parameters.
//!
//! Agreement rule, the same for every problem and parameter:
//! `|g - fd| <= 1e-4 * max(|fd|, 1)`: relative 1e-4, absolute 1e-4 where the
//! derivative is smaller than 1 (a derivative of an objective of size 10..1000
//! below 1 is close to zero at that scale, and a relative test there would
//! only measure the finite-difference noise).
//! The finite difference is taken with steps 1e-2 .. 1e-6 (scaled
//! parameters) and the one closer to the gradient counts (as pyPESTO's
//! multi-step check does: a wrong gradient matches neither, while the right
//! step depends on the third derivative and the solver's accuracy, which
//! differ between parameters), with the objective at rtol 1e-12, atol 1e-12 (at atol 1e-14 some
//! simulations of Elowitz and Zheng fail: the step size underflows).
//!
//! `tests/gradient_expected_failures.txt` lists the problems that do not
//! agree yet, each with its measured error and the reason; it may only
//! shrink: an unlisted failure fails the run, and so does a listed problem
//! that now agrees.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use libtest_mimic::{Arguments, Failed, Trial};

fn main() {
    let args = Arguments::from_args();
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut problems: Vec<(String, PathBuf)> = Vec::new();
    for (label, root) in [("data", here.join("tests/data")), ("shared", petab_dir(here))] {
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
    let expected = expected_failures(&here.join("tests/gradient_expected_failures.txt"));
    let trials = problems
        .into_iter()
        .map(|(name, yaml)| {
            let stem = name.rsplit('/').next().unwrap_or("").to_string();
            let listed = expected.get(&stem).cloned();
            Trial::test(name, move || match (check(&yaml), listed) {
                (Ok(()), None) => Ok(()),
                (Ok(()), Some(reason)) => Err(format!(
                    "{stem} is listed in gradient_expected_failures.txt ({reason}) but now agrees: remove it from the list"
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

fn petab_dir(here: &Path) -> PathBuf {
    std::env::var_os("PETAB_DIR").map(PathBuf::from).unwrap_or_else(|| here.join("../../../shared/petab"))
}

fn check(yaml: &Path) -> Result<(), Failed> {
    let problem = vht_fit::read(yaml).map_err(|e| e.to_string())?;
    let settings = vht_fit::Settings { rtol: 1e-12, atol: 1e-12, ..Default::default() };
    let objective = vht_fit::Objective::new(problem, settings).map_err(|e| e.to_string())?;
    let x = objective.scaled_nominal();
    let t = std::time::Instant::now();
    let (f, g, h) = objective.evaluate_with_gradient(&x).map_err(|e| e.to_string())?;
    let t_grad = t.elapsed().as_secs_f64();
    let f_plain = objective.evaluate_scaled(&x).map_err(|e| e.to_string())?;
    if (f - f_plain).abs() > 1e-6 * f.abs().max(1.0) {
        return Err(format!("objective {f} with sensitivities, {f_plain} without").into());
    }
    let names: Vec<String> =
        objective.estimated().iter().map(|&i| objective.problem.parameters[i].id.clone()).collect();
    let mut bad = Vec::new();
    let mut worst: f64 = 0.0;
    for k in 0..x.len() {
        let fd = finite_difference(&objective, &x, k, g[k])?;
        let err = (g[k] - fd).abs() / fd.abs().max(1.0);
        worst = worst.max(err);
        if !agrees(g[k], fd) {
            bad.push(format!("{}: gradient {:.9e}, finite difference {:.9e}", names[k], g[k], fd));
        }
    }
    // The Gauss-Newton Hessian is symmetric and positive semi-definite.
    let n = x.len();
    for a in 0..n {
        for b in 0..n {
            if (h[a][b] - h[b][a]).abs() > 1e-12 * (h[a][a].abs() + h[b][b].abs()).max(1e-300) {
                return Err(format!("Hessian not symmetric at ({a}, {b})").into());
            }
        }
    }
    let m = nalgebra::DMatrix::from_fn(n, n, |a, b| h[a][b]);
    let eig = m.symmetric_eigen().eigenvalues;
    let max = eig.iter().fold(0.0f64, |a, &b| a.max(b.abs()));
    if let Some(e) = eig.iter().find(|&&e| e < -1e-9 * max) {
        return Err(format!("Hessian has a negative eigenvalue {e} (largest {max})").into());
    }
    println!("{} parameters, gradient in {:.3} s, worst scaled error {:.2e}", n, t_grad, worst);
    if bad.is_empty() {
        Ok(())
    } else {
        Err(bad.join("\n").into())
    }
}

/// The agreement rule of this test (see the top of the file).
fn agrees(g: f64, fd: f64) -> bool {
    (g - fd).abs() <= 1e-4 * fd.abs().max(1.0)
}

fn finite_difference(objective: &vht_fit::Objective, x: &[f64], k: usize, g: f64) -> Result<f64, Failed> {
    let f = |h: f64| -> Result<f64, Failed> {
        let (mut a, mut b) = (x.to_vec(), x.to_vec());
        a[k] += h;
        b[k] -= h;
        let fa = objective.evaluate_scaled(&a).map_err(|e| e.to_string())?;
        let fb = objective.evaluate_scaled(&b).map_err(|e| e.to_string())?;
        Ok((fa - fb) / (2.0 * h))
    };
    // The usual best step first; stop at the first that agrees (the
    // outcome is the same as trying all, at a fraction of the cost).
    let mut best = f64::NAN;
    for h in [1e-3, 1e-4, 1e-2, 1e-5, 1e-6] {
        let d = f(h)?;
        if best.is_nan() || (d - g).abs() < (best - g).abs() {
            best = d;
        }
        if agrees(g, best) {
            break;
        }
    }
    Ok(best)
}

/// `problem  reason...` per line; `#` starts a comment.
fn expected_failures(path: &Path) -> HashMap<String, String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(|l| match l.split_once(char::is_whitespace) {
            Some((name, reason)) => (name.to_string(), reason.trim().to_string()),
            None => (l.to_string(), String::new()),
        })
        .collect()
}
