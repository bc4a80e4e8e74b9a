//! A trial split into tasks (as Slurm array tasks run it) and collected
//! gives the same files as a local run: the merged table byte for byte.
//! The tasks run here in-process, one after another, without Slurm.

use std::path::{Path, PathBuf};

use vht_trial::error::TrialError;
use vht_trial::plan::Plan;
use vht_trial::spec::Spec;
use vht_trial::store::{collect, run, shard, task_range, CollectOptions, RunOptions, ShardOptions};

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn meal_plan(size: u64) -> Plan {
    let mut spec = Spec::from_file(Path::new("../../examples/trials/meal/trial.toml")).expect("the example spec");
    spec.population.size = size;
    println!("seed {}", spec.population.seed);
    Plan::new(spec).expect("the example builds")
}

fn bytes(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn task_ranges_tile_the_population() {
    for (n, of) in [(0u64, 3u64), (5, 8), (8, 8), (1000, 7), (3, 1)] {
        let mut next = 0;
        for i in 0..of {
            let (a, b) = task_range(n, i, of);
            assert_eq!(a, next, "n {n} of {of} task {i}");
            assert!(b >= a && b - a <= n / of + 1);
            next = b;
        }
        assert_eq!(next, n);
    }
}

#[test]
fn eight_tasks_collected_equal_a_local_run() {
    let plan = meal_plan(30);
    let local = scratch("shards-local");
    let opts = RunOptions { out: local.clone(), threads: 2, shard_size: 7, ..RunOptions::default() };
    let ran = run(&plan, &opts, &|_| {}).expect("the local run");

    let split = scratch("shards-split");
    // Tasks in a scrambled order, as a scheduler may start them.
    for index in [3u64, 0, 7, 5, 1, 6, 2, 4] {
        let o = ShardOptions { out: split.clone(), threads: 1, index, of: 8, size: None };
        let done = shard(&plan, &o, &|_| {}).expect("a task");
        assert!(done.simulated);
    }
    // A task run twice (a requeued array task) does nothing the second time.
    let again = shard(&plan, &ShardOptions { out: split.clone(), threads: 1, index: 2, of: 8, size: None }, &|_| {})
        .expect("a re-run task");
    assert!(!again.simulated);

    let merged = collect(&plan, &split, &CollectOptions { threads: 2, ..Default::default() }).expect("collect");
    assert_eq!(merged.table.patient, ran.table.patient);
    let bits = |t: &vht_trial::run::Table| -> Vec<Vec<u64>> {
        t.endpoints.iter().map(|c| c.iter().map(|v| v.to_bits()).collect()).collect()
    };
    assert_eq!(bits(&merged.table), bits(&ran.table));
    // The files themselves, byte for byte.
    for f in ["patients.parquet", "summary.json", "report.md", "hist_G_max.svg", "spaghetti_insulin.svg"] {
        assert!(bytes(&split.join(f)) == bytes(&local.join(f)), "{f} differs between the split and the local run");
    }
}

#[test]
fn collect_refuses_missing_and_foreign_task_files() {
    let plan = meal_plan(6);
    let dir = scratch("shards-incomplete");
    for index in [0u64, 2] {
        shard(&plan, &ShardOptions { out: dir.clone(), threads: 1, index, of: 4, size: None }, &|_| {})
            .expect("a task");
    }
    match collect(&plan, &dir, &CollectOptions::default()) {
        Err(e @ TrialError::MissingShards { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("2 of the 4 task files are missing (tasks 1, 3)"), "{msg}");
        }
        Err(e) => panic!("expected MissingShards, got {e}"),
        Ok(_) => panic!("expected MissingShards, got a report"),
    }
    // A file of another split in the same folder is refused, not merged.
    let other = dir.join("shards/task-00001-of-00005.parquet");
    std::fs::copy(dir.join("shards/task-00000-of-00004.parquet"), &other).expect("a copy");
    match collect(&plan, &dir, &CollectOptions::default()) {
        Err(TrialError::Shard { path, .. }) => assert_eq!(path, other),
        Err(e) => panic!("expected Shard, got {e}"),
        Ok(_) => panic!("expected Shard, got a report"),
    }
    std::fs::remove_file(&other).expect("removed");
    // A task's file under another task's name (a duplicate) is refused.
    std::fs::copy(dir.join("shards/task-00000-of-00004.parquet"), dir.join("shards/task-00001-of-00004.parquet"))
        .expect("a copy");
    std::fs::copy(dir.join("shards/task-00002-of-00004.parquet"), dir.join("shards/task-00003-of-00004.parquet"))
        .expect("a copy");
    match collect(&plan, &dir, &CollectOptions::default()) {
        Err(e @ TrialError::Shard { .. }) => assert!(e.to_string().contains("does not hold task 1's patients"), "{e}"),
        Err(e) => panic!("expected Shard, got {e}"),
        Ok(_) => panic!("expected Shard, got a report"),
    }
}
