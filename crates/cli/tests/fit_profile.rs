//! `vht fit profile` end to end: the real binary on the checked-in quadratic
//! problem of vht-fit, whose objective is exactly
//! `0.5 [(1 - theta)^2 + (2 - theta)^2 + (3 - theta)^2 + (5 - theta - b)^2]`
//! plus constants. Its optimum is theta = 2, b = 3, and its profiles are
//! exact parabolas: `1.5 (theta - 2)^2` (b re-optimised) and
//! `0.375 (b - 3)^2` (theta re-optimised), so the 95% intervals are
//! `2 +- sqrt(CI95 / 1.5)` and `3 +- sqrt(CI95 / 0.375)`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn vht(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vht")).args(args).output().expect("run vht");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn quadratic() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fit/tests/data/quadratic/quadratic.yaml").display().to_string()
}

/// A fresh folder per test (tests run in parallel in one process).
fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vht-cli-fit-profile-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// profiles.tsv: parameter id -> (estimate, lower, upper), linear scale.
fn intervals(dir: &Path) -> HashMap<String, (f64, f64, f64)> {
    let text = std::fs::read_to_string(dir.join("profiles.tsv")).expect("profiles.tsv");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let col = |n: &str| header.iter().position(|h| *h == n).unwrap_or_else(|| panic!("no column {n}"));
    let (id, est, lo, up) = (col("parameterId"), col("estimate_scaled"), col("lower"), col("upper"));
    lines
        .map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            let num = |k: usize| c[k].parse::<f64>().unwrap_or(f64::NAN);
            (c[id].to_string(), (num(est), num(lo), num(up)))
        })
        .collect()
}

/// The exact intervals; the profile interpolates linearly between its
/// points, which on a parabola errs by a few 1e-3 at the profile's step.
fn assert_exact(found: &HashMap<String, (f64, f64, f64)>, id: &str) {
    let (center, curvature) = match id {
        "theta" => (2.0, 1.5),
        "b" => (3.0, 0.375),
        _ => unreachable!(),
    };
    let half = (vht_fit::CI95 / curvature).sqrt();
    let (est, lo, up) = found[id];
    assert!((est - center).abs() < 1e-6, "{id}: estimate {est}, exact {center}");
    assert!((lo - (center - half)).abs() < 5e-3, "{id}: lower {lo}, exact {}", center - half);
    assert!((up - (center + half)).abs() < 5e-3, "{id}: upper {up}, exact {}", center + half);
}

#[test]
fn from_best_fits_first_then_profiles_and_prints_the_intervals() {
    let out = tmp("best");
    let (ok, stdout, err) = vht(&[
        "fit",
        "profile",
        &quadratic(),
        "--params",
        "theta,b",
        "--starts",
        "3",
        "--seed",
        "1",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    // The fit's own results are there, and the profiles with their plots.
    for f in ["starts.tsv", "summary.json", "parameters.tsv", "profile_theta.tsv", "profile_b.svg"] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    let found = intervals(&out);
    assert_exact(&found, "theta");
    assert_exact(&found, "b");
    // The output ends with the interval table.
    assert!(stdout.trim_end().lines().last().unwrap().starts_with("b\t"), "{stdout}");
}

#[test]
fn from_an_earlier_fit_profiles_around_its_best_without_fitting_again() {
    let fit = tmp("earlier-fit");
    let (ok, _, err) = vht(&["fit", &quadratic(), "--starts", "2", "--quiet", "--out", fit.to_str().unwrap()]);
    assert!(ok, "{err}");
    let out = tmp("from-dir");
    let (ok, stdout, err) = vht(&[
        "fit",
        "profile",
        &quadratic(),
        "--params",
        "b",
        "--from",
        fit.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(!out.join("starts.tsv").exists(), "no multistart was run");
    assert_exact(&intervals(&out), "b");
    // The objective at the optimum: 0.5 (1 + 0 + 1 + 0) plus the constants,
    // the same as the fit's best.
    let fit_best: f64 = std::fs::read_to_string(fit.join("summary.json"))
        .unwrap()
        .lines()
        .find_map(|l| l.trim().strip_prefix("\"best\": ").map(|v| v.trim_end_matches(',').parse().unwrap()))
        .unwrap();
    let start: f64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("objective at the start\t"))
        .expect("objective line")
        .parse()
        .unwrap();
    assert!((start - fit_best).abs() < 1e-9, "{start} vs {fit_best}");
}

#[test]
fn from_nominal_profiles_there_and_warns_that_it_is_no_optimum() {
    // The nominal values theta = 1, b = 0 are not the optimum.
    let out = tmp("nominal");
    let (ok, _, err) = vht(&[
        "fit",
        "profile",
        &quadratic(),
        "--params",
        "theta",
        "--from",
        "nominal",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(err.contains("warning: the profile of theta reaches"), "{err}");
    assert!(err.contains("not an optimum"), "{err}");
    assert!(intervals(&out)["theta"].0 == 1.0);
}

#[test]
fn the_profile_flag_of_vht_fit_still_works() {
    let out = tmp("flag");
    let (ok, _, err) =
        vht(&["fit", &quadratic(), "--starts", "2", "--quiet", "--profile", "theta", "--out", out.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert_exact(&intervals(&out), "theta");
}

#[test]
fn bad_inputs_are_named() {
    let out = tmp("bad");
    let o = out.to_str().unwrap();
    let (ok, _, err) = vht(&["fit", "profile", &quadratic(), "--params", "zz", "--from", "nominal", "--out", o]);
    assert!(!ok);
    assert!(err.contains("--params zz: not an estimated parameter (estimated: theta, b)"), "{err}");

    let missing = tmp("no-such-fit");
    let (ok, _, err) =
        vht(&["fit", "profile", &quadratic(), "--params", "b", "--from", missing.to_str().unwrap(), "--out", o]);
    assert!(!ok);
    assert!(err.contains(&format!("cannot read {}", missing.join("parameters.tsv").display())), "{err}");

    // A parameters.tsv of another problem: the file, line and id are named.
    let other = tmp("other-fit");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(
        other.join("parameters.tsv"),
        "parameterId\tparameterScale\tlowerBound\tupperBound\tnominalValue\testimate\ntheta\tlin\t-10\t10\t2\t1\nk1\tlog10\t1e-3\t1e3\t0.5\t1\n",
    )
    .unwrap();
    let (ok, _, err) =
        vht(&["fit", "profile", &quadratic(), "--params", "b", "--from", other.to_str().unwrap(), "--out", o]);
    assert!(!ok);
    let at =
        format!("{}:3: parameter 'k1' is not in the problem's parameter table", other.join("parameters.tsv").display());
    assert!(err.contains(&at), "{err}");

    // One without a row for b.
    std::fs::write(
        other.join("parameters.tsv"),
        "parameterId\tparameterScale\tlowerBound\tupperBound\tnominalValue\testimate\ntheta\tlin\t-10\t10\t2\t1\n",
    )
    .unwrap();
    let (ok, _, err) =
        vht(&["fit", "profile", &quadratic(), "--params", "b", "--from", other.to_str().unwrap(), "--out", o]);
    assert!(!ok);
    assert!(err.contains("no row for the estimated parameter b"), "{err}");

    let (ok, _, err) = vht(&["fit"]);
    assert!(!ok);
    assert!(err.contains("<PROBLEM>"), "{err}");
}
