//! Endpoints against a model with a known solution: x' = -k x, x(0) = 2,
//! k = 0.5, so x(t) = 2 exp(-t/2). Interventions against the same model.

use std::path::Path;

use vht_ir::{Expr, Model, Role, SymbolKind};
use vht_trial::plan::Plan;
use vht_trial::spec::Spec;

fn decay() -> Model {
    let mut m = Model::default();
    let k = m.add("k", Role::Parameter, SymbolKind::Parameter, Expr::Num(0.5));
    let x = m.add("x", Role::Parameter, SymbolKind::State { rate: Expr::Num(0.0) }, Expr::Num(2.0));
    m.symbols[x.index()].kind = SymbolKind::State { rate: -(Expr::Sym(k) * Expr::Sym(x)) };
    m
}

const ENDPOINTS: &str = r#"
[[endpoints]]
name = "auc"
variable = "x"
kind = "auc"
from = 0
to = 4

[[endpoints]]
name = "auc_late"
variable = "x"
kind = "auc"
from = 1
to = 3

[[endpoints]]
name = "tmax"
variable = "x"
kind = "time_of_max"

[[endpoints]]
name = "max"
variable = "x"
kind = "max"

[[endpoints]]
name = "min"
variable = "x"
kind = "min"

[[endpoints]]
name = "cross"
variable = "x"
kind = "first_crossing"
threshold = 1.0
direction = "down"

[[endpoints]]
name = "never"
variable = "x"
kind = "first_crossing"
threshold = 3.0
direction = "up"

[[endpoints]]
name = "tir"
variable = "x"
kind = "time_in_range"
low = 0.5
high = 1.0

[[endpoints]]
name = "at3"
variable = "x"
kind = "value"
time = 3

[[endpoints]]
name = "scaled"
variable = "x"
kind = "value"
time = 2
scale = 10
"#;

/// Endpoints of patient 0 in each arm of a spec on the decay model.
fn run(arms: &str) -> Vec<Vec<f64>> {
    let text = format!(
        "model = \"decay.xml\"\n[simulation]\nend = 4\nstep = 0.25\nrtol = 1e-10\natol = 1e-12\n[population]\nsize = 1\n{arms}\n{ENDPOINTS}"
    );
    let spec = Spec::parse(&text, Path::new("decay.toml")).expect("a valid spec");
    let plan = Plan::with_model(spec, decay(), vec![], 0).expect("a plan");
    plan.arms.iter().map(|arm| vht_trial::run::endpoints(&plan, arm, 0).expect("simulates")).collect()
}

fn close(name: &str, got: f64, want: f64) {
    assert!((got - want).abs() < 1e-6, "{name}: {got}, expected {want} (error {:e})", got - want);
}

#[test]
fn exponential_decay_endpoints_are_exact() {
    let e = &run("[[arms]]\nname = \"control\"")[0];
    let x = |t: f64| 2.0 * (-t / 2.0).exp();
    close("auc 0-4", e[0], 4.0 * (1.0 - (-2.0f64).exp()));
    close("auc 1-3", e[1], 4.0 * ((-0.5f64).exp() - (-1.5f64).exp()));
    close("time of max", e[2], 0.0);
    close("max", e[3], 2.0);
    close("min", e[4], x(4.0));
    close("crossing of 1", e[5], 2.0 * 2f64.ln());
    assert!(e[6].is_nan(), "a threshold never crossed is undefined, got {}", e[6]);
    // 0.5 <= x <= 1 from t = 2 ln 2 (x = 1) to t = 4 ln 2 (x = 0.5).
    close("time in range", e[7], 2.0 * 2f64.ln());
    close("value at 3", e[8], x(3.0));
    close("scaled value at 2", e[9], 10.0 * x(2.0));
}

#[test]
fn interventions_change_the_solution_as_written() {
    let arms = r#"
[[arms]]
name = "control"

[[arms]]
name = "bolus"
[[arms.interventions]]
type = "bolus"
target = "x"
amount = 1.0
at = 1

[[arms]]
name = "start_dose_and_faster"
[[arms.interventions]]
type = "bolus"
target = "x"
amount = 2.0
at = 0
[[arms.interventions]]
type = "set"
target = "k"
factor = 2.0
at = 0

[[arms]]
name = "infusion"
[[arms.interventions]]
type = "infusion"
target = "x"
rate = 0.5
duration = 2
at = 1

[[arms]]
name = "repeated"
[[arms.interventions]]
type = "bolus"
target = "x"
amount = 1.0
at = 0.5
every = 1
count = 3
"#;
    let e = run(arms);
    let x = |t: f64| 2.0 * (-t / 2.0).exp();
    // Bolus of 1 at t = 1: x(3) = (x(1) + 1) exp(-1); AUC gains the bolus' own decay.
    close("bolus: value at 3", e[1][8], (x(1.0) + 1.0) * (-1.0f64).exp());
    close("bolus: auc 0-4", e[1][0], e[0][0] + 2.0 * (1.0 - (-1.5f64).exp()));
    // Dose 2 at the start (x0 = 4) with k doubled: x = 4 exp(-t).
    close("start dose: value at 3", e[2][8], 4.0 * (-3.0f64).exp());
    close("start dose: max", e[2][3], 4.0);
    // Infusion of 0.5 from 1 to 3: x' = -x/2 + 0.5 there, so
    // x(3) = 1 + (x(1) - 1) exp(-1).
    close("infusion: value at 3", e[3][8], 1.0 + (x(1.0) - 1.0) * (-1.0f64).exp());
    // Boluses at 0.5, 1.5, 2.5: each adds exp(-(3 - t)/2) at t = 3.
    let want = x(3.0) + (-1.25f64).exp() + (-0.75f64).exp() + (-0.25f64).exp();
    close("repeated: value at 3", e[4][8], want);
}

/// x' = k x^2, x(0) = 1 blows up at t = 1/k: patients with k > 1/2 fail before t = 2.
#[test]
fn a_failed_patient_is_recorded_and_the_trial_goes_on() {
    let mut m = Model::default();
    let k = m.add("k", Role::Parameter, SymbolKind::Parameter, Expr::Num(0.1));
    let x = m.add("x", Role::Parameter, SymbolKind::State { rate: Expr::Num(0.0) }, Expr::Num(1.0));
    m.symbols[x.index()].kind = SymbolKind::State { rate: Expr::Sym(k) * Expr::Sym(x) * Expr::Sym(x) };
    let text = "model = \"blowup.xml\"\n[simulation]\nend = 2\nmax_steps = 20000\n[population]\nsize = 20\nseed = 5\n\
                [[population.parameters]]\nid = \"k\"\ndist = \"uniform\"\nlow = 0.1\nhigh = 1.0\n\
                [[arms]]\nname = \"only\"\n[[endpoints]]\nname = \"x_end\"\nvariable = \"x\"\nkind = \"value\"\ntime = 2\n";
    let spec = Spec::parse(text, Path::new("blowup.toml")).expect("a valid spec");
    let plan = Plan::with_model(spec, m, vec![], 0).expect("a plan");
    let (_, t) = vht_trial::run::run_in_memory(&plan, 2).expect("the trial runs");
    assert_eq!(t.len(), 20);
    let mut failed = 0;
    for r in 0..t.len() {
        let k = t.params[0][r];
        match &t.reason[r] {
            Some(reason) => {
                failed += 1;
                assert!(k > 0.45, "k = {k} failed: {reason}");
                assert!(t.endpoints[0][r].is_nan());
            }
            None => {
                assert!(k < 0.5, "k = {k} should have blown up");
                // Default tolerances (rtol 1e-6): relative agreement.
                let exact = 1.0 / (1.0 - 2.0 * k);
                assert!((t.endpoints[0][r] / exact - 1.0).abs() < 1e-4, "k = {k}: {} vs {exact}", t.endpoints[0][r]);
            }
        }
    }
    assert!(failed > 5 && failed < 20, "{failed} of 20 failed");
}
