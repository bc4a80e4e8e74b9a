//! `vht fit --gradient`: the real binary on vht-fit's checked-in `dosing`
//! problem (a pharmacokinetic model with two doses at fixed times). With
//! L-BFGS, adjoint and forward gradients reach the same optimum from the
//! nominal point; the summary says which was used; the adjoint with the
//! fides trust region (which needs the Gauss-Newton Hessian) is refused
//! with a message that says what to do.

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

fn dosing() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fit/tests/data/dosing/dosing.yaml").display().to_string()
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vht-cli-fit-gradient-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The best objective from summary.json.
fn best(dir: &Path) -> (f64, String) {
    let text = std::fs::read_to_string(dir.join("summary.json")).expect("summary.json");
    let field = |name: &str| {
        let at = text.find(&format!("\"{name}\": ")).unwrap_or_else(|| panic!("no {name} in {text}"));
        let rest = &text[at + name.len() + 4..];
        rest[..rest.find([',', '\n']).unwrap()].trim_matches('"').to_string()
    };
    (field("best").parse().unwrap(), field("gradient"))
}

#[test]
fn adjoint_and_forward_gradients_reach_the_same_optimum() {
    let mut found = Vec::new();
    for gradient in ["forward", "adjoint"] {
        let dir = tmp(gradient);
        let args =
            ["fit", &dosing(), "--optimizer", "lbfgsb", "--gradient", gradient, "--starts", "0", "--quiet", "--out"];
        let mut args: Vec<&str> = args.to_vec();
        let d = dir.display().to_string();
        args.push(&d);
        let (ok, _, err) = vht(&args);
        assert!(ok, "{err}");
        let (fval, used) = best(&dir);
        assert_eq!(used, gradient);
        found.push(fval);
    }
    // The nominal point is not the optimum (the data carry 5% offsets): its
    // objective is -20.08 (`vht fit dosing.yaml --evaluate`).
    assert!(found[0] < -21.0, "no progress from the nominal point: {}", found[0]);
    assert!((found[0] - found[1]).abs() < 1e-4, "forward {} vs adjoint {}", found[0], found[1]);
}

#[test]
fn the_adjoint_is_refused_with_the_trust_region() {
    let dir = tmp("refused").display().to_string();
    let (ok, _, err) = vht(&["fit", &dosing(), "--gradient", "adjoint", "--starts", "0", "--quiet", "--out", &dir]);
    assert!(!ok);
    assert!(err.contains("--optimizer lbfgsb"), "{err}");
}

#[test]
fn auto_says_which_gradient_it_chose() {
    let dir = tmp("auto").display().to_string();
    let (ok, _, err) = vht(&["fit", &dosing(), "--optimizer", "lbfgsb", "--starts", "0", "--quiet", "--out", &dir]);
    assert!(ok, "{err}");
    assert!(err.contains("gradient: forward (") || err.contains("gradient: adjoint ("), "{err}");
}
