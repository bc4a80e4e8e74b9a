//! Endpoints read from one arm's trajectory.
//!
//! Value, AUC, time in range and first crossing are read off exact
//! quantities (an output at that time, helper states integrated by the
//! solver, a time recorded by an event). Minimum, maximum and their times
//! come from the output grid, refined by the parabola through the extreme
//! grid point and its neighbours when that parabola peaks between them.

use crate::plan::EndpointRead;
use crate::spec::EndpointKind;

/// Endpoint values (`NaN` when undefined, e.g. a threshold never crossed).
pub(crate) fn compute(reads: &[EndpointRead], times: &[f64], values: &[f64], ncol: usize) -> Vec<f64> {
    let at = |row: usize, col: usize| values[row * ncol + col];
    let row_of = |t: f64| times.iter().position(|&x| x == t);
    reads
        .iter()
        .map(|r| {
            let series = |from: f64, to: f64| -> Vec<(f64, f64)> {
                times
                    .iter()
                    .enumerate()
                    .filter(|(_, &t)| t >= from && t <= to)
                    .map(|(i, &t)| (t, r.scale * at(i, r.col)))
                    .collect()
            };
            let diff = |from: f64, to: f64| match (row_of(from), row_of(to)) {
                (Some(a), Some(b)) => at(b, r.col) - at(a, r.col),
                _ => f64::NAN,
            };
            match r.kind {
                EndpointKind::Value { time } => row_of(time).map_or(f64::NAN, |i| r.scale * at(i, r.col)),
                EndpointKind::Max { from, to } => extreme(&series(from, to), 1.0).1,
                EndpointKind::Min { from, to } => extreme(&series(from, to), -1.0).1,
                EndpointKind::TimeOfMax { from, to } => extreme(&series(from, to), 1.0).0,
                EndpointKind::TimeOfMin { from, to } => extreme(&series(from, to), -1.0).0,
                EndpointKind::Auc { from, to } => r.scale * diff(from, to),
                EndpointKind::TimeInRange { from, to, .. } => diff(from, to),
                EndpointKind::FirstCrossing { .. } => times.len().checked_sub(1).map_or(f64::NAN, |i| at(i, r.col)),
            }
        })
        .collect()
}

/// `(time, value)` of the maximum of `sign * value`, refined by a parabola.
/// NaN values make the whole series undefined (a failed output is not a maximum).
fn extreme(s: &[(f64, f64)], sign: f64) -> (f64, f64) {
    if s.is_empty() || s.iter().any(|p| p.1.is_nan()) {
        return (f64::NAN, f64::NAN);
    }
    let mut k = 0;
    for i in 1..s.len() {
        // Strictly greater: the first time the extreme is reached.
        if sign * s[i].1 > sign * s[k].1 {
            k = i;
        }
    }
    if k == 0 || k + 1 == s.len() {
        return s[k];
    }
    let ((t0, y0), (t1, y1), (t2, y2)) = (s[k - 1], s[k], s[k + 1]);
    let (y0, y1, y2) = (sign * y0, sign * y1, sign * y2);
    // Newton's divided differences of the parabola through the three points.
    let d01 = (y1 - y0) / (t1 - t0);
    let d12 = (y2 - y1) / (t2 - t1);
    let a = (d12 - d01) / (t2 - t0);
    if a.partial_cmp(&0.0) != Some(std::cmp::Ordering::Less) {
        return s[k];
    }
    let b = d01 - a * (t0 + t1);
    let tv = -b / (2.0 * a);
    if tv.is_nan() || tv <= t0 || tv >= t2 {
        return s[k];
    }
    let yv = y1 + d01 * (tv - t1) + a * (tv - t1) * (tv - t0);
    // At a kink (a dose) the parabola can overshoot: keep the grid value then.
    if yv < y1 || yv - y1 > (y1 - y0.min(y2)) {
        return s[k];
    }
    (tv, sign * yv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parabola_recovers_a_smooth_peak() {
        // y = 3 - (t - 1.3)^2 on a grid of step 0.5: peak at 1.3, value 3.
        let s: Vec<(f64, f64)> = (0..6).map(|i| i as f64 * 0.5).map(|t| (t, 3.0 - (t - 1.3) * (t - 1.3))).collect();
        let (t, y) = extreme(&s, 1.0);
        assert!((t - 1.3).abs() < 1e-12 && (y - 3.0).abs() < 1e-12, "{t} {y}");
        let (t, y) = extreme(&s.iter().map(|&(t, y)| (t, -y)).collect::<Vec<_>>(), -1.0);
        assert!((t - 1.3).abs() < 1e-12 && (y + 3.0).abs() < 1e-12, "{t} {y}");
    }

    #[test]
    fn extreme_at_an_end_is_the_grid_value() {
        let s = [(0.0, 5.0), (1.0, 4.0), (2.0, 3.0)];
        assert_eq!(extreme(&s, 1.0), (0.0, 5.0));
        assert_eq!(extreme(&s, -1.0), (2.0, 3.0));
    }
}
