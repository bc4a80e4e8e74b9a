//! The SBML Test Suite as a test: one trial per case.
//!
//! Cases come from `$SBML_TEST_SUITE`, else the full suite in
//! `../shared/sbml-test-suite/semantic` beside the repository, else the
//! representative subset checked in under `tests/data/` (which always runs
//! too). A case on the expected-failures list must fail (and so it passes
//! here); when it starts passing the trial fails, so the list only shrinks.

use std::path::Path;

use libtest_mimic::{Arguments, Failed, Trial};
use vht_conformance::{discover, expected_failures, run_case, Outcome, RunOptions};

fn main() {
    let args = Arguments::from_args();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut trials = Vec::new();
    let expected = expected_failures();
    let subset = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut sources = vec![("subset", subset)];
    match vht_conformance::default_suite(&root) {
        Some(full) => sources.push(("suite", full)),
        None => eprintln!(
            "note: the full SBML Test Suite was not found (set SBML_TEST_SUITE or put it in ../shared/sbml-test-suite/semantic); running the checked-in subset only"
        ),
    }
    for (label, dir) in sources {
        let cases = match discover(&dir, None) {
            Ok(c) => c,
            Err(e) => {
                trials.push(Trial::test(format!("{label}::discover"), move || {
                    Err(format!("{}: {e}", dir.display()).into())
                }));
                continue;
            }
        };
        for case in cases {
            let listed = expected.iter().find(|(id, _)| *id == case.id).map(|(_, why)| why.clone());
            trials.push(Trial::test(format!("{label}::{}", case.id), move || {
                let outcome = run_case(&case, &RunOptions::default());
                judge(&outcome, listed.as_deref())
            }));
        }
    }
    libtest_mimic::run(&args, trials).exit();
}

fn judge(outcome: &Outcome, listed: Option<&str>) -> Result<(), Failed> {
    match (outcome, listed) {
        (Outcome::Pass | Outcome::Skipped(_), None) => Ok(()),
        (Outcome::Pass, Some(why)) => {
            Err(format!("passes now, but is on the expected-failures list ({why}): remove it from the list").into())
        }
        (_, Some(_)) => Ok(()),
        (o, None) => Err(format!("{}: {}", o.label(), o.detail()).into()),
    }
}
