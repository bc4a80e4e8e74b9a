//! The SBML Test Suite, run through OpenVHT.
//!
//! A case folder `NNNNN/` holds the model at several SBML levels, a
//! `NNNNN-settings.txt` (time span, variables, tolerances, amount or
//! concentration), the expected `NNNNN-results.csv` and a `NNNNN-model.m`
//! with its tags. [`run_case`] simulates the highest-level model and judges
//! it by the suite's rule: at every output point and for every variable,
//! `|expected - actual| <= absolute + relative * |expected|`.
//!
//! The checked-in [`EXPECTED_FAILURES`] list names each case we know we fail,
//! with the reason; it may only shrink (see `tests/suite.rs`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use vht_ir::{Expr, Model};
use vht_sim::{Column, Simulator, TimeCourse};

/// Cases we fail, one per line: `NNNNN reason`.
pub const EXPECTED_FAILURES: &str = include_str!("../expected-failures.txt");

/// The parsed expected-failures list: (case id, reason).
pub fn expected_failures() -> Vec<(String, String)> {
    EXPECTED_FAILURES
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| match l.split_once(char::is_whitespace) {
            Some((id, why)) => (id.to_string(), why.trim().to_string()),
            None => (l.to_string(), String::new()),
        })
        .collect()
}

#[derive(Clone, Debug, Default)]
pub struct Settings {
    pub start: f64,
    pub duration: f64,
    pub steps: usize,
    pub variables: Vec<String>,
    pub absolute: f64,
    pub relative: f64,
    pub amount: Vec<String>,
    pub concentration: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct Case {
    pub id: String,
    pub dir: PathBuf,
    pub component_tags: Vec<String>,
    pub test_tags: Vec<String>,
    pub test_type: String,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Pass,
    /// Simulated, but some value is outside the tolerance.
    Fail(String),
    /// Could not load or simulate.
    Error(String),
    Timeout,
    Skipped(String),
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail(_) => "fail",
            Outcome::Error(_) => "error",
            Outcome::Timeout => "timeout",
            Outcome::Skipped(_) => "skipped",
        }
    }
    pub fn detail(&self) -> &str {
        match self {
            Outcome::Fail(s) | Outcome::Error(s) | Outcome::Skipped(s) => s,
            Outcome::Pass => "",
            Outcome::Timeout => "wall-clock limit exceeded",
        }
    }
}

/// The suite folder to use: `$SBML_TEST_SUITE`, else `shared/sbml-test-suite/semantic`
/// beside the repository, if it exists.
pub fn default_suite(repo_root: &Path) -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("SBML_TEST_SUITE") {
        return Some(PathBuf::from(dir));
    }
    let shared = repo_root.join("../shared/sbml-test-suite/semantic");
    shared.is_dir().then_some(shared)
}

/// Every case folder under `suite` whose number lies in `range`, in order.
pub fn discover(suite: &Path, range: Option<(u32, u32)>) -> std::io::Result<Vec<Case>> {
    let mut cases = Vec::new();
    for entry in std::fs::read_dir(suite)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(num) = name.parse::<u32>() else {
            continue;
        };
        if name.len() != 5 || !entry.path().is_dir() {
            continue;
        }
        if let Some((lo, hi)) = range {
            if num < lo || num > hi {
                continue;
            }
        }
        let m = std::fs::read_to_string(entry.path().join(format!("{name}-model.m"))).unwrap_or_default();
        let field = |key: &str| {
            m.lines()
                .find_map(|l| l.trim().strip_prefix(key).map(|r| r.trim_start_matches(':').trim().to_string()))
                .unwrap_or_default()
        };
        let list = |s: String| s.split(',').map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).collect();
        cases.push(Case {
            id: name,
            dir: entry.path(),
            component_tags: list(field("componentTags")),
            test_tags: list(field("testTags")),
            test_type: field("testType"),
        });
    }
    cases.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(cases)
}

pub fn read_settings(case: &Case) -> Result<Settings, String> {
    let path = case.dir.join(format!("{}-settings.txt", case.id));
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut s = Settings::default();
    for (n, line) in text.lines().enumerate() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if value.is_empty() {
            // Flux balance cases leave the time settings empty.
            continue;
        }
        let list = || value.split(',').map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).collect();
        let num = || {
            value
                .parse::<f64>()
                .map_err(|_| format!("{}:{}: '{key}' is not a number: '{value}'", path.display(), n + 1))
        };
        match key.trim() {
            "start" => s.start = num()?,
            "duration" => s.duration = num()?,
            "steps" => s.steps = num()? as usize,
            "variables" => s.variables = list(),
            "absolute" => s.absolute = num()?,
            "relative" => s.relative = num()?,
            "amount" => s.amount = list(),
            "concentration" => s.concentration = list(),
            _ => {}
        }
    }
    Ok(s)
}

/// The expected results: header (without `time`) and rows (with time first).
pub fn read_expected(case: &Case) -> Result<(Vec<String>, Vec<Vec<f64>>), String> {
    let path = case.dir.join(format!("{}-results.csv", case.id));
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<String> =
        lines.next().ok_or("empty results file")?.split(',').map(|h| h.trim().to_string()).collect();
    let mut rows = Vec::new();
    for (n, line) in lines.enumerate() {
        let row: Result<Vec<f64>, _> = line.split(',').map(|v| parse_number(v.trim())).collect();
        rows.push(row.map_err(|v| format!("{}:{}: bad number '{v}'", path.display(), n + 2))?);
    }
    Ok((header.into_iter().skip(1).collect(), rows))
}

fn parse_number(v: &str) -> Result<f64, String> {
    match v.to_ascii_lowercase().as_str() {
        "nan" => Ok(f64::NAN),
        "inf" | "infinity" => Ok(f64::INFINITY),
        "-inf" | "-infinity" => Ok(f64::NEG_INFINITY),
        _ => v.parse().map_err(|_| v.to_string()),
    }
}

/// The model file of the highest SBML level and version in the case.
pub fn model_file(case: &Case) -> Option<PathBuf> {
    ["l3v2", "l3v1", "l2v5", "l2v4", "l2v3", "l2v2", "l2v1", "l1v2", "l1v1"]
        .iter()
        .map(|lv| case.dir.join(format!("{}-sbml-{lv}.xml", case.id)))
        .find(|p| p.is_file())
}

/// The output column for a variable of the settings: species in the
/// `amount` list report their amount, those in `concentration` their
/// concentration, everything else its value.
pub fn column(model: &Model, id: &str, settings: &Settings) -> Result<Column, String> {
    let sym = model.lookup(id).ok_or_else(|| format!("variable '{id}' is not in the model"))?;
    let expr = match model.species_view(sym) {
        Some(view) if settings.amount.iter().any(|a| a == id) => view.amount.clone(),
        Some(view) if settings.concentration.iter().any(|c| c == id) => view.concentration.clone(),
        _ => Expr::Sym(sym),
    };
    Ok(Column { name: id.to_string(), expr })
}

/// The suite's rule for one value.
pub fn within(expected: f64, actual: f64, abs: f64, rel: f64) -> bool {
    if expected.is_nan() {
        return actual.is_nan();
    }
    if expected.is_infinite() {
        return actual == expected;
    }
    (expected - actual).abs() <= abs + rel * expected.abs()
}

#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Wall-clock limit per case.
    pub timeout: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions { timeout: Duration::from_secs(20) }
    }
}

/// Runs one case and judges it. Never panics: a panic inside is an `Error`.
pub fn run_case(case: &Case, opts: &RunOptions) -> Outcome {
    match std::panic::catch_unwind(|| run_case_inner(case, opts)) {
        Ok(o) => o,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Outcome::Error(format!("panic: {msg}"))
        }
    }
}

fn run_case_inner(case: &Case, opts: &RunOptions) -> Outcome {
    if case.test_type.is_empty() && !case.dir.join(format!("{}-settings.txt", case.id)).is_file() {
        return Outcome::Skipped("no settings".into());
    }
    if case.test_type.contains("Stochastic") {
        return Outcome::Skipped("stochastic case".into());
    }
    let settings = match read_settings(case) {
        Ok(s) => s,
        Err(e) => return Outcome::Error(e),
    };
    let (header, expected) = match read_expected(case) {
        Ok(x) => x,
        Err(e) => return Outcome::Error(e),
    };
    let Some(file) = model_file(case) else {
        return Outcome::Error("no SBML file".into());
    };
    if case.test_type == "FluxBalanceSteadyState" {
        return judge_fba(&file, &settings, &header, &expected);
    }
    let (model, _diags) = match vht_lower::load(&file) {
        Ok(m) => m,
        Err(e) => return Outcome::Error(e.to_string()),
    };
    let columns: Result<Vec<Column>, String> = header.iter().map(|id| column(&model, id, &settings)).collect();
    let columns = match columns {
        Ok(c) => c,
        Err(e) => return Outcome::Error(e),
    };
    let sim = match Simulator::new(model, &vht_codegen::Options::default()) {
        Ok(s) => s,
        Err(e) => return Outcome::Error(e.to_string()),
    };
    let tc = TimeCourse {
        start: settings.start,
        end: settings.start + settings.duration,
        points: settings.steps + 1,
        // Much tighter than the judging tolerance, so that what is judged is the semantics.
        rtol: 1e-10,
        atol: (settings.absolute * 1e-6).clamp(1e-18, 1e-12),
        max_steps: 2_000_000,
        deadline: Some(Instant::now() + opts.timeout),
        seed: 1,
        times: None,
        linear_solver: vht_sim::LinearSolver::Auto,
    };
    let outputs = match sim.outputs(&columns) {
        Ok(o) => o,
        Err(e) => return Outcome::Error(e.to_string()),
    };
    let traj = match vht_sim::simulate(&sim, &tc, &outputs, &[]) {
        Ok(t) => t,
        Err(vht_sim::SimError::Timeout { .. }) => return Outcome::Timeout,
        Err(e) => return Outcome::Error(e.to_string()),
    };
    if traj.times.len() != expected.len() {
        return Outcome::Fail(format!("{} rows, expected {}", traj.times.len(), expected.len()));
    }
    for (i, row) in expected.iter().enumerate() {
        for (j, id) in header.iter().enumerate() {
            let (e, a) = (row[j + 1], traj.row(i)[j]);
            if !within(e, a, settings.absolute, settings.relative) {
                return Outcome::Fail(format!("{id} at t = {}: expected {e}, got {a}", row[0]));
            }
        }
    }
    Outcome::Pass
}

fn judge_fba(file: &Path, settings: &Settings, header: &[String], expected: &[Vec<f64>]) -> Outcome {
    let solution = match vht_fbc::solve_file(file) {
        Ok(s) => s,
        Err(e) => return Outcome::Error(e.to_string()),
    };
    for row in expected {
        for (j, id) in header.iter().enumerate() {
            let Some(a) = solution.value(id) else {
                return Outcome::Error(format!("variable '{id}' is neither a reaction nor the objective"));
            };
            if !within(row[j + 1], a, settings.absolute, settings.relative) {
                return Outcome::Fail(format!("{id}: expected {}, got {a}", row[j + 1]));
            }
        }
    }
    Outcome::Pass
}

/// Counts of outcomes per tag, for the summary table.
pub fn tag_table(results: &[(Case, Outcome)]) -> String {
    use std::collections::BTreeMap;
    let mut by_tag: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (case, outcome) in results {
        for tag in case.component_tags.iter().chain(&case.test_tags) {
            let e = by_tag.entry(tag.clone()).or_default();
            e.1 += 1;
            if *outcome == Outcome::Pass {
                e.0 += 1;
            }
        }
    }
    let mut out = String::from("| tag | passed | total |\n|---|---:|---:|\n");
    for (tag, (pass, total)) in by_tag {
        out.push_str(&format!("| {tag} | {pass} | {total} |\n"));
    }
    out
}

/// The JSON summary: `{"passed": N, "failed": N, "skipped": N, "total": N, "cases": {"00001": "pass", ...}}`.
/// Errors and timeouts count as failed; each case keeps its own label.
pub fn summary_json(results: &[(Case, Outcome)]) -> String {
    let passed = results.iter().filter(|(_, o)| *o == Outcome::Pass).count();
    let skipped = results.iter().filter(|(_, o)| matches!(o, Outcome::Skipped(_))).count();
    let total = results.len();
    let cases: Vec<String> = results.iter().map(|(c, o)| format!("    \"{}\": \"{}\"", c.id, o.label())).collect();
    format!(
        "{{\n  \"passed\": {passed},\n  \"failed\": {},\n  \"skipped\": {skipped},\n  \"total\": {total},\n  \"cases\": {{\n{}\n  }}\n}}\n",
        total - passed - skipped,
        cases.join(",\n")
    )
}

/// Runs cases on `jobs` threads; results come back in case order.
pub fn run_all(
    cases: &[Case],
    opts: &RunOptions,
    jobs: usize,
    mut progress: impl FnMut(&Case, &Outcome) + Send,
) -> Vec<Outcome> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Outcome>>> = Mutex::new(vec![None; cases.len()]);
    let progress = Mutex::new(&mut progress);
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(case) = cases.get(i) else { break };
                let outcome = run_case(case, opts);
                if let Ok(mut p) = progress.lock() {
                    (*p)(case, &outcome);
                }
                if let Ok(mut r) = results.lock() {
                    r[i] = Some(outcome);
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .map(|o| o.unwrap_or(Outcome::Error("not run".into())))
        .collect()
}
