//! Adjoint sensitivities against central finite differences of the same
//! runs, on a nonlinear model with an assigned symbol between the parameters
//! and the rates, a parameter-dependent initial value, and a piecewise input
//! switching at a fixed time (a restart the backward run must follow).

use vht_codegen::Options;
use vht_ir::{BinOp, Expr, Model, Role, Sym, SymbolKind};
use vht_sim::{initial_values, simulate, simulate_dense, Adjoint, Column, Jump, Simulator, TimeCourse};

fn num(v: f64) -> Expr {
    Expr::Num(v)
}

fn sym(s: Sym) -> Expr {
    Expr::Sym(s)
}

struct Case {
    sim: Simulator,
    params: Vec<Sym>,
    states: Vec<Sym>,
}

/// `a -> b` at rate `k1 a / (1 + a)` (with `k1 = 2 kf` assigned), `b` decays
/// at `k2`, and `a` gets an input of 0.5 for `t < 3`; `a(0) = a0`.
fn case() -> Case {
    let mut m = Model::default();
    let kf = m.add("kf", Role::Parameter, SymbolKind::Parameter, num(0.7));
    let k2 = m.add("k2", Role::Parameter, SymbolKind::Parameter, num(0.3));
    let a0 = m.add("a0", Role::Parameter, SymbolKind::Parameter, num(2.0));
    let k1 = m.add("k1", Role::Internal, SymbolKind::Assigned { expr: num(2.0) * sym(kf) }, num(0.0));
    let a = m.add("a", Role::Species, SymbolKind::State { rate: num(0.0) }, sym(a0));
    let b = m.add("b", Role::Species, SymbolKind::State { rate: num(0.0) }, num(0.1));
    let flux = sym(k1) * sym(a) / (num(1.0) + sym(a));
    let input = Expr::Piecewise(vec![(num(0.5), Expr::bin(BinOp::Lt, Expr::Time, num(3.0)))], Box::new(num(0.0)));
    m.symbols[a.index()].kind = SymbolKind::State { rate: input - flux.clone() };
    m.symbols[b.index()].kind = SymbolKind::State { rate: flux - sym(k2) * sym(b) };
    let sim = Simulator::new(m, &Options::default()).unwrap();
    Case { sim, params: vec![kf, k2, a0], states: vec![a, b] }
}

const TIMES: [f64; 4] = [0.0, 1.5, 4.0, 7.0];
/// J = sum_k w_k (a(t_k) b(t_k) + b(t_k)^2).
const W: [f64; 4] = [0.3, 1.0, -2.0, 0.5];

fn tc() -> TimeCourse {
    TimeCourse { start: 0.0, times: Some(TIMES.to_vec()), rtol: 1e-10, atol: 1e-12, ..TimeCourse::default() }
}

fn objective(c: &Case, p: &[f64]) -> f64 {
    let cols: Vec<Column> = c.states.iter().map(|&s| Column { name: String::new(), expr: sym(s) }).collect();
    let ov: Vec<(Sym, f64)> = c.params.iter().copied().zip(p.iter().copied()).collect();
    let traj = simulate(&c.sim, &tc(), &c.sim.outputs(&cols).unwrap(), &ov).unwrap();
    (0..TIMES.len()).map(|k| W[k] * (traj.row(k)[0] * traj.row(k)[1] + traj.row(k)[1].powi(2))).sum()
}

#[test]
fn adjoint_gradient_matches_finite_differences() {
    let c = case();
    let p = [0.7, 0.3, 2.0];
    let adj = Adjoint::new(&c.sim, &c.params).unwrap();
    let cols: Vec<Column> = c.states.iter().map(|&s| Column { name: String::new(), expr: sym(s) }).collect();
    let ov: Vec<(Sym, f64)> = c.params.iter().copied().zip(p.iter().copied()).collect();
    let (traj, dense) = simulate_dense(&c.sim, &tc(), &c.sim.outputs(&cols).unwrap(), &ov).unwrap();
    assert_eq!(dense.restarts().iter().filter(|&&t| t > 0.0).count(), 1, "the input switches once");
    let jumps: Vec<Jump> = (0..TIMES.len())
        .map(|k| {
            let (a, b) = (traj.row(k)[0], traj.row(k)[1]);
            Jump { t: TIMES[k], dlambda: vec![W[k] * b, W[k] * (a + 2.0 * b)], dmu: vec![0.0; 3] }
        })
        .collect();
    let res = adj.solve(&dense, &jumps, 1e-10, 100_000).unwrap();
    // dx0/dp: only a(0) = a0 depends on a parameter.
    let vals = initial_values(&c.sim, 0.0, &ov).unwrap();
    assert_eq!(vals[c.states[0].index()], 2.0);
    let grad = [res.mu[0], res.mu[1], res.mu[2] + res.lambda[0]];
    for i in 0..3 {
        let h = 1e-5 * p[i];
        let (mut up, mut down) = (p, p);
        up[i] += h;
        down[i] -= h;
        let fd = (objective(&c, &up) - objective(&c, &down)) / (2.0 * h);
        let err = (grad[i] - fd).abs() / fd.abs().max(1.0);
        println!("p{i}: adjoint {:.10} fd {fd:.10} rel {err:e}", grad[i]);
        assert!(err < 1e-6, "parameter {i}: adjoint {} vs finite differences {fd}", grad[i]);
    }
}

/// Doses: `x` decays at `k`; at t = 2 the event adds `dose`, at t = 5 it
/// keeps a fraction `frac` (both estimated, the times fixed).
/// J = sum_k w_k x(t_k)^2 at times before, at and after the events.
#[test]
fn adjoint_gradient_across_events_at_fixed_times() {
    let mut m = Model::default();
    let k = m.add("k", Role::Parameter, SymbolKind::Parameter, num(0.4));
    let dose = m.add("dose", Role::Parameter, SymbolKind::Parameter, num(3.0));
    let frac = m.add("frac", Role::Parameter, SymbolKind::Parameter, num(0.6));
    let x = m.add("x", Role::Species, SymbolKind::State { rate: num(0.0) }, num(1.0));
    m.symbols[x.index()].kind = SymbolKind::State { rate: num(0.0) - sym(k) * sym(x) * sym(x) };
    let at = |t: f64| Expr::bin(BinOp::Ge, Expr::Time, num(t));
    let event = |name: &str, trigger: Expr, value: Expr| vht_ir::Event {
        name: name.into(),
        trigger,
        delay: None,
        priority: None,
        initial_value: false,
        persistent: true,
        use_values_from_trigger_time: true,
        assignments: vec![vht_ir::EventAssignment { target: x, value }],
    };
    m.events.push(event("dose", at(2.0), sym(x) + sym(dose)));
    m.events.push(event("dialysis", at(5.0), sym(frac) * sym(x)));
    let sim = Simulator::new(m, &Options::default()).unwrap();
    let params = [k, dose, frac];
    let times = vec![1.0, 2.0, 3.0, 5.0, 6.5];
    let w = [1.0, 0.5, -1.0, 2.0, 0.7];
    let tc = TimeCourse { start: 0.0, times: Some(times.clone()), rtol: 1e-10, atol: 1e-12, ..TimeCourse::default() };
    let cols = vec![Column { name: "x".into(), expr: sym(x) }];
    let outputs = sim.outputs(&cols).unwrap();
    let objective = |p: &[f64]| -> f64 {
        let ov: Vec<(Sym, f64)> = params.iter().copied().zip(p.iter().copied()).collect();
        let traj = simulate(&sim, &tc, &outputs, &ov).unwrap();
        (0..times.len()).map(|i| w[i] * traj.row(i)[0].powi(2)).sum()
    };
    let p = [0.4, 3.0, 0.6];
    let ov: Vec<(Sym, f64)> = params.iter().copied().zip(p.iter().copied()).collect();
    let (traj, dense) = simulate_dense(&sim, &tc, &outputs, &ov).unwrap();
    assert_eq!(dense.firings().len(), 2);
    let jumps: Vec<Jump> = (0..times.len())
        .map(|i| Jump { t: times[i], dlambda: vec![2.0 * w[i] * traj.row(i)[0]], dmu: vec![0.0; 3] })
        .collect();
    let adj = Adjoint::new(&sim, &params).unwrap();
    let res = adj.solve(&dense, &jumps, 1e-10, 100_000).unwrap();
    for i in 0..3 {
        let h = 1e-5 * p[i];
        let (mut up, mut down) = (p, p);
        up[i] += h;
        down[i] -= h;
        let fd = (objective(&up) - objective(&down)) / (2.0 * h);
        let err = (res.mu[i] - fd).abs() / fd.abs().max(1.0);
        println!("p{i}: adjoint {:.10} fd {fd:.10} rel {err:e}", res.mu[i]);
        assert!(err < 1e-6, "parameter {i}: adjoint {} vs finite differences {fd}", res.mu[i]);
    }
    // x(0) = 1 is not a parameter here, but λ(t0) is still dJ/dx0.
    let fd_x0 = {
        let h = 1e-6;
        let run = |x0: f64| {
            let mut ov = ov.clone();
            ov.push((x, x0));
            let traj = simulate(&sim, &tc, &outputs, &ov).unwrap();
            (0..times.len()).map(|i| w[i] * traj.row(i)[0].powi(2)).sum::<f64>()
        };
        (run(1.0 + h) - run(1.0 - h)) / (2.0 * h)
    };
    assert!((res.lambda[0] - fd_x0).abs() < 1e-6 * fd_x0.abs().max(1.0), "{} vs {fd_x0}", res.lambda[0]);
}

#[test]
fn events_whose_time_moves_are_refused() {
    let mut m = Model::default();
    let x = m.add("x", Role::Species, SymbolKind::State { rate: num(-1.0) }, num(1.0));
    m.events.push(vht_ir::Event {
        name: "e".into(),
        trigger: Expr::bin(BinOp::Lt, sym(x), num(0.5)),
        delay: None,
        priority: None,
        initial_value: false,
        persistent: true,
        use_values_from_trigger_time: true,
        assignments: vec![vht_ir::EventAssignment { target: x, value: num(1.0) }],
    });
    let sim = Simulator::new(m, &Options::default()).unwrap();
    let err = Adjoint::new(&sim, &[]).err().expect("refused");
    assert!(err.to_string().contains("events whose time depends"), "{err}");
}
