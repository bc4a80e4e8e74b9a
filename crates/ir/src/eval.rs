//! Scalar semantics of every operator, and a tree-walking evaluator.
//!
//! The code generator's backends must agree with [`un`], [`bin`] and
//! [`nary`]; the simulator uses [`eval`] where speed does not matter
//! (initial values, event assignments).

use crate::{BinOp, Expr, NaryOp, Sym, UnOp};

fn truth(x: f64) -> bool {
    x != 0.0
}
fn num(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

pub fn un(op: UnOp, x: f64) -> f64 {
    use UnOp::*;
    match op {
        Neg => -x,
        Not => num(!truth(x)),
        Abs => x.abs(),
        Exp => x.exp(),
        Ln => x.ln(),
        Log10 => x.log10(),
        Sqrt => x.sqrt(),
        Sin => x.sin(),
        Cos => x.cos(),
        Tan => x.tan(),
        Sec => 1.0 / x.cos(),
        Csc => 1.0 / x.sin(),
        Cot => 1.0 / x.tan(),
        Sinh => x.sinh(),
        Cosh => x.cosh(),
        Tanh => x.tanh(),
        Sech => 1.0 / x.cosh(),
        Csch => 1.0 / x.sinh(),
        Coth => 1.0 / x.tanh(),
        Asin => x.asin(),
        Acos => x.acos(),
        Atan => x.atan(),
        Asec => (1.0 / x).acos(),
        Acsc => (1.0 / x).asin(),
        Acot => (1.0 / x).atan(),
        Asinh => x.asinh(),
        Acosh => x.acosh(),
        Atanh => x.atanh(),
        Asech => (1.0 / x).acosh(),
        Acsch => (1.0 / x).asinh(),
        Acoth => (1.0 / x).atanh(),
        Floor => x.floor(),
        Ceil => x.ceil(),
        Factorial => factorial(x),
    }
}

fn factorial(x: f64) -> f64 {
    if x < 0.0 || x.fract() != 0.0 {
        return f64::NAN;
    }
    if x > 170.0 {
        return f64::INFINITY;
    }
    (1..=(x as u32)).fold(1.0, |acc, k| acc * k as f64)
}

pub fn bin(op: BinOp, a: f64, b: f64) -> f64 {
    use BinOp::*;
    match op {
        Sub => a - b,
        Div => a / b,
        Pow => a.powf(b),
        Log => b.ln() / a.ln(),
        Root => {
            if a == 2.0 {
                b.sqrt()
            } else if b < 0.0 && a.fract() == 0.0 && (a as i64) % 2 != 0 {
                -(-b).powf(1.0 / a)
            } else {
                b.powf(1.0 / a)
            }
        }
        Rem => a % b,
        Quotient => (a / b).trunc(),
        Eq => num(a == b),
        Neq => num(a != b),
        Lt => num(a < b),
        Le => num(a <= b),
        Gt => num(a > b),
        Ge => num(a >= b),
        Implies => num(!truth(a) || truth(b)),
    }
}

pub fn nary(op: NaryOp, args: impl Iterator<Item = f64>) -> f64 {
    use NaryOp::*;
    match op {
        Add => args.sum(),
        Mul => args.product(),
        Min => args.fold(f64::INFINITY, |m, x| if x < m || x.is_nan() { x } else { m }),
        Max => args.fold(f64::NEG_INFINITY, |m, x| if x > m || x.is_nan() { x } else { m }),
        And => num(args.fold(true, |acc, x| acc & truth(x))),
        Or => num(args.fold(false, |acc, x| acc | truth(x))),
        Xor => num(args.fold(false, |acc, x| acc ^ truth(x))),
    }
}

/// What an expression reads: symbol values at the current time, and (for
/// `delay`) the value of an expression at an earlier time.
pub trait Env {
    fn value(&self, s: Sym) -> f64;
    fn time(&self) -> f64;
    fn delayed(&self, expr: &Expr, t_past: f64) -> f64;
}

/// Evaluates `e` by walking the tree. Piecewise evaluates only the branch it takes.
pub fn eval(e: &Expr, env: &dyn Env) -> f64 {
    match e {
        Expr::Num(x) => *x,
        Expr::Sym(s) => env.value(*s),
        Expr::Time => env.time(),
        Expr::Un(op, a) => un(*op, eval(a, env)),
        Expr::Bin(op, a, b) => bin(*op, eval(a, env), eval(b, env)),
        Expr::Nary(op, args) => nary(*op, args.iter().map(|a| eval(a, env))),
        Expr::Piecewise(pieces, otherwise) => {
            for (v, c) in pieces {
                if truth(eval(c, env)) {
                    return eval(v, env);
                }
            }
            eval(otherwise, env)
        }
        Expr::Delay(x, tau) => {
            let tau = eval(tau, env);
            env.delayed(x, env.time() - tau)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_roots_of_negatives_are_real() {
        assert_eq!(bin(BinOp::Root, 3.0, -8.0), -2.0);
        assert!(bin(BinOp::Root, 2.0, -4.0).is_nan());
    }

    #[test]
    fn boolean_operators_on_numbers() {
        assert_eq!(nary(NaryOp::Xor, [1.0, 2.0, 0.0].into_iter()), 0.0);
        assert_eq!(nary(NaryOp::And, std::iter::empty()), 1.0);
        assert_eq!(bin(BinOp::Implies, 0.0, 0.0), 1.0);
        assert_eq!(un(UnOp::Factorial, 5.0), 120.0);
        assert_eq!(bin(BinOp::Quotient, -7.0, 2.0), -3.0);
        assert_eq!(bin(BinOp::Rem, -7.0, 2.0), -1.0);
    }
}
