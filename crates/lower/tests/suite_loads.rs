//! Static conformance: every SBML Test Suite case must read, lower and pass
//! `Model::check`, and where its results start at t = 0 the initial values
//! (computed by a tree-walking evaluation of the IR) must match that row.
//!
//! Cases come from `$SBML_TEST_SUITE`, else /work/shared/sbml-test-suite/semantic
//! or ../shared beside the repository, else the sample in tests/data (with
//! the suite's LICENSE.txt). Known failures are listed in
//! tests/suite_expected_failures.txt (one `NNNNN reason` a line): an unlisted
//! failure fails the run, and so does a listed case that now passes.
//! A summary of failures by test-suite tag goes to stderr.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use libtest_mimic::{Arguments, Failed, Trial};
use vht_ir::eval::{eval, Env};
use vht_ir::{Expr, Model, Sym, SymbolKind};

const EXPECTED: &str = include_str!("suite_expected_failures.txt");

fn suite_dir() -> PathBuf {
    if let Ok(d) = std::env::var("SBML_TEST_SUITE") {
        return PathBuf::from(d);
    }
    // The shared folder sits beside the repository (CI clones next to it).
    let beside = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/sbml-test-suite/semantic");
    for shared in [Path::new("/work/shared/sbml-test-suite/semantic"), beside.as_path()] {
        if shared.is_dir() {
            return shared.to_path_buf();
        }
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

const LEVELS: [&str; 9] = ["l3v2", "l3v1", "l2v5", "l2v4", "l2v3", "l2v2", "l2v1", "l1v2", "l1v1"];

fn tags(dir: &Path, case: &str) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join(format!("{case}-model.m"))).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            matches!(k.trim(), "componentTags" | "testTags" | "packageTags").then_some(v)
        })
        .flat_map(|v| v.split(',').map(|t| t.trim().to_string()).filter(|t| !t.is_empty()))
        .collect()
}

struct Values<'a> {
    v: &'a [f64],
}

impl Env for Values<'_> {
    fn value(&self, s: Sym) -> f64 {
        self.v.get(s.index()).copied().unwrap_or(f64::NAN)
    }
    fn time(&self) -> f64 {
        0.0
    }
    // Before the start, a quantity had its initial value.
    fn delayed(&self, expr: &Expr, _t: f64) -> f64 {
        eval(expr, self)
    }
}

/// Initial values of every symbol: in initial order, then algebraic
/// unknowns solved by Newton's method with the other non-assigned values held.
fn initial_values(m: &Model) -> Result<Vec<f64>, String> {
    let order = vht_ir::initial_order(m).map_err(|e| e.to_string())?;
    let mut v = vec![f64::NAN; m.symbols.len()];
    for &s in &order {
        let sym = m.symbol(s);
        let e = match &sym.kind {
            SymbolKind::Assigned { expr } => expr,
            _ => &sym.initial,
        };
        v[s.index()] = eval(e, &Values { v: &v });
    }
    let unknowns = m.algebraic_unknowns();
    if unknowns.is_empty() {
        return Ok(v);
    }
    let assigned = vht_ir::evaluation_order(m).map_err(|e| e.to_string())?;
    let residuals = |v: &mut Vec<f64>| -> Vec<f64> {
        for &s in &assigned {
            if let SymbolKind::Assigned { expr } = &m.symbol(s).kind {
                v[s.index()] = eval(expr, &Values { v });
            }
        }
        m.algebraic.iter().map(|g| eval(g, &Values { v })).collect()
    };
    let n = unknowns.len();
    for _ in 0..50 {
        let g = residuals(&mut v);
        if g.iter().all(|x| x.abs() < 1e-12) {
            break;
        }
        // Finite-difference Jacobian, then a dense solve.
        let mut jac = vec![vec![0.0; n + 1]; n];
        for (j, &u) in unknowns.iter().enumerate() {
            let x = v[u.index()];
            let h = 1e-7 * x.abs().max(1.0);
            v[u.index()] = x + h;
            let gp = residuals(&mut v);
            v[u.index()] = x;
            for i in 0..n {
                jac[i][j] = (gp[i] - g[i]) / h;
            }
        }
        for i in 0..n {
            jac[i][n] = -g[i];
        }
        // A singular Jacobian (e.g. v = k·S2 at the guess k = 0) gets a
        // Levenberg-Marquardt step instead: (JᵀJ + λI) dx = -Jᵀg.
        let dx = match solve(jac.clone()) {
            Some(dx) => dx,
            None => {
                let mut lm = vec![vec![0.0; n + 1]; n];
                for i in 0..n {
                    for j in 0..n {
                        lm[i][j] = (0..n).map(|k| jac[k][i] * jac[k][j]).sum::<f64>() + if i == j { 1e-6 } else { 0.0 };
                    }
                    lm[i][n] = (0..n).map(|k| jac[k][i] * jac[k][n]).sum();
                }
                solve(lm).ok_or("singular algebraic Jacobian at t0")?
            }
        };
        for (j, &u) in unknowns.iter().enumerate() {
            v[u.index()] += dx[j];
        }
    }
    residuals(&mut v);
    Ok(v)
}

/// Solves the square system of an augmented matrix `[A | b]` (rows), by LU.
fn solve(a: Vec<Vec<f64>>) -> Option<Vec<f64>> {
    let n = a.len();
    let m = nalgebra::DMatrix::from_fn(n, n, |i, j| a[i][j]);
    let b = nalgebra::DVector::from_fn(n, |i, _| a[i][n]);
    m.lu().solve(&b).map(|x| x.iter().copied().collect())
}

fn settings(dir: &Path, case: &str) -> HashMap<String, String> {
    let text = std::fs::read_to_string(dir.join(format!("{case}-settings.txt"))).unwrap_or_default();
    text.lines().filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))).collect()
}

fn list(s: Option<&String>) -> Vec<String> {
    s.map(|s| s.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect()).unwrap_or_default()
}

/// Compares the t = 0 row of the expected results with our initial values.
fn check_t0(dir: &Path, case: &str, m: &Model) -> Result<(), String> {
    let text = std::fs::read_to_string(dir.join(format!("{case}-results.csv"))).map_err(|e| e.to_string())?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').map(str::trim).collect();
    let Some(row) = lines.next() else { return Ok(()) };
    let row: Vec<f64> = row.split(',').map(|x| x.trim().parse().unwrap_or(f64::NAN)).collect();
    if row.first() != Some(&0.0) {
        return Ok(());
    }
    // Events firing at t0 change values: that is the simulator's business,
    // so such cases are not compared here.
    // So are values read through delay (their history before t0 is too).
    let delayed = m.symbols.iter().any(|s| {
        s.initial.contains_delay()
            || matches!(&s.kind, SymbolKind::Assigned { expr } | SymbolKind::State { rate: expr } if expr.contains_delay())
    });
    if m.events.iter().any(|e| !e.initial_value) || delayed {
        return Ok(());
    }
    let set = settings(dir, case);
    let amounts = list(set.get("amount"));
    let concs = list(set.get("concentration"));
    let abs = set.get("absolute").and_then(|x| x.parse::<f64>().ok()).unwrap_or(1e-10);
    let rel = set.get("relative").and_then(|x| x.parse::<f64>().ok()).unwrap_or(1e-4);
    let v = initial_values(m)?;
    let env = Values { v: &v };
    let mut bad = Vec::new();
    for (name, want) in header.iter().zip(&row).skip(1) {
        let Some(s) = m.lookup(name) else {
            bad.push(format!("{name}: no such symbol"));
            continue;
        };
        let got = match m.species_view(s) {
            Some(view) if amounts.iter().any(|a| a == name) => eval(&view.amount, &env),
            Some(view) if concs.iter().any(|a| a == name) => eval(&view.concentration, &env),
            _ => v[s.index()],
        };
        let ok =
            (got.is_nan() && want.is_nan()) || (got == *want) || (got - want).abs() <= abs + rel * want.abs() * 10.0;
        if !ok {
            bad.push(format!("{name}: got {got}, expected {want}"));
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!("t=0 mismatch: {}", bad.join("; ")))
    }
}

/// Every level/version file of a case, highest first.
fn level_files(dir: &Path, case: &str) -> Vec<PathBuf> {
    LEVELS.iter().map(|lv| dir.join(format!("{case}-sbml-{lv}.xml"))).filter(|p| p.is_file()).collect()
}

/// Loads and checks every level/version of a case: each must give the same
/// start, which exercises L1 formulas and each level's defaults.
fn run_case(dir: &Path, case: &str) -> Result<(), String> {
    let files = level_files(dir, case);
    if files.is_empty() {
        return Err("no SBML file".into());
    }
    // Flux balance cases (fbc) have no time course to compare with.
    let model_m = std::fs::read_to_string(dir.join(format!("{case}-model.m"))).unwrap_or_default();
    let time_course = !model_m.lines().any(|l| l.starts_with("testType:") && !l.contains("TimeCourse"));
    let mut errors = Vec::new();
    for file in files {
        let lv = file.file_stem().map(|s| s.to_string_lossy().rsplit('-').next().unwrap_or("").to_string());
        let result = vht_lower::load(&file).map_err(|e| e.to_string()).and_then(|(model, diags)| {
            if std::env::var_os("SUITE_DIAGNOSTICS").is_some() {
                for d in diags {
                    eprintln!("{case}: {d}");
                }
            }
            if time_course {
                check_t0(dir, case, &model)
            } else {
                Ok(())
            }
        });
        if let Err(e) = result {
            errors.push(format!("{}: {e}", lv.unwrap_or_default()));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join(" | "))
    }
}

fn main() {
    let args = Arguments::from_args();
    let root = suite_dir();
    let mut cases: Vec<(String, PathBuf)> = std::fs::read_dir(&root)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir())
                .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
                .collect()
        })
        .unwrap_or_default();
    cases.sort();
    if cases.is_empty() {
        eprintln!("suite_loads: no cases found in {}", root.display());
        std::process::exit(1);
    }
    let expected: HashMap<&str, &str> = EXPECTED
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split_once(' ').unwrap_or((l, "")))
        .collect();

    let mut by_tag: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut results = Vec::new();
    let mut failures = 0;
    for (case, dir) in &cases {
        let result = run_case(dir, case);
        for t in tags(dir, case) {
            let e = by_tag.entry(t).or_default();
            e.0 += 1;
            e.1 += result.is_err() as usize;
        }
        failures += result.is_err() as usize;
        results.push((case.clone(), result));
    }
    eprintln!("suite_loads: {} cases from {}, {} fail", cases.len(), root.display(), failures);
    for (tag, (n, f)) in &by_tag {
        if *f > 0 {
            eprintln!("  {tag:<32} {f:>4} / {n:<4} fail");
        }
    }
    if std::env::var_os("SUITE_FAILURES").is_some() {
        for (case, r) in &results {
            if let Err(e) = r {
                println!("{case} {}", e.replace('\n', " "));
            }
        }
    }

    let trials = results
        .into_iter()
        .map(|(case, result)| {
            let listed = expected.get(case.as_str()).map(|s| s.to_string());
            Trial::test(case, move || match (result, listed) {
                (Ok(()), None) => Ok(()),
                (Err(_), Some(_)) => Ok(()),
                (Err(e), None) => Err(Failed::from(e)),
                (Ok(()), Some(reason)) => {
                    Err(Failed::from(format!("listed as failing ({reason}) but passes: remove it from the list")))
                }
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
