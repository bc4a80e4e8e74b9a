//! Discontinuities of the vector field (`piecewise` conditions): the run
//! stops at each switch and restarts there, so the solution keeps the
//! accuracy the tolerances ask for. Each model has an exact solution.

use vht_codegen::Options;
use vht_ir::{BinOp, Event, EventAssignment, Expr, Model, NaryOp, Role, Sym, SymbolKind};
use vht_sim::{simulate, Column, Simulator, TimeCourse};

fn num(v: f64) -> Expr {
    Expr::Num(v)
}

fn sym(s: Sym) -> Expr {
    Expr::Sym(s)
}

fn state(m: &mut Model, name: &str, x0: f64) -> Sym {
    m.add(name, Role::Species, SymbolKind::State { rate: num(0.0) }, num(x0))
}

fn set_rate(m: &mut Model, x: Sym, rate: Expr) {
    m.symbols[x.index()].kind = SymbolKind::State { rate };
}

/// Runs `m` at rtol 1e-10 and returns the worst error of `x` (relative where |x| > 1)
/// against `exact` over `points` evenly spaced outputs on [0, end].
fn worst_error(m: Model, overrides: &[(Sym, f64)], end: f64, points: usize, exact: impl Fn(f64) -> f64) -> f64 {
    let x = m.lookup("x").unwrap();
    let cols = vec![Column { name: "x".into(), expr: sym(x) }];
    let sim = Simulator::new(m, &Options::default()).unwrap();
    let tc = TimeCourse { end, points, rtol: 1e-10, atol: 1e-12, ..TimeCourse::default() };
    let traj = simulate(&sim, &tc, &sim.outputs(&cols).unwrap(), overrides).unwrap();
    let mut worst: f64 = 0.0;
    for (i, &t) in traj.times.iter().enumerate() {
        let e = exact(t);
        worst = worst.max((traj.row(i)[0] - e).abs() / e.abs().max(1.0));
    }
    println!("{:?} worst {worst:e}", traj.stats);
    worst
}

/// A pulse: dx/dt = 100 - x/2 while `on <= clock < on + 0.01`, else -x/2,
/// from x = 0. Before the pulse the rate is exactly zero, so the integrator's
/// steps grow far beyond the pulse's width: without stopping at the switches
/// it steps over the pulse and misses it. `clock` is time (a time switch,
/// whose instants are computed from the parameter `on`) or a state that
/// grows like time (a state switch, located on the dense output).
fn pulse_model(clock_is_state: bool) -> Model {
    let mut m = Model::default();
    let on = m.add("on", Role::Parameter, SymbolKind::Parameter, num(1.234));
    let clock = if clock_is_state {
        let c = state(&mut m, "clock", 0.0);
        set_rate(&mut m, c, num(1.0));
        sym(c)
    } else {
        Expr::Time
    };
    let x = state(&mut m, "x", 0.0);
    let during = Expr::Nary(
        NaryOp::And,
        vec![Expr::bin(BinOp::Ge, clock.clone(), sym(on)), Expr::bin(BinOp::Lt, clock, sym(on) + num(0.01))],
    );
    let rate = Expr::Piecewise(vec![(num(100.0), during)], Box::new(num(0.0))) - num(0.5) * sym(x);
    set_rate(&mut m, x, rate);
    m
}

fn pulse_exact(on: f64) -> impl Fn(f64) -> f64 {
    move |t: f64| {
        let off = on + 0.01;
        let rise = |s: f64| 200.0 * (1.0 - (-0.5 * s).exp());
        if t < on {
            0.0
        } else if t < off {
            rise(t - on)
        } else {
            rise(0.01) * (-0.5 * (t - off)).exp()
        }
    }
}

#[test]
fn a_rate_switching_at_given_times_matches_the_exact_solution() {
    let err = worst_error(pulse_model(false), &[], 4.0, 401, pulse_exact(1.234));
    assert!(err < 1e-9, "worst error {err:e}");
}

#[test]
fn a_rate_switching_on_the_state_matches_the_exact_solution() {
    let err = worst_error(pulse_model(true), &[], 4.0, 401, pulse_exact(1.234));
    assert!(err < 1e-9, "worst error {err:e}");
}

#[test]
fn the_switch_times_follow_a_parameter_override() {
    let m = pulse_model(false);
    let on = m.lookup("on").unwrap();
    let err = worst_error(m, &[(on, 2.5)], 4.0, 401, pulse_exact(2.5));
    assert!(err < 1e-9, "worst error {err:e}");
}

/// An event at t = 1 moves the pulse from t = 3 to t = 2: the stop times are
/// recomputed from the parameters the event changed.
#[test]
fn an_event_that_moves_the_switch_time_moves_the_stop() {
    let mut m = pulse_model(false);
    let on = m.lookup("on").unwrap();
    m.events.push(Event {
        name: "advance".into(),
        trigger: Expr::bin(BinOp::Ge, Expr::Time, num(1.0)),
        initial_value: false,
        persistent: true,
        delay: None,
        priority: None,
        use_values_from_trigger_time: true,
        assignments: vec![EventAssignment { target: on, value: num(2.0) }],
    });
    let err = worst_error(m, &[(on, 3.0)], 4.0, 401, pulse_exact(2.0));
    assert!(err < 1e-9, "worst error {err:e}");
}

/// The input `u = u0` while `t <= 2 * half` (an assignment rule read by the
/// rate, as in Fujita 2010's EGF stimulus), then 0: dx/dt = u - k x.
#[test]
fn a_switching_input_in_an_assignment_rule_matches_the_exact_solution() {
    let mut m = Model::default();
    let half = m.add("half", Role::Parameter, SymbolKind::Parameter, num(0.617));
    let u = m.add(
        "u",
        Role::Parameter,
        SymbolKind::Assigned {
            expr: Expr::Piecewise(
                vec![(num(3.0), Expr::bin(BinOp::Le, Expr::Time, num(2.0) * sym(half)))],
                Box::new(num(0.0)),
            ),
        },
        num(0.0),
    );
    let x = state(&mut m, "x", 0.0);
    set_rate(&mut m, x, sym(u) - num(2.0) * sym(x));
    let t_sw: f64 = 1.234;
    let x_sw = 1.5 * (1.0 - (-2.0 * t_sw).exp());
    let exact = |t: f64| if t <= t_sw { 1.5 * (1.0 - (-2.0 * t).exp()) } else { x_sw * (-2.0 * (t - t_sw)).exp() };
    let err = worst_error(m, &[], 4.0, 401, exact);
    assert!(err < 1e-9, "worst error {err:e}");
}

/// dx/dt = -0.3 while x > 0.5, then -2 x: the switch depends on the state
/// and is located on the integrator's dense output (at t = 5/3).
#[test]
fn a_switch_on_the_state_is_located_on_the_dense_output() {
    let mut m = Model::default();
    let x = state(&mut m, "x", 1.0);
    let rate =
        Expr::Piecewise(vec![(num(-0.3), Expr::bin(BinOp::Gt, sym(x), num(0.5)))], Box::new(-(num(2.0) * sym(x))));
    set_rate(&mut m, x, rate);
    let t_sw: f64 = 0.5 / 0.3;
    let exact = |t: f64| if t < t_sw { 1.0 - 0.3 * t } else { 0.5 * (-2.0 * (t - t_sw)).exp() };
    let err = worst_error(m, &[], 4.0, 401, exact);
    assert!(err < 1e-9, "worst error {err:e}");
}

/// A pulse train: dx/dt = 100 - x/2 while `rem(t, 1) < 0.01`, else -x/2. The
/// relation alone flips twice within one of the integrator's long steps and
/// so looks unchanged at the step's ends; `rem` jumps with `quotient(t, 1)`,
/// which is watched too, so every period restarts at its pulse.
#[test]
fn a_pulse_train_through_rem_matches_the_exact_solution() {
    let mut m = Model::default();
    let x = state(&mut m, "x", 0.0);
    let phase = Expr::bin(BinOp::Rem, Expr::Time, num(1.0));
    let during = Expr::bin(BinOp::Lt, phase, num(0.01));
    let rate = Expr::Piecewise(vec![(num(100.0), during)], Box::new(num(0.0))) - num(0.5) * sym(x);
    set_rate(&mut m, x, rate);
    // Period by period: rise for 0.01, then decay for 0.99.
    let exact = |t: f64| {
        let mut x0 = 0.0;
        let mut start = 0.0;
        loop {
            let on = t - start;
            let rise = |x0: f64, s: f64| 200.0 + (x0 - 200.0) * (-0.5 * s).exp();
            if on < 0.01 {
                return rise(x0, on);
            }
            let x_off = rise(x0, 0.01);
            if on < 1.0 {
                return x_off * (-0.5 * (on - 0.01)).exp();
            }
            x0 = x_off * (-0.5 * 0.99f64).exp();
            start += 1.0;
        }
    };
    let err = worst_error(m, &[], 4.0, 401, exact);
    assert!(err < 1e-9, "worst error {err:e}");
}

/// Switches that lie beyond the end (as in Chen 2009's stimuli at t = 1800
/// and 1799.99, simulated to 1000) change nothing: the run takes the same
/// steps as the model without them. (Each relation's zero must come from its
/// own two values: mixing another relation's values placed spurious stops
/// every 2 time units, 14x the steps.)
#[test]
fn switches_beyond_the_end_cost_nothing() {
    let run = |with_switches: bool| {
        let mut m = Model::default();
        let k = m.add("k", Role::Parameter, SymbolKind::Parameter, num(1.0));
        let x = state(&mut m, "x", 1.0);
        // A condition on a parameter is not a switch; it keeps both models
        // equally non-smooth for the integrator's start.
        let constant = Expr::bin(BinOp::Lt, sym(k), num(5.0));
        let mut rate = -(num(0.01) * sym(x)) * Expr::Piecewise(vec![(num(1.0), constant)], Box::new(num(2.0)));
        if with_switches {
            for at in [1800.0, 1799.99, 2660.0] {
                let later = Expr::bin(BinOp::Lt, Expr::Time - num(at), num(0.0));
                rate = rate * Expr::Piecewise(vec![(num(1.0), later)], Box::new(num(2.0)));
            }
        }
        set_rate(&mut m, x, rate);
        let cols = vec![Column { name: "x".into(), expr: sym(x) }];
        let sim = Simulator::new(m, &Options::default()).unwrap();
        let tc = TimeCourse { end: 1000.0, points: 101, rtol: 1e-8, atol: 1e-12, ..TimeCourse::default() };
        simulate(&sim, &tc, &sim.outputs(&cols).unwrap(), &[]).unwrap()
    };
    let (plain, switched) = (run(false), run(true));
    assert_eq!(plain.stats.steps, switched.stats.steps, "{:?} vs {:?}", plain.stats, switched.stats);
    assert_eq!(plain.values, switched.values);
}
