//! Randomised arms, covariates resampled from a table, endpoints on
//! expressions and the trajectory file, on x' = -k x (x(t) = x0 exp(-k t)).

use std::path::{Path, PathBuf};

use vht_ir::{Expr, Model, Role, SymbolKind};
use vht_trial::plan::Plan;
use vht_trial::run::run_in_memory;
use vht_trial::spec::Spec;

fn decay() -> Model {
    let mut m = Model::default();
    let k = m.add("k", Role::Parameter, SymbolKind::Parameter, Expr::Num(0.5));
    let x = m.add("x", Role::Parameter, SymbolKind::State { rate: Expr::Num(0.0) }, Expr::Num(2.0));
    m.symbols[x.index()].kind = SymbolKind::State { rate: -(Expr::Sym(k) * Expr::Sym(x)) };
    m
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch folder");
    dir
}

// The error type is large by design (it carries the spec location).
#[allow(clippy::result_large_err)]
fn plan(text: &str, path: &Path) -> Result<Plan, vht_trial::error::TrialError> {
    Spec::parse(text, path).and_then(|s| Plan::with_model(s, decay(), vec![], 0))
}

const RANDOMISED: &str = r#"
model = "decay.xml"
assignment = "randomised"
[simulation]
end = 4
step = 0.1
[population]
size = 40
seed = 9
[[population.parameters]]
id = "k"
dist = "lognormal"
median = 0.5
sigma = 0.2
[[arms]]
name = "control"
ratio = 2
[[arms]]
name = "fast"
[[arms.interventions]]
type = "set"
target = "k"
factor = 2
[[arms]]
name = "slow"
[[arms.interventions]]
type = "set"
target = "k"
factor = 0.5
[[endpoints]]
name = "auc"
variable = "x"
kind = "auc"
[analysis]
bootstrap = 200
"#;

#[test]
fn randomised_arms_follow_the_ratios_in_every_block() {
    let p = plan(RANDOMISED, Path::new("r.toml")).expect("a valid spec");
    let (_, t) = run_in_memory(&p, 2).expect("runs");
    assert_eq!(t.len(), 40, "one row per patient");
    // Blocks of 2 + 1 + 1 = 4 patients hold control twice, each other arm once.
    for block in t.arm.chunks(4) {
        let mut counts = [0; 3];
        for &a in block {
            counts[a as usize] += 1;
        }
        assert_eq!(counts, [2, 1, 1], "block {block:?}");
    }
    // Not the same order in every block (it is drawn per block).
    assert!(t.arm.chunks(4).any(|b| b != &t.arm[0..4]));
    let (_, t1) = run_in_memory(&p, 1).expect("runs");
    assert_eq!(t.arm, t1.arm, "the assignment does not depend on threads");

    let summary = vht_trial::analysis::summarize(
        &p.spec,
        &t,
        &vht_trial::error::ScreeningStats { tried: 40, accepted: 40, rejected_by: vec![], failed: 0 },
    );
    let fast = &summary.comparisons[0];
    assert!(!fast.paired && fast.arm == "fast");
    let d = &fast.endpoints[0];
    assert_eq!((d.n, d.n_control, d.sd), (10, Some(20), None));
    // A faster decay lowers the AUC: the whole interval is below 0.
    assert!(d.ci_high.expect("a CI") < 0.0, "{d:?}");
    let slow = &summary.comparisons[1].endpoints[0];
    assert!(slow.ci_low.expect("a CI") > 0.0, "{slow:?}");
}

#[test]
fn a_ratio_without_randomisation_is_refused() {
    let text = RANDOMISED.replace("assignment = \"randomised\"\n", "");
    let e = plan(&text, Path::new("r.toml")).err().expect("an error").to_string();
    assert!(e.starts_with("r.toml:16: arms[0].ratio: an allocation ratio needs assignment"), "{e}");
}

#[test]
fn covariates_are_resampled_as_whole_rows() {
    let dir = scratch("covariates");
    std::fs::write(dir.join("real.csv"), "id,k,x\n1,0.3,1.0\n2,0.6,3.0\n3,0.9,5.0\n").expect("written");
    let text = r#"
model = "decay.xml"
[simulation]
end = 4
[population]
size = 60
seed = 4
[population.covariates]
file = "real.csv"
ids = ["k", "x"]
[[arms]]
name = "control"
[[endpoints]]
name = "auc"
variable = "x"
kind = "auc"
"#;
    let p = plan(text, &dir.join("trial.toml")).expect("a valid spec");
    let (_, t) = run_in_memory(&p, 2).expect("runs");
    assert_eq!(t.param_names, ["k", "x"]);
    let mut seen = [0; 3];
    for r in 0..t.len() {
        let (k, x0) = (t.params[0][r], t.params[1][r]);
        // The pair is one of the table's rows: the joint distribution is kept.
        let row = [(0.3, 1.0), (0.6, 3.0), (0.9, 5.0)].iter().position(|&p| p == (k, x0)).expect("a row of the table");
        seen[row] += 1;
        let exact = x0 / k * (1.0 - (-4.0 * k).exp());
        assert!((t.endpoints[0][r] - exact).abs() < 1e-4 * exact, "row {r}");
    }
    assert!(seen.iter().all(|&n| n >= 10), "every row drawn about a third of the time: {seen:?}");

    // A bad cell names the table, its line and the column.
    std::fs::write(dir.join("real.csv"), "id,k,x\n1,0.3,1.0\n2,abc,3.0\n").expect("written");
    let e = plan(text, &dir.join("trial.toml")).err().expect("an error").to_string();
    assert!(e.contains("real.csv:3: population.covariates (from "), "{e}");
    assert!(e.contains("column 'k': 'abc' is not a finite number"), "{e}");
    // An id that is not a column comes with the nearest columns.
    let e = plan(&text.replace("ids = [\"k\", \"x\"]", "ids = [\"kk\"]"), &dir.join("trial.toml"))
        .err()
        .expect("an error")
        .to_string();
    assert!(e.contains("trial.toml:10: population.covariates.ids[0]: 'kk' is not a column of"), "{e}");
    assert!(e.contains("(nearest: 'k'"), "{e}");
}

const EXPRESSION: &str = r#"
model = "decay.xml"
[simulation]
end = 4
step = 0.5
[population]
size = 5
[[population.parameters]]
id = "k"
dist = "uniform"
low = 0.2
high = 1.0
[[arms]]
name = "control"
[[endpoints]]
name = "y1"
expression = "2 * x + k"
kind = "value"
time = 1
[[endpoints]]
name = "auc_sq"
expression = "x^2"
kind = "auc"
"#;

#[test]
fn endpoints_on_expressions() {
    let p = plan(EXPRESSION, Path::new("e.toml")).expect("a valid spec");
    let (_, t) = run_in_memory(&p, 1).expect("runs");
    for r in 0..t.len() {
        let k = t.params[0][r];
        let y1 = 2.0 * 2.0 * (-k).exp() + k;
        assert!((t.endpoints[0][r] - y1).abs() < 1e-5, "y1: {} vs {y1}", t.endpoints[0][r]);
        // The integral of 4 exp(-2 k t) over [0, 4].
        let auc = 2.0 / k * (1.0 - (-8.0 * k).exp());
        assert!((t.endpoints[1][r] - auc).abs() < 1e-4 * auc, "auc: {} vs {auc}", t.endpoints[1][r]);
    }
    let e = plan(&EXPRESSION.replace("2 * x + k", "2 * xx + k"), Path::new("e.toml")).err().expect("an error");
    assert_eq!(
        e.to_string(),
        "e.toml:17: endpoints[0].expression: 'xx' (in '2 * xx + k') is not in the model decay.xml (nearest: 'x', 'k')"
    );
    let e = plan(&EXPRESSION.replace("2 * x + k", "2 * (x + k"), Path::new("e.toml")).err().expect("an error");
    assert!(e.to_string().starts_with("e.toml:17: endpoints[0].expression: cannot parse '2 * (x + k'"), "{e}");
    let both = EXPRESSION.replace("expression = \"x^2\"", "expression = \"x^2\"\nvariable = \"x\"");
    let e = plan(&both, Path::new("e.toml")).err().expect("an error");
    assert!(e.to_string().contains("either variable (a model id) or expression"), "{e}");
}

#[test]
fn trajectories_are_written_for_the_first_patients() {
    use arrow_array::{Float64Array, UInt64Array};
    let dir = scratch("trajectories");
    let text = format!("{EXPRESSION}\n[output]\ntrajectories = true\npatients = 3\nvariables = [\"x\", \"x * k\"]\n");
    let p = plan(&text, Path::new("e.toml")).expect("a valid spec");
    let opts = vht_trial::store::RunOptions { out: dir.clone(), threads: 1, ..Default::default() };
    vht_trial::store::run(&p, &opts, &|_| {}).expect("runs");
    let f = std::fs::File::open(dir.join("trajectories.parquet")).expect("trajectories.parquet written");
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
        .and_then(|b| b.build())
        .expect("a Parquet file");
    let mut rows = 0;
    for batch in reader {
        let batch = batch.expect("a batch");
        let col = |n: &str| batch.column_by_name(n).unwrap_or_else(|| panic!("column {n}"));
        let patient = col("patient").as_any().downcast_ref::<UInt64Array>().expect("u64");
        let time = col("time").as_any().downcast_ref::<Float64Array>().expect("f64");
        let x = col("x").as_any().downcast_ref::<Float64Array>().expect("f64");
        let xk = col("x * k").as_any().downcast_ref::<Float64Array>().expect("f64");
        for r in 0..batch.num_rows() {
            let k = p.sampler.sample(patient.value(r))[0];
            let exact = 2.0 * (-k * time.value(r)).exp();
            assert!((x.value(r) - exact).abs() < 1e-5, "x at {}: {} vs {exact}", time.value(r), x.value(r));
            assert!((xk.value(r) - exact * k).abs() < 1e-5);
            assert!(patient.value(r) < 3);
        }
        rows += batch.num_rows();
    }
    assert_eq!(rows, 3 * 9, "3 patients x 9 times (0, 0.5, ..., 4)");
}
