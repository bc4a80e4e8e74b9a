//! Multistart bookkeeping: a start point that cannot be simulated is
//! recorded as failed and replaced by a seeded draw that names it, the
//! result does not depend on the thread count, and given start points are
//! never replaced. On tests/data/oscillator (x = a cos(w t), w from 0.1 to
//! 1e4 on log10) with a step limit, the high-frequency part of the bounds
//! cannot be simulated.

use std::path::Path;

use vht_fit::{FitOptions, FitResult, Objective, Settings, StartStatus};

/// Seed of every multistart here (printed by the assertions that use it).
const SEED: u64 = 3;

fn oscillator() -> Objective {
    let yaml = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/oscillator/oscillator.yaml");
    let problem = vht_fit::read(&yaml).unwrap();
    // Simulating t = 0..10 needs about 100 steps per unit of w at these tolerances.
    Objective::new(problem, Settings { max_steps: 2_000, ..Settings::default() }).unwrap()
}

fn options(starts: usize, threads: usize) -> FitOptions {
    FitOptions { starts, seed: SEED, max_iterations: 3, threads: Some(threads), ..Default::default() }
}

fn failed(status: &StartStatus) -> bool {
    matches!(status, StartStatus::Failed(_))
}

#[test]
fn the_oscillator_cannot_be_simulated_at_high_frequency() {
    // What the other tests rely on: the step limit makes part of the box fail.
    let o = oscillator();
    assert!(o.evaluate_scaled(&[0.0, 0.0]).is_ok());
    let e = o.evaluate_scaled(&[4.0, 0.0]).unwrap_err().to_string();
    assert!(e.contains("steps"), "{e}");
}

#[test]
fn a_failed_start_is_kept_and_replaced_by_a_draw_that_names_it() {
    let o = oscillator();
    let (lb, ub) = o.scaled_bounds();
    let n = 12;
    let r = vht_fit::fit(&o, &options(n, 2)).unwrap();
    let by_index = |i: usize| r.starts.iter().find(|s| s.index == i).unwrap();
    // The Latin-hypercube starts are all there, under their own index.
    let lhs = vht_fit::latin_hypercube(n, &lb, &ub, SEED);
    for (i, x0) in lhs.iter().enumerate() {
        assert_eq!(&by_index(i).x0, x0, "start {i} (seed {SEED})");
        assert_eq!(by_index(i).replaces, None);
    }
    let first_failed = (0..n).filter(|&i| failed(&by_index(i).status)).count();
    assert!(first_failed >= 2 && first_failed < n, "{first_failed} of {n} Latin-hypercube starts failed (seed {SEED})");
    // Replacements are numbered n, n+1, ... and each names a failed start
    // that nothing else replaces.
    let replacements: Vec<_> = r.starts.iter().filter(|s| s.replaces.is_some()).collect();
    let mut indices: Vec<usize> = replacements.iter().map(|s| s.index).collect();
    indices.sort();
    assert_eq!(indices, (n..n + replacements.len()).collect::<Vec<_>>());
    assert_eq!(r.starts.len(), n + replacements.len());
    let mut replaced: Vec<usize> = replacements.iter().filter_map(|s| s.replaces).collect();
    replaced.sort();
    replaced.dedup();
    assert_eq!(replaced.len(), replacements.len(), "a start replaced twice");
    for s in &replacements {
        let old = by_index(s.replaces.unwrap());
        assert!(failed(&old.status) && old.fval.is_nan(), "{} replaces {} ({:?})", s.index, old.index, old.status);
        assert_ne!(s.x0, old.x0);
        assert!(s.x0.iter().zip(&lb).zip(&ub).all(|((x, l), u)| l <= x && x <= u), "{:?}", s.x0);
    }
    // Every start ends in a point that could be simulated: each failed one
    // is replaced, and the last of each chain ran.
    for s in r.starts.iter().filter(|s| failed(&s.status)) {
        assert!(replaced.contains(&s.index), "failed start {} was not replaced (seed {SEED})", s.index);
    }
    let ran = r.starts.iter().filter(|s| !failed(&s.status)).count();
    assert_eq!(ran, n);
    assert_eq!(r.starts.iter().filter(|s| failed(&s.status)).count(), replacements.len());
}

fn summary(r: &FitResult) -> Vec<(usize, Option<usize>, Vec<f64>, u64)> {
    let mut v: Vec<_> = r.starts.iter().map(|s| (s.index, s.replaces, s.x0.clone(), s.fval.to_bits())).collect();
    v.sort_by_key(|s| s.0);
    v
}

#[test]
fn replacements_do_not_depend_on_the_thread_count() {
    let o = oscillator();
    let one = vht_fit::fit(&o, &options(8, 1)).unwrap();
    let two = vht_fit::fit(&o, &options(8, 2)).unwrap();
    assert!(one.starts.iter().any(|s| s.replaces.is_some()), "no start was replaced (seed {SEED})");
    assert_eq!(summary(&one), summary(&two));
}

#[test]
fn given_start_points_are_not_replaced() {
    let o = oscillator();
    let r = vht_fit::fit_from(&o, &options(2, 1), vec![vec![4.0, 0.0], vec![0.1, 0.0]]).unwrap();
    assert_eq!(r.starts.len(), 2);
    let bad = r.starts.iter().find(|s| s.index == 0).unwrap();
    assert!(failed(&bad.status), "{:?}", bad.status);
    assert!(r.starts.iter().all(|s| s.replaces.is_none()));
}

#[test]
fn redrawing_stops_when_nothing_can_be_simulated() {
    // Five steps are too few anywhere in the box: after the given points and
    // one round of replacements have all failed, there is no point drawing more.
    let yaml = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/oscillator/oscillator.yaml");
    let o = Objective::new(vht_fit::read(&yaml).unwrap(), Settings { max_steps: 5, ..Settings::default() }).unwrap();
    let n = 4;
    let r = vht_fit::fit(&o, &options(n, 2)).unwrap();
    assert!(r.best.is_none());
    assert!(r.starts.iter().all(|s| failed(&s.status)), "{:?}", r.starts.iter().map(|s| &s.status).collect::<Vec<_>>());
    assert_eq!(r.starts.len(), 2 * n, "the given points and one replacement each");
    for s in r.starts.iter().filter(|s| s.index >= n) {
        assert!(s.replaces.is_some_and(|i| i < n), "{} replaces {:?}", s.index, s.replaces);
    }
}

#[test]
fn no_redraws_leaves_failed_starts_failed() {
    let o = oscillator();
    let n = 12;
    let r = vht_fit::fit(&o, &FitOptions { redraws: 0, ..options(n, 2) }).unwrap();
    assert_eq!(r.starts.len(), n);
    assert!(r.starts.iter().all(|s| s.replaces.is_none()));
    // The same Latin-hypercube points fail as with redraws (see above).
    assert!(r.starts.iter().filter(|s| failed(&s.status)).count() >= 2, "seed {SEED}");
}
