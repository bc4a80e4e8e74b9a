//! Symbolic derivatives and the analytic Jacobian against central finite
//! differences of the interpreter.

mod common;

use common::*;
use vht_codegen::{compile, compile_exprs, Backend, Layout, NoDelays, Options};
use vht_ir::{derivative, BinOp, Expr, Model, NaryOp, SymbolKind, UnOp};

const INTERP: Options = Options { backend: Backend::Interpreter };

fn u(op: UnOp, a: Expr) -> Expr {
    Expr::un(op, a)
}
fn b(op: BinOp, a: Expr, c: Expr) -> Expr {
    Expr::bin(op, a, c)
}
fn n(op: NaryOp, args: Vec<Expr>) -> Expr {
    Expr::Nary(op, args)
}

/// Expressions in x and y covering every operator.
fn cases(x: Expr, y: Expr) -> Vec<Expr> {
    use BinOp::*;
    use UnOp::*;
    let x = || x.clone();
    let y = || y.clone();
    vec![
        b(Pow, x(), num(3.0)) * y() / (num(1.0) + x() * x()),
        u(Exp, u(Sin, x())) * u(Ln, y()) - u(Neg, u(Cos, x())),
        u(Sqrt, x()) + u(Log10, x() * y()),
        u(Tan, x()) + u(Sec, x()) + u(Csc, x()) + u(Cot, x()),
        u(Sinh, x()) * u(Cosh, y()) + u(Tanh, x()) + u(Sech, x()) + u(Csch, x()) + u(Coth, x()),
        u(Asin, x() / num(3.0)) + u(Acos, x() / num(3.0)) + u(Atan, x()),
        u(Asec, x() + num(2.0)) + u(Acsc, x() + num(2.0)) + u(Acot, x()),
        u(Asinh, x()) + u(Acosh, x() + num(2.0)) + u(Atanh, x() / num(3.0)),
        u(Asech, x() / num(3.0)) + u(Acsch, x()) + u(Acoth, x() + num(2.0)),
        b(Pow, x(), y()) + b(Root, num(3.0), x() - num(1.0)) + b(Root, y(), x()) + b(Log, y(), x()),
        b(Rem, x() * num(5.0), y()) + b(Quotient, x(), y()) * x() + u(Abs, x() - num(1.0)) + u(Floor, x()) * x(),
        Expr::Piecewise(vec![(x() * x(), b(Gt, x(), num(1.0)))], Box::new(-x()))
            + n(NaryOp::Min, vec![x(), y(), num(2.0)])
            + n(NaryOp::Max, vec![x() * y(), num(1.0)]),
        n(NaryOp::Mul, vec![x(), x(), y(), u(Exp, x())]) + u(Factorial, u(Ceil, x())),
        n(NaryOp::And, vec![b(Gt, x(), num(0.0)), b(Lt, y(), num(5.0))]) * x()
            + n(NaryOp::Xor, vec![x(), y()])
            + n(NaryOp::Or, vec![u(Not, x())])
            + b(Implies, x(), y()) * b(Le, x(), y()) * b(Ge, x(), y()) * b(Eq, x(), y()) * b(Neq, x(), y()),
    ]
}

#[test]
fn derivatives_match_central_differences() {
    let mut m = Model::default();
    let x = state(&mut m, "x", 0.0);
    let y = state(&mut m, "y", 0.0);
    let layout = Layout::of(&m);
    let exprs = cases(s(x), s(y));
    let mut all = exprs.clone();
    for e in &exprs {
        all.push(derivative(e, x));
        all.push(derivative(e, y));
    }
    let f = compile_exprs(&m, &layout, &all, &INTERP).unwrap();
    let k = exprs.len();
    let eval = |xv: f64, yv: f64| {
        let mut out = vec![0.0; all.len()];
        f.eval(0.0, &[xv, yv], &[], &mut out, &NoDelays);
        out
    };
    let mut checked = 0;
    for (xv, yv) in [(0.7, 1.3), (1.6, 2.1), (0.35, 0.9)] {
        let at = eval(xv, yv);
        for (wrt, (dx, dy)) in [(0, (1.0, 0.0)), (1, (0.0, 1.0))] {
            let h = 1e-6;
            let plus = eval(xv + h * dx, yv + h * dy);
            let minus = eval(xv - h * dx, yv - h * dy);
            for i in 0..k {
                let fd = (plus[i] - minus[i]) / (2.0 * h);
                let exact = at[k + 2 * i + wrt];
                if !at[i].is_finite() {
                    continue;
                }
                assert!(
                    (fd - exact).abs() <= 1e-6 * (1.0 + exact.abs()),
                    "case {i} d/d{} at ({xv}, {yv}): exact {exact}, differences {fd}\n{:?}",
                    ["x", "y"][wrt],
                    all[k + 2 * i + wrt]
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 80, "only {checked} derivatives were finite");
}

/// A nonlinear model with a chain of assigned symbols, an algebraic unknown,
/// and a state that does not depend on another (a structural zero).
fn nonlinear() -> Model {
    let mut m = Model::default();
    let k1 = param(&mut m, "k1", 0.8);
    let k2 = param(&mut m, "k2", 1.7);
    let x1 = state(&mut m, "x1", 0.0);
    let x2 = state(&mut m, "x2", 0.0);
    let x3 = state(&mut m, "x3", 0.0);
    let z = m.add("z", vht_ir::Role::Species, SymbolKind::Algebraic, num(1.0));
    let a3 = assigned(&mut m, "a3", num(0.0));
    let a1 = assigned(&mut m, "a1", n(NaryOp::Mul, vec![s(k1), s(x1), s(x2)]) / (num(1.0) + s(x3) * s(x3)));
    let a2 = assigned(&mut m, "a2", u(UnOp::Exp, -s(a1)) + s(z) * s(x1));
    m.symbols[a3.index()].kind = SymbolKind::Assigned {
        expr: Expr::Piecewise(vec![(s(a2) * s(a2), b(BinOp::Gt, s(x1), num(0.5)))], Box::new(u(UnOp::Sin, s(a2)))),
    };
    assigned(&mut m, "unused", u(UnOp::Ln, s(x1)));
    set_rate(&mut m, x1, -s(a1) + s(k2) * s(x3));
    set_rate(&mut m, x2, s(a1) - s(a3) * s(x2));
    set_rate(&mut m, x3, s(a2) - n(NaryOp::Min, vec![s(x3), s(a3)]) + s(x1) * s(k1));
    m.algebraic.push(s(z) * s(z) * s(z) + s(z) - s(x1) * s(a1));
    m
}

#[test]
fn jacobian_matches_finite_differences() {
    let m = nonlinear();
    let cm = compile(&m, &INTERP).unwrap();
    let ny = cm.layout.y.len();
    let p = [0.8, 1.7];
    let mut sorted = cm.jac_pattern.clone();
    sorted.sort();
    assert_eq!(sorted, cm.jac_pattern, "pattern must be row-major sorted");
    // x1' = -a1 + k2 x3 does not read the algebraic unknown z (column 3),
    // though a2, in the same chain of rules, does.
    assert!(!cm.jac_pattern.contains(&(0, 3)), "{:?}", cm.jac_pattern);
    assert_eq!(cm.jac_pattern.len(), 15);
    for y in [[0.9, 1.2, 0.4, 0.7], [0.3, 2.0, 1.5, -0.4]] {
        let mut jv = vec![0.0; cm.jac_pattern.len()];
        cm.jac.eval(0.0, &y, &p, &mut jv, &NoDelays);
        let mut dense = vec![0.0; ny * ny];
        for (&(r, c), v) in cm.jac_pattern.iter().zip(&jv) {
            dense[r * ny + c] = *v;
        }
        for c in 0..ny {
            let h = 1e-6;
            let (mut yp, mut ym) = (y, y);
            yp[c] += h;
            ym[c] -= h;
            let (mut fp, mut fm) = (vec![0.0; ny], vec![0.0; ny]);
            cm.rhs.eval(0.0, &yp, &p, &mut fp, &NoDelays);
            cm.rhs.eval(0.0, &ym, &p, &mut fm, &NoDelays);
            for r in 0..ny {
                let fd = (fp[r] - fm[r]) / (2.0 * h);
                let exact = dense[r * ny + c];
                assert!(
                    (fd - exact).abs() <= 1e-6 * (1.0 + exact.abs()),
                    "J[{r}][{c}] at {y:?}: analytic {exact}, differences {fd}"
                );
            }
        }
    }
}

#[test]
fn jacobian_shares_rule_derivatives() {
    // Mass action: every rate reads fluxes v_r; their derivatives are
    // computed once however many rates read them.
    let m = mass_action(100, 3);
    let cm = compile(&m, &INTERP).unwrap();
    assert!(cm.jac_pattern.len() <= 100 * 100);
    // Each bimolecular flux has 2 nonzero partials, each unimolecular 1:
    // at most 3 * 200 / 2 * ... distinct products; a generous bound that an
    // inlining, unshared Jacobian of this model exceeds.
    assert!(cm.jac.instructions() < 4 * 1000, "{} instructions", cm.jac.instructions());
}
