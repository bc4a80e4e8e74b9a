//! The SBML Test Suite's FluxBalanceSteadyState cases, walked as data.
//!
//! Cases come from `$SBML_TEST_SUITE` (the `semantic` folder, or its parent),
//! else `/work/shared/sbml-test-suite/semantic`, else the few cases copied
//! into `tests/data` (with the suite's LICENSE.txt). Every SBML file of a case
//! (l3v1, l3v2) is solved and every variable of its settings compared with the
//! suite's rule `|expected - actual| <= absolute + relative * |expected|`
//! (an expected NaN needs a NaN).
//!
//! `tests/expected_failures.txt` lists the cases known to fail, one
//! `NNNNN reason` per line. An unlisted failure fails its trial, and so does a
//! listed case that passes: the list may only shrink.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use libtest_mimic::{Arguments, Failed, Trial};

/// Cases of the full suite measured passing; the summary trial fails below it.
const MIN_PASSING_FULL_SUITE: usize = 34;
/// The full suite has this many FluxBalanceSteadyState cases (release 3.3.0).
const FULL_SUITE_CASES: usize = 34;

fn main() {
    let args = Arguments::from_args();
    let dir = suite_dir();
    let cases = flux_balance_cases(&dir);
    let expected = expected_failures();
    println!("FBA cases from {} ({} cases)", dir.display(), cases.len());

    let mut trials: Vec<Trial> = cases
        .iter()
        .map(|case| {
            let (dir, case, listed) = (dir.clone(), case.clone(), expected.get(case).cloned());
            Trial::test(case.clone(), move || check_case(&dir, &case, listed.as_deref()))
        })
        .collect();
    trials.push(Trial::test("summary", move || summary(&dir, &cases, &expected)));
    libtest_mimic::run(&args, trials).exit();
}

fn suite_dir() -> PathBuf {
    let candidates = std::env::var_os("SBML_TEST_SUITE")
        .map(PathBuf::from)
        .into_iter()
        .flat_map(|p| [p.join("semantic"), p])
        .chain([PathBuf::from("/work/shared/sbml-test-suite/semantic")]);
    for dir in candidates {
        if dir.join("01186").is_dir() {
            return dir;
        }
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// Case numbers whose `NNNNN-model.m` says `testType: FluxBalanceSteadyState`.
fn flux_balance_cases(dir: &Path) -> Vec<String> {
    let mut cases: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| name.len() == 5 && name.bytes().all(|b| b.is_ascii_digit()))
        .filter(|case| {
            let model = std::fs::read_to_string(dir.join(case).join(format!("{case}-model.m"))).unwrap_or_default();
            model.lines().any(|l| l.strip_prefix("testType:").is_some_and(|t| t.trim() == "FluxBalanceSteadyState"))
        })
        .collect();
    cases.sort();
    cases
}

fn expected_failures() -> BTreeMap<String, String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/expected_failures.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (case, reason) = l.split_once(' ').unwrap_or((l, ""));
            (case.to_string(), reason.trim().to_string())
        })
        .collect()
}

fn check_case(dir: &Path, case: &str, listed: Option<&str>) -> Result<(), Failed> {
    match (run_case(dir, case), listed) {
        (Ok(()), None) => Ok(()),
        (Err(why), Some(_)) => {
            println!("{case}: expected failure: {why}");
            Ok(())
        }
        (Err(why), None) => Err(why.into()),
        (Ok(()), Some(reason)) => {
            Err(format!("{case} passes but is listed in expected_failures.txt ({reason}): remove it").into())
        }
    }
}

/// Counts and prints pass/fail per case; checks the count and the list agree.
fn summary(dir: &Path, cases: &[String], expected: &BTreeMap<String, String>) -> Result<(), Failed> {
    let mut passed = 0;
    let mut problems = Vec::new();
    for case in cases {
        match run_case(dir, case) {
            Ok(()) => {
                passed += 1;
                match degenerate_variables(dir, case) {
                    Ok(notes) if notes.is_empty() => println!("  {case} pass"),
                    // Passing here depends on the simplex ending at the same vertex as
                    // the suite's reference solver: worth knowing when microlp changes.
                    Ok(notes) => {
                        println!("  {case} pass (degenerate optimum: {})", notes.join(", "))
                    }
                    Err(why) => problems.push(format!("{case}: flux variability failed: {why}")),
                }
            }
            Err(why) => println!("  {case} FAIL {why}"),
        }
    }
    println!("{passed}/{} FluxBalanceSteadyState cases pass", cases.len());
    if cases.len() >= FULL_SUITE_CASES && passed < MIN_PASSING_FULL_SUITE {
        problems.push(format!("{passed} cases pass, fewer than the {MIN_PASSING_FULL_SUITE} measured"));
    }
    if cases.len() >= FULL_SUITE_CASES {
        for case in expected.keys().filter(|c| !cases.contains(c)) {
            problems.push(format!("{case} is listed in expected_failures.txt but is not an FBA case"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n").into())
    }
}

/// The checked variables of a case that take more than one value over the
/// optimal solutions (flux variability wider than the absolute tolerance).
fn degenerate_variables(dir: &Path, case: &str) -> Result<Vec<String>, String> {
    let case_dir = dir.join(case);
    let settings = read_settings(&case_dir.join(format!("{case}-settings.txt")))?;
    let file = ["l3v1", "l3v2"]
        .iter()
        .map(|level| case_dir.join(format!("{case}-sbml-{level}.xml")))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("{case}: no Level 3 SBML file"))?;
    let problem = vht_fbc::read_file(&file).map_err(|e| e.to_string())?;
    let fva = vht_fbc::flux_variability(&problem).map_err(|e| e.to_string())?;
    Ok(fva
        .ranges
        .iter()
        .filter(|r| settings.variables.contains(&r.reaction) && r.max - r.min > settings.absolute)
        .map(|r| format!("{} in [{}, {}]", r.reaction, r.min, r.max))
        .collect())
}

/// Solves every SBML file of the case; the error lists every mismatch.
fn run_case(dir: &Path, case: &str) -> Result<(), String> {
    let case_dir = dir.join(case);
    let settings = read_settings(&case_dir.join(format!("{case}-settings.txt")))?;
    let expected = read_results(&case_dir.join(format!("{case}-results.csv")))?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&case_dir)
        .map_err(|e| format!("cannot list {}: {e}", case_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{case}-sbml-l3")) && n.ends_with(".xml"))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!("{case}: no Level 3 SBML file"));
    }
    let mut mismatches = Vec::new();
    for file in &files {
        let level = file.file_stem().and_then(|s| s.to_str()).and_then(|s| s.rsplit('-').next()).unwrap_or("?");
        let solution = match vht_fbc::solve_file(file) {
            Ok(s) => s,
            Err(e) => {
                mismatches.push(format!("{level}: {e}"));
                continue;
            }
        };
        for var in &settings.variables {
            let Some(&want) = expected.get(var) else {
                mismatches.push(format!("{level}: {var} is not in results.csv"));
                continue;
            };
            let got = solution.value(var);
            let ok = match got {
                Some(got) if want.is_nan() => got.is_nan(),
                Some(got) => (want - got).abs() <= settings.absolute + settings.relative * want.abs(),
                None => false,
            };
            if !ok {
                let got = got.map_or("missing".to_string(), |g| g.to_string());
                mismatches.push(format!("{level}: {var} expected {want}, got {got}"));
            }
        }
    }
    if mismatches.is_empty() {
        Ok(())
    } else {
        Err(mismatches.join("; "))
    }
}

struct Settings {
    variables: Vec<String>,
    absolute: f64,
    relative: f64,
}

fn read_settings(path: &Path) -> Result<Settings, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key).and_then(|rest| rest.strip_prefix(':')))
            .map(str::trim)
            .ok_or_else(|| format!("{}: no `{key}:` line", path.display()))
    };
    let number = |key: &str| -> Result<f64, String> {
        let raw = field(key)?;
        raw.parse().map_err(|_| format!("{}: `{key}: {raw}` is not a number", path.display()))
    };
    Ok(Settings {
        variables: field("variables")?.split(',').map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).collect(),
        absolute: number("absolute")?,
        relative: number("relative")?,
    })
}

fn read_results(path: &Path) -> Result<BTreeMap<String, f64>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let (Some(header), Some(row)) = (lines.next(), lines.next()) else {
        return Err(format!("{}: expected a header and one row", path.display()));
    };
    header
        .split(',')
        .zip(row.split(','))
        .map(|(name, value)| {
            let v = value.trim();
            let v = if v.eq_ignore_ascii_case("nan") { Ok(f64::NAN) } else { v.parse() };
            v.map(|v| (name.trim().to_string(), v))
                .map_err(|_| format!("{}: `{value}` is not a number", path.display()))
        })
        .collect()
}
