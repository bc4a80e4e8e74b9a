//! Every PEtab problem with a reference value: the objective at the nominal
//! parameters must match REFERENCE.tsv to within 1e-3.
//!
//! Problems come from `tests/data` (checked in, so this runs anywhere) and from
//! `$PETAB_DIR` or `../shared/petab` next to the repository when present.
//! `tests/expected_failures.txt` lists the problems we do not match yet, each
//! with its reason; it may only shrink: an unlisted failure fails the run, and
//! so does a listed problem that now passes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use libtest_mimic::{Arguments, Failed, Trial};

const TOLERANCE: f64 = 1e-3;

fn main() {
    let args = Arguments::from_args();
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let expected = expected_failures(&here.join("tests/expected_failures.txt"));
    let mut roots = vec![("data", here.join("tests/data"))];
    let shared = std::env::var_os("PETAB_DIR").map(PathBuf::from).unwrap_or_else(|| here.join("../../../shared/petab"));
    if shared.join("REFERENCE.tsv").exists() {
        roots.push(("shared", shared));
    }
    let mut trials = Vec::new();
    for (label, root) in roots {
        for (name, reference) in references(&root.join("REFERENCE.tsv")) {
            let dir = root.join(&name);
            let listed = expected.get(&name).cloned();
            trials.push(Trial::test(format!("{label}/{name}"), move || check(&dir, &name, reference, listed)));
        }
    }
    libtest_mimic::run(&args, trials).exit();
}

fn check(dir: &Path, name: &str, reference: f64, listed: Option<String>) -> Result<(), Failed> {
    let outcome = evaluate(dir, name).map(|v| (v, v - reference));
    // The measured values are part of the result (the list of failures quotes them).
    match &outcome {
        Ok((v, d)) => println!("{name}: objective {v:.9}, reference {reference:.9}, difference {d:+.3e}"),
        Err(e) => println!("{name}: {e}"),
    }
    let pass = matches!(outcome, Ok((_, d)) if d.abs() <= TOLERANCE);
    match (pass, listed) {
        (true, None) => Ok(()),
        (true, Some(reason)) => Err(format!(
            "{name} is listed in expected_failures.txt ({reason}) but now matches the reference: remove it from the list"
        )
        .into()),
        (false, Some(_)) => Ok(()),
        (false, None) => Err(match outcome {
            Ok((v, d)) => format!("{name}: objective {v}, reference {reference}, difference {d:+.3e}").into(),
            Err(e) => format!("{name}: {e}").into(),
        }),
    }
}

fn evaluate(dir: &Path, name: &str) -> Result<f64, vht_fit::FitError> {
    let problem = vht_fit::read(&dir.join(format!("{name}.yaml")))?;
    let nominal = problem.nominal();
    let settings = vht_fit::Settings { rtol: 1e-10, atol: 1e-12, ..Default::default() };
    let objective = vht_fit::Objective::new(problem, settings)?;
    let value = objective.evaluate(&nominal)?;
    Ok(value.likelihood)
}

/// `problem<TAB>nllh` rows after a header.
fn references(path: &Path) -> Vec<(String, f64)> {
    let Ok(text) = std::fs::read_to_string(path) else { return Vec::new() };
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let (name, v) = l.split_once('\t')?;
            Some((name.trim().to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// `problem  reason...` per line; `#` starts a comment.
fn expected_failures(path: &Path) -> HashMap<String, String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(|l| match l.split_once(char::is_whitespace) {
            Some((name, reason)) => (name.to_string(), reason.trim().to_string()),
            None => (l.to_string(), String::new()),
        })
        .collect()
}
