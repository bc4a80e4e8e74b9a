//! The binary end to end on a bundled model: the report's numbers and the
//! factors file the other tools read.

use std::path::PathBuf;
use std::process::Command;

fn repressilator() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/models/repressilator.xml")
}

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vht-bench")).args(args).output().expect("vht-bench runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn report_counts_the_cohort_and_writes_the_same_members_as_it_simulates() {
    let dir = std::env::temp_dir().join(format!("vht-bench-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let factors = dir.join("factors.csv");
    let traj = dir.join("traj.csv");
    let model = repressilator();
    let (ok, stdout, stderr) = run(&[
        model.to_str().unwrap(),
        "--end",
        "50",
        "--points",
        "11",
        "--cohort",
        "4",
        "--repeats",
        "2",
        "--seed",
        "9",
        "--factors-out",
        factors.to_str().unwrap(),
        "--factors-count",
        "3",
        "--trajectory",
        traj.to_str().unwrap(),
        "--json",
    ]);
    assert!(ok, "{stderr}");
    for field in [r#""tool":"vht""#, r#""requested":4.0"#, r#""done":4.0"#, r#""failures":0.0"#, r#""error":null"#] {
        assert!(stdout.contains(field), "{field} missing from {stdout}");
    }
    let f = std::fs::read_to_string(&factors).unwrap();
    let lines: Vec<&str> = f.lines().collect();
    // A header and the three members asked for, each with a value per kinetic parameter.
    assert_eq!(lines.len(), 4, "{f}");
    let width = lines[0].split(',').count();
    assert!(width > 1, "no kinetic parameters: {}", lines[0]);
    assert!(lines[1..].iter().all(|l| l.split(',').count() == width));
    assert!(lines[1].starts_with("0,") && lines[3].starts_with("2,"));
    let t = std::fs::read_to_string(&traj).unwrap();
    assert_eq!(t.lines().count(), 12, "header and 11 rows");
    assert!(t.lines().nth(11).unwrap().starts_with("50.0,"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_missing_model_is_an_error_that_names_the_file() {
    let (ok, _, stderr) = run(&["/nonexistent/model.xml", "--json"]);
    assert!(!ok);
    assert!(stderr.contains("/nonexistent/model.xml"), "{stderr}");
}

#[test]
fn an_unknown_parameter_in_set_is_an_error() {
    let model = repressilator();
    let (ok, _, stderr) = run(&[model.to_str().unwrap(), "--set", "no_such_parameter=1", "--json"]);
    assert!(!ok);
    assert!(stderr.contains("no_such_parameter"), "{stderr}");
}
