//! Small dense Newton solves for the algebraic unknowns.

use nalgebra::{DMatrix, DVector};

/// Solves `g(z) = 0` from the guess in `z`. `eval` writes the residual and
/// the dense Jacobian `∂g/∂z` (column-major, `n × n`). Returns whether it
/// converged.
///
/// Where the Jacobian is singular (an equilibrium the equations do not pin
/// down, e.g. a fast reaction whose rate constant is zero until an event),
/// the step is the minimum-norm least-squares one: the unknowns stay where
/// they are along the directions the equations leave free.
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
        let Some(dz) = step(n, &jac, &r) else {
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
        let tiny_step = (0..n).all(|i| (lambda * dz[i]).abs() <= 1e-13 * z[i].abs() + 1e-300);
        z.copy_from_slice(&trial);
        eval(z, &mut r, Some(&mut jac));
        let small = (0..n).all(|i| (lambda * dz[i]).abs() <= 1e-10 * z[i].abs() + 1e-14);
        if tiny_step || (small && norm(&r) <= rn) {
            return norm(&r) <= residual_scale(z);
        }
    }
    norm(&r) <= residual_scale(z)
}

/// How small a residual must be to count as solved: the equations mix
/// quantities of different sizes, so this is loose in absolute terms.
fn residual_scale(z: &[f64]) -> f64 {
    1e-9 * z.iter().fold(1.0f64, |m, x| m.max(x.abs()))
}

/// The Newton step `J⁻¹ r`, or the minimum-norm least-squares step when `J`
/// is singular.
fn step(n: usize, jac: &[f64], r: &[f64]) -> Option<DVector<f64>> {
    let j = DMatrix::from_column_slice(n, n, jac);
    let rhs = DVector::from_column_slice(r);
    let svd = j.svd(true, true);
    let max_sv = svd.singular_values.iter().fold(0.0f64, |m, s| m.max(*s));
    if max_sv == 0.0 || !max_sv.is_finite() {
        // Nothing depends on the unknowns: no step can help.
        return Some(DVector::zeros(n));
    }
    svd.solve(&rhs, max_sv * 1e-12).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn square_root_by_newton() {
        let mut z = [1.0];
        assert!(solve(&mut z, |z, r, j| {
            r[0] = z[0] * z[0] - 2.0;
            if let Some(j) = j {
                j[0] = 2.0 * z[0];
            }
        }));
        assert!((z[0] - 2f64.sqrt()).abs() < 1e-14);
    }

    #[test]
    fn singular_system_keeps_the_free_direction() {
        // z0 + z1 = 4 only: the minimum-norm step moves both equally.
        let mut z = [1.0, 1.0];
        assert!(solve(&mut z, |z, r, j| {
            r[0] = z[0] + z[1] - 4.0;
            r[1] = 0.0;
            if let Some(j) = j {
                j.copy_from_slice(&[1.0, 0.0, 1.0, 0.0]);
            }
        }));
        assert!((z[0] - 2.0).abs() < 1e-12 && (z[1] - 2.0).abs() < 1e-12, "{z:?}");
    }

    #[test]
    fn inconsistent_system_is_reported() {
        let mut z = [1.0];
        assert!(!solve(&mut z, |_, r, j| {
            r[0] = 1.0;
            if let Some(j) = j {
                j[0] = 0.0;
            }
        }));
    }
}
