//! Scalar semantics of every IR operator, as the backends run them.
//!
//! The definition of what each operator computes is `vht_ir::eval` (shared
//! with the simulator's tree-walking evaluator). The interpreter calls it
//! directly; the JIT emits native instructions only where they are
//! bit-identical to it (IEEE add/sub/mul/div/sqrt/floor/ceil/trunc/compare/
//! select) and otherwise calls the `extern "C"` wrappers below, which call
//! `vht_ir::eval` too, so no backend can drift from the definition.

use vht_ir::eval;
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

#[inline]
pub fn un(op: UnOp, x: f64) -> f64 {
    eval::un(op, x)
}

#[inline]
pub fn bin(op: BinOp, a: f64, b: f64) -> f64 {
    eval::bin(op, a, b)
}

/// One step of `vht_ir::eval::nary(Min, ..)`'s fold, with `acc` the minimum so
/// far: NaN propagates, and on ties (also -0 vs +0) the earlier argument wins.
#[inline]
pub fn min2(acc: f64, x: f64) -> f64 {
    if x < acc || x.is_nan() {
        x
    } else {
        acc
    }
}

#[inline]
pub fn max2(acc: f64, x: f64) -> f64 {
    if x > acc || x.is_nan() {
        x
    } else {
        acc
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

macro_rules! wrappers {
    ($($name:ident = $op:ident;)*) => {
        $(pub extern "C" fn $name(x: f64) -> f64 { eval::un(UnOp::$op, x) })*
    };
}

wrappers! {
    neg = Neg;
    not = Not;
    abs = Abs;
    sqrt = Sqrt;
    floor = Floor;
    ceil = Ceil;
    exp = Exp;
    ln = Ln;
    log10 = Log10;
    sin = Sin;
    cos = Cos;
    tan = Tan;
    sec = Sec;
    csc = Csc;
    cot = Cot;
    sinh = Sinh;
    cosh = Cosh;
    tanh = Tanh;
    sech = Sech;
    csch = Csch;
    coth = Coth;
    asin = Asin;
    acos = Acos;
    atan = Atan;
    asec = Asec;
    acsc = Acsc;
    acot = Acot;
    asinh = Asinh;
    acosh = Acosh;
    atanh = Atanh;
    asech = Asech;
    acsch = Acsch;
    acoth = Acoth;
    factorial = Factorial;
}

macro_rules! bin_wrappers {
    ($($name:ident = $op:ident;)*) => {
        $(pub extern "C" fn $name(a: f64, b: f64) -> f64 { eval::bin(BinOp::$op, a, b) })*
    };
}

bin_wrappers! {
    pow = Pow;
    log = Log;
    root = Root;
    rem = Rem;
    sub = Sub;
    div = Div;
    quotient = Quotient;
    eq = Eq;
    neq = Neq;
    lt = Lt;
    le = Le;
    gt = Gt;
    ge = Ge;
    implies = Implies;
}

pub extern "C" fn min(acc: f64, x: f64) -> f64 {
    min2(acc, x)
}

pub extern "C" fn max(acc: f64, x: f64) -> f64 {
    max2(acc, x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrappers_are_the_ir_semantics() {
        for &x in &[-8.0, -1.5, -0.0, 0.0, 0.3, 1.0, 2.0, 5.0, 800.0, f64::NAN, f64::INFINITY] {
            for op in [UnOp::Cot, UnOp::Factorial, UnOp::Acoth, UnOp::Not] {
                let (a, b) = (un_call(op)(x), eval::un(op, x));
                assert!(a.to_bits() == b.to_bits(), "{op:?}({x}): {a} vs {b}");
            }
            for op in [BinOp::Root, BinOp::Rem, BinOp::Log, BinOp::Implies] {
                let (a, b) = (bin_call(op)(3.0, x), eval::bin(op, 3.0, x));
                assert!(a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()), "{op:?}(3, {x}): {a} vs {b}");
            }
        }
        // The min/max fold steps agree with the IR's n-ary fold, zero signs included.
        let args = [0.0, -0.0, 2.0];
        let folded = args[1..].iter().fold(args[0], |acc, &x| min2(acc, x));
        assert_eq!(folded.to_bits(), eval::nary(vht_ir::NaryOp::Min, args.into_iter()).to_bits());
        assert!(max2(1.0, f64::NAN).is_nan() && max2(f64::NAN, 1.0).is_nan());
    }
}
