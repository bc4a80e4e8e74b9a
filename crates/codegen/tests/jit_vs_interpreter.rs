//! The JIT must compute what the interpreter computes, for every operator,
//! on ordinary and on special inputs (negative, zero, -0, integers, huge,
//! infinite, NaN).

mod common;

use common::*;
use vht_codegen::{compile, compile_exprs, Backend, DelayHost, Layout, Options};
use vht_ir::{BinOp, Expr, Model, NaryOp, UnOp};

struct Host;

impl DelayHost for Host {
    fn delayed(&self, k: usize, t_past: f64) -> f64 {
        (k as f64 + 1.0) * t_past.sin()
    }
}

const UN: [UnOp; 34] = {
    use UnOp::*;
    [
        Neg, Not, Abs, Exp, Ln, Log10, Sqrt, Sin, Cos, Tan, Sec, Csc, Cot, Sinh, Cosh, Tanh, Sech, Csch, Coth, Asin,
        Acos, Atan, Asec, Acsc, Acot, Asinh, Acosh, Atanh, Asech, Acsch, Acoth, Floor, Ceil, Factorial,
    ]
};

const BIN: [BinOp; 14] = {
    use BinOp::*;
    [Sub, Div, Pow, Log, Root, Rem, Quotient, Eq, Neq, Lt, Le, Gt, Ge, Implies]
};

const NARY: [NaryOp; 7] = [NaryOp::Add, NaryOp::Mul, NaryOp::Min, NaryOp::Max, NaryOp::And, NaryOp::Or, NaryOp::Xor];

fn same(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-14 * a.abs().max(b.abs())
}

#[test]
fn every_operator_jit_equals_interpreter() {
    let mut m = Model::default();
    let k = param(&mut m, "k", 1.0);
    let x = state(&mut m, "x", 0.0);
    let y = state(&mut m, "y", 0.0);
    let a = assigned(&mut m, "a", s(x) * s(k));
    let delay = Expr::Delay(Box::new(s(x)), Box::new(s(k)));
    set_rate(&mut m, x, delay.clone());
    set_rate(&mut m, y, s(a));

    let mut exprs = Vec::new();
    for op in UN {
        exprs.push(Expr::un(op, s(x)));
        exprs.push(Expr::un(op, s(a) - s(y)));
    }
    for op in BIN {
        exprs.push(Expr::bin(op, s(x), s(y)));
        exprs.push(Expr::bin(op, s(y), s(k)));
        exprs.push(Expr::bin(op, num(3.0), s(x)));
    }
    for op in NARY {
        exprs.push(Expr::Nary(op, vec![]));
        exprs.push(Expr::Nary(op, vec![s(x)]));
        exprs.push(Expr::Nary(op, vec![s(x), s(y)]));
        exprs.push(Expr::Nary(op, vec![s(y), s(x), s(k), Expr::Time]));
    }
    exprs.push(Expr::Piecewise(
        vec![(Expr::un(UnOp::Ln, s(x)), Expr::bin(BinOp::Gt, s(x), s(y))), (s(y), s(k))],
        Box::new(Expr::Time),
    ));
    exprs.push(delay * s(y));

    let layout = Layout::of(&m);
    let interp = compile_exprs(&m, &layout, &exprs, &Options { backend: Backend::Interpreter }).unwrap();
    let jit = compile_exprs(&m, &layout, &exprs, &Options { backend: Backend::Jit }).unwrap();
    assert_eq!(jit.backend(), Backend::Jit);

    let special =
        [0.0, -0.0, 1.0, -1.0, 2.0, 3.0, -8.0, 0.5, 170.0, 1e300, -1e-300, f64::INFINITY, f64::NEG_INFINITY, f64::NAN];
    let seed = 20261124;
    println!("seed {seed}");
    let mut rng = Rng(seed);
    let pick = |rng: &mut Rng| {
        if rng.below(3) == 0 {
            special[rng.below(special.len())]
        } else {
            (rng.next_f64() - 0.5) * 10.0
        }
    };
    let (mut out_i, mut out_j) = (vec![0.0; exprs.len()], vec![0.0; exprs.len()]);
    let mut compared = 0;
    for _ in 0..3000 {
        let (t, y, p) = (pick(&mut rng), [pick(&mut rng), pick(&mut rng)], [pick(&mut rng)]);
        interp.eval(t, &y, &p, &mut out_i, &Host);
        jit.eval(t, &y, &p, &mut out_j, &Host);
        for (i, (a, b)) in out_i.iter().zip(&out_j).enumerate() {
            assert!(same(*a, *b), "{:?} at t={t}, y={y:?}, p={p:?}: interpreter {a}, JIT {b}", exprs[i]);
            compared += 1;
        }
    }
    assert_eq!(compared, 3000 * exprs.len());
}

#[test]
fn whole_model_functions_agree_across_backends() {
    // Big enough that the JIT splits rhs and jac into several native chunks.
    let m = mass_action(250, 11);
    let ci = compile(&m, &Options { backend: Backend::Interpreter }).unwrap();
    let cj = compile(&m, &Options::default()).unwrap();
    assert!(cj.rhs.instructions() > 2 * 1024, "{} instructions: not chunked", cj.rhs.instructions());
    assert_eq!(ci.jac_pattern, cj.jac_pattern);
    let mut rng = Rng(5);
    let y: Vec<f64> = (0..ci.layout.y.len()).map(|_| rng.next_f64() * 3.0).collect();
    let p: Vec<f64> = (0..ci.layout.p.len()).map(|_| rng.next_f64()).collect();
    for (fi, fj) in [(&ci.rhs, &cj.rhs), (&ci.jac, &cj.jac), (&ci.values, &cj.values)] {
        let (mut a, mut b) = (vec![0.0; fi.len()], vec![0.0; fj.len()]);
        fi.eval(0.0, &y, &p, &mut a, &Host);
        fj.eval(0.0, &y, &p, &mut b, &Host);
        for (u, v) in a.iter().zip(&b) {
            assert!(same(*u, *v), "{u} vs {v}");
        }
    }
}

struct Panicky;

impl DelayHost for Panicky {
    fn delayed(&self, _k: usize, _t_past: f64) -> f64 {
        panic!("history lost");
    }
}

#[test]
fn a_panicking_delay_host_unwinds_out_of_native_code() {
    let mut m = Model::default();
    let x = state(&mut m, "x", 0.0);
    set_rate(&mut m, x, Expr::Delay(Box::new(s(x)), Box::new(num(1.0))));
    let cm = compile(&m, &Options::default()).unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut out = [0.0];
        cm.rhs.eval(0.0, &[1.0], &[], &mut out, &Panicky);
    }));
    let msg = r.err().and_then(|p| p.downcast_ref::<&str>().map(|s| s.to_string()));
    assert_eq!(msg.as_deref(), Some("history lost"));
}
