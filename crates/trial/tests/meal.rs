//! The bundled meal trial end to end: 200 patients through three arms,
//! results the same on 1 and 2 threads, and an interrupted run resumed.

use std::path::{Path, PathBuf};

use vht_trial::plan::Plan;
use vht_trial::spec::Spec;
use vht_trial::store::{run, RunOptions};

fn meal_spec() -> Spec {
    Spec::from_file(Path::new("../../examples/trials/meal/trial.toml")).expect("the example spec is valid")
}

/// A fresh folder under the target directory (kept after the test, for a look).
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn bits(t: &vht_trial::run::Table) -> Vec<Vec<u64>> {
    t.endpoints.iter().map(|c| c.iter().map(|v| v.to_bits()).collect()).collect()
}

#[test]
fn example_trial_runs_with_200_patients_and_resumes() {
    let spec = meal_spec();
    println!("seed {}", spec.population.seed);
    assert_eq!(spec.population.size, 200);
    let plan = Plan::new(spec).expect("the example builds");
    let dir = scratch("meal200");
    let opts = RunOptions { out: dir.clone(), threads: 2, shard_size: 64, ..RunOptions::default() };
    let first = run(&plan, &opts, &|_| {}).expect("the trial runs");
    assert_eq!(first.shards, 4);
    assert_eq!(first.simulated, 200);
    assert_eq!(first.table.len(), 600, "one row per patient and arm");
    let s = &first.summary;
    assert!(s.population.candidates_tried >= 200 && s.population.candidates_accepted == 200);
    for arm in &s.arms {
        assert_eq!((arm.patients, arm.failed), (200, 0), "arm {}", arm.name);
    }
    // The sensitizer lowers peak glucose in every patient: the paired
    // difference and its whole confidence interval are negative.
    let sens = s.comparisons.iter().find(|c| c.arm == "sensitizer").expect("a comparison");
    let gmax = &sens.endpoints[0];
    assert_eq!(gmax.name, "G_max");
    assert!(gmax.ci_high.expect("a CI") < 0.0 && gmax.ci_low.expect("a CI") < gmax.mean.expect("a mean"));
    for f in ["patients.parquet", "summary.json", "report.md", "hist_G_max.svg", "spaghetti_control.svg"] {
        assert!(dir.join(f).is_file(), "{f} written");
    }

    // Interrupt: lose one shard and the merged table, run again.
    std::fs::remove_file(dir.join("shards/part-00002.parquet")).expect("a shard to remove");
    std::fs::remove_file(dir.join("patients.parquet")).expect("the merged table");
    let second = run(&plan, &opts, &|_| {}).expect("the trial resumes");
    assert_eq!((second.shards_skipped, second.simulated), (3, 64));
    assert_eq!(second.table.patient, first.table.patient);
    assert_eq!(bits(&second.table), bits(&first.table));

    // Another trial in the same folder is refused, not mixed in.
    let other = RunOptions { size: Some(50), ..opts.clone() };
    match run(&plan, &other, &|_| {}) {
        Err(vht_trial::error::TrialError::OtherTrial { .. }) => {}
        Err(e) => panic!("expected OtherTrial, got {e}"),
        Ok(_) => panic!("expected OtherTrial, got a run"),
    }
}

#[test]
fn results_do_not_depend_on_threads() {
    let mut spec = meal_spec();
    spec.population.size = 24;
    let plan = Plan::new(spec).expect("the example builds");
    let (s1, t1) = vht_trial::run::run_in_memory(&plan, 1).expect("one thread");
    let (s2, t2) = vht_trial::run::run_in_memory(&plan, 2).expect("two threads");
    assert_eq!(s1, s2);
    assert_eq!(t1.patient, t2.patient);
    assert_eq!(t1.params, t2.params);
    assert_eq!(bits(&t1), bits(&t2));
    assert_eq!(t1.reason, t2.reason);
}
