//! Small dense Newton solves for the algebraic unknowns.

use nalgebra::{DMatrix, DVector};

/// Solves `g(z) = 0` from the guess in `z`. `eval` writes the residual and
/// the dense Jacobian `∂g/∂z` (column-major, `n × n`). Returns whether it converged.
pub(crate) fn solve(z: &mut [f64], mut eval: impl FnMut(&[f64], &mut [f64], Option<&mut [f64]>)) -> bool {
    let n = z.len();
    if n == 0 {
        return true;
    }
    let mut r = vec![0.0; n];
    let mut jac = vec![0.0; n * n];
    let mut trial = vec![0.0; n];
    let mut r_trial = vec![0.0; n];
    let norm = |v: &[f64]| v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    eval(z, &mut r, Some(&mut jac));
    for _ in 0..100 {
        if r.iter().any(|x| !x.is_finite()) {
            return false;
        }
        let rn = norm(&r);
        if rn == 0.0 {
            return true;
        }
        let lu = DMatrix::from_column_slice(n, n, &jac).lu();
        let Some(dz) = lu.solve(&DVector::from_column_slice(&r)) else {
            return false;
        };
        // Damped step: halve until the residual does not grow.
        let mut lambda = 1.0;
        loop {
            for i in 0..n {
                trial[i] = z[i] - lambda * dz[i];
            }
            eval(&trial, &mut r_trial, None);
            if norm(&r_trial) <= rn || lambda < 1e-4 {
                break;
            }
            lambda *= 0.5;
        }
        let converged = (0..n).all(|i| (lambda * dz[i]).abs() <= 1e-13 * z[i].abs().max(1e-300) + 1e-300)
            || norm(&r_trial) < 1e-300;
        z.copy_from_slice(&trial);
        eval(z, &mut r, Some(&mut jac));
        let small = (0..n).all(|i| (lambda * dz[i]).abs() <= 1e-10 * z[i].abs() + 1e-14);
        if converged || (small && norm(&r) <= rn) {
            return true;
        }
    }
    norm(&r) < 1e-9
}
