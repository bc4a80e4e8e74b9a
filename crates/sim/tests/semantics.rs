//! The simulator on small hand-built models with known solutions.

use vht_codegen::Options;
use vht_ir::{BinOp, Event, EventAssignment, Expr, Model, Role, Sym, SymbolKind};
use vht_sim::{simulate, Column, Simulator, TimeCourse};

fn col(m: &Model, name: &str) -> Column {
    Column { name: name.to_string(), expr: Expr::Sym(m.lookup(name).unwrap()) }
}

fn decay() -> (Model, Sym, Sym) {
    let mut m = Model::default();
    let k = m.add("k", Role::Parameter, SymbolKind::Parameter, Expr::Num(0.5));
    let x = m.add("x", Role::Species, SymbolKind::Parameter, Expr::Num(2.0));
    m.symbols[x.index()].kind = SymbolKind::State { rate: -(Expr::Sym(k) * Expr::Sym(x)) };
    (m, k, x)
}

fn tc(end: f64, points: usize) -> TimeCourse {
    TimeCourse { end, points, rtol: 1e-10, atol: 1e-12, ..TimeCourse::default() }
}

#[test]
fn exponential_decay_matches_the_exact_solution() {
    let (m, k, _) = decay();
    let cols = vec![col(&m, "x")];
    let sim = Simulator::new(m, &Options::default()).unwrap();
    let traj = simulate(&sim, &tc(10.0, 11), &sim.outputs(&cols).unwrap(), &[]).unwrap();
    for (i, &t) in traj.times.iter().enumerate() {
        let exact = 2.0 * (-0.5 * t).exp();
        assert!((traj.row(i)[0] - exact).abs() < 1e-8 * exact.max(1e-3), "t={t}: {}", traj.row(i)[0]);
    }
    // A parameter override changes the run, not the compiled model.
    let traj = simulate(&sim, &tc(10.0, 11), &sim.outputs(&cols).unwrap(), &[(k, 1.0)]).unwrap();
    assert!((traj.row(10)[0] - 2.0 * (-10.0f64).exp()).abs() < 1e-9);
}

#[test]
fn delayed_event_resets_state_and_output_at_event_time_is_post_event() {
    let (mut m, _, x) = decay();
    // When x < 1 (t = 2 ln 2), after a delay of 1, set x = 2.
    m.events.push(Event {
        name: "refill".into(),
        trigger: Expr::bin(BinOp::Lt, Expr::Sym(x), Expr::Num(1.0)),
        initial_value: true,
        persistent: true,
        delay: Some(Expr::Num(1.0)),
        priority: None,
        use_values_from_trigger_time: true,
        assignments: vec![EventAssignment { target: x, value: Expr::Num(2.0) }],
    });
    let cols = vec![col(&m, "x")];
    let sim = Simulator::new(m, &Options::default()).unwrap();
    let traj = simulate(&sim, &tc(5.0, 501), &sim.outputs(&cols).unwrap(), &[]).unwrap();
    // x falls below 1 after 2 ln 2, the refill comes 1 later: a period of 2 ln 2 + 1.
    let period = 2.0 * 2f64.ln() + 1.0;
    for (i, &t) in traj.times.iter().enumerate() {
        let since_refill = t - period * (t / period + 1e-12).floor();
        let exact = 2.0 * (-0.5 * since_refill).exp();
        assert!((traj.row(i)[0] - exact).abs() < 1e-7, "t={t}: {} vs {exact}", traj.row(i)[0]);
    }
}

#[test]
fn algebraic_unknown_follows_its_constraint() {
    let (mut m, _, x) = decay();
    // 0 = z^2 - x  (z = sqrt(x), from a positive guess)
    let z = m.add("z", Role::Parameter, SymbolKind::Algebraic, Expr::Num(1.0));
    m.algebraic.push(Expr::bin(BinOp::Pow, Expr::Sym(z), Expr::Num(2.0)) - Expr::Sym(x));
    let cols = vec![col(&m, "z")];
    let sim = Simulator::new(m, &Options::default()).unwrap();
    let traj = simulate(&sim, &tc(4.0, 5), &sim.outputs(&cols).unwrap(), &[]).unwrap_or_else(|e| panic!("{e}"));
    for (i, &t) in traj.times.iter().enumerate() {
        let exact = (2.0 * (-0.5 * t).exp()).sqrt();
        assert!((traj.row(i)[0] - exact).abs() < 1e-7, "t={t}: {}", traj.row(i)[0]);
    }
}

#[test]
fn delay_differential_equation_uses_the_history() {
    // x' = -x(t - 1), x = 1 for t <= 0: on [0, 1] x = 1 - t; on [1, 2] x = 1 - t + (t-1)^2/2.
    let mut m = Model::default();
    let x = m.add("x", Role::Species, SymbolKind::Parameter, Expr::Num(1.0));
    m.symbols[x.index()].kind =
        SymbolKind::State { rate: -Expr::Delay(Box::new(Expr::Sym(x)), Box::new(Expr::Num(1.0))) };
    let cols = vec![col(&m, "x")];
    let sim = Simulator::new(m, &Options::default()).unwrap();
    let traj = simulate(&sim, &tc(2.0, 21), &sim.outputs(&cols).unwrap(), &[]).unwrap();
    for (i, &t) in traj.times.iter().enumerate() {
        let exact = if t <= 1.0 { 1.0 - t } else { 1.0 - t + (t - 1.0).powi(2) / 2.0 };
        assert!((traj.row(i)[0] - exact).abs() < 1e-5, "t={t}: {} vs {exact}", traj.row(i)[0]);
    }
}

#[test]
fn explicit_output_times_including_repeats_and_the_start() {
    let (m, _, _) = decay();
    let cols = vec![col(&m, "x")];
    let sim = Simulator::new(m, &Options::default()).unwrap();
    let times = vec![0.0, 0.0, 0.3, 2.5, 2.5, 7.0];
    let tc = TimeCourse { times: Some(times.clone()), ..tc(1.0, 2) };
    let traj = simulate(&sim, &tc, &sim.outputs(&cols).unwrap(), &[]).unwrap();
    assert_eq!(traj.times, times);
    for (i, &t) in times.iter().enumerate() {
        assert!((traj.row(i)[0] - 2.0 * (-0.5 * t).exp()).abs() < 1e-8, "t={t}");
    }
    // Only the start: no integration at all.
    let tc = TimeCourse { times: Some(vec![0.0]), ..tc };
    assert_eq!(simulate(&sim, &tc, &sim.outputs(&cols).unwrap(), &[]).unwrap().row(0), &[2.0]);
    // Decreasing times are a settings error that says what is wrong.
    let tc = TimeCourse { times: Some(vec![1.0, 0.5]), ..tc };
    let err = simulate(&sim, &tc, &sim.outputs(&cols).unwrap(), &[]).unwrap_err();
    assert_eq!(err.to_string(), "bad time course: output times must not decrease (1 then 0.5)");
}

#[test]
fn a_parameter_without_a_value_is_named() {
    let (mut m, k, _) = decay();
    m.symbols[k.index()].initial = Expr::Num(f64::NAN);
    let cols = vec![col(&m, "x")];
    let sim = Simulator::new(m, &Options::default()).unwrap();
    let err = simulate(&sim, &tc(1.0, 2), &sim.outputs(&cols).unwrap(), &[]).unwrap_err();
    assert_eq!(err.to_string(), "at t = 0 the rate of 'x' is not a number: the model gives no value for 'k'");
    // A value given for the run is enough.
    assert!(simulate(&sim, &tc(1.0, 2), &sim.outputs(&cols).unwrap(), &[(k, 0.5)]).is_ok());
}
