//! The parallel cohort runner: same results as one run at a time, every
//! member reported once, failures counted, on a pool of two threads.

use std::sync::Mutex;

use vht_codegen::Options;
use vht_ir::{Expr, Model, Role, SymbolKind};
use vht_sim::{simulate, simulate_cohort, Column, Simulator, TimeCourse};

#[test]
fn cohort_matches_serial_runs_and_counts_failures() {
    let mut m = Model::default();
    let k = m.add("k", Role::Parameter, SymbolKind::Parameter, Expr::Num(0.5));
    let x = m.add("x", Role::Species, SymbolKind::Parameter, Expr::Num(2.0));
    m.symbols[x.index()].kind = SymbolKind::State { rate: -(Expr::Sym(k) * Expr::Sym(x)) };
    let cols = vec![Column { name: "x".into(), expr: Expr::Sym(x) }];
    let sim = Simulator::new(m, &Options::default()).unwrap();
    let outputs = sim.outputs(&cols).unwrap();
    let tc = TimeCourse { end: 10.0, points: 11, rtol: 1e-10, atol: 1e-12, ..TimeCourse::default() };
    // Member 7 has no value for k: it must fail, and only it.
    let k_of = |i: usize| if i == 7 { f64::NAN } else { 0.05 * (i + 1) as f64 };
    let n = 40;
    let results: Mutex<Vec<Option<Result<Vec<f64>, String>>>> = Mutex::new(vec![None; n]);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    let summary = pool.install(|| {
        simulate_cohort(
            &sim,
            &tc,
            &outputs,
            n,
            |i, buf| buf.push((k, k_of(i))),
            |i, r| {
                let mut all = results.lock().unwrap();
                assert!(all[i].is_none(), "member {i} reported twice");
                all[i] = Some(r.map(|t| t.values).map_err(|e| e.to_string()));
            },
        )
    });
    assert_eq!((summary.members, summary.failures), (n, 1));
    let mut steps = 0;
    for (i, r) in results.into_inner().unwrap().into_iter().enumerate() {
        let r = r.unwrap_or_else(|| panic!("member {i} not reported"));
        let serial = simulate(&sim, &tc, &outputs, &[(k, k_of(i))]);
        match (r, serial) {
            (Ok(values), Ok(traj)) => {
                // Bit for bit: a member's result does not depend on the thread.
                assert_eq!(values, traj.values, "member {i}");
                let exact = 2.0 * (-k_of(i) * 10.0).exp();
                assert!((values[10] - exact).abs() < 1e-8, "member {i}: {} vs {exact}", values[10]);
                steps += traj.stats.steps;
            }
            (Err(e), Err(s)) => assert_eq!(e, s.to_string(), "member {i}"),
            (r, s) => panic!("member {i}: cohort {r:?}, serial {s:?}"),
        }
    }
    assert_eq!(summary.stats.steps, steps);
}
