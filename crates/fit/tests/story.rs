//! A small problem made for the tests (tests/data/story) whose every
//! simulated value has a closed form, so the whole objective can be computed
//! here independently: species and compartment overrides, a parameter set by
//! a parameter id, `NaN` and empty cells that keep the model's value,
//! pre-equilibration with and without a species reset, `inf` times,
//! replicates, several measurement files, numeric and parameter overrides,
//! log10/normal, log/laplace and lin/normal observables, and a prior.
//!
//! Model: dA/dt = k0 u - k1 A (A a concentration in C, integrated as an amount),
//! dB/dt = -k1 B (B has only substance units: its symbol is its amount).

use std::f64::consts::{LN_10, PI};
use std::path::Path;

fn objective() -> vht_fit::Objective {
    let yaml = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/story/story.yaml");
    let problem = vht_fit::read(&yaml).unwrap();
    let settings = vht_fit::Settings { rtol: 1e-10, atol: 1e-12, ..Default::default() };
    vht_fit::Objective::new(problem, settings).unwrap()
}

fn normal(y: f64, h: f64, s: f64) -> f64 {
    0.5 * (2.0 * PI * s * s).ln() + 0.5 * ((y - h) / s).powi(2)
}

/// The objective's likelihood by hand, at (k0, k1, sigma_a, scale).
fn by_hand(k0: f64, k1: f64, sa: f64, scale: f64) -> f64 {
    let a = |a0: f64, u: f64, t: f64| {
        let ss = k0 * u / k1;
        if t.is_infinite() {
            ss
        } else {
            ss + (a0 - ss) * (-k1 * t).exp()
        }
    };
    let b = |b0: f64, t: f64| b0 * (-k1 * t).exp();
    let log10_normal = |y: f64, h: f64, s: f64| normal(y.log10(), h.log10(), s) + (y * LN_10).ln();
    let log_laplace = |y: f64, h: f64, s: f64| (2.0 * s).ln() + (y.ln() - h.ln()).abs() / s + y.ln();
    let a_ss = k0 / k1;
    let mut total = 0.0;
    // measurements_a.tsv
    total += log10_normal(2.1, scale * a(1.0, 1.0, 0.0), sa);
    total += 2.0 * log10_normal(3.0, scale * a(1.0, 1.0, 1.0), sa);
    total += log10_normal(3.5, 1.5 * a(1.0, 1.0, 2.0), 0.2);
    total += log10_normal(4.0, 1.5 * a(3.0, 1.0, 1.0), 0.2);
    // c0 -> c2: from the steady state of c0, with u = scale.
    total += normal(2.2, a(a_ss, scale, 0.0) - 0.1, 0.5);
    total += normal(3.1, a(a_ss, scale, 1.0) - 0.1, 0.5);
    total += normal(3.8, a(a_ss, scale, f64::INFINITY) - 0.1, 0.5);
    // c0 -> c3: A reset to 5.
    total += normal(4.0, a(5.0, 1.0, 0.5) - scale, 0.5);
    total += normal(2.1, a(1.0, 1.0, f64::INFINITY), 0.5);
    // measurements_b.tsv: B is an amount (c1 sets it to 6), so c1's compartment size leaves it alone.
    total += log_laplace(2.5, b(4.0, 1.0), 0.5 * sa);
    total += log_laplace(1.4, b(6.0, 2.0), 0.5 * sa);
    total
}

#[test]
fn objective_matches_the_closed_form() {
    let obj = objective();
    let nominal = obj.problem.nominal();
    assert_eq!(nominal, vec![1.0, 0.5, 0.3, 2.0]);
    let v = obj.evaluate(&nominal).unwrap();
    let want = by_hand(1.0, 0.5, 0.3, 2.0);
    assert!((v.likelihood - want).abs() < 1e-6, "likelihood {} vs {want}", v.likelihood);
    // The normal prior on k1 (linear scale, mean 0.4, sd 0.2).
    let prior = normal(0.5, 0.4, 0.2);
    assert!((v.prior - prior).abs() < 1e-12, "prior {} vs {prior}", v.prior);
    assert!((v.total() - want - prior).abs() < 1e-6);
    let sum: f64 = v.experiments.iter().map(|e| e.nllh).sum();
    assert!((sum - v.likelihood).abs() < 1e-9);
    let sum: f64 = v.measurements.iter().map(|m| m.nllh).sum();
    assert!((sum - v.likelihood).abs() < 1e-9);
    // The first row: obs_a = scale * A(0) in c0, with sigma_a as its noise.
    assert!((v.measurements[0].simulation - 2.0).abs() < 1e-9, "{:?}", v.measurements[0]);
    assert_eq!(v.measurements[0].sigma, 0.3);
    // The inf row of c0 -> c2: A at the steady state with u = 2, minus 0.1.
    assert!((v.measurements[7].simulation - 3.9).abs() < 1e-6, "{:?}", v.measurements[7]);
    let names: Vec<String> = v
        .experiments
        .iter()
        .map(|e| {
            format!(
                "{}{}:{}",
                e.preequilibration.as_deref().map_or(String::new(), |p| format!("{p}->")),
                e.simulation,
                e.measurements
            )
        })
        .collect();
    assert_eq!(names, ["c0:6", "c1:2", "c0->c2:3", "c0->c3:1"]);
}

#[test]
fn objective_at_other_parameters() {
    let obj = objective();
    for (k0, k1, sa, scale) in [(2.0, 0.7, 0.5, 1.5), (0.5, 1.3, 0.2, 3.0)] {
        let v = obj.evaluate(&[k0, k1, sa, scale]).unwrap();
        let want = by_hand(k0, k1, sa, scale);
        assert!((v.likelihood - want).abs() < 1e-6, "at {k0} {k1} {sa} {scale}: {} vs {want}", v.likelihood);
    }
}

#[test]
fn wrong_number_of_values_is_an_error() {
    let e = objective().evaluate(&[1.0]).unwrap_err();
    assert_eq!(e.to_string(), "4 parameter values expected (one per row of the parameter table), found 1");
}

#[test]
fn objective_is_shareable_between_threads() {
    // Multistart and profiles will evaluate one compiled objective from several threads.
    fn shareable<T: Send + Sync>(_: &T) {}
    let obj = objective();
    shareable(&obj);
    let nominal = obj.problem.nominal();
    let serial = obj.evaluate(&nominal).unwrap().likelihood;
    let parallel: Vec<f64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2).map(|_| s.spawn(|| obj.evaluate(&nominal).unwrap().likelihood)).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(parallel.iter().all(|&v| v == serial), "{parallel:?} vs {serial}");
}
