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
//! differ between parameters), with the objective at rtol 1e-10, atol 1e-12 (as the reference test).

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
    let trials = problems.into_iter().map(|(name, yaml)| Trial::test(name, move || check(&yaml))).collect();
    libtest_mimic::run(&args, trials).exit();
}

fn petab_dir(here: &Path) -> PathBuf {
    std::env::var_os("PETAB_DIR").map(PathBuf::from).unwrap_or_else(|| here.join("../../../shared/petab"))
}

fn check(yaml: &Path) -> Result<(), Failed> {
    let problem = vht_fit::read(yaml).map_err(|e| e.to_string())?;
    let settings = vht_fit::Settings { rtol: 1e-10, atol: 1e-12, ..Default::default() };
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
        if err > 1e-4 {
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

fn finite_difference(objective: &vht_fit::Objective, x: &[f64], k: usize, g: f64) -> Result<f64, Failed> {
    let f = |h: f64| -> Result<f64, Failed> {
        let (mut a, mut b) = (x.to_vec(), x.to_vec());
        a[k] += h;
        b[k] -= h;
        let fa = objective.evaluate_scaled(&a).map_err(|e| e.to_string())?;
        let fb = objective.evaluate_scaled(&b).map_err(|e| e.to_string())?;
        Ok((fa - fb) / (2.0 * h))
    };
    let mut best = f64::NAN;
    for h in [1e-2, 1e-3, 1e-4, 1e-5, 1e-6] {
        let d = f(h)?;
        if best.is_nan() || (d - g).abs() < (best - g).abs() {
            best = d;
        }
    }
    Ok(best)
}
