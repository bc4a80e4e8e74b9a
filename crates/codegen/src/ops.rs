//! Scalar semantics of every IR operator (MathML / SBML rules).
//!
//! This module is the single definition of what each operator computes. The
//! interpreter calls these functions directly; the JIT emits native
//! instructions only where they are bit-identical to the functions here
//! (IEEE add/sub/mul/div/sqrt/floor/ceil/trunc/compare/select) and calls these
//! very functions (as `extern "C"` symbols) for everything else, so the two
//! backends cannot drift apart.

use vht_ir::{BinOp, UnOp};

#[inline]
pub fn truth(x: f64) -> bool {
    // MathML: any nonzero number is true. NaN != 0.0, so NaN is true; the JIT
    // uses an unordered not-equal compare for the same reason.
    x != 0.0
}

#[inline]
pub fn boolean(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

/// Unary operators that the JIT lowers to a native instruction rather than a call.
pub fn un_is_native(op: UnOp) -> bool {
    matches!(op, UnOp::Neg | UnOp::Not | UnOp::Abs | UnOp::Sqrt | UnOp::Floor | UnOp::Ceil)
}

/// Binary operators that the JIT lowers to native instructions rather than a call.
pub fn bin_is_native(op: BinOp) -> bool {
    !matches!(op, BinOp::Pow | BinOp::Log | BinOp::Root | BinOp::Rem)
}

#[inline]
pub fn un(op: UnOp, x: f64) -> f64 {
    match op {
        UnOp::Neg => -x,
        UnOp::Not => boolean(!truth(x)),
        UnOp::Abs => x.abs(),
        UnOp::Sqrt => x.sqrt(),
        UnOp::Floor => x.floor(),
        UnOp::Ceil => x.ceil(),
        _ => un_call(op)(x),
    }
}

#[inline]
pub fn bin(op: BinOp, a: f64, b: f64) -> f64 {
    match op {
        BinOp::Sub => a - b,
        BinOp::Div => a / b,
        BinOp::Quotient => (a / b).trunc(),
        BinOp::Eq => boolean(a == b),
        BinOp::Neq => boolean(a != b),
        BinOp::Lt => boolean(a < b),
        BinOp::Le => boolean(a <= b),
        BinOp::Gt => boolean(a > b),
        BinOp::Ge => boolean(a >= b),
        BinOp::Implies => boolean(!truth(a) || truth(b)),
        BinOp::Pow | BinOp::Log | BinOp::Root | BinOp::Rem => bin_call(op)(a, b),
    }
}

/// Min and max propagate NaN (unlike `f64::min`): a NaN in a model is a
/// fault to surface, not a value to skip. Cranelift's `fmin`/`fmax` agree.
#[inline]
pub fn min2(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a < b {
        a
    } else {
        b
    }
}

#[inline]
pub fn max2(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a > b {
        a
    } else {
        b
    }
}

/// The out-of-line implementation of a unary operator (for non-native ones
/// this is what both backends run).
pub fn un_call(op: UnOp) -> extern "C" fn(f64) -> f64 {
    match op {
        UnOp::Neg => neg,
        UnOp::Not => not,
        UnOp::Abs => abs,
        UnOp::Sqrt => sqrt,
        UnOp::Floor => floor,
        UnOp::Ceil => ceil,
        UnOp::Exp => exp,
        UnOp::Ln => ln,
        UnOp::Log10 => log10,
        UnOp::Sin => sin,
        UnOp::Cos => cos,
        UnOp::Tan => tan,
        UnOp::Sec => sec,
        UnOp::Csc => csc,
        UnOp::Cot => cot,
        UnOp::Sinh => sinh,
        UnOp::Cosh => cosh,
        UnOp::Tanh => tanh,
        UnOp::Sech => sech,
        UnOp::Csch => csch,
        UnOp::Coth => coth,
        UnOp::Asin => asin,
        UnOp::Acos => acos,
        UnOp::Atan => atan,
        UnOp::Asec => asec,
        UnOp::Acsc => acsc,
        UnOp::Acot => acot,
        UnOp::Asinh => asinh,
        UnOp::Acosh => acosh,
        UnOp::Atanh => atanh,
        UnOp::Asech => asech,
        UnOp::Acsch => acsch,
        UnOp::Acoth => acoth,
        UnOp::Factorial => factorial,
    }
}

pub fn bin_call(op: BinOp) -> extern "C" fn(f64, f64) -> f64 {
    match op {
        BinOp::Pow => pow,
        BinOp::Log => log,
        BinOp::Root => root,
        BinOp::Rem => rem,
        BinOp::Sub => sub,
        BinOp::Div => div,
        BinOp::Quotient => quotient,
        BinOp::Eq => eq,
        BinOp::Neq => neq,
        BinOp::Lt => lt,
        BinOp::Le => le,
        BinOp::Gt => gt,
        BinOp::Ge => ge,
        BinOp::Implies => implies,
    }
}

/// A stable symbol name for the JIT's import table.
pub fn un_name(op: UnOp) -> String {
    format!("vht_un_{op:?}")
}

pub fn bin_name(op: BinOp) -> String {
    format!("vht_bin_{op:?}")
}

macro_rules! unary {
    ($($name:ident = |$x:ident| $body:expr;)*) => {
        $(pub extern "C" fn $name($x: f64) -> f64 { $body })*
    };
}

unary! {
    neg = |x| -x;
    not = |x| boolean(!truth(x));
    abs = |x| x.abs();
    sqrt = |x| x.sqrt();
    floor = |x| x.floor();
    ceil = |x| x.ceil();
    exp = |x| x.exp();
    ln = |x| x.ln();
    log10 = |x| x.log10();
    sin = |x| x.sin();
    cos = |x| x.cos();
    tan = |x| x.tan();
    sec = |x| 1.0 / x.cos();
    csc = |x| 1.0 / x.sin();
    // cos/sin rather than 1/tan: exact zero-crossings do not depend on tan's huge values near pi/2.
    cot = |x| x.cos() / x.sin();
    sinh = |x| x.sinh();
    cosh = |x| x.cosh();
    tanh = |x| x.tanh();
    sech = |x| 1.0 / x.cosh();
    csch = |x| 1.0 / x.sinh();
    // 1/tanh rather than cosh/sinh, which is inf/inf = NaN for |x| > 710.
    coth = |x| 1.0 / x.tanh();
    asin = |x| x.asin();
    acos = |x| x.acos();
    atan = |x| x.atan();
    asec = |x| (1.0 / x).acos();
    acsc = |x| (1.0 / x).asin();
    acot = |x| (1.0 / x).atan();
    asinh = |x| x.asinh();
    acosh = |x| x.acosh();
    atanh = |x| x.atanh();
    asech = |x| (1.0 / x).acosh();
    acsch = |x| (1.0 / x).asinh();
    acoth = |x| (1.0 / x).atanh();
    factorial = |x| factorial_of(x);
}

/// `x!` for non-negative integer `x` (gamma(x+1)); NaN otherwise. Above 170 it
/// overflows to infinity, as gamma does.
fn factorial_of(x: f64) -> f64 {
    if !(x >= 0.0) || x.fract() != 0.0 {
        return f64::NAN;
    }
    if x > 170.0 {
        return f64::INFINITY;
    }
    let mut acc = 1.0;
    let mut i = 2.0;
    while i <= x {
        acc *= i;
        i += 1.0;
    }
    acc
}

macro_rules! binary {
    ($($name:ident = |$a:ident, $b:ident| $body:expr;)*) => {
        $(pub extern "C" fn $name($a: f64, $b: f64) -> f64 { $body })*
    };
}

binary! {
    // powf already gives (-8)^3 = -512 for integer-valued exponents.
    pow = |a, b| a.powf(b);
    log = |base, x| x.ln() / base.ln();
    root = |n, x| root_of(n, x);
    // Rust's `%` on f64 is C fmod: the result has the sign of the dividend.
    rem = |a, b| a % b;
    sub = |a, b| a - b;
    div = |a, b| a / b;
    quotient = |a, b| (a / b).trunc();
    eq = |a, b| boolean(a == b);
    neq = |a, b| boolean(a != b);
    lt = |a, b| boolean(a < b);
    le = |a, b| boolean(a <= b);
    gt = |a, b| boolean(a > b);
    ge = |a, b| boolean(a >= b);
    implies = |a, b| boolean(!truth(a) || truth(b));
    min = |a, b| min2(a, b);
    max = |a, b| max2(a, b);
}

/// `root(n, x) = x^(1/n)`; for an odd integer degree and negative `x` it is
/// the real root `-(|x|^(1/n))` (so the cube root of -8 is -2), as MathML means it.
fn root_of(n: f64, x: f64) -> f64 {
    if x < 0.0 && n.fract() == 0.0 && (n % 2.0).abs() == 1.0 {
        -((-x).powf(1.0 / n))
    } else {
        x.powf(1.0 / n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mathml_corner_cases() {
        assert_eq!(root_of(3.0, -8.0), -2.0);
        assert!(root_of(2.0, -4.0).is_nan());
        assert_eq!(pow(-2.0, 3.0), -8.0);
        assert_eq!(rem(-7.0, 3.0), -1.0);
        assert_eq!(quotient(-7.0, 2.0), -3.0);
        assert_eq!(factorial_of(5.0), 120.0);
        assert_eq!(factorial_of(0.0), 1.0);
        assert!(factorial_of(2.5).is_nan());
        assert!(factorial_of(-1.0).is_nan());
        assert_eq!(log(2.0, 8.0), 3.0);
        assert_eq!(implies(0.0, 0.0), 1.0);
        assert_eq!(implies(1.0, 0.0), 0.0);
        assert!(min2(f64::NAN, 1.0).is_nan());
        assert_eq!(max2(-1.0, 2.0), 2.0);
    }
}
