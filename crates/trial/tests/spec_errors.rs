//! Spec errors: every message names the file, the line and the field; ids
//! unknown to the model come with the nearest valid ones.

use std::path::Path;

use expect_test::{expect, Expect};
use vht_trial::plan::Plan;
use vht_trial::spec::Spec;

/// A small valid spec on the bundled meal model; each case edits it.
const BASE: &str = r#"model = "../../models/dallaman2007_meal.xml"

[simulation]
end = 420

[population]
size = 10
seed = 3

[[population.parameters]]
id = "V_G"
dist = "lognormal"
median = 1.88
sigma = 0.1

[[arms]]
name = "control"

[[endpoints]]
name = "G_max"
variable = "G"
kind = "max"
"#;

/// Parses `text` (as if it were examples/trials/meal/case.toml) and builds
/// its plan; the error message, or "ok".
fn message(text: &str) -> String {
    let path = Path::new("../../examples/trials/meal/case.toml");
    match Spec::parse(text, path).and_then(Plan::new) {
        Ok(_) => "ok".into(),
        Err(e) => e.to_string(),
    }
}

fn check(text: &str, expect: Expect) {
    expect.assert_eq(&message(text));
}

fn edit(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "the base spec has no {from:?}");
    BASE.replacen(from, to, 1)
}

#[test]
fn base_is_valid() {
    check(BASE, expect![[r#"ok"#]]);
}

#[test]
fn not_toml() {
    check(
        &edit("end = 420", "end = "),
        expect![[
            r#"../../examples/trials/meal/case.toml:4: end: string values must be quoted, expected literal string"#
        ]],
    );
}

#[test]
fn missing_field() {
    check(&edit("end = 420\n", ""), expect!["../../examples/trials/meal/case.toml:3: simulation: missing field `end`"]);
}

#[test]
fn unknown_field() {
    check(
        &edit("end = 420", "stop = 420"),
        expect![[
            r#"../../examples/trials/meal/case.toml:4: stop: unknown field `stop`, expected one of `start`, `end`, `step`, `rtol`, `atol`, `max_steps`"#
        ]],
    );
}

#[test]
fn wrong_type() {
    check(
        &edit("size = 10", "size = \"ten\""),
        expect![[r#"../../examples/trials/meal/case.toml:7: size: invalid type: string "ten", expected u64"#]],
    );
}

#[test]
fn unknown_distribution() {
    check(
        &edit("dist = \"lognormal\"", "dist = \"lognormel\""),
        expect![[
            r#"../../examples/trials/meal/case.toml:12: population.parameters[0].dist: unknown distribution 'lognormel' (expected "normal", "lognormal", "uniform" or "truncnormal")"#
        ]],
    );
}

#[test]
fn negative_sigma() {
    check(
        &edit("sigma = 0.1", "sigma = -0.1"),
        expect![[
            r#"../../examples/trials/meal/case.toml:14: population.parameters[0].sigma: must be positive (found -0.1)"#
        ]],
    );
}

#[test]
fn parameter_of_another_distribution() {
    check(
        &edit("sigma = 0.1", "sd = 0.1"),
        expect![[
            r#"../../examples/trials/meal/case.toml:14: population.parameters[0].sd: a lognormal distribution takes median, sigma"#
        ]],
    );
}

#[test]
fn unknown_parameter_id() {
    check(
        &edit("id = \"V_G\"", "id = \"V_g\""),
        expect![[
            r#"../../examples/trials/meal/case.toml:11: population.parameters[0].id: 'V_g' is not in the model ../../examples/trials/meal/../../models/dallaman2007_meal.xml (nearest: 'V_G', 'V_I', 'G')"#
        ]],
    );
}

#[test]
fn sampled_rule_variable() {
    check(&edit("id = \"V_G\"", "id = \"EGP\""), expect!["../../examples/trials/meal/case.toml:11: population.parameters[0].id: 'EGP' is defined by an assignment rule, so it cannot be sampled (nearest: 'G_p', 'I_p')"]);
}

#[test]
fn unknown_endpoint_variable() {
    check(&edit("variable = \"G\"", "variable = \"Glc\""), expect!["../../examples/trials/meal/case.toml:21: endpoints[0].variable: 'Glc' is not in the model ../../examples/trials/meal/../../models/dallaman2007_meal.xml (nearest: 'G', 'G_b', 'G_p')"]);
}

#[test]
fn unknown_endpoint_kind() {
    check(&edit("kind = \"max\"", "kind = \"peak\""), expect!["../../examples/trials/meal/case.toml:22: endpoints[0].kind: unknown endpoint kind 'peak' (expected one of value, min, max, time_of_min, time_of_max, auc, time_in_range, first_crossing)"]);
}

#[test]
fn endpoint_time_outside_the_run() {
    check(
        &edit("kind = \"max\"", "kind = \"value\"\ntime = 500"),
        expect![
            "../../examples/trials/meal/case.toml:23: endpoints[0].time: 500 is outside the simulated time [0, 420]"
        ],
    );
}

#[test]
fn unknown_intervention_target() {
    let text = edit(
        "name = \"control\"",
        "name = \"treated\"\n[[arms.interventions]]\ntype = \"bolus\"\ntarget = \"Q_sto\"\namount = 1000\nat = 60",
    );
    check(
        &text,
        expect![[
            r#"../../examples/trials/meal/case.toml:20: arms[0].interventions[0].target: 'Q_sto' is defined by an assignment rule, so it cannot be dosed (nearest: 'Q_sto1', 'Q_sto2')"#
        ]],
    );
}

#[test]
fn repeated_dose_without_interval() {
    let text = edit(
        "name = \"control\"",
        "name = \"treated\"\n[[arms.interventions]]\ntype = \"bolus\"\ntarget = \"Q_sto1\"\namount = 1000\ncount = 3",
    );
    check(
        &text,
        expect![[
            r#"../../examples/trials/meal/case.toml:20: arms[0].interventions[0].every: missing; a repeated dose (count > 1) needs it"#
        ]],
    );
}

#[test]
fn correlation_not_positive_definite() {
    let text = BASE.replace(
        "[[arms]]",
        "[[population.parameters]]\nid = \"k_abs\"\ndist = \"normal\"\nmean = 0.05\nsd = 0.01\n\n[[population.parameters]]\nid = \"BW\"\ndist = \"normal\"\nmean = 78\nsd = 10\n\n[population.correlation]\nmatrix = [[1, 0.9, -0.9], [0.9, 1, 0.9], [-0.9, 0.9, 1]]\n\n[[arms]]",
    );
    check(
        &text,
        expect![[
            r#"../../examples/trials/meal/case.toml:29: population.correlation.matrix: is not positive definite (not a valid correlation matrix)"#
        ]],
    );
}

#[test]
fn correlation_of_an_unsampled_id() {
    let text = BASE.replace(
        "[[arms]]",
        "[population.correlation]\nids = [\"V_G\", \"VG\"]\nmatrix = [[1, 0.5], [0.5, 1]]\n\n[[arms]]",
    );
    check(
        &text,
        expect![[
            r#"../../examples/trials/meal/case.toml:17: population.correlation.ids[1]: 'VG' is not one of population.parameters (nearest: 'V_G')"#
        ]],
    );
}

#[test]
fn responder_of_an_unknown_endpoint() {
    let text = format!("{BASE}\n[analysis]\n[[analysis.responders]]\nendpoint = \"Gmax\"\nbelow = 10\n");
    check(&text, expect!["../../examples/trials/meal/case.toml:26: analysis.responders[0].endpoint: 'Gmax' is not an endpoint (nearest: 'G_max')"]);
}

#[test]
fn missing_model_file() {
    check(
        &edit("dallaman2007_meal.xml", "nothere.xml"),
        expect![[
            r#"cannot read ../../examples/trials/meal/../../models/nothere.xml: No such file or directory (os error 2)"#
        ]],
    );
}

#[test]
fn impossible_constraint_stops_with_the_screening_statistics() {
    let text = edit("seed = 3", "seed = 3\nmax_candidates = 40").replacen(
        "[[arms]]",
        "[[population.constraints]]\nvariable = \"G\"\ntime = 0\nmin = 20\nscale = 0.0555\n\n[[arms]]",
        1,
    );
    let path = Path::new("../../examples/trials/meal/case.toml");
    let plan = Plan::new(Spec::parse(&text, path).expect("a valid spec")).expect("a plan");
    let err = vht_trial::run::run_in_memory(&plan, 1).err().map(|e| e.to_string()).unwrap_or_default();
    expect!["only 0 plausible candidates of the 10 wanted after 40 tried (0 failed to simulate; 'G >= 20 at t = 0' rejected 40); widen the constraints, change the distributions or raise population.max_candidates"].assert_eq(&err);
}

#[test]
fn unknown_constraint_variable() {
    let text =
        BASE.replacen("[[arms]]", "[[population.constraints]]\nvariable = \"Gp\"\ntime = 0\nmin = 1\n\n[[arms]]", 1);
    check(&text, expect!["../../examples/trials/meal/case.toml:17: population.constraints[0].variable: 'Gp' is not in the model ../../examples/trials/meal/../../models/dallaman2007_meal.xml (nearest: 'EGP', 'G', 'G_p')"]);
}

#[test]
fn unknown_assignment() {
    check(
        &format!("assignment = \"random\"\n{BASE}"),
        expect![[
            r#"../../examples/trials/meal/case.toml:1: assignment: unknown assignment 'random' (expected "crossover" or "randomised")"#
        ]],
    );
}

#[test]
fn sobol_of_an_unknown_endpoint() {
    check(&format!("{BASE}\n[analysis.sobol]\nendpoints = [\"Gmax\"]\n"), expect!["../../examples/trials/meal/case.toml:25: analysis.sobol.endpoints[0]: 'Gmax' is not an endpoint (nearest: 'G_max')"]);
}

#[test]
fn sobol_with_too_few_samples() {
    check(
        &format!("{BASE}\n[analysis.sobol]\nsamples = 4\n"),
        expect!["../../examples/trials/meal/case.toml:25: analysis.sobol.samples: must be between 16 and 2^24"],
    );
}

#[test]
fn missing_covariate_table() {
    let text = BASE.replacen("[[arms]]", "[population.covariates]\nfile = \"nothere.csv\"\n\n[[arms]]", 1);
    check(&text, expect!["../../examples/trials/meal/case.toml:17: population.covariates.file: cannot read ../../examples/trials/meal/nothere.csv: No such file or directory (os error 2)"]);
}

#[test]
fn endpoint_with_neither_variable_nor_expression() {
    check(&edit("variable = \"G\"\n", ""), expect!["../../examples/trials/meal/case.toml:19: endpoints[0].variable: an endpoint needs either variable (a model id) or expression (a formula over model ids)"]);
}

#[test]
fn unknown_output_variable() {
    check(&format!("{BASE}\n[output]\ntrajectories = true\nvariables = [\"G\", \"Ipp\"]\n"), expect!["../../examples/trials/meal/case.toml:26: output.variables: 'Ipp' is not in the model ../../examples/trials/meal/../../models/dallaman2007_meal.xml (nearest: 'I_p', 'EGP', 'G_p')"]);
}
