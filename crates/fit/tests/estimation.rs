//! Estimation on problems with a known answer: the local optimisers reach
//! Boehm's reference optimum from a nearby start, the Latin hypercube is
//! stratified, and profiles and prediction bands of an exactly quadratic
//! likelihood match their closed forms.

use std::path::Path;

fn objective(rel: &str) -> vht_fit::Objective {
    let yaml = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(rel);
    let problem = vht_fit::read(&yaml).unwrap();
    vht_fit::Objective::new(problem, vht_fit::Settings::default()).unwrap()
}

/// Boehm's nominal values are the published optimum (REFERENCE.tsv: 138.22199693517703).
const BOEHM_OPTIMUM: f64 = 138.22199693517703;

/// A start 0.3 (scaled, i.e. a factor 2 on log10 parameters) away from the
/// optimum in every coordinate, signs from a fixed pattern.
fn near_boehm(o: &vht_fit::Objective) -> Vec<f64> {
    let (lb, ub) = o.scaled_bounds();
    o.scaled_nominal()
        .iter()
        .enumerate()
        .map(|(i, x)| (x + if i % 3 == 0 { -0.3 } else { 0.3 }).clamp(lb[i], ub[i]))
        .collect()
}

#[test]
fn trust_region_reaches_boehms_optimum_from_a_nearby_start() {
    let o = objective("Boehm_JProteomeRes2014/Boehm_JProteomeRes2014.yaml");
    let x0 = near_boehm(&o);
    let f0 = o.evaluate_scaled(&x0).unwrap();
    let options = vht_fit::FitOptions { starts: 1, max_iterations: 300, ..Default::default() };
    let r = vht_fit::fit_from(&o, &options, vec![x0]).unwrap();
    let best = r.best.unwrap();
    println!("from {f0} to {} in {} iterations ({:?})", best.fval, best.iterations, best.status);
    assert!(f0 > BOEHM_OPTIMUM + 10.0, "the start is not a trivial one: {f0}");
    assert!((best.fval - BOEHM_OPTIMUM).abs() < 0.1, "{} vs {BOEHM_OPTIMUM}", best.fval);
}

#[test]
fn lbfgsb_reaches_boehms_optimum_from_a_nearby_start() {
    let o = objective("Boehm_JProteomeRes2014/Boehm_JProteomeRes2014.yaml");
    let options = vht_fit::FitOptions {
        starts: 1,
        optimizer: vht_fit::Optimizer::Lbfgsb,
        max_iterations: 500,
        ..Default::default()
    };
    let r = vht_fit::fit_from(&o, &options, vec![near_boehm(&o)]).unwrap();
    let best = r.best.unwrap();
    println!("{} in {} iterations ({:?})", best.fval, best.iterations, best.status);
    assert!((best.fval - BOEHM_OPTIMUM).abs() < 0.1, "{} vs {BOEHM_OPTIMUM}", best.fval);
}

#[test]
fn a_start_that_cannot_be_simulated_is_recorded_and_the_others_run() {
    let o = objective("Boehm_JProteomeRes2014/Boehm_JProteomeRes2014.yaml");
    let good = o.scaled_nominal();
    // NaN parameters make every simulation fail.
    let bad = vec![f64::NAN; good.len()];
    let options = vht_fit::FitOptions { starts: 2, max_iterations: 5, ..Default::default() };
    let r = vht_fit::fit_from(&o, &options, vec![bad, good]).unwrap();
    assert_eq!(r.starts.len(), 2);
    let failed = r.starts.iter().find(|s| s.index == 0).unwrap();
    assert!(matches!(failed.status, vht_fit::StartStatus::Failed(_)), "{:?}", failed.status);
    assert!(failed.fval.is_nan());
    let best = r.best.unwrap();
    assert_eq!(best.index, 1);
    assert!((best.fval - BOEHM_OPTIMUM).abs() < 1e-3, "{}", best.fval);
}

#[test]
fn latin_hypercube_puts_one_point_in_every_stratum() {
    let (lb, ub) = (vec![-3.0, 0.0, 10.0], vec![3.0, 1.0, 20.0]);
    let n = 50;
    let seed = 7;
    println!("seed {seed}");
    let pts = vht_fit::latin_hypercube(n, &lb, &ub, seed);
    assert_eq!(pts.len(), n);
    for k in 0..lb.len() {
        let mut hit = vec![0; n];
        for p in &pts {
            assert!(p[k] >= lb[k] && p[k] < ub[k]);
            let s = ((p[k] - lb[k]) / (ub[k] - lb[k]) * n as f64).floor() as usize;
            hit[s] += 1;
        }
        assert!(hit.iter().all(|&h| h == 1), "coordinate {k}: {hit:?}");
    }
    // Seeded: the same seed gives the same points, another seed others.
    assert_eq!(pts, vht_fit::latin_hypercube(n, &lb, &ub, seed));
    assert_ne!(pts, vht_fit::latin_hypercube(n, &lb, &ub, seed + 1));
}

/// nllh = 0.5 [(1-t)^2 + (2-t)^2 + (3-t)^2 + (5-t-b)^2] + 2 ln(2 pi): the
/// optimum is t = 2, b = 3; b absorbs the last term at every t, so the
/// profile of t is 0.5 * 3 (t - 2)^2 and its 95% interval 2 +- sqrt(2 * 1.92 / 3).
#[test]
fn profile_of_a_quadratic_likelihood_gives_the_closed_form_interval() {
    let o = objective("quadratic/quadratic.yaml");
    let r =
        vht_fit::fit_from(&o, &vht_fit::FitOptions { starts: 1, ..Default::default() }, vec![vec![0.0, 0.0]]).unwrap();
    let best = r.best.unwrap();
    assert!((best.x[0] - 2.0).abs() < 1e-4 && (best.x[1] - 3.0).abs() < 1e-4, "{:?}", best.x);
    let options = vht_fit::ProfileOptions { parameters: vec![0, 1], ..Default::default() };
    let profiles = vht_fit::profile(&o, &best.x, best.fval, &options).unwrap();
    let half = (2.0 * vht_fit::CI95 / 3.0).sqrt();
    let p = &profiles[0];
    assert_eq!(p.id, "theta");
    for q in &p.points {
        let want = 1.5 * (q.value - 2.0).powi(2);
        assert!((q.fval - p.optimum - want).abs() < 1e-6, "at {}: {} vs {want}", q.value, q.fval - p.optimum);
    }
    let (lo, hi) = (p.lower.unwrap(), p.upper.unwrap());
    // Linear interpolation of a parabola between grid points: within 2% of the half-width.
    assert!((lo - (2.0 - half)).abs() < 0.02 * half, "{lo} vs {}", 2.0 - half);
    assert!((hi - (2.0 + half)).abs() < 0.02 * half, "{hi} vs {}", 2.0 + half);
    // b's profile (t re-optimised): 0.5 (5 - t - b)^2 + 0.5 sum (y - t)^2 minimised over t
    // is (3/8) (b - 3)^2, so its interval is 3 +- sqrt(8 * 1.92 / 3).
    let half_b = (8.0 * vht_fit::CI95 / 3.0).sqrt();
    let pb = &profiles[1];
    assert!((pb.lower.unwrap() - (3.0 - half_b)).abs() < 0.02 * half_b, "{:?}", pb.lower);
    assert!((pb.upper.unwrap() - (3.0 + half_b)).abs() < 0.02 * half_b, "{:?}", pb.upper);
}

/// The Gauss-Newton Hessian of the quadratic problem is exact: [[4, 1], [1, 1]],
/// so theta's Laplace variance is 1/3 and the 95% band of obs_theta is
/// 2 +- 1.96 / sqrt(3).
#[test]
fn prediction_band_of_a_quadratic_likelihood_matches_the_laplace_variance() {
    let o = objective("quadratic/quadratic.yaml");
    let x = vec![2.0, 3.0];
    let (_, g, h) = o.evaluate_with_gradient(&x).unwrap();
    assert!(g.iter().all(|v| v.abs() < 1e-9), "{g:?}");
    let want = [[4.0, 1.0], [1.0, 1.0]];
    for a in 0..2 {
        for b in 0..2 {
            assert!((h[a][b] - want[a][b]).abs() < 1e-9, "{h:?}");
        }
    }
    let options = vht_fit::BandOptions { samples: 4000, seed: 11, ..Default::default() };
    println!("seed {}", options.seed);
    let bands = vht_fit::prediction_bands(&o, &x, &h, Some(&[0.0, 1.0]), &options).unwrap();
    assert_eq!(bands.failed, 0);
    let band = bands.bands.iter().find(|b| b.observable == "obs_theta").unwrap();
    let half = 1.959_963_984_540_054 / 3f64.sqrt();
    for i in 0..2 {
        assert!((band.best[i] - 2.0).abs() < 1e-12);
        // 4000 draws: the 2.5% quantile's standard error is about 1.5% of the half-width.
        assert!((band.upper[i] - 2.0 - half).abs() < 0.06 * half, "{} vs {}", band.upper[i], 2.0 + half);
        assert!((2.0 - band.lower[i] - half).abs() < 0.06 * half, "{} vs {}", band.lower[i], 2.0 - half);
    }
}
