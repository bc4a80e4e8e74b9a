//! Operator semantics and the public API, checked on every backend.

mod common;

use std::sync::Arc;

use common::*;
use vht_codegen::{compile, compile_exprs, Backend, CodegenError, DelayHost, Layout, NoDelays, Options, Slot};
use vht_ir::{BinOp, Event, EventAssignment, Expr, Model, NaryOp, SymbolKind, UnOp};

const BACKENDS: [Backend; 2] = [Backend::Interpreter, Backend::Jit];

/// Evaluates closed expressions (no symbols) on every backend and checks each
/// against `expected` (NaN matches NaN).
fn check(cases: &[(Expr, f64)]) {
    let m = Model::default();
    let layout = Layout::of(&m);
    let exprs: Vec<Expr> = cases.iter().map(|(e, _)| e.clone()).collect();
    for backend in BACKENDS {
        let f = compile_exprs(&m, &layout, &exprs, &Options { backend }).unwrap();
        let mut out = vec![0.0; exprs.len()];
        f.eval(0.0, &[], &[], &mut out, &NoDelays);
        for (i, (e, want)) in cases.iter().enumerate() {
            let got = out[i];
            let ok =
                if want.is_nan() { got.is_nan() } else { got == *want || (got - want).abs() <= 1e-15 * want.abs() };
            assert!(ok, "{backend:?}: {e:?} = {got}, expected {want}");
        }
    }
}

fn un(op: UnOp, x: f64) -> Expr {
    Expr::un(op, num(x))
}

fn bin(op: BinOp, a: f64, b: f64) -> Expr {
    Expr::bin(op, num(a), num(b))
}

fn nary(op: NaryOp, args: &[f64]) -> Expr {
    Expr::Nary(op, args.iter().map(|&a| num(a)).collect())
}

#[test]
fn mathml_semantics() {
    use BinOp::*;
    use NaryOp::*;
    check(&[
        (bin(Root, 3.0, -8.0), -2.0),
        (bin(Root, 2.0, 9.0), 3.0),
        (bin(Pow, -2.0, 3.0), -8.0),
        (bin(Log, 2.0, 1024.0), 10.0),
        (bin(Rem, -7.0, 3.0), -1.0),
        (bin(Rem, 7.5, 2.0), 1.5),
        (bin(Quotient, -7.0, 2.0), -3.0),
        (bin(Implies, 0.0, 0.0), 1.0),
        (bin(Implies, 2.0, 0.0), 0.0),
        (bin(Eq, 1.0, 1.0), 1.0),
        (bin(Neq, 1.0, 1.0), 0.0),
        (bin(Lt, f64::NAN, 1.0), 0.0),
        (bin(Neq, f64::NAN, f64::NAN), 1.0),
        (un(UnOp::Factorial, 5.0), 120.0),
        (un(UnOp::Factorial, 2.5), f64::NAN),
        (un(UnOp::Not, 3.0), 0.0),
        (un(UnOp::Acot, 2.0), (0.5f64).atan()),
        (un(UnOp::Asech, 0.5), (2.0f64).acosh()),
        (un(UnOp::Coth, 800.0), 1.0),
        (nary(And, &[]), 1.0),
        (nary(Or, &[]), 0.0),
        (nary(And, &[2.0]), 1.0),
        (nary(Xor, &[1.0, 1.0, 1.0]), 1.0),
        (nary(Xor, &[1.0, 5.0]), 0.0),
        (nary(Min, &[3.0, -1.0, 2.0]), -1.0),
        (nary(Max, &[3.0, -1.0, 2.0]), 3.0),
        (nary(Add, &[]), 0.0),
        (nary(Mul, &[]), 1.0),
    ]);
}

#[test]
fn unselected_piecewise_branch_does_not_leak_nan() {
    let mut m = Model::default();
    let x = state(&mut m, "x", 0.0);
    // piecewise(ln(x), x > 0, 0): at x = -1 ln is NaN but not selected.
    let e = Expr::Piecewise(
        vec![(Expr::un(UnOp::Ln, s(x)), Expr::bin(BinOp::Gt, s(x), num(0.0)))],
        Box::new(num(0.0) / num(1.0)),
    );
    let first_true = Expr::Piecewise(
        vec![(num(1.0), Expr::bin(BinOp::Lt, s(x), num(0.0))), (num(2.0), num(1.0))],
        Box::new(num(3.0)),
    );
    let layout = Layout::of(&m);
    for backend in BACKENDS {
        let f = compile_exprs(&m, &layout, &[e.clone(), first_true.clone()], &Options { backend }).unwrap();
        let mut out = [9.0, 9.0];
        f.eval(0.0, &[-1.0], &[], &mut out, &NoDelays);
        assert_eq!(out, [0.0, 1.0], "{backend:?}");
        f.eval(0.0, &[1.0], &[], &mut out, &NoDelays);
        assert_eq!(out, [0.0, 2.0], "{backend:?}");
    }
}

/// A small model with a chain of assigned symbols, an algebraic unknown and time.
fn chain_model() -> Model {
    let mut m = Model::default();
    let k = param(&mut m, "k", 2.0);
    let x = state(&mut m, "x", 1.0);
    let z = m.add("z", vht_ir::Role::Species, SymbolKind::Algebraic, num(0.5));
    // Declared out of dependency order on purpose.
    let b = assigned(&mut m, "b", num(0.0));
    let a = assigned(&mut m, "a", s(k) * s(x));
    m.symbols[b.index()].kind = SymbolKind::Assigned { expr: s(a) + Expr::Time };
    set_rate(&mut m, x, -s(b));
    m.algebraic.push(s(z) * s(z) - s(x));
    m
}

#[test]
fn rhs_and_values_follow_the_layout() {
    let m = chain_model();
    for backend in BACKENDS {
        let cm = compile(&m, &Options { backend }).unwrap();
        assert_eq!(cm.layout.n_ode, 1);
        assert_eq!(cm.layout.slot(m.lookup("z").unwrap()), Slot::Y(1));
        assert_eq!(cm.layout.slot(m.lookup("k").unwrap()), Slot::P(0));
        let (y, p) = ([3.0, 4.0], [2.0]);
        let mut rhs = [0.0; 2];
        cm.rhs.eval(0.5, &y, &p, &mut rhs, &NoDelays);
        assert_eq!(rhs, [-(2.0 * 3.0 + 0.5), 16.0 - 3.0], "{backend:?}");
        let mut values = [0.0; 5];
        cm.values.eval(0.5, &y, &p, &mut values, &NoDelays);
        // k, x, z, b, a
        assert_eq!(values, [2.0, 3.0, 4.0, 6.5, 6.0], "{backend:?}");
    }
}

struct History;

impl DelayHost for History {
    /// Pretends every delayed expression k had the value 100 k + t in the past.
    fn delayed(&self, k: usize, t_past: f64) -> f64 {
        100.0 * k as f64 + t_past
    }
}

#[test]
fn delays_are_numbered_in_walk_order_and_call_the_host() {
    let mut m = Model::default();
    let tau = param(&mut m, "tau", 1.5);
    let x = state(&mut m, "x", 1.0);
    let y = state(&mut m, "y", 1.0);
    // x' = delay(y, tau) + delay(x * 2, 1); y' = delay(y, tau)
    let d0 = Expr::Delay(Box::new(s(y)), Box::new(s(tau)));
    let d1 = Expr::Delay(Box::new(s(x) * num(2.0)), Box::new(num(1.0)));
    set_rate(&mut m, x, d0.clone() + d1);
    set_rate(&mut m, y, d0.clone());
    m.events.push(Event {
        name: "e".into(),
        trigger: Expr::bin(BinOp::Gt, Expr::Delay(Box::new(s(x) - s(y)), Box::new(num(0.5))), num(0.0)),
        initial_value: false,
        persistent: true,
        delay: None,
        priority: None,
        use_values_from_trigger_time: true,
        assignments: vec![EventAssignment { target: x, value: num(0.0) }],
    });
    for backend in BACKENDS {
        let opts = Options { backend };
        let cm = compile(&m, &opts).unwrap();
        // delay #0: y (in x's rate), #1: x*2, #2: y again (in y's rate), #3: x - y (event).
        assert_eq!(cm.delayed.len(), 4);
        let mut past = [0.0; 4];
        cm.delayed.eval(0.0, &[3.0, 5.0], &[1.5], &mut past, &NoDelays);
        assert_eq!(past, [5.0, 6.0, 5.0, -2.0]);
        let mut rhs = [0.0; 2];
        cm.rhs.eval(10.0, &[3.0, 5.0], &[1.5], &mut rhs, &History);
        assert_eq!(rhs, [(0.0 + 8.5) + (100.0 + 9.0), 8.5], "{backend:?}");
        let trig = compile_exprs(&m, &cm.layout, &[m.events[0].trigger.clone()], &opts).unwrap();
        let mut out = [0.0];
        trig.eval(10.0, &[3.0, 5.0], &[1.5], &mut out, &History);
        assert_eq!(out, [1.0]);
    }
}

#[test]
fn one_compiled_model_is_evaluated_from_two_threads_at_once() {
    let m = mass_action(30, 7);
    for backend in BACKENDS {
        let cm = Arc::new(compile(&m, &Options { backend }).unwrap());
        let n = cm.layout.y.len();
        let p: Vec<f64> = (0..cm.layout.p.len()).map(|i| 0.1 + i as f64 * 0.01).collect();
        let reference = |y: &[f64]| {
            let mut out = vec![0.0; n];
            cm.rhs.eval(0.0, y, &p, &mut out, &NoDelays);
            out
        };
        let ys: Vec<Vec<f64>> = (0..2).map(|k| (0..n).map(|i| 1.0 + (i + k) as f64 * 0.1).collect()).collect();
        let want: Vec<Vec<f64>> = ys.iter().map(|y| reference(y)).collect();
        let handles: Vec<_> = (0..2)
            .map(|k| {
                let cm = Arc::clone(&cm);
                let (y, p, want) = (ys[k].clone(), p.clone(), want[k].clone());
                std::thread::spawn(move || {
                    let mut out = vec![0.0; y.len()];
                    for _ in 0..2000 {
                        cm.rhs.eval(0.0, &y, &p, &mut out, &NoDelays);
                        assert_eq!(out, want);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("evaluation thread panicked");
        }
    }
}

#[test]
fn errors_name_what_is_wrong() {
    let mut m = Model::default();
    let x = state(&mut m, "x", 1.0);
    let layout = Layout { y: vec![], n_ode: 0, p: vec![] };
    let err = compile_exprs(&m, &layout, &[s(x)], &Options::default()).unwrap_err();
    expect_test::expect!["expression 0 reads 'x', which has no place in the layout (not in y, not in p, not assigned)"]
        .assert_eq(&err.to_string());

    let err =
        compile_exprs(&m, &Layout::of(&m), &[Expr::Delay(Box::new(s(x)), Box::new(num(1.0)))], &Options::default())
            .unwrap_err();
    assert_eq!(err, CodegenError::UnknownDelay { at: "expression 0".into() });

    let err = compile_exprs(&m, &Layout::of(&m), &[Expr::Sym(vht_ir::Sym(9))], &Options::default()).unwrap_err();
    expect_test::expect!["expression 0 reads symbol #9, which does not exist"].assert_eq(&err.to_string());

    let bad = Layout { y: vec![x, x], n_ode: 2, p: vec![] };
    let err = compile_exprs(&m, &bad, &[], &Options::default()).unwrap_err();
    expect_test::expect!["layout vector y, position 1: 'x' appears more than once"].assert_eq(&err.to_string());

    let a = assigned(&mut m, "a", num(0.0));
    let b = assigned(&mut m, "b", s(a));
    m.symbols[a.index()].kind = SymbolKind::Assigned { expr: s(b) };
    set_rate(&mut m, x, s(a));
    let err = compile(&m, &Options::default()).unwrap_err();
    expect_test::expect!["the model is not well formed: assignments form a cycle: a -> b -> a"]
        .assert_eq(&err.to_string());
}

/// A host that answers delays the way the simulator will: by evaluating the
/// model's own `delayed` function at a past state, from inside `rhs.eval`.
struct Reentrant<'a> {
    cm: &'a vht_codegen::CompiledModel,
}

impl DelayHost for Reentrant<'_> {
    fn delayed(&self, k: usize, t_past: f64) -> f64 {
        // The past state: y(t) = (t, 2t).
        let y_past = [t_past, 2.0 * t_past];
        let mut out = vec![0.0; self.cm.delayed.len()];
        self.cm.delayed.eval(t_past, &y_past, &[0.5], &mut out, &NoDelays);
        out[k]
    }
}

#[test]
fn a_delay_host_may_evaluate_compiled_functions_reentrantly() {
    let mut m = Model::default();
    let tau = param(&mut m, "tau", 0.5);
    let x = state(&mut m, "x", 0.0);
    let y = state(&mut m, "y", 0.0);
    // x' = delay(x + y, tau) * y + exp(x); y' = -delay(y, 1)
    let d = Expr::Delay(Box::new(s(x) + s(y)), Box::new(s(tau)));
    set_rate(&mut m, x, d * s(y) + Expr::un(UnOp::Exp, s(x)));
    set_rate(&mut m, y, -Expr::Delay(Box::new(s(y)), Box::new(num(1.0))));
    for backend in BACKENDS {
        let cm = compile(&m, &Options { backend }).unwrap();
        let mut out = [0.0; 2];
        cm.rhs.eval(3.0, &[0.25, 4.0], &[0.5], &mut out, &Reentrant { cm: &cm });
        // x + y at t = 2.5 is 2.5 + 5 = 7.5; y at t = 2 is 4.
        assert_eq!(out, [7.5 * 4.0 + 0.25f64.exp(), -4.0], "{backend:?}");
    }
}

#[test]
fn an_unchecked_model_with_a_dangling_reference_is_an_error_not_a_panic() {
    let mut m = Model::default();
    let x = state(&mut m, "x", 1.0);
    let a = assigned(&mut m, "a", s(x));
    assigned(&mut m, "broken", Expr::Sym(vht_ir::Sym(42)));
    let err = compile_exprs(&m, &Layout::of(&m), &[s(a)], &Options::default()).unwrap_err();
    expect_test::expect!["assignment of 'broken' reads symbol #42, which does not exist"].assert_eq(&err.to_string());
    assert!(compile(&m, &Options::default()).is_err());
}

#[test]
fn deep_expressions_compile_from_a_small_stack() {
    // ((x*x + 0)*x + 1)*x + ... nested 600 deep (a 2 MiB stack overflowed at 300 before compilation moved to its own thread), as a long infix formula
    // gives; compiled from a thread with a 1 MiB stack.
    let mut m = Model::default();
    let x = state(&mut m, "x", 0.0);
    let mut e = s(x);
    for i in 0..600 {
        e = e * s(x) + num(i as f64 * 1e-3);
    }
    set_rate(&mut m, x, e);
    let m = std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(move || {
            for backend in BACKENDS {
                let cm = compile(&m, &Options { backend }).unwrap();
                let (mut f, mut j) = ([0.0], [0.0]);
                cm.rhs.eval(0.0, &[0.5], &[], &mut f, &NoDelays);
                cm.jac.eval(0.0, &[0.5], &[], &mut j, &NoDelays);
                assert!(f[0].is_finite() && j[0].is_finite() && j[0] > 0.0, "{backend:?}: {f:?} {j:?}");
            }
            m
        })
        .unwrap()
        .join()
        .unwrap();
    // Dropping the deep tree recurses too: do it on a big stack.
    std::thread::Builder::new().stack_size(64 << 20).spawn(move || drop(m)).unwrap().join().unwrap();
}
