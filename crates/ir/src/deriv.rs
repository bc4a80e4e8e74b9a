//! Symbolic derivatives and the algebraic simplification that keeps them small.
//!
//! Used for analytic Jacobians. Derivatives are exact where the function is
//! differentiable; operators that are piecewise constant (comparisons,
//! booleans, floor, ceil, factorial, quotient) have derivative 0, which is
//! true almost everywhere. `delay(x, tau)` reads the past, so it is constant
//! with respect to the current value of any symbol.

use crate::{BinOp, Expr, NaryOp, Sym, UnOp};

fn num(v: f64) -> Expr {
    Expr::Num(v)
}

fn un(op: UnOp, a: Expr) -> Expr {
    Expr::un(op, a)
}

fn bin(op: BinOp, a: Expr, b: Expr) -> Expr {
    Expr::bin(op, a, b)
}

fn mul(args: Vec<Expr>) -> Expr {
    Expr::Nary(NaryOp::Mul, args)
}

fn sq(a: Expr) -> Expr {
    a.clone() * a
}

/// d(e)/d(wrt), simplified.
pub fn derivative(e: &Expr, wrt: Sym) -> Expr {
    d(e, wrt).map(simplify).unwrap_or(num(0.0))
}

/// The unsimplified derivative, `None` where it is structurally zero (the
/// subexpression does not depend on `x`). Zeros propagate without building or
/// simplifying anything, and the result is simplified once at the end:
/// simplifying at every level instead costs cubic time on deep expressions.
fn d(e: &Expr, x: Sym) -> Option<Expr> {
    match e {
        Expr::Num(_) | Expr::Time | Expr::Delay(..) => None,
        Expr::Sym(s) => (*s == x).then(|| num(1.0)),
        Expr::Un(op, a) => {
            let da = d(a, x)?;
            d_un(*op, a, da)
        }
        Expr::Bin(op, a, b) => d_bin(*op, a, b, x),
        Expr::Nary(op, args) => d_nary(*op, args, x),
        Expr::Piecewise(pieces, otherwise) => {
            let dvs: Vec<Option<Expr>> = pieces.iter().map(|(v, _)| d(v, x)).collect();
            let dother = d(otherwise, x);
            if dother.is_none() && dvs.iter().all(Option::is_none) {
                return None;
            }
            Some(Expr::Piecewise(
                pieces.iter().zip(dvs).map(|((_, c), dv)| (dv.unwrap_or(num(0.0)), c.clone())).collect(),
                Box::new(dother.unwrap_or(num(0.0))),
            ))
        }
    }
}

/// d(op(a)) given da = d(a).
fn d_un(op: UnOp, a: &Expr, da: Expr) -> Option<Expr> {
    let a = || a.clone();
    let one = || num(1.0);
    // f'(a), to be multiplied by da.
    let fp = match op {
        UnOp::Not | UnOp::Floor | UnOp::Ceil | UnOp::Factorial => return None,
        UnOp::Neg => return Some(-da),
        // Sign of a; 0 at the kink (and for NaN).
        UnOp::Abs => Expr::Piecewise(
            vec![(num(1.0), bin(BinOp::Gt, a(), num(0.0))), (num(-1.0), bin(BinOp::Lt, a(), num(0.0)))],
            Box::new(num(0.0)),
        ),
        UnOp::Exp => un(UnOp::Exp, a()),
        UnOp::Ln => return Some(da / a()),
        UnOp::Log10 => return Some(da / (a() * num(std::f64::consts::LN_10))),
        UnOp::Sqrt => return Some(da / (num(2.0) * un(UnOp::Sqrt, a()))),
        UnOp::Sin => un(UnOp::Cos, a()),
        UnOp::Cos => -un(UnOp::Sin, a()),
        UnOp::Tan => return Some(da / sq(un(UnOp::Cos, a()))),
        UnOp::Sec => un(UnOp::Sec, a()) * un(UnOp::Tan, a()),
        UnOp::Csc => -(un(UnOp::Csc, a()) * un(UnOp::Cot, a())),
        UnOp::Cot => return Some(-(da / sq(un(UnOp::Sin, a())))),
        UnOp::Sinh => un(UnOp::Cosh, a()),
        UnOp::Cosh => un(UnOp::Sinh, a()),
        UnOp::Tanh => sq(un(UnOp::Sech, a())),
        UnOp::Sech => -(un(UnOp::Sech, a()) * un(UnOp::Tanh, a())),
        UnOp::Csch => -(un(UnOp::Csch, a()) * un(UnOp::Coth, a())),
        UnOp::Coth => -sq(un(UnOp::Csch, a())),
        UnOp::Asin => return Some(da / un(UnOp::Sqrt, one() - sq(a()))),
        UnOp::Acos => return Some(-(da / un(UnOp::Sqrt, one() - sq(a())))),
        UnOp::Atan => return Some(da / (one() + sq(a()))),
        UnOp::Asinh => return Some(da / un(UnOp::Sqrt, sq(a()) + one())),
        UnOp::Acosh => return Some(da / un(UnOp::Sqrt, sq(a()) - one())),
        UnOp::Atanh => return Some(da / (one() - sq(a()))),
        // The inverse reciprocal functions are defined as f(1/a): chain rule
        // through u = 1/a, du = -da/a^2.
        UnOp::Asec | UnOp::Acsc | UnOp::Acot | UnOp::Asech | UnOp::Acsch | UnOp::Acoth => {
            let f = match op {
                UnOp::Asec => UnOp::Acos,
                UnOp::Acsc => UnOp::Asin,
                UnOp::Acot => UnOp::Atan,
                UnOp::Asech => UnOp::Acosh,
                UnOp::Acsch => UnOp::Asinh,
                _ => UnOp::Atanh,
            };
            let u = one() / a();
            let du = -(da / sq(a()));
            return d_un(f, &u, du);
        }
    };
    Some(fp * da)
}

/// The sum of the present terms; `None` if there are none.
fn sum(terms: Vec<Expr>) -> Option<Expr> {
    match terms.len() {
        0 => None,
        _ => Some(Expr::Nary(NaryOp::Add, terms)),
    }
}

fn d_bin(op: BinOp, a: &Expr, b: &Expr, x: Sym) -> Option<Expr> {
    let (ca, cb) = (|| a.clone(), || b.clone());
    match op {
        BinOp::Sub => match (d(a, x), d(b, x)) {
            (None, None) => None,
            (Some(da), None) => Some(da),
            (None, Some(db)) => Some(-db),
            (Some(da), Some(db)) => Some(da - db),
        },
        BinOp::Div => match (d(a, x), d(b, x)) {
            (None, None) => None,
            (Some(da), None) => Some(da / cb()),
            // (a/b)' = (da - (a/b) db) / b, reusing the quotient the function already computes.
            (da, Some(db)) => {
                let q_db = bin(BinOp::Div, ca(), cb()) * db;
                Some(match da {
                    Some(da) => (da - q_db) / cb(),
                    None => -(q_db / cb()),
                })
            }
        },
        BinOp::Pow => {
            let mut terms = Vec::new();
            if let Some(da) = d(a, x) {
                // b a^(b-1) da; written with a^(b-1) (not a^b / a) so it is right at a = 0.
                terms.push(mul(vec![cb(), bin(BinOp::Pow, ca(), cb() - num(1.0)), da]));
            }
            if let Some(db) = d(b, x) {
                terms.push(mul(vec![bin(BinOp::Pow, ca(), cb()), un(UnOp::Ln, ca()), db]));
            }
            sum(terms)
        }
        // log_b(v) = ln v / ln b.
        BinOp::Log => d(&(un(UnOp::Ln, cb()) / un(UnOp::Ln, ca())), x),
        BinOp::Root => {
            // r = root(n, v): dr/dv = r / (n v) (also for the real odd root
            // of a negative v), dr/dn = -r ln|v| / n^2.
            let r = || bin(BinOp::Root, ca(), cb());
            let mut terms = Vec::new();
            if let Some(dv) = d(b, x) {
                terms.push(r() * dv / (ca() * cb()));
            }
            if let Some(dn) = d(a, x) {
                terms.push(-(mul(vec![r(), un(UnOp::Ln, un(UnOp::Abs, cb())), dn]) / sq(ca())));
            }
            sum(terms)
        }
        // rem(a, b) = a - b trunc(a/b), and trunc is piecewise constant.
        BinOp::Rem => match (d(a, x), d(b, x)) {
            (None, None) => None,
            (Some(da), None) => Some(da),
            (da, Some(db)) => {
                let q_db = bin(BinOp::Quotient, ca(), cb()) * db;
                Some(match da {
                    Some(da) => da - q_db,
                    None => -q_db,
                })
            }
        },
        BinOp::Quotient | BinOp::Eq | BinOp::Neq | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge | BinOp::Implies => {
            None
        }
    }
}

fn d_nary(op: NaryOp, args: &[Expr], x: Sym) -> Option<Expr> {
    match op {
        NaryOp::Add => sum(args.iter().filter_map(|a| d(a, x)).collect()),
        NaryOp::Mul => {
            // Product rule; factors that do not depend on x contribute no term.
            let mut terms = Vec::new();
            for (i, a) in args.iter().enumerate() {
                let Some(da) = d(a, x) else { continue };
                let mut factors: Vec<Expr> =
                    args.iter().enumerate().filter(|&(j, _)| j != i).map(|(_, b)| b.clone()).collect();
                factors.push(da);
                terms.push(mul(factors));
            }
            sum(terms)
        }
        NaryOp::Min | NaryOp::Max => {
            // The derivative of the argument that is the extremum (the first
            // one, on ties). Otherwise (a NaN argument) 0.
            let das: Vec<Option<Expr>> = args.iter().map(|a| d(a, x)).collect();
            if das.iter().all(Option::is_none) {
                return None;
            }
            let ext = Expr::Nary(op, args.to_vec());
            let pieces = args
                .iter()
                .zip(das)
                .map(|(a, da)| (da.unwrap_or(num(0.0)), bin(BinOp::Eq, a.clone(), ext.clone())))
                .collect();
            Some(Expr::Piecewise(pieces, Box::new(num(0.0))))
        }
        NaryOp::And | NaryOp::Or | NaryOp::Xor => None,
    }
}

/// Algebraic simplification, bottom-up: constant folding of arithmetic,
/// `x*0`, `x*1`, `x+0`, `x-0`, `x/1`, `x^1`, `x^0`, double negation,
/// flattening of nested sums and products, and piecewise pieces whose
/// condition is a constant. `x*0` becomes `0` even if `x` could be infinite or
/// NaN: that is the usual symbolic convention, and what keeps Jacobians sparse.
pub fn simplify(e: Expr) -> Expr {
    e.map(&mut simplify_node)
}

/// Simplifies one node whose children are already simplified.
fn simplify_node(e: Expr) -> Expr {
    match e {
        Expr::Un(op, a) => match (op, *a) {
            (UnOp::Neg, Expr::Num(v)) => num(-v),
            (UnOp::Neg, Expr::Un(UnOp::Neg, inner)) => *inner,
            // Folding is limited to functions whose result std defines the
            // same way everywhere the compiled code runs.
            (UnOp::Exp, Expr::Num(v)) => num(v.exp()),
            (UnOp::Ln, Expr::Num(v)) => num(v.ln()),
            (UnOp::Sqrt, Expr::Num(v)) => num(v.sqrt()),
            (UnOp::Abs, Expr::Num(v)) => num(v.abs()),
            (op, a) => un(op, a),
        },
        Expr::Bin(op, a, b) => match (op, *a, *b) {
            (BinOp::Sub, Expr::Num(x), Expr::Num(y)) => num(x - y),
            (BinOp::Sub, a, Expr::Num(0.0)) => a,
            (BinOp::Sub, Expr::Num(0.0), b) => simplify_node(-b),
            (BinOp::Div, Expr::Num(x), Expr::Num(y)) => num(x / y),
            (BinOp::Div, a, Expr::Num(1.0)) => a,
            (BinOp::Div, Expr::Num(0.0), _) => num(0.0),
            (BinOp::Pow, Expr::Num(x), Expr::Num(y)) => num(x.powf(y)),
            (BinOp::Pow, a, Expr::Num(1.0)) => a,
            (BinOp::Pow, _, Expr::Num(0.0)) => num(1.0),
            (op, a, b) => bin(op, a, b),
        },
        Expr::Nary(NaryOp::Add, args) => {
            let mut flat = Vec::with_capacity(args.len());
            let mut c = 0.0;
            let mut has_c = false;
            for a in args {
                match a {
                    Expr::Nary(NaryOp::Add, inner) => flat.extend(inner),
                    a => flat.push(a),
                }
            }
            let mut out = Vec::with_capacity(flat.len());
            for a in flat {
                match a {
                    Expr::Num(v) => {
                        c += v;
                        has_c = true;
                    }
                    a => out.push(a),
                }
            }
            if has_c && c != 0.0 {
                out.push(num(c));
            }
            match out.len() {
                0 => num(0.0),
                1 => out.pop().unwrap_or(num(0.0)),
                _ => Expr::Nary(NaryOp::Add, out),
            }
        }
        Expr::Nary(NaryOp::Mul, args) => {
            let mut flat = Vec::with_capacity(args.len());
            for a in args {
                match a {
                    Expr::Nary(NaryOp::Mul, inner) => flat.extend(inner),
                    a => flat.push(a),
                }
            }
            let mut c = 1.0;
            let mut out = Vec::with_capacity(flat.len());
            for a in flat {
                match a {
                    Expr::Num(v) => c *= v,
                    a => out.push(a),
                }
            }
            if c == 0.0 {
                return num(0.0);
            }
            if out.is_empty() {
                return num(c);
            }
            if c == -1.0 && out.len() == 1 {
                return -out.pop().unwrap_or(num(0.0));
            }
            if c != 1.0 {
                // The constant goes first: the conventional reading order.
                out.insert(0, num(c));
            }
            if out.len() == 1 {
                out.pop().unwrap_or(num(1.0))
            } else {
                Expr::Nary(NaryOp::Mul, out)
            }
        }
        Expr::Piecewise(pieces, otherwise) => {
            let mut kept = Vec::with_capacity(pieces.len());
            let mut otherwise = *otherwise;
            for (v, c) in pieces {
                match c {
                    Expr::Num(0.0) => continue,
                    // A constant true condition ends the list: later pieces
                    // can never be chosen.
                    Expr::Num(_) => {
                        otherwise = v;
                        break;
                    }
                    c => kept.push((v, c)),
                }
            }
            // Trailing pieces whose value equals the fallback change nothing.
            while kept.last().is_some_and(|(v, _)| *v == otherwise) {
                kept.pop();
            }
            if kept.is_empty() {
                otherwise
            } else {
                Expr::Piecewise(kept, Box::new(otherwise))
            }
        }
        e => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn x() -> Expr {
        Expr::Sym(Sym(0))
    }
    fn y() -> Expr {
        Expr::Sym(Sym(1))
    }

    #[test]
    fn simplify_folds_and_flattens() {
        let e = (x() * num(1.0) + num(0.0)) + (num(2.0) * num(3.0) + y() * num(0.0));
        assert_eq!(simplify(e), Expr::Nary(NaryOp::Add, vec![x(), num(6.0)]));
        let e = num(2.0) * (x() * (num(3.0) * y()));
        assert_eq!(simplify(e), Expr::Nary(NaryOp::Mul, vec![num(6.0), x(), y()]));
        assert_eq!(simplify(num(-1.0) * x()), -x());
        assert_eq!(simplify(-(-x())), x());
        assert_eq!(simplify(x() - num(0.0)), x());
        assert_eq!(simplify(bin(BinOp::Pow, x(), num(1.0))), x());
    }

    #[test]
    fn simplify_drops_dead_pieces() {
        let gt = bin(BinOp::Gt, x(), num(0.0));
        let pw = Expr::Piecewise(
            vec![(num(5.0), num(0.0)), (y(), gt.clone()), (num(1.0), num(1.0)), (num(9.0), gt.clone())],
            Box::new(num(2.0)),
        );
        assert_eq!(simplify(pw), Expr::Piecewise(vec![(y(), gt.clone())], Box::new(num(1.0))));
        let same = Expr::Piecewise(vec![(num(0.0), gt)], Box::new(num(0.0)));
        assert_eq!(simplify(same), num(0.0));
    }

    #[test]
    fn derivatives_of_independent_and_piecewise_constant_terms_vanish() {
        assert_eq!(derivative(&(y() * un(UnOp::Exp, y())), Sym(0)), num(0.0));
        assert_eq!(derivative(&bin(BinOp::Lt, x(), y()), Sym(0)), num(0.0));
        assert_eq!(derivative(&un(UnOp::Floor, x()), Sym(0)), num(0.0));
        assert_eq!(derivative(&Expr::Delay(Box::new(x()), Box::new(x())), Sym(0)), num(0.0));
        assert_eq!(derivative(&(num(3.0) * x()), Sym(0)), num(3.0));
        assert_eq!(derivative(&(x() * y()), Sym(0)), y());
    }
}
