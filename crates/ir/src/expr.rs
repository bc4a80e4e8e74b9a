//! Expressions: a small tree over symbols, time and the functions MathML allows.

use crate::Sym;

/// A mathematical expression. Booleans are `1.0` / `0.0`.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Num(f64),
    Sym(Sym),
    /// The simulation time.
    Time,
    Un(UnOp, Box<Expr>),
    Bin(BinOp, Box<Expr>, Box<Expr>),
    /// An operator over any number of arguments (`Add` of none is 0, `Mul` of none is 1).
    Nary(NaryOp, Vec<Expr>),
    /// `(value, condition)` pieces tried in order, then `otherwise`.
    Piecewise(Vec<(Expr, Expr)>, Box<Expr>),
    /// `delay(expr, tau)`: the value `expr` had at `time - tau`.
    Delay(Box<Expr>, Box<Expr>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnOp {
    Neg,
    Not,
    Abs,
    Exp,
    Ln,
    Log10,
    Sqrt,
    Sin,
    Cos,
    Tan,
    Sec,
    Csc,
    Cot,
    Sinh,
    Cosh,
    Tanh,
    Sech,
    Csch,
    Coth,
    Asin,
    Acos,
    Atan,
    Asec,
    Acsc,
    Acot,
    Asinh,
    Acosh,
    Atanh,
    Asech,
    Acsch,
    Acoth,
    Floor,
    Ceil,
    Factorial,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinOp {
    Sub,
    Div,
    Pow,
    /// `Log(base, x)`.
    Log,
    /// `Root(degree, x)`.
    Root,
    /// Remainder with the sign of the dividend (C `fmod`), as MathML `rem`.
    Rem,
    /// Integer quotient truncated toward zero, as MathML `quotient`.
    Quotient,
    Eq,
    Neq,
    Lt,
    Le,
    Gt,
    Ge,
    Implies,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NaryOp {
    Add,
    Mul,
    Min,
    Max,
    And,
    Or,
    Xor,
}

impl Expr {
    pub fn sym(s: Sym) -> Expr {
        Expr::Sym(s)
    }
    pub fn un(op: UnOp, a: Expr) -> Expr {
        Expr::Un(op, Box::new(a))
    }
    pub fn bin(op: BinOp, a: Expr, b: Expr) -> Expr {
        Expr::Bin(op, Box::new(a), Box::new(b))
    }

    /// Calls `f` on this expression and every subexpression, parents first.
    pub fn walk(&self, f: &mut impl FnMut(&Expr)) {
        f(self);
        match self {
            Expr::Num(_) | Expr::Sym(_) | Expr::Time => {}
            Expr::Un(_, a) => a.walk(f),
            Expr::Bin(_, a, b) | Expr::Delay(a, b) => {
                a.walk(f);
                b.walk(f);
            }
            Expr::Nary(_, args) => args.iter().for_each(|a| a.walk(f)),
            Expr::Piecewise(pieces, otherwise) => {
                for (v, c) in pieces {
                    v.walk(f);
                    c.walk(f);
                }
                otherwise.walk(f);
            }
        }
    }

    /// Rebuilds the expression bottom-up, replacing each node by `f(node)`.
    pub fn map(self, f: &mut impl FnMut(Expr) -> Expr) -> Expr {
        let e = match self {
            e @ (Expr::Num(_) | Expr::Sym(_) | Expr::Time) => e,
            Expr::Un(op, a) => Expr::Un(op, Box::new(a.map(f))),
            Expr::Bin(op, a, b) => Expr::Bin(op, Box::new(a.map(f)), Box::new(b.map(f))),
            Expr::Delay(a, b) => Expr::Delay(Box::new(a.map(f)), Box::new(b.map(f))),
            Expr::Nary(op, args) => Expr::Nary(op, args.into_iter().map(|a| a.map(f)).collect()),
            Expr::Piecewise(pieces, otherwise) => Expr::Piecewise(
                pieces.into_iter().map(|(v, c)| (v.map(f), c.map(f))).collect(),
                Box::new(otherwise.map(f)),
            ),
        };
        f(e)
    }

    /// Replaces every occurrence of a symbol by `f(sym)` where it returns `Some`.
    pub fn substitute(self, f: &mut impl FnMut(Sym) -> Option<Expr>) -> Expr {
        self.map(&mut |e| match e {
            Expr::Sym(s) => f(s).unwrap_or(Expr::Sym(s)),
            e => e,
        })
    }

    /// The symbols this expression reads, in first-seen order, without repeats.
    /// Symbols read only inside `delay(...)`'s first argument are included too.
    pub fn symbols(&self) -> Vec<Sym> {
        let mut out = Vec::new();
        self.walk(&mut |e| {
            if let Expr::Sym(s) = e {
                if !out.contains(s) {
                    out.push(*s);
                }
            }
        });
        out
    }

    /// The symbols this expression reads at the current time: those inside
    /// the first argument of a `delay` are read in the past and so are left out.
    pub fn instant_symbols(&self) -> Vec<Sym> {
        let mut out = Vec::new();
        fn go(e: &Expr, out: &mut Vec<Sym>) {
            match e {
                Expr::Sym(s) => {
                    if !out.contains(s) {
                        out.push(*s)
                    }
                }
                Expr::Num(_) | Expr::Time => {}
                Expr::Un(_, a) => go(a, out),
                Expr::Bin(_, a, b) => {
                    go(a, out);
                    go(b, out);
                }
                Expr::Delay(_, tau) => go(tau, out),
                Expr::Nary(_, args) => args.iter().for_each(|a| go(a, out)),
                Expr::Piecewise(pieces, otherwise) => {
                    for (v, c) in pieces {
                        go(v, out);
                        go(c, out);
                    }
                    go(otherwise, out);
                }
            }
        }
        go(self, &mut out);
        out
    }

    pub fn contains_delay(&self) -> bool {
        let mut found = false;
        self.walk(&mut |e| found |= matches!(e, Expr::Delay(..)));
        found
    }

    pub fn is_num(&self, v: f64) -> bool {
        matches!(self, Expr::Num(x) if *x == v)
    }
}

macro_rules! arith {
    ($tr:ident, $m:ident, $body:expr) => {
        impl std::ops::$tr for Expr {
            type Output = Expr;
            fn $m(self, rhs: Expr) -> Expr {
                let f: fn(Expr, Expr) -> Expr = $body;
                f(self, rhs)
            }
        }
    };
}
arith!(Add, add, |a, b| Expr::Nary(NaryOp::Add, vec![a, b]));
arith!(Mul, mul, |a, b| Expr::Nary(NaryOp::Mul, vec![a, b]));
arith!(Sub, sub, |a, b| Expr::bin(BinOp::Sub, a, b));
arith!(Div, div, |a, b| Expr::bin(BinOp::Div, a, b));

impl std::ops::Neg for Expr {
    type Output = Expr;
    fn neg(self) -> Expr {
        Expr::un(UnOp::Neg, self)
    }
}
